//! Scale-out on torch's own distributed engine (c10d): who this process is in the world
//! ([`cluster`]), lthost's own launcher ([`launcher`]), the c10d objects ([`c10d`]) and
//! Lightning's DDPStrategy on them ([`ddp`]).

pub mod c10d;
pub mod cluster;
pub mod ddp;
pub mod launcher;
pub mod nccl;

pub use cluster::Cluster;
pub use ddp::{Ddp, DdpOptions};

use anyhow::{bail, Result};

use crate::config::TrainerConfig;
use crate::connectors::accelerator::Accelerator;

/// A process's place in a distributed run, as plugins and the data loaders see it
/// (`trainer.world_size`, `global_rank`, ...), with the seed its samplers take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct World {
    pub world_size: usize,
    pub global_rank: usize,
    pub local_rank: usize,
    pub node_rank: usize,
    /// Processes per node (Lightning's `num_devices`).
    pub local_world_size: usize,
    /// The run's seed (Lightning's `PL_GLOBAL_SEED`): the DistributedSampler's.
    pub seed: u64,
}

/// The run's processes as `strategy`, `devices` and `num_nodes` ask for them in this
/// environment: None for one process without a distributed strategy (Lightning's
/// SingleDeviceStrategy), else this process's place in the DDP world.
pub fn plan(cfg: &TrainerConfig, env: &dyn cluster::Env) -> Result<Option<Cluster>> {
    let devices = cfg.devices.count()?;
    let nodes = cfg.num_nodes;
    if nodes == 0 {
        bail!("`num_nodes` must be at least 1, got 0");
    }
    let world = devices
        .checked_mul(nodes)
        .ok_or_else(|| anyhow::anyhow!("`devices={devices}` × `num_nodes={nodes}` processes is too many"))?;
    let distributed = match cfg.strategy.as_str() {
        "auto" => world > 1,
        "ddp" | UNUSED_TRUE | UNUSED_FALSE => true,
        "single_device" if world > 1 => {
            bail!("strategy \"single_device\" runs one process, but `devices={devices}` and `num_nodes={nodes}` ask for {world}")
        }
        "single_device" => false,
        other => bail!(
            "strategy {other:?} is not available in lthost: \"auto\", \"ddp\", \"{UNUSED_TRUE}\", \"{UNUSED_FALSE}\" and \"single_device\" are (Lightning's ddp_spawn, ddp_fork, fsdp and deepspeed are not)"
        ),
    };
    if !distributed {
        return Ok(None);
    }
    let cuda = match cfg.accelerator.parse::<Accelerator>()? {
        Accelerator::Cpu => false,
        Accelerator::Cuda => true,
        Accelerator::Auto => tch::Cuda::is_available(),
    };
    match (backend(cfg, cuda), cuda) {
        (Backend::Nccl, false) => bail!(
            "process_group_backend \"nccl\" needs CUDA (ProcessGroupNCCL is only supported with GPUs): use \"gloo\" on the CPU"
        ),
        (Backend::Nccl, true) if !nccl::built() => bail!(
            "strategy \"ddp\" on CUDA: this lthost was built without the NCCL backend ({}); rebuild with `make host`, or set trainer.process_group_backend = \"gloo\"",
            nccl::why_not_built()
        ),
        _ => {}
    }
    let c = cluster::detect(env, devices, nodes)?;
    if cuda && tch::Cuda::is_available() {
        cuda_device(c.local_rank, c.local_world_size, tch::Cuda::device_count().max(0) as usize)?;
    }
    Ok(Some(c))
}

/// Lightning's registered names for `DDPStrategy(find_unused_parameters=True/False)`.
const UNUSED_TRUE: &str = "ddp_find_unused_parameters_true";
const UNUSED_FALSE: &str = "ddp_find_unused_parameters_false";

/// DistributedDataParallel's `find_unused_parameters` for the strategy: each backward
/// traverses the step's graph for parameters it did not reach, and the Reducer marks them
/// ready (their gradients all-reduced as zeros where another rank used them).
pub fn find_unused_parameters(cfg: &TrainerConfig) -> bool {
    cfg.strategy == UNUSED_TRUE
}

/// The process group's backend for CUDA tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// `process_group_backend`, or Lightning's default for the device (torch's
/// `default_device_backend_map`: NCCL on CUDA, Gloo on the CPU).
pub fn backend(cfg: &TrainerConfig, cuda: bool) -> Backend {
    match cfg.process_group_backend.as_deref() {
        Some("nccl") => Backend::Nccl,
        Some(_) => Backend::Gloo,
        None if cuda => Backend::Nccl,
        None => Backend::Gloo,
    }
}

/// This rank's CUDA device: the local rank's (Lightning's `parallel_devices[local_rank]`),
/// which must exist on this machine.
pub fn cuda_device(local_rank: usize, local_world_size: usize, visible: usize) -> Result<usize> {
    if local_world_size > visible {
        let asked: Vec<String> = (0..local_world_size).map(|i| i.to_string()).collect();
        let have: Vec<String> = (0..visible).map(|i| i.to_string()).collect();
        bail!(
            "You requested gpu: [{}]\n But your machine only has: [{}] (devices = {local_world_size} processes on this node, one GPU each)",
            asked.join(", "),
            have.join(", ")
        );
    }
    Ok(local_rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(accelerator: &str, backend: Option<&str>) -> TrainerConfig {
        TrainerConfig {
            accelerator: accelerator.into(),
            strategy: "ddp".into(),
            process_group_backend: backend.map(str::to_string),
            ..TrainerConfig::default()
        }
    }

    #[test]
    fn the_backend_is_torchs_default_for_the_device_unless_named() {
        assert_eq!(backend(&cfg("cuda", None), true), Backend::Nccl);
        assert_eq!(backend(&cfg("cpu", None), false), Backend::Gloo);
        assert_eq!(backend(&cfg("cuda", Some("gloo")), true), Backend::Gloo);
        let none = |_: &str| None;
        let e = plan(&cfg("cpu", Some("nccl")), &none).expect_err("nccl on the CPU");
        assert!(format!("{e}").contains("needs CUDA"), "{e}");
        let mut bad = cfg("cpu", Some("mpi"));
        bad.devices = crate::config::Devices::Count(2);
        assert!(format!("{}", bad.validate().expect_err("mpi")).contains("\"nccl\" and \"gloo\""));
        assert!(plan(&cfg("cpu", None), &none).expect("gloo on the CPU").is_some());
    }

    #[test]
    fn one_gpu_per_local_rank_as_lightning() {
        assert_eq!(cuda_device(1, 2, 2).expect("rank 1 of 2 on 2 GPUs"), 1);
        let e = cuda_device(0, 2, 1).expect_err("2 processes, 1 GPU");
        assert!(format!("{e}").contains("You requested gpu: [0, 1]\n But your machine only has: [0]"), "{e}");
    }
}
