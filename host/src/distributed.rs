//! Scale-out on torch's own distributed engine (c10d): who this process is in the world
//! ([`cluster`]), lthost's own launcher ([`launcher`]), the c10d objects ([`c10d`]) and
//! Lightning's DDPStrategy on them ([`ddp`]).

pub mod c10d;
pub mod cluster;
pub mod ddp;
pub mod launcher;

pub use cluster::Cluster;
pub use ddp::Ddp;

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
        "ddp" => true,
        "single_device" if world > 1 => {
            bail!("strategy \"single_device\" runs one process, but `devices={devices}` and `num_nodes={nodes}` ask for {world}")
        }
        "single_device" => false,
        other => bail!(
            "strategy {other:?} is not available in lthost: \"auto\", \"ddp\" and \"single_device\" are (Lightning's ddp_spawn, ddp_fork, fsdp and deepspeed are not)"
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
    if cuda {
        bail!("strategy \"ddp\" on CUDA needs the NCCL process group, which lthost does not have yet: use `accelerator=\"cpu\"` (Gloo)");
    }
    cluster::detect(env, devices, nodes).map(Some)
}
