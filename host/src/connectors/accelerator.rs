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

/// The intra-op thread count used when none is configured: 1 on machines of up to 2
/// cores, else half the cores (at most 8). Measured on a 2-core machine with one core busy
/// elsewhere: 2 threads made the digits example 4.4× and the parity RNN 2.3× slower than 1
/// thread (libtorch's default uses every core and spins OpenMP threads on the busy one); idle,
/// 1 thread was still 1.3× faster for these small models.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cores <= 2 {
        1
    } else {
        (cores / 2).min(8)
    }
}

/// Sets libtorch's intra-op thread count; returns it. Safe to call for every run.
pub fn set_threads(requested: Option<usize>) -> usize {
    let n = requested.unwrap_or_else(default_threads).max(1);
    tch::set_num_threads(n as i32);
    n
}

/// Sets libtorch's inter-op thread count to 1. libtorch allows this once per process and
/// only before any parallel work (otherwise it aborts), so the `lthost` binary calls it
/// first thing; a program embedding the trainer as a library decides for itself.
pub fn init_interop_threads() {
    tch::set_num_interop_threads(1);
}
