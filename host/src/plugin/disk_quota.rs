//! A plugin's disk quota: the bytes it may write into its writable grants (a logger's
//! `/logs`, a module's `/output`), counted as it writes them, so that no plugin can fill the
//! filesystem under the run's own checkpoints and logs.
//!
//! WASI's file writes are replaced in the linker (after wasmtime-wasi's own): a
//! `descriptor.write` is checked and charged before it is done, and the streams
//! `write-via-stream`/`append-via-stream` hand out are wrapped so that every write through
//! them is. A write past the quota fails (`insufficient-space`, or a failed stream write)
//! and lthost says once which plugin reached its quota. The count is of bytes written, not
//! of space held: rewriting a file counts again, so the quota bounds the disk a plugin can
//! take from above.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::WasiFilesystemView as _;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{self as fs, Descriptor, ErrorCode, HostDescriptor as _};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::plugin::state::PluginState;

/// The WASI interface whose write functions lthost provides.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

pub struct DiskQuota {
    plugin: String,
    limit: u64,
    written: AtomicU64,
    warned: AtomicBool,
}

impl DiskQuota {
    pub fn new(plugin: &str, limit: u64) -> Arc<DiskQuota> {
        Arc::new(DiskQuota {
            plugin: plugin.to_string(),
            limit,
            written: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        })
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Charges `n` bytes, or refuses them (saying so once) if they would pass the quota.
    pub fn take(&self, n: u64) -> bool {
        let before = self.written.fetch_add(n, Ordering::SeqCst);
        if before.saturating_add(n) <= self.limit {
            return true;
        }
        self.written.fetch_sub(n, Ordering::SeqCst);
        if !self.warned.swap(true, Ordering::SeqCst) {
            eprintln!("warning: plugin `{}` reached its disk quota of {} MiB (plugin.disk_quota_mb); its writes fail from now on", self.plugin, self.limit >> 20);
        }
        false
    }
}

/// A file's output stream, charged to the plugin's quota.
struct Charged {
    inner: DynOutputStream,
    quota: Arc<DiskQuota>,
}

fn over(quota: &DiskQuota) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::format_err!(
        "plugin `{}` reached its disk quota of {} MiB",
        quota.plugin,
        quota.limit >> 20
    ))
}

#[wasmtime_wasi::async_trait]
impl Pollable for Charged {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Charged {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.quota.take(bytes.len() as u64) {
            return Err(over(&self.quota));
        }
        self.inner.write(bytes)
    }
    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }
    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.quota.take(bytes.len() as u64) {
            return Err(over(&self.quota));
        }
        self.inner.blocking_write_and_flush(bytes).await
    }
    fn write_zeroes(&mut self, n: usize) -> StreamResult<()> {
        if !self.quota.take(n as u64) {
            return Err(over(&self.quota));
        }
        self.inner.write_zeroes(n)
    }
    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.inner.write_ready().await
    }
}

type Opened = wasmtime::Result<(Result<Resource<DynOutputStream>, ErrorCode>,)>;

/// Wraps a stream wasmtime-wasi opened (or converts its error) for the guest.
fn charge_stream(
    mut store: StoreContextMut<'_, PluginState>,
    opened: wasmtime_wasi::p2::FsResult<Resource<DynOutputStream>>,
) -> Opened {
    let state = store.data_mut();
    match opened {
        Ok(r) => {
            let inner: DynOutputStream = state.table.delete(r)?;
            let quota = Arc::clone(&state.disk);
            let wrapped: DynOutputStream = Box::new(Charged { inner, quota });
            Ok((Ok(state.table.push(wrapped)?),))
        }
        Err(e) => Ok((Err(fs::Host::convert_error_code(&mut state.filesystem(), e)?),)),
    }
}

/// Replaces WASI's file-write functions in `linker` (after WASI was added) with charged ones.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, PluginState>, (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            let state = store.data_mut();
            if !state.disk.take(buf.len() as u64) {
                return Ok((Err(ErrorCode::InsufficientSpace),));
            }
            match state.filesystem().write(fd, buf, offset) {
                Ok(n) => Ok((Ok(n),)),
                Err(e) => Ok((Err(fs::Host::convert_error_code(&mut state.filesystem(), e)?),)),
            }
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, PluginState>, (fd, offset): (Resource<Descriptor>, u64)| {
            let opened = store.data_mut().filesystem().write_via_stream(fd, offset);
            charge_stream(store, opened)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, PluginState>, (fd,): (Resource<Descriptor>,)| {
            let opened = store.data_mut().filesystem().append_via_stream(fd);
            charge_stream(store, opened)
        },
    )?;
    // Growing a file by `set-size` takes no bytes through a write: the growth is charged.
    types.func_wrap(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, PluginState>, (fd, size): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            let current = state.filesystem().stat(Resource::new_borrow(fd.rep())).map(|s| s.size).unwrap_or(0);
            if !state.disk.take(size.saturating_sub(current)) {
                return Ok((Err(ErrorCode::InsufficientSpace),));
            }
            match state.filesystem().set_size(fd, size) {
                Ok(()) => Ok((Ok(()),)),
                Err(e) => Ok((Err(fs::Host::convert_error_code(&mut state.filesystem(), e)?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_until_the_quota_then_refuses() {
        let q = DiskQuota::new("p", 100);
        assert!(q.take(60));
        assert!(!q.take(41), "past the quota");
        assert_eq!(q.written(), 60, "a refused write is not charged");
        assert!(q.take(40));
        assert!(!q.take(1));
    }
}
