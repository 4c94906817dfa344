//! Lightning's DDPStrategy on torch's c10d: the process group, the model's states broadcast
//! from rank 0 and its gradients all-reduced by DistributedDataParallel's `Reducer`, the
//! forward's bookkeeping as `DistributedDataParallel.forward` does it, and the rank-zero
//! and barrier helpers the loops use.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tch::Tensor;

use super::c10d::{ProcessGroup, ReduceOp, Reducer, Store, StoreSpec};
use super::cluster::Cluster;
use super::Backend;
use crate::context::ReduceFx;
use crate::engine::params::{EntryKind, ParamStore};

/// DistributedDataParallel's `bucket_cap_mb` (25) and `_DEFAULT_FIRST_BUCKET_BYTES` (1 MiB).
const BUCKET_BYTES: i64 = 25 * 1024 * 1024;
const FIRST_BUCKET_BYTES: i64 = 1024 * 1024;
/// DistributedDataParallel's `broadcast_bucket_size` (250 MiB), for states and buffers.
const BROADCAST_BUCKET_BYTES: usize = 250 * 1024 * 1024;

/// How a rank joins the world and wraps the model (Lightning's DDPStrategy arguments).
#[derive(Debug, Clone, Copy)]
pub struct DdpOptions {
    /// How long a collective waits (`timeout`).
    pub timeout: Duration,
    /// This rank's device: CUDA tensors get the `backend`'s collectives.
    pub device: tch::Device,
    /// `process_group_backend` for CUDA tensors.
    pub backend: Backend,
    /// `sync_batchnorm`: BatchNorm layers sync over the group (engine/sync_batch_norm.rs).
    pub sync_batchnorm: bool,
    /// `find_unused_parameters`.
    pub find_unused_parameters: bool,
}

/// One process of a DDP world.
pub struct Ddp {
    find_unused_parameters: bool,
    /// `distributed_backend` as Lightning prints it.
    backend_name: &'static str,
    pub cluster: Cluster,
    group: Rc<ProcessGroup>,
    store: Store,
    reducer: Option<Arc<Reducer>>,
    /// The module's buffers (shallow handles), broadcast from rank 0 before a forward.
    buffers: Vec<Tensor>,
    /// DistributedDataParallel's `require_forward_param_sync`.
    require_forward_param_sync: bool,
}

impl Ddp {
    /// Joins the world: the TCPStore at the main address (rank 0 serves it, unless torchrun's
    /// agent does) and the default process group, as Lightning's `_init_dist_connection`:
    /// Gloo for the CPU's tensors and, on `device` CUDA, `backend` (NCCL, bound to the device,
    /// or Gloo) for the GPU's.
    pub fn init(cluster: Cluster, opts: &DdpOptions) -> Result<Ddp> {
        let DdpOptions { timeout, device, backend, sync_batchnorm, find_unused_parameters } = *opts;
        let port = cluster.main_port.ok_or_else(|| anyhow::anyhow!("internal: no port for the DDP world"))?;
        println!(
            "Initializing distributed: GLOBAL_RANK: {}, MEMBER: {}/{}",
            cluster.global_rank,
            cluster.global_rank + 1,
            cluster.world_size
        );
        // Lightning prints rank-zero-only: the other ranks' standard output is dropped from
        // here on (their warnings and errors go to standard error).
        if !cluster.is_global_zero() {
            silence_stdout();
        }
        let spec = StoreSpec {
            host: cluster.main_address.clone(),
            port,
            world_size: cluster.world_size,
            is_server: !cluster.agent_store && cluster.global_rank == 0,
            timeout,
        };
        let store = Store::connect(&spec)
            .with_context(|| format!("rank {} could not join the DDP world", cluster.global_rank))?;
        let group = ProcessGroup::gloo(&store, cluster.global_rank, cluster.world_size, timeout)?;
        if sync_batchnorm && !crate::engine::sync_batch_norm::enabled() {
            anyhow::bail!(
                "internal: sync_batchnorm without the batch_norm substitution (engine::sync_batch_norm::enable)"
            );
        }
        let mut backend_name = Backend::Gloo.name();
        if let tch::Device::Cuda(i) = device {
            // Lightning's `torch.cuda.set_device(root_device)`, whatever the backend: a plugin's
            // bare "cuda" is this rank's GPU.
            crate::engine::torch_ext::set_cuda_device(i)?;
            let nccl = match backend {
                Backend::Nccl => Some(super::nccl::load().context("DDP on CUDA: the NCCL backend")?),
                Backend::Gloo => None,
            };
            group.add_cuda(nccl, i, timeout)?;
            if let Some(n) = nccl {
                tracing::info!(nccl = %super::nccl::version_string(n.version), device = i, "ProcessGroupNCCL");
            }
            backend_name = backend.name();
        }
        if sync_batchnorm {
            group.sync_batch_norm();
        }
        crate::plugin::interrupt::set_stops_inside_hooks(false);
        if cluster.is_global_zero() {
            println!("{}", "-".repeat(100));
            println!("distributed_backend={backend_name}");
            println!("All distributed processes registered. Starting with {} processes", cluster.world_size);
            println!("{}", "-".repeat(100));
        }
        Ok(Ddp {
            find_unused_parameters,
            backend_name,
            cluster,
            group: Rc::new(group),
            store,
            reducer: None,
            buffers: Vec::new(),
            require_forward_param_sync: true,
        })
    }

    /// The CUDA tensors' backend ("gloo" on the CPU).
    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    pub fn is_global_zero(&self) -> bool {
        self.cluster.is_global_zero()
    }

    pub fn world_size(&self) -> usize {
        self.cluster.world_size
    }

    pub fn global_rank(&self) -> usize {
        self.cluster.global_rank
    }

    /// Rank 0's seed for every rank (each may have drawn its own when none was given).
    pub fn broadcast_seed(&self, seed: u64) -> Result<u64> {
        let t = Tensor::from_slice(&[seed as i64]);
        self.group.broadcast(&t, 0).context("broadcasting the seed")?;
        Ok(t.f_int64_value(&[0])? as u64)
    }

    /// Rank 0's string on every rank (`strategy.broadcast`).
    pub fn broadcast_string(&self, s: &str) -> Result<String> {
        let bytes = self.group.broadcast_bytes(s.as_bytes(), 0)?;
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("rank 0 broadcast a string that is not UTF-8"))
    }

    /// What every rank acts on after a batch: the highest signal any rank received (so that
    /// a SIGTERM to the launcher alone, or to every task (SLURM), stops every rank after the
    /// same batch, where rank 0 saves; Lightning broadcasts rank 0's SIGTERM flag at each
    /// batch for the same reason), and whether any rank asked to stop (its EarlyStopping,
    /// `max_time` on its own clock, a callback: Lightning's `reduce_boolean_decision(all=False)`).
    /// Every rank then takes the same branch at the same batch.
    pub fn agree(&self, signal: Option<i32>, stop: bool) -> Result<(Option<i32>, bool)> {
        let t = Tensor::from_slice(&[i64::from(signal.unwrap_or(0)), i64::from(stop)]);
        self.group.all_reduce(&t, ReduceOp::Max).context("agreeing on a stop")?;
        let sig = t.f_int64_value(&[0])? as i32;
        Ok(((sig != 0).then_some(sig), t.f_int64_value(&[1])? != 0))
    }

    /// What `self.log(..., sync_dist=True)` reduces with.
    pub fn syncer(&self) -> Syncer {
        Syncer { group: self.group.clone() }
    }

    /// Whether any rank's `flag` is set (Lightning's `reduce_boolean_decision(all=False)`).
    pub fn any(&self, flag: bool) -> Result<bool> {
        Ok(self.agree(None, flag)?.1)
    }

    /// `strategy.barrier(name)`.
    pub fn barrier(&self, name: &str) -> Result<()> {
        self.group.barrier().with_context(|| format!("rank {} at the barrier `{name}`", self.global_rank()))
    }

    /// `DistributedDataParallel(module)`: every rank's trainable parameters checked against rank
    /// 0's (`_verify_param_shape_across_processes`), rank 0's parameters and buffers into every
    /// rank (`_sync_module_states`), then the Reducer over the trainable parameters.
    pub fn wrap(&mut self, params: &ParamStore) -> Result<()> {
        let named = params.named_parameters();
        self.buffers = params
            .entries()
            .iter()
            .filter(|e| e.kind == EntryKind::Buffer && params.tied_to(e).is_none())
            .map(|e| e.tensor.shallow_clone())
            .collect();
        let trainable: Vec<(String, &Tensor)> =
            named.iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n.to_string(), t)).collect();
        if trainable.is_empty() {
            anyhow::bail!("DistributedDataParallel is not needed when a module doesn't have any parameter that requires a gradient.");
        }
        let shapes: Vec<&Tensor> = trainable.iter().map(|(_, t)| *t).collect();
        self.group.verify_params(&shapes).with_context(|| {
            let names: Vec<&str> = trainable.iter().map(|(n, _)| n.as_str()).collect();
            format!(
                "rank {}: the model differs from rank 0's (parameters in order: {})",
                self.global_rank(),
                names.join(", ")
            )
        })?;
        let states: Vec<Tensor> =
            named.iter().map(|(_, t)| t.detach()).chain(self.buffers.iter().map(Tensor::detach)).collect();
        let refs: Vec<&Tensor> = states.iter().collect();
        self.group
            .broadcast_coalesced(&refs, BROADCAST_BUCKET_BYTES, 0)
            .context("broadcasting rank 0's parameters and buffers")?;
        self.reducer = Some(Arc::new(Reducer::new(
            &self.group,
            &trainable,
            BUCKET_BYTES,
            FIRST_BUCKET_BYTES,
            self.find_unused_parameters,
        )?));
        self.require_forward_param_sync = true;
        Ok(())
    }

    /// The Reducer, for manual optimization's backward (Lightning's `prepare_for_backward` in
    /// `DDPStrategy.pre_backward`).
    pub fn reducer(&self) -> Option<Arc<Reducer>> {
        self.reducer.clone()
    }

    /// `DistributedDataParallel._pre_forward`: with gradients to sync, the Reducer's forward
    /// start; rank 0's buffers broadcast when the last forward asked for it.
    /// `sync_grads`: not inside `no_sync()` (Lightning blocks it while accumulating).
    pub fn pre_forward(&mut self, grad_enabled: bool, sync_grads: bool) -> Result<()> {
        let Some(reducer) = &self.reducer else { return Ok(()) };
        if grad_enabled {
            reducer.pre_forward(sync_grads)?;
        }
        if self.require_forward_param_sync && !self.buffers.is_empty() {
            let refs: Vec<&Tensor> = self.buffers.iter().collect();
            self.group.broadcast_coalesced(&refs, BROADCAST_BUCKET_BYTES, 0).context("broadcasting buffers")?;
        }
        Ok(())
    }

    /// `DistributedDataParallel._post_forward`: the next backward all-reduces the gradients
    /// (and the next forward syncs buffers) only after a forward with gradients to sync.
    /// `outputs`: the step's loss, searched for unused parameters when the strategy asks.
    pub fn post_forward(&mut self, grad_enabled: bool, sync_grads: bool, outputs: &[&Tensor]) -> Result<()> {
        let Some(reducer) = &self.reducer else { return Ok(()) };
        if grad_enabled && sync_grads {
            self.require_forward_param_sync = true;
            reducer.prepare_for_backward(outputs)?;
        } else {
            self.require_forward_param_sync = false;
        }
        Ok(())
    }

    /// Whether every rank holds the same parameters, bit for bit (a sha256 of this rank's,
    /// compared across ranks). Buffers are not compared: each rank updates its own running
    /// statistics after rank 0's are broadcast before a forward, as in torch.
    pub fn weights_in_sync(&self, params: &ParamStore) -> Result<bool> {
        let mut h = Sha256::new();
        for (_, t) in params.named_parameters() {
            let t = t.f_detach()?.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
            let bytes = t.numel() * t.kind().elt_size_in_bytes();
            let mut buf = vec![0u8; bytes];
            t.f_reshape([-1])?.f_view_dtype(tch::Kind::Uint8)?.f_copy_data(&mut buf, bytes)?;
            h.update(&buf);
        }
        let digest = h.finalize();
        let mine = i64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
        let lo = Tensor::from_slice(&[mine]);
        let hi = Tensor::from_slice(&[mine]);
        self.group.all_reduce(&lo, ReduceOp::Min)?;
        self.group.all_reduce(&hi, ReduceOp::Max)?;
        Ok(lo.f_int64_value(&[0])? == mine && hi.f_int64_value(&[0])? == mine)
    }

    /// After a failed collective: the ranks that do not answer within `wait` (hung or dead),
    /// found through the TCPStore, which outlives the group's connections: every rank whose
    /// collective failed says so under `lthost/answered/<rank>` and waits for the others'.
    /// An error when the store itself does not answer (rank 0 serves it, unless torchrun's
    /// agent does).
    pub fn unanswered_ranks(&self, wait: Duration) -> Result<Vec<usize>> {
        let key = |r: usize| format!("lthost/answered/{r}");
        self.store.set(&key(self.global_rank()), "1", wait)?;
        let until = std::time::Instant::now() + wait;
        loop {
            let mut missing = Vec::new();
            for r in 0..self.world_size() {
                if !self.store.check(&key(r))? {
                    missing.push(r);
                }
            }
            if missing.is_empty() || std::time::Instant::now() >= until {
                return Ok(missing);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Drops this handle on the Reducer (its autograd hooks go with the last one: the
    /// optimizer set of a manual optimization holds another).
    pub fn unwrap_module(&mut self) {
        self.reducer = None;
        self.buffers.clear();
    }
}

/// Points this process's standard output at /dev/null.
fn silence_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: plain libc calls on file descriptors this process owns; on failure stdout stays.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::dup2(fd, 1);
            libc::close(fd);
        }
    }
}

/// Lightning's `_Sync` for `self.log(..., sync_dist=True)` (`_sync_ddp` on Gloo): an
/// all-reduce over every rank with the value's reduce op, a mean summed and then divided by
/// the world size.
#[derive(Clone)]
pub struct Syncer {
    group: Rc<ProcessGroup>,
}

impl Syncer {
    /// `value` (float32 or float64) reduced across the ranks, into a new tensor.
    pub fn reduce(&self, value: &Tensor, fx: ReduceFx) -> Result<Tensor> {
        let mut t = value.f_detach_copy()?;
        let op = match fx {
            ReduceFx::Mean | ReduceFx::Sum => ReduceOp::Sum,
            ReduceFx::Max => ReduceOp::Max,
            ReduceFx::Min => ReduceOp::Min,
        };
        self.group.all_reduce(&t, op).context("self.log(sync_dist=True)")?;
        if fx == ReduceFx::Mean {
            let _ = t.f_div_scalar_(self.group.size() as i64)?;
        }
        Ok(t)
    }

    /// An epoch mean's summed batch size "mean"-reduced as Lightning reduces its integer
    /// `cumulated_batch_size`: summed, divided by the world size, truncated.
    pub fn mean_count(&self, count: f64) -> Result<f64> {
        let t = Tensor::from_slice(&[count as i64]);
        self.group.all_reduce(&t, ReduceOp::Sum).context("self.log(sync_dist=True)")?;
        Ok((t.f_int64_value(&[0])? / self.group.size() as i64) as f64)
    }
}
