//! Cluster environments: who this process is in the world, as Lightning's
//! `ClusterEnvironment`s read it, in Lightning's order of detection — torchrun
//! (TorchElastic), then SLURM, else lthost's own launcher (Lightning's `LightningEnvironment`).

use anyhow::{bail, Result};

/// Where the world's processes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// lthost started this process; with more than one process it starts the others
    /// (Lightning's `_SubprocessScriptLauncher`). A child finds `LOCAL_RANK` set.
    Own,
    /// `torchrun` (or any TorchElastic agent) started every process.
    TorchElastic,
    /// SLURM's `srun` started every process.
    Slurm,
}

/// This process's place in the world and where the world meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub launcher: Launcher,
    pub world_size: usize,
    pub global_rank: usize,
    pub local_rank: usize,
    pub node_rank: usize,
    /// Processes per node (Lightning's `devices`).
    pub local_world_size: usize,
    pub main_address: String,
    /// None: lthost's launcher picks a free port for the world.
    pub main_port: Option<u16>,
    /// torchrun's agent serves the store (`TORCHELASTIC_USE_AGENT_STORE`): every process is a
    /// client.
    pub agent_store: bool,
}

impl Cluster {
    /// lthost must start the other local processes itself.
    pub fn launches_children(&self) -> bool {
        self.launcher == Launcher::Own && self.local_world_size > 1 && self.local_rank == 0 && !self.child()
    }

    fn child(&self) -> bool {
        std::env::var_os("LOCAL_RANK").is_some()
    }

    pub fn is_global_zero(&self) -> bool {
        self.global_rank == 0
    }
}

/// A view of the environment (a closure in tests).
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process's environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, key: &str) -> Option<String> {
        self(key)
    }
}

fn number(env: &dyn Env, key: &str) -> Result<Option<usize>> {
    match env.get(key) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => bail!("the environment variable {key}={v:?} is not a non-negative integer"),
        },
    }
}

fn required(env: &dyn Env, key: &str, who: &str) -> Result<usize> {
    number(env, key)?.ok_or_else(|| anyhow::anyhow!("{who}: the environment variable {key} is not set"))
}

fn port(env: &dyn Env, key: &str) -> Result<Option<u16>> {
    match env.get(key) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => bail!("the environment variable {key}={v:?} is not a port number"),
        },
    }
}

/// Lightning's `SLURMEnvironment.detect`: SLURM tasks, unless the job is an interactive shell
/// (`srun --pty bash`, a job named `bash` or `interactive`), where lthost launches itself.
fn slurm_detected(env: &dyn Env) -> bool {
    env.get("SLURM_NTASKS").is_some()
        && !matches!(env.get("SLURM_JOB_NAME").as_deref(), Some("bash") | Some("interactive"))
}

/// Lightning's `TorchElasticEnvironment.detect` (torch's `is_torchelastic_launched`).
fn torchelastic_detected(env: &dyn Env) -> bool {
    env.get("TORCHELASTIC_RUN_ID").is_some()
}

/// The first host of a SLURM node list (`node[03-05,7],gpu1` → `node03`), as Lightning's
/// `SLURMEnvironment.resolve_root_node_address`.
pub fn first_slurm_host(nodes: &str) -> String {
    let nodes = nodes.trim();
    let end = nodes.find(',').unwrap_or(nodes.len());
    let first = match nodes.find('[') {
        Some(b) if b < end => {
            let rest = &nodes[b + 1..];
            let range = rest.split([',', ']']).next().unwrap_or("");
            let number = range.split('-').next().unwrap_or("");
            format!("{}{}", &nodes[..b], number)
        }
        _ => nodes[..end].to_string(),
    };
    first
}

/// Who this process is, for `devices` processes on each of `num_nodes` nodes.
pub fn detect(env: &dyn Env, devices: usize, num_nodes: usize) -> Result<Cluster> {
    let requested = devices
        .checked_mul(num_nodes)
        .ok_or_else(|| anyhow::anyhow!("`devices={devices}` × `num_nodes={num_nodes}` processes is too many"))?;
    if torchelastic_detected(env) {
        let who = "torchrun";
        let world_size = required(env, "WORLD_SIZE", who)?;
        if world_size != requested {
            bail!("You set `devices={devices}` and `num_nodes={num_nodes}` in Lightning, but the product ({devices} * {num_nodes}) does not match the world size ({world_size}).");
        }
        let agent = env.get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        return checked(Cluster {
            launcher: Launcher::TorchElastic,
            world_size,
            global_rank: required(env, "RANK", who)?,
            local_rank: required(env, "LOCAL_RANK", who)?,
            node_rank: number(env, "GROUP_RANK")?.unwrap_or(0),
            local_world_size: number(env, "LOCAL_WORLD_SIZE")?.unwrap_or(devices),
            main_address: env.get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            main_port: Some(port(env, "MASTER_PORT")?.unwrap_or(12910)),
            agent_store: agent,
        });
    }
    if slurm_detected(env) {
        let who = "SLURM";
        let world_size = required(env, "SLURM_NTASKS", who)?;
        let global_rank = required(env, "SLURM_PROCID", who)?;
        let local_rank = required(env, "SLURM_LOCALID", who)?;
        let node_rank = required(env, "SLURM_NODEID", who)?;
        // Lightning's `SLURMEnvironment.validate_settings`.
        if let Some(per_node) = env.get("SLURM_NTASKS_PER_NODE") {
            let per_node = per_node.split('(').next().unwrap_or("").trim().to_string();
            if per_node.parse::<usize>().ok() != Some(devices) {
                bail!("You set `devices={devices}` in Lightning, but the number of tasks per node configured in SLURM `--ntasks-per-node={per_node}` does not match. HINT: Set `devices={per_node}`.");
            }
        }
        if world_size != requested {
            bail!("You set `devices={devices}` and `num_nodes={num_nodes}`, but SLURM runs {world_size} tasks (SLURM_NTASKS): the product must match");
        }
        let main_address = match env.get("MASTER_ADDR") {
            Some(a) => a,
            None => first_slurm_host(
                &env.get("SLURM_NODELIST")
                    .or_else(|| env.get("SLURM_JOB_NODELIST"))
                    .unwrap_or_else(|| "127.0.0.1".into()),
            ),
        };
        // Lightning's `SLURMEnvironment.main_port`: MASTER_PORT, else 15000 + the job id's last
        // four digits, else 12910.
        let main_port = match port(env, "MASTER_PORT")? {
            Some(p) => p,
            None => match env.get("SLURM_JOB_ID") {
                Some(id) => {
                    let tail: String = id.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
                    15000 + tail.parse::<u16>().unwrap_or(0)
                }
                None => 12910,
            },
        };
        return checked(Cluster {
            launcher: Launcher::Slurm,
            world_size,
            global_rank,
            local_rank,
            node_rank,
            local_world_size: devices,
            main_address,
            main_port: Some(main_port),
            agent_store: false,
        });
    }
    // Lightning's LightningEnvironment: this process is local rank 0 unless lthost's
    // launcher (or a user's own) set LOCAL_RANK; NODE_RANK (or GROUP_RANK) for several nodes.
    let local_rank = number(env, "LOCAL_RANK")?.unwrap_or(0);
    let node_rank = match number(env, "NODE_RANK")? {
        Some(n) => n,
        None => number(env, "GROUP_RANK")?.unwrap_or(0),
    };
    if local_rank >= devices {
        bail!("LOCAL_RANK={local_rank} but `devices={devices}`: a local rank must be below the devices per node");
    }
    if node_rank >= num_nodes {
        bail!("NODE_RANK={node_rank} but `num_nodes={num_nodes}`");
    }
    if num_nodes > 1 && (env.get("MASTER_ADDR").is_none() || env.get("MASTER_PORT").is_none()) {
        bail!("`num_nodes={num_nodes}` without a cluster launcher: set MASTER_ADDR and MASTER_PORT (and NODE_RANK) on every node, or start the run with torchrun or SLURM");
    }
    checked(Cluster {
        launcher: Launcher::Own,
        world_size: requested,
        global_rank: node_rank * devices + local_rank,
        local_rank,
        node_rank,
        local_world_size: devices,
        main_address: env.get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
        main_port: port(env, "MASTER_PORT")?,
        agent_store: false,
    })
}

fn checked(c: Cluster) -> Result<Cluster> {
    if c.world_size == 0 || c.global_rank >= c.world_size {
        bail!("rank {} of a world of {} processes: the rank must be below the world size", c.global_rank, c.world_size);
    }
    if c.local_world_size == 0 || c.local_rank >= c.local_world_size {
        bail!("local rank {} of {} processes on the node", c.local_rank, c.local_world_size);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn own_launcher_parent_and_child() {
        let c = detect(&env(&[]), 2, 1).expect("parent");
        assert_eq!((c.launcher, c.world_size, c.global_rank, c.local_rank), (Launcher::Own, 2, 0, 0));
        assert_eq!(c.main_port, None);
        let c = detect(&env(&[("LOCAL_RANK", "1"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29512")]), 2, 1)
            .expect("child");
        assert_eq!((c.global_rank, c.local_rank, c.main_port), (1, 1, Some(29512)));
        assert_eq!(c.main_address, "10.0.0.1");
        assert!(detect(&env(&[("LOCAL_RANK", "2")]), 2, 1).is_err());
    }

    #[test]
    fn torchrun_world_and_agent_store() {
        let e = env(&[
            ("RANK", "3"),
            ("GROUP_RANK", "1"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("WORLD_SIZE", "4"),
            ("MASTER_ADDR", "h0"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RUN_ID", "none"),
        ]);
        let c = detect(&e, 2, 2).expect("torchrun");
        assert_eq!((c.launcher, c.global_rank, c.node_rank, c.world_size), (Launcher::TorchElastic, 3, 1, 4));
        assert!(c.agent_store);
        let err = detect(&e, 2, 1).expect_err("world size mismatch").to_string();
        assert!(err.contains("does not match the world size (4)"), "{err}");
    }

    #[test]
    fn slurm_ranks_address_and_port() {
        let e = env(&[
            ("SLURM_NTASKS", "4"),
            ("SLURM_PROCID", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_NODEID", "1"),
            ("SLURM_NODELIST", "gpu[07-08],cpu1"),
            ("SLURM_JOB_ID", "1234567"),
            ("SLURM_NTASKS_PER_NODE", "2(x2)"),
        ]);
        let c = detect(&e, 2, 2).expect("slurm");
        assert_eq!((c.launcher, c.global_rank, c.local_rank, c.node_rank), (Launcher::Slurm, 2, 0, 1));
        assert_eq!((c.main_address.as_str(), c.main_port), ("gpu07", Some(15000 + 4567)));
        let err = detect(&e, 4, 1).expect_err("tasks per node").to_string();
        assert!(err.contains("--ntasks-per-node=2"), "{err}");
        // An interactive allocation is not a SLURM-launched world.
        let c = detect(&env(&[("SLURM_NTASKS", "1"), ("SLURM_JOB_NAME", "bash")]), 1, 1).expect("interactive");
        assert_eq!(c.launcher, Launcher::Own);
    }

    #[test]
    fn slurm_node_lists() {
        assert_eq!(first_slurm_host("node1"), "node1");
        assert_eq!(first_slurm_host("node[3-5]"), "node3");
        assert_eq!(first_slurm_host("a1,b[2-3]"), "a1");
        assert_eq!(first_slurm_host("gpu[012,015]"), "gpu012");
    }
}
