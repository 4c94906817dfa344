//! Chooses the device (`--accelerator auto|cpu|cuda`) and libtorch's thread counts.

use anyhow::{bail, Result};
use tch::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for Accelerator {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Accelerator::Auto),
            "cpu" => Ok(Accelerator::Cpu),
            "cuda" | "gpu" => Ok(Accelerator::Cuda),
            other => bail!("unknown accelerator `{other}` (expected auto, cpu or cuda)"),
        }
    }
}

/// The device for `acc`: `auto` takes CUDA when libtorch sees a GPU.
pub fn resolve(acc: Accelerator) -> Result<Device> {
    match acc {
        Accelerator::Cpu => Ok(Device::Cpu),
        Accelerator::Cuda => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                bail!("--accelerator cuda: libtorch sees no CUDA device (is this torch build CUDA-enabled, and is a GPU visible?)")
            }
        }
        Accelerator::Auto => Ok(if tch::Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu }),
    }
}

/// The intra-op thread count used when none is configured: the number of cores, at most
/// 4. libtorch's own default (all cores, plus OpenMP spinning) makes small models up to
/// 20× slower on a shared 2-core machine as soon as anything else runs.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4)
}

/// Sets libtorch's intra-op and inter-op thread counts; returns the intra-op count.
pub fn set_threads(requested: Option<usize>) -> usize {
    let n = requested.unwrap_or_else(default_threads).max(1);
    tch::set_num_threads(n as i32);
    tch::set_num_interop_threads(1);
    n
}
