//! torch's c10d from Rust: the TCPStore, a process group (Gloo, NCCL for CUDA tensors), collectives and
//! DistributedDataParallel's `Reducer`, through host/csrc/distributed.cpp. Each handle owns
//! its C++ object and frees it on drop; every call returns c10d's error as a message.

use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use anyhow::{anyhow, Result};
use tch::Tensor;

use crate::engine::torch_ext::take_error;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn lthost_dist_tcp_store(
        host: *const c_char,
        port: i32,
        world_size: i32,
        is_server: i32,
        wait_workers: i32,
        multi_tenant: i32,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    fn lthost_dist_store_free(store: *mut c_void);
    fn lthost_dist_store_set(
        store: *mut c_void,
        key: *const c_char,
        value: *const c_char,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> i32;
    fn lthost_dist_store_check(store: *mut c_void, key: *const c_char, present: *mut i32, err: *mut *mut c_char)
        -> i32;
    fn lthost_dist_gloo_group(
        store: *mut c_void,
        rank: i32,
        size: i32,
        timeout_ms: i64,
        group_name: *const c_char,
        ifname: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    fn lthost_dist_group_add_cuda(
        group: *mut c_void,
        make: Option<super::nccl::MakeBackend>,
        device: i32,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> i32;
    fn lthost_dist_sync_batch_norm(group: *mut c_void);
    fn lthost_dist_group_free(group: *mut c_void);
    fn lthost_dist_barrier(group: *mut c_void, err: *mut *mut c_char) -> i32;
    fn lthost_dist_broadcast(group: *mut c_void, t: *const c_void, root: i32, err: *mut *mut c_char) -> i32;
    fn lthost_dist_all_reduce(group: *mut c_void, t: *const c_void, op: i32, err: *mut *mut c_char) -> i32;
    fn lthost_dist_broadcast_coalesced(
        group: *mut c_void,
        ts: *const *const c_void,
        n: usize,
        buffer_size: usize,
        root: i32,
        err: *mut *mut c_char,
    ) -> i32;
    fn lthost_dist_verify_params(
        group: *mut c_void,
        params: *const *const c_void,
        n: usize,
        err: *mut *mut c_char,
    ) -> i32;
    #[allow(clippy::too_many_arguments)]
    fn lthost_dist_reducer_new(
        group: *mut c_void,
        params: *const *const c_void,
        n: usize,
        names: *const *const c_char,
        bucket_bytes: i64,
        first_bucket_bytes: i64,
        find_unused: i32,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    fn lthost_dist_reducer_free(reducer: *mut c_void, err: *mut *mut c_char) -> i32;
    fn lthost_dist_reducer_pre_forward(reducer: *mut c_void, sync: i32, err: *mut *mut c_char) -> i32;
    fn lthost_dist_reducer_prepare_for_backward(
        reducer: *mut c_void,
        outputs: *const *const c_void,
        n: usize,
        err: *mut *mut c_char,
    ) -> i32;
}

/// A call's status: 0, or -1 with c10d's message in `err`, as a [`CollectiveError`].
fn check(what: &str, rc: i32, err: *mut c_char) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(CollectiveError(format!("{what}: {}", take_error(err))).into())
    }
}

/// A collective (or the world's set-up) failed: another rank died, hung past the timeout, or
/// the ranks disagree.
#[derive(Debug)]
pub struct CollectiveError(pub String);

impl std::fmt::Display for CollectiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CollectiveError {}

/// Whether `e` is a failed collective: one of this module's, or one the Reducer ran inside
/// backward (torch's Gloo or NCCL message).
pub fn is_collective_failure(e: &anyhow::Error) -> bool {
    if e.chain().any(|c| c.downcast_ref::<CollectiveError>().is_some()) {
        return true;
    }
    let text = format!("{e:#}");
    ["gloo", "Gloo", "NCCL", "nccl", "pair closure", "Connection closed", "Connection reset", "Timed out"]
        .iter()
        .any(|m| text.contains(m))
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("{what}: `{s}` contains a NUL byte"))
}

fn pointers(ts: &[&Tensor]) -> Vec<*const c_void> {
    ts.iter().map(|t| t.as_ptr() as *const c_void).collect()
}

/// c10d's reduce ops, numbered as the shim takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Product = 1,
    Min = 2,
    Max = 3,
}

/// Where a TCPStore is, who serves it, and for how many.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    pub host: String,
    pub port: u16,
    pub world_size: usize,
    /// This process runs the server (torch: rank 0, unless torchrun's agent serves it).
    pub is_server: bool,
    pub timeout: Duration,
}

/// A `c10d::TCPStore`.
pub struct Store(*mut c_void);

impl Store {
    /// Connects (and serves, on the server), waiting up to the spec's timeout for the server
    /// and, on the server, for every worker.
    pub fn connect(spec: &StoreSpec) -> Result<Store> {
        let host = cstring("TCPStore", &spec.host)?;
        let mut err = std::ptr::null_mut();
        // SAFETY: a NUL-terminated string that lives for the call; the shim copies it.
        let p = unsafe {
            lthost_dist_tcp_store(
                host.as_ptr(),
                i32::from(spec.port),
                spec.world_size as i32,
                i32::from(spec.is_server),
                1,
                1,
                spec.timeout.as_millis() as i64,
                &mut err,
            )
        };
        if p.is_null() {
            return Err(anyhow!("TCPStore at {}:{}: {}", spec.host, spec.port, take_error(err)));
        }
        Ok(Store(p))
    }
}

impl Store {
    /// `store.set(key, value)`; the store's calls wait at most `timeout` from now on.
    pub fn set(&self, key: &str, value: &str, timeout: Duration) -> Result<()> {
        let (k, v) = (cstring("TCPStore key", key)?, cstring("TCPStore value", value)?);
        let mut err = std::ptr::null_mut();
        // SAFETY: a live store handle and NUL-terminated strings for the call.
        let rc = unsafe { lthost_dist_store_set(self.0, k.as_ptr(), v.as_ptr(), timeout.as_millis() as i64, &mut err) };
        check("TCPStore.set", rc, err)
    }

    /// Whether `key` is set.
    pub fn check(&self, key: &str) -> Result<bool> {
        let k = cstring("TCPStore key", key)?;
        let (mut present, mut err) = (0, std::ptr::null_mut());
        // SAFETY: a live store handle and a NUL-terminated string for the call.
        let rc = unsafe { lthost_dist_store_check(self.0, k.as_ptr(), &mut present, &mut err) };
        check("TCPStore.check", rc, err)?;
        Ok(present == 1)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: a handle from lthost_dist_tcp_store, freed once.
        unsafe { lthost_dist_store_free(self.0) }
    }
}

/// A `c10d::ProcessGroup` with its backends (Gloo on the CPU; NCCL or Gloo for CUDA).
pub struct ProcessGroup {
    ptr: *mut c_void,
    rank: usize,
    size: usize,
}

impl ProcessGroup {
    /// The default group over `store`, as `init_process_group("gloo", rank, world_size)`:
    /// `GLOO_SOCKET_IFNAME` picks the interface as in torch.
    pub fn gloo(store: &Store, rank: usize, size: usize, timeout: Duration) -> Result<ProcessGroup> {
        let name = cstring("ProcessGroupGloo", "0")?;
        let ifname = cstring("GLOO_SOCKET_IFNAME", &std::env::var("GLOO_SOCKET_IFNAME").unwrap_or_default())?;
        let mut err = std::ptr::null_mut();
        // SAFETY: a live store handle; the strings live for the call.
        let p = unsafe {
            lthost_dist_gloo_group(
                store.0,
                rank as i32,
                size as i32,
                timeout.as_millis() as i64,
                name.as_ptr(),
                ifname.as_ptr(),
                &mut err,
            )
        };
        if p.is_null() {
            return Err(anyhow!("ProcessGroupGloo (rank {rank} of {size}): {}", take_error(err)));
        }
        Ok(ProcessGroup { ptr: p, rank, size })
    }

    /// CUDA tensors' collectives on CUDA device `device`, as `init_process_group` with
    /// "cpu:gloo,cuda:nccl" (`nccl`: the loaded NCCL shim) or "gloo" (None: Gloo takes CUDA
    /// tensors too). The communicator is made now, bound to the device.
    pub fn add_cuda(&self, nccl: Option<super::nccl::Nccl>, device: usize, timeout: Duration) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live group handle; `make` is the shim's constructor with its C signature.
        let rc = unsafe {
            lthost_dist_group_add_cuda(
                self.ptr,
                nccl.map(|n| n.make),
                device as i32,
                timeout.as_millis() as i64,
                &mut err,
            )
        };
        let what = if nccl.is_some() { "ProcessGroupNCCL" } else { "ProcessGroupGloo on CUDA" };
        check(&format!("{what} (rank {} of {}, cuda:{device})", self.rank, self.size), rc, err)
    }

    /// `sync_batchnorm`: `lthost::sync_batch_norm` syncs over this group (until it is freed).
    pub fn sync_batch_norm(&self) {
        // SAFETY: a live group handle.
        unsafe { lthost_dist_sync_batch_norm(self.ptr) }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn barrier(&self) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live group handle.
        let rc = unsafe { lthost_dist_barrier(self.ptr, &mut err) };
        check("barrier", rc, err)
    }

    /// `dist.broadcast(t, src=root)`, in place.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live group and tensor; the collective writes the tensor's storage.
        let rc = unsafe { lthost_dist_broadcast(self.ptr, t.as_ptr() as *const c_void, root as i32, &mut err) };
        check("broadcast", rc, err)
    }

    /// `dist.all_reduce(t, op)`, in place.
    pub fn all_reduce(&self, t: &Tensor, op: ReduceOp) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live group and tensor; the collective writes the tensor's storage.
        let rc = unsafe { lthost_dist_all_reduce(self.ptr, t.as_ptr() as *const c_void, op as i32, &mut err) };
        check("all_reduce", rc, err)
    }

    /// DDP's `_broadcast_coalesced`: rank `root`'s values into `ts` on every rank.
    pub fn broadcast_coalesced(&self, ts: &[&Tensor], buffer_size: usize, root: usize) -> Result<()> {
        if ts.is_empty() {
            return Ok(());
        }
        let ptrs = pointers(ts);
        let mut err = std::ptr::null_mut();
        // SAFETY: live tensors for the call; the collective writes their storage.
        let rc = unsafe {
            lthost_dist_broadcast_coalesced(self.ptr, ptrs.as_ptr(), ptrs.len(), buffer_size, root as i32, &mut err)
        };
        check("broadcast_coalesced", rc, err)
    }

    /// DistributedDataParallel's check that every rank has rank 0's parameters: as many
    /// (every rank fails otherwise), of the same sizes and strides (a rank that differs fails,
    /// naming the parameter's index and sizes).
    pub fn verify_params(&self, params: &[&Tensor]) -> Result<()> {
        let ptrs = pointers(params);
        let mut err = std::ptr::null_mut();
        // SAFETY: live tensors for the call; the shim copies the handles.
        let rc = unsafe { lthost_dist_verify_params(self.ptr, ptrs.as_ptr(), ptrs.len(), &mut err) };
        check("verify_params_across_processes", rc, err)
    }

    /// Bytes from `root` to every rank (rank `root` passes them, the others get them).
    pub fn broadcast_bytes(&self, bytes: &[u8], root: usize) -> Result<Vec<u8>> {
        let len = Tensor::from_slice(&[bytes.len() as i64]);
        self.broadcast(&len, root)?;
        let n = len.f_int64_value(&[0])?.max(0) as usize;
        let data = if self.rank == root {
            Tensor::from_slice(bytes)
        } else {
            Tensor::zeros([n as i64], (tch::Kind::Uint8, tch::Device::Cpu))
        };
        if n > 0 {
            self.broadcast(&data, root)?;
        }
        let mut out = vec![0u8; n];
        data.f_copy_data(&mut out, n)?;
        Ok(out)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: a handle from lthost_dist_gloo_group, freed once.
        unsafe { lthost_dist_group_free(self.ptr) }
    }
}

/// torch's `c10d::Reducer`: hooks on the parameters' gradient accumulators that all-reduce
/// gradients in buckets as backward produces them and leave every rank the mean.
pub struct Reducer {
    ptr: *mut c_void,
    /// DistributedDataParallel's `find_unused_parameters`.
    find_unused: bool,
}

impl Reducer {
    /// Over `params` (name, tensor), the ones that require grad, in the module's order.
    pub fn new(
        group: &ProcessGroup,
        params: &[(String, &Tensor)],
        bucket_bytes: i64,
        first_bucket_bytes: i64,
        find_unused: bool,
    ) -> Result<Reducer> {
        let names: Vec<CString> = params.iter().map(|(n, _)| cstring("Reducer", n)).collect::<Result<_>>()?;
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let tensors: Vec<&Tensor> = params.iter().map(|(_, t)| *t).collect();
        let ptrs = pointers(&tensors);
        let mut err = std::ptr::null_mut();
        // SAFETY: live group, tensors and strings for the call; the Reducer keeps its own
        // references to the tensors.
        let p = unsafe {
            lthost_dist_reducer_new(
                group.ptr,
                ptrs.as_ptr(),
                ptrs.len(),
                name_ptrs.as_ptr(),
                bucket_bytes,
                first_bucket_bytes,
                i32::from(find_unused),
                &mut err,
            )
        };
        if p.is_null() {
            return Err(anyhow!("DistributedDataParallel's Reducer: {}", take_error(err)));
        }
        Ok(Reducer { ptr: p, find_unused })
    }

    /// DDP's `_pre_forward` with grad enabled: the forward starts when gradients are synced
    /// (`sync`: not inside `no_sync`); buckets are rebuilt after the first backward.
    pub fn pre_forward(&self, sync: bool) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live reducer handle.
        let rc = unsafe { lthost_dist_reducer_pre_forward(self.ptr, i32::from(sync), &mut err) };
        check("Reducer.prepare_for_forward", rc, err)
    }

    /// Lightning's `prepare_for_backward` before a manual backward of `loss`: the buckets
    /// rebuilt when due, then the backward's gradients expected.
    pub fn prepare_manual_backward(&self, loss: &Tensor) -> Result<()> {
        self.pre_forward(false)?;
        self.prepare_for_backward(&[loss])
    }

    /// DDP's `_post_forward`: the next backward's gradients are reduced. With
    /// `find_unused_parameters`, the parameters `outputs`' graph does not reach are found now
    /// (torch's `_find_tensors(output)`); without, `outputs` is not looked at.
    pub fn prepare_for_backward(&self, outputs: &[&Tensor]) -> Result<()> {
        let outputs = if self.find_unused { outputs } else { &[] };
        let ptrs = pointers(outputs);
        let mut err = std::ptr::null_mut();
        // SAFETY: a live reducer and tensors for the call.
        let rc = unsafe { lthost_dist_reducer_prepare_for_backward(self.ptr, ptrs.as_ptr(), ptrs.len(), &mut err) };
        check("Reducer.prepare_for_backward", rc, err)
    }
}

// SAFETY: c10d's Reducer guards its state with its own mutex (autograd's threads call its
// hooks); lthost calls it from the thread that runs the loops.
unsafe impl Send for Reducer {}
// SAFETY: as above.
unsafe impl Sync for Reducer {}

impl Drop for Reducer {
    fn drop(&mut self) {
        let mut err = std::ptr::null_mut();
        // SAFETY: a handle from lthost_dist_reducer_new, freed once; a failure (the reducer
        // mid-backward) is dropped with it.
        let rc = unsafe { lthost_dist_reducer_free(self.ptr, &mut err) };
        if rc != 0 {
            let _ = take_error(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f(rank, group)` on two ranks of a world of 2, threads of this process over a TCPStore
    /// on a free local port.
    fn two_ranks<R: Send>(f: impl Fn(usize, &ProcessGroup) -> R + Sync) -> Vec<R> {
        let port = super::super::launcher::free_port().expect("a port");
        let timeout = Duration::from_secs(20);
        std::thread::scope(|s| {
            let f = &f;
            let ranks: Vec<_> = (0..2)
                .map(|rank| {
                    s.spawn(move || {
                        let spec =
                            StoreSpec { host: "127.0.0.1".into(), port, world_size: 2, is_server: rank == 0, timeout };
                        let store = Store::connect(&spec).expect("the store");
                        let group = ProcessGroup::gloo(&store, rank, 2, timeout).expect("the group");
                        f(rank, &group)
                    })
                })
                .collect();
            ranks.into_iter().map(|h| h.join().expect("a rank")).collect()
        })
    }

    #[test]
    fn ranks_with_other_parameters_than_rank_0s_are_refused() {
        let same = two_ranks(|_, g| g.verify_params(&[&Tensor::zeros([4, 3], tch::kind::FLOAT_CPU)]).is_ok());
        assert_eq!(same, [true, true]);
        // Another number of parameters: every rank fails.
        let count = two_ranks(|rank, g| {
            let a = Tensor::zeros([4, 3], tch::kind::FLOAT_CPU);
            let ps: Vec<&Tensor> = if rank == 0 { vec![&a, &a] } else { vec![&a] };
            g.verify_params(&ps).map_err(|e| format!("{e:#}"))
        });
        for r in &count {
            let e = r.as_ref().expect_err("refused");
            assert!(e.contains("DDP expects same model across all ranks"), "{e}");
        }
        // Other sizes: the rank that differs fails, naming the parameter.
        let sizes = two_ranks(|rank, g| {
            let shape: [i64; 2] = if rank == 0 { [4, 3] } else { [3, 4] };
            g.verify_params(&[&Tensor::zeros(shape, tch::kind::FLOAT_CPU)]).map_err(|e| format!("{e:#}"))
        });
        assert!(sizes[0].is_ok());
        let e = sizes[1].as_ref().expect_err("rank 1 differs");
        assert!(e.contains("params[0] in this process with sizes [3, 4] appears not to match"), "{e}");
    }

    #[test]
    fn failed_collectives_are_told_apart_from_other_failures() {
        let own: anyhow::Error =
            CollectiveError("broadcast_coalesced: Application timeout caused pair closure".into()).into();
        assert!(is_collective_failure(&own.context("broadcasting buffers")));
        // The Reducer's all-reduce fails inside backward, with torch's Gloo message.
        let in_backward = anyhow!("op `backward`: [third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error");
        assert!(is_collective_failure(&in_backward));
        assert!(!is_collective_failure(&anyhow!("plugin `m`, hook `training_step`: shapes differ")));
    }
}
