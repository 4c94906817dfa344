//! Lightning's DeviceStatsMonitor: device statistics at the batch hooks when logs are due,
//! as `DeviceStatsMonitor.<hook>/<stat>`. CPU (psutil's definitions, read from /proc):
//! `cpu_percent` (system CPU use since the last reading), `cpu_vm_percent`,
//! `cpu_swap_percent`, plus the process's `cpu_rss_mb`. CUDA, when the run uses it:
//! `cuda_memory_used_mb`, `cuda_memory_total_mb` and `gpu_utilization` from NVML (loaded
//! at run time; absent drivers mean no CUDA stats, not an error).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{Callback, CallbackAction, HookInfo};
use crate::hooks::Hook;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceStatsConfig {
    /// CPU statistics (on a CUDA run, in addition to the GPU's).
    pub cpu_stats: bool,
}

impl Default for DeviceStatsConfig {
    fn default() -> Self {
        DeviceStatsConfig { cpu_stats: true }
    }
}

pub struct DeviceStatsMonitor {
    cfg: DeviceStatsConfig,
    /// (busy, total) jiffies at the last reading of /proc/stat.
    last_cpu: Option<(u64, u64)>,
}

impl DeviceStatsMonitor {
    pub fn new(cfg: DeviceStatsConfig) -> Self {
        DeviceStatsMonitor { cfg, last_cpu: None }
    }

    fn cpu_stats(&mut self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        if let Some((busy, total)) = cpu_jiffies() {
            let pct = match self.last_cpu {
                Some((b0, t0)) if total > t0 => 100.0 * busy.saturating_sub(b0) as f64 / (total - t0) as f64,
                _ => 0.0,
            };
            self.last_cpu = Some((busy, total));
            out.push(("cpu_percent", pct));
        }
        let mem = meminfo();
        let get = |k: &str| mem.iter().find(|(n, _)| n == k).map(|(_, v)| *v as f64);
        if let (Some(total), Some(avail)) = (get("MemTotal"), get("MemAvailable")) {
            out.push(("cpu_vm_percent", 100.0 * (total - avail) / total.max(1.0)));
        }
        if let (Some(total), Some(free)) = (get("SwapTotal"), get("SwapFree")) {
            out.push(("cpu_swap_percent", if total > 0.0 { 100.0 * (total - free) / total } else { 0.0 }));
        }
        if let Some(rss) = rss_bytes() {
            out.push(("cpu_rss_mb", rss as f64 / (1 << 20) as f64));
        }
        out
    }
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

fn cpu_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn meminfo() -> Vec<(String, u64)> {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else { return Vec::new() };
    text.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            Some((k.to_string(), rest.split_whitespace().next()?.parse::<u64>().ok()? * 1024))
        })
        .collect()
}

impl Callback for DeviceStatsMonitor {
    fn name(&self) -> &str {
        "DeviceStatsMonitor"
    }

    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> Result<CallbackAction> {
        let due = matches!(
            hook,
            Hook::OnTrainBatchStart
                | Hook::OnTrainBatchEnd
                | Hook::OnValidationBatchStart
                | Hook::OnValidationBatchEnd
                | Hook::OnTestBatchStart
                | Hook::OnTestBatchEnd
        );
        if hook == Hook::OnTrainStart && !info.has_logger {
            anyhow::bail!("Cannot use `DeviceStatsMonitor` callback with a Trainer that has no logger");
        }
        if !due || !info.should_update_logs {
            return Ok(CallbackAction::default());
        }
        let mut stats: Vec<(&'static str, f64)> = Vec::new();
        let cuda = matches!(info.device, tch::Device::Cuda(_));
        if let tch::Device::Cuda(i) = info.device {
            stats.extend(nvml::stats(i as u32));
        }
        if self.cfg.cpu_stats || !cuda {
            stats.extend(self.cpu_stats());
        }
        let prefix = format!("DeviceStatsMonitor.{}", hook.name());
        Ok(CallbackAction {
            metrics: stats.into_iter().map(|(k, v)| (format!("{prefix}/{k}"), v)).collect(),
            ..CallbackAction::default()
        })
    }
}

/// NVIDIA's management library, opened at run time (it ships with the driver).
mod nvml {
    use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
    use std::sync::OnceLock;

    #[repr(C)]
    struct Memory {
        total: u64,
        free: u64,
        used: u64,
    }
    #[repr(C)]
    struct Utilization {
        gpu: c_uint,
        memory: c_uint,
    }

    type Init = unsafe extern "C" fn() -> c_int;
    type ByIndex = unsafe extern "C" fn(c_uint, *mut *mut c_void) -> c_int;
    type MemInfo = unsafe extern "C" fn(*mut c_void, *mut Memory) -> c_int;
    type UtilRates = unsafe extern "C" fn(*mut c_void, *mut Utilization) -> c_int;

    struct Lib {
        by_index: ByIndex,
        mem: MemInfo,
        util: UtilRates,
    }

    fn sym<T>(h: *mut c_void, name: &CStr) -> Option<T> {
        // SAFETY: dlsym on a handle from dlopen; the pointer is only transmuted when found,
        // to the C signature NVML documents for that symbol.
        unsafe {
            let p = libc::dlsym(h, name.as_ptr() as *const c_char);
            if p.is_null() {
                None
            } else {
                Some(std::mem::transmute_copy::<*mut c_void, T>(&p))
            }
        }
    }

    fn lib() -> Option<&'static Lib> {
        static LIB: OnceLock<Option<Lib>> = OnceLock::new();
        LIB.get_or_init(|| {
            // SAFETY: dlopen of a system library by name; failure returns null.
            let h = unsafe { libc::dlopen(c"libnvidia-ml.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if h.is_null() {
                return None;
            }
            let init: Init = sym(h, c"nvmlInit_v2")?;
            // SAFETY: nvmlInit_v2 takes no arguments.
            if unsafe { init() } != 0 {
                return None;
            }
            Some(Lib {
                by_index: sym(h, c"nvmlDeviceGetHandleByIndex_v2")?,
                mem: sym(h, c"nvmlDeviceGetMemoryInfo")?,
                util: sym(h, c"nvmlDeviceGetUtilizationRates")?,
            })
        })
        .as_ref()
    }

    pub fn stats(index: u32) -> Vec<(&'static str, f64)> {
        let Some(l) = lib() else { return Vec::new() };
        let mut dev: *mut c_void = std::ptr::null_mut();
        let mut out = Vec::new();
        // SAFETY: NVML writes through the out-pointers it is given, all valid locals.
        unsafe {
            if (l.by_index)(index, &mut dev) != 0 {
                return out;
            }
            let mut m = Memory { total: 0, free: 0, used: 0 };
            if (l.mem)(dev, &mut m) == 0 {
                out.push(("cuda_memory_used_mb", m.used as f64 / (1 << 20) as f64));
                out.push(("cuda_memory_total_mb", m.total as f64 / (1 << 20) as f64));
            }
            let mut u = Utilization { gpu: 0, memory: 0 };
            if (l.util)(dev, &mut u) == 0 {
                out.push(("gpu_utilization", u.gpu as f64));
            }
        }
        out
    }
}
