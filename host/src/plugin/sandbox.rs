//! The sandbox a plugin runs in: the checks before anything is compiled (format, trust,
//! manifest), the grants its manifest allows, and its store — WASI with only the standard
//! streams and the granted directories, no environment, arguments, stdin or network, the
//! memory and instance limits, the hook deadline, the tensor budget. One admitted component
//! can have several stores (a DataModule's worker instances).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use wasmtime::component::{InstancePre, ResourceTable};
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::context::RunContext;
use crate::plugin::runtime::{Runtime, TICK};
use crate::plugin::state::PluginState;

/// Sandbox settings for one plugin.
#[derive(Debug, Clone)]
pub struct PluginOptions {
    /// Read-only directory the plugin may read (`/data` inside the guest).
    pub data_dir: Option<PathBuf>,
    /// Most linear memory the plugin may grow to.
    pub memory_limit_bytes: usize,
    /// Longest one hook may run.
    pub hook_timeout: Duration,
    /// Which plugins may run (checked on the bytes, before compiling).
    pub trust: Arc<crate::artifact::trust::TrustPolicy>,
    /// Host-side tensor memory and live handles the plugin may hold.
    pub max_tensor_bytes: u64,
    pub max_handles: usize,
    /// Bytes the plugin may write into its writable grants.
    pub disk_quota_bytes: u64,
    /// Where plugins' own output directories go (`<root>/<plugin>`, `/output` in the
    /// guest, read-write), for plugins whose manifest requests `output-write`.
    pub output_root: Option<PathBuf>,
}

impl Default for PluginOptions {
    /// Secure by default: no trusted keys, unsigned plugins refused.
    fn default() -> Self {
        use crate::plugin::state::{DEFAULT_DISK_BYTES, DEFAULT_MAX_HANDLES, DEFAULT_TENSOR_BYTES};
        PluginOptions {
            data_dir: None,
            memory_limit_bytes: 2 << 30,
            hook_timeout: Duration::from_secs(600),
            trust: Arc::default(),
            max_tensor_bytes: DEFAULT_TENSOR_BYTES,
            max_handles: DEFAULT_MAX_HANDLES,
            disk_quota_bytes: DEFAULT_DISK_BYTES,
            output_root: None,
        }
    }
}

/// A component checked (format, trust, manifest) and compiled, with the directories its
/// manifest lets it have; ready for stores.
pub(crate) struct Admitted {
    pub name: String,
    pub pre: InstancePre<PluginState>,
    /// (host path, guest path, permissions) actually granted.
    grants: Vec<(PathBuf, String, FsPerms)>,
    /// The data directory actually granted.
    pub data_dir: Option<PathBuf>,
    /// The run had a data directory, and the manifest did not request `data-read`.
    data_declined: bool,
    /// SHA-256 of the component's bytes.
    pub sha256: String,
    pub deadline_ticks: u64,
    memory_limit_bytes: usize,
    /// The plugin's tensor budget, one for all its instances.
    memory: Arc<crate::engine::memory_budget::MemoryBudget>,
    max_handles: usize,
    disk_quota_bytes: u64,
}

/// A component checked, compiled and ready to instantiate in its sandboxed store.
pub(crate) struct Sandboxed {
    pub name: String,
    pub store: Store<PluginState>,
    pub pre: InstancePre<PluginState>,
    pub deadline_ticks: u64,
}

/// Reads and compiles a logger or callback component, and builds its store (see
/// [`admit`]). Their worlds import no tensors, layers or trainer interfaces, so they are
/// linked with WASI alone: a component that imports more is refused.
pub(crate) fn sandbox(
    runtime: &Arc<Runtime>,
    path: &Path,
    opts: &PluginOptions,
    dirs: &[(PathBuf, &str, FsPerms)],
) -> Result<Sandboxed> {
    let a = admit_with(runtime, &runtime.wasi_linker, path, opts, dirs)?;
    let store = a.store(runtime, 1)?;
    Ok(Sandboxed { store, name: a.name, pre: a.pre, deadline_ticks: a.deadline_ticks })
}

/// Reads a component, admits it (format, then trust on the bytes, then manifest) and only
/// then compiles it; `dirs` (host path, guest path, permissions) are granted as far as its
/// manifest requests them.
pub(crate) fn admit(
    runtime: &Arc<Runtime>,
    path: &Path,
    opts: &PluginOptions,
    dirs: &[(PathBuf, &str, FsPerms)],
) -> Result<Admitted> {
    admit_with(runtime, &runtime.linker, path, opts, dirs)
}

fn admit_with(
    runtime: &Arc<Runtime>,
    linker: &wasmtime::component::Linker<PluginState>,
    path: &Path,
    opts: &PluginOptions,
    dirs: &[(PathBuf, &str, FsPerms)],
) -> Result<Admitted> {
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_string();
    let bytes = std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        bail!("plugin `{name}` ({}): not a WebAssembly file", path.display());
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        bail!("plugin `{name}` ({}): a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`", path.display());
    }
    // Trust first: nothing of an unadmitted plugin is compiled or cached.
    let detached = crate::artifact::trust::detached_for(path);
    let verdict = opts.trust.admit(&name, &bytes, detached.as_deref())?;
    tracing::info!(plugin = %name, path = %path.display(), bytes = bytes.len(), ?verdict, "plugin admitted");
    let started = std::time::Instant::now();
    let manifest = crate::artifact::manifest::read(&bytes).map_err(|e| anyhow!("plugin `{name}`: {e}"))?;
    let sha256 = crate::artifact::sha256_hex(&bytes);
    let component = runtime
        .component(&bytes, &sha256)
        .map_err(|e| anyhow!("plugin `{name}` ({}): not a valid component: {e}", path.display()))?;
    tracing::info!(plugin = %name, ms = started.elapsed().as_secs_f64() * 1e3, "component ready");
    let mut data_dir = opts.data_dir.clone();
    let mut data_declined = false;
    let mut grants = Vec::new();
    for (host, guest, perms) in dirs {
        // A plugin with a manifest gets only the grants it asked for.
        let wanted = match *guest {
            "/data" => "data-read",
            "/output" => "output-write",
            _ => "logs-write",
        };
        // `/output` is only for plugins that ask for it (it creates a directory).
        let declined = match &manifest {
            Some(m) => !m.requests(wanted),
            None => *guest == "/output",
        };
        if declined {
            if *guest != "/output" {
                eprintln!(
                    "note: plugin `{name}` does not request `{wanted}` in its manifest; {} is not granted",
                    host.display()
                );
            }
            if *guest == "/data" {
                data_dir = None;
                data_declined = true;
            }
            continue;
        }
        if *guest == "/output" {
            std::fs::create_dir_all(host)
                .with_context(|| format!("creating the output directory {} of plugin `{name}`", host.display()))?;
        }
        grants.push((host.clone(), guest.to_string(), *perms));
    }
    let deadline_ticks = u64::try_from(opts.hook_timeout.as_millis() / TICK.as_millis()).unwrap_or(u64::MAX).max(1);
    let wasi_only = std::ptr::eq(linker, &runtime.wasi_linker);
    let pre = linker.instantiate_pre(&component).map_err(|e| match wasi_only {
        true => anyhow!("plugin `{name}`: a logger or callback plugin is given WASI only (its world imports no tensors, layers or trainer state), and it imports more: {e}"),
        false => anyhow!(
            "plugin `{name}`: imports something lthost does not provide (this host speaks lt:plugin@0.3.0; a plugin \
             built with another lthost's SDK needs rebuilding with this one's): {e}"
        ),
    })?;
    Ok(Admitted {
        name,
        pre,
        grants,
        data_dir,
        data_declined,
        sha256,
        deadline_ticks,
        memory_limit_bytes: opts.memory_limit_bytes,
        memory: Arc::new(crate::engine::memory_budget::MemoryBudget::new(opts.max_tensor_bytes)),
        max_handles: opts.max_handles,
        disk_quota_bytes: opts.disk_quota_bytes,
    })
}

impl Admitted {
    /// A new store for one instance: no environment, arguments, stdin or network; stdout
    /// and stderr forwarded with the plugin's name; file writes on the calling thread (no
    /// thread-pool hand-off per write); the granted directories; the limits.
    /// `share`: how many instances share the plugin's limits (DataLoader workers); each
    /// gets that fraction of its linear memory, handles and disk quota, and all charge the
    /// plugin's one tensor budget.
    pub fn store(&self, runtime: &Runtime, share: usize) -> Result<Store<PluginState>> {
        let share = share.max(1);
        let name = &self.name;
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(crate::plugin::stdio::Prefixed::new(name, false))
            .stderr(crate::plugin::stdio::Prefixed::new(name, true))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .allow_blocking_current_thread(true)
            .monotonic_clock(crate::plugin::interrupt::MonotonicClock);
        for (host, guest, perms) in &self.grants {
            wasi.preopened_dir(host, guest, *perms)
                .map_err(|e| anyhow!("plugin `{name}`: granting directory {}: {e}", host.display()))?;
        }
        let state = PluginState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.memory_limit_bytes / share)
                .memories(16)
                .instances(64)
                .tables(64)
                .table_elements(1 << 20)
                .trap_on_grow_failure(true)
                .build(),
            ctx: RunContext { data_dir: self.data_dir.clone(), ..RunContext::default() },
            budget: crate::plugin::state::Budget::new(Arc::clone(&self.memory), self.max_handles / share),
            generator: None,
            data_declined: self.data_declined,
            inference_scopes: Default::default(),
            deadline: None,
            ops: Default::default(),
            last_op_error: None,
            disk: crate::plugin::disk_quota::DiskQuota::new(name, self.disk_quota_bytes / share as u64),
        };
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        Ok(store)
    }
}

/// Starts a hook's time: the epoch deadline (guest code) and the wall-clock deadline that
/// host ops and guest sleeps watch, `ticks` ticks from now (the epoch one tick later).
pub(crate) fn arm(store: &mut Store<PluginState>, ticks: u64) {
    // The ticker's first tick comes anywhere within a tick of now, so `ticks` ticks can end up
    // to one tick before `ticks * TICK`: the epoch (which stops guest code) is armed one tick
    // later, so the op deadline below always passes first and an op that overran names itself
    // rather than the guest code after it; guest code still stops within a tick of the limit.
    store.set_epoch_deadline(ticks.saturating_add(1));
    let limit = crate::plugin::runtime::TICK.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX));
    store.data_mut().deadline = std::time::Instant::now().checked_add(limit);
}

/// Instantiates a component in its store as a hook is run: under the hook's deadline, its
/// allocations charged to the plugin's budget, a panic caught (a component's start function
/// is plugin code like any hook).
pub(crate) fn instantiate(
    store: &mut Store<PluginState>,
    pre: &InstancePre<PluginState>,
    name: &str,
    ticks: u64,
) -> Result<wasmtime::component::Instance> {
    arm(store, ticks);
    let memory = Arc::clone(&store.data().budget.memory);
    let charging = memory.charge();
    let grad_mode = crate::engine::torch_ext::grad_enabled();
    let r = crate::plugin::panic_guard::guarded(|| pre.instantiate(&mut *store));
    while store.data_mut().inference_scopes.0.pop().is_some() {}
    crate::engine::torch_ext::set_grad_enabled(grad_mode);
    drop(charging);
    store.data_mut().deadline = None;
    match r {
        Ok(Ok(i)) => Ok(i),
        Ok(Err(e)) => Err(anyhow!("{}", crate::plugin::failure::describe(name, "instantiate", e))),
        Err(c) => Err(anyhow!("plugin `{name}` failed while instantiating: {}", c.message)),
    }
}
