//! torch's NCCL backend for DDP on CUDA. `ProcessGroupNCCL` lives in libtorch_cuda, which
//! `lthost` is not linked against (connectors/cuda_loader.rs), so its constructor is called
//! through a small shared object of its own (host/csrc/nccl_backend.cpp), compiled by
//! build.rs and embedded in the binary. It is loaded from memory (`memfd_create`), so no file
//! is written, only in a DDP run on CUDA, after libtorch_cuda is in the process.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/nccl_shim.rs"));
}

/// `lthost_nccl_backend` (csrc/nccl_backend.cpp).
pub type MakeBackend = unsafe extern "C" fn(
    store: *mut c_void,
    rank: c_int,
    size: c_int,
    timeout_ms: i64,
    device: c_int,
    group_name: *const c_char,
    err: *mut *mut c_char,
) -> *mut c_void;

/// The loaded shim.
#[derive(Clone, Copy)]
pub struct Nccl {
    pub make: MakeBackend,
    /// NCCL's version as libtorch_cuda was built with it (2.29.7 → 22907).
    pub version: i32,
}

/// Whether this build has the NCCL shim (the CUDA and NCCL headers were there at build time).
pub fn built() -> bool {
    embedded::SHIM.is_some()
}

/// Why this build has no NCCL shim (empty when it has one).
pub fn why_not_built() -> &'static str {
    embedded::WHY
}

/// The shim, loaded once (libtorch_cuda with it, if the run has not preloaded it). Fails with
/// the reason: not built, or the loader's message.
pub fn load() -> Result<Nccl> {
    static LOADED: OnceLock<std::result::Result<Nccl, String>> = OnceLock::new();
    LOADED.get_or_init(|| open().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!(e))
}

fn open() -> Result<Nccl> {
    let Some(bytes) = embedded::SHIM else {
        bail!("this lthost was built without the NCCL backend: {}", embedded::WHY)
    };
    // SAFETY: memfd_create with a NUL-terminated name; the fd is ours and closed below.
    let fd = unsafe { libc::memfd_create(c"lthost_nccl".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        bail!("memfd_create for the NCCL backend: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the fd was just opened and is owned here (closed when `file` drops).
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    std::io::Write::write_all(&mut file, bytes).map_err(|e| anyhow!("writing the NCCL backend to memory: {e}"))?;
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).map_err(|e| anyhow!("{e}"))?;
    // SAFETY: dlopen of the object just written; its constructors are libtorch's (static
    // registrations only), and it is never closed.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    drop(file);
    if handle.is_null() {
        bail!("loading the NCCL backend: {}", dl_error());
    }
    let make = symbol(handle, c"lthost_nccl_backend")?;
    let version = symbol(handle, c"lthost_nccl_version")?;
    // SAFETY: the symbols have these signatures in csrc/nccl_backend.cpp.
    let (make, version) = unsafe {
        (
            std::mem::transmute::<*mut c_void, MakeBackend>(make),
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(version)(),
        )
    };
    Ok(Nccl { make, version })
}

fn symbol(handle: *mut c_void, name: &CStr) -> Result<*mut c_void> {
    // SAFETY: a live handle from dlopen and a NUL-terminated name.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        bail!("the NCCL backend has no `{}`: {}", name.to_string_lossy(), dl_error());
    }
    Ok(p)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated (above).
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// NCCL's version as torch prints it (`2.29.7`).
pub fn version_string(code: i32) -> String {
    format!("{}.{}.{}", code / 10000, (code / 100) % 100, code % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_torch_prints_them() {
        assert_eq!(version_string(22907), "2.29.7");
        assert_eq!(version_string(21803), "2.18.3");
    }

    /// Loads the shim from memory in a process without a GPU: libtorch_cuda comes with it (the
    /// shim needs it), the version is torch's, and a backend on a missing device fails with
    /// torch's message instead of aborting.
    #[test]
    fn the_shim_loads_from_memory_and_a_missing_gpu_is_an_error() {
        if !built() {
            eprintln!("skipped: this build has no NCCL shim");
            return;
        }
        let nccl = load().expect("the NCCL shim loads");
        assert_eq!(version_string(nccl.version).split('.').count(), 3);
        assert!(nccl.version >= 20900, "{}", nccl.version);
        if tch::Cuda::is_available() {
            return;
        }
        let mut err = std::ptr::null_mut();
        let name = c"0";
        // SAFETY: a null store is never dereferenced: setting the device fails first without a GPU.
        let p = unsafe { (nccl.make)(std::ptr::null_mut(), 0, 1, 1000, 0, name.as_ptr(), &mut err) };
        assert!(p.is_null());
        let msg = crate::engine::torch_ext::take_error(err);
        assert!(msg.to_lowercase().contains("cuda"), "{msg}");
    }
}
