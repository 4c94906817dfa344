//! The compiled-component cache: a plugin compiled once is stored, by the SHA-256 of its
//! bytes and this engine's compatibility hash, as wasmtime's serialized form, and loaded
//! from there next time (milliseconds instead of a compilation). Only plugins the trust
//! policy admitted reach it. Entries are written atomically (temp file + rename), so
//! concurrent runs never see half an entry; the directory is kept under a size bound
//! (oldest entries go first); an entry wasmtime refuses (another wasmtime version, CPU or
//! configuration) is ignored and replaced, never trusted. The directory must be private to
//! the user (owned by them, writable by no one else): entries are native code. lthost
//! creates it 0700 and never changes the mode of one that exists: a shared directory is
//! refused (with a warning) and the plugin compiled without the cache.
//!
//! Each entry starts with the SHA-256 of the component it was compiled from and the SHA-256
//! of the serialized code that follows; an entry whose recorded source is not the plugin
//! being loaded (a renamed or swapped entry) or whose code does not match is refused and
//! replaced.
//!
//! Where: `LTHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/lthost/components`, else
//! `~/.cache/lthost/components`. `LTHOST_CACHE=off` turns it off.

use std::hash::{Hash as _, Hasher as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::Engine;

/// Default size bound.
pub const MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    /// Compiled (and stored, when the cache is on).
    Compiled,
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl ComponentCache {
    /// The cache the environment asks for, or None when it is off.
    pub fn from_env() -> Option<Self> {
        if std::env::var("LTHOST_CACHE").is_ok_and(|v| v == "off" || v == "0") {
            return None;
        }
        let dir = if let Some(d) = std::env::var_os("LTHOST_CACHE_DIR") {
            PathBuf::from(d)
        } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(d).join("lthost/components")
        } else {
            PathBuf::from(std::env::var_os("HOME")?).join(".cache/lthost/components")
        };
        let max_bytes = std::env::var("LTHOST_CACHE_MAX_MB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(MAX_BYTES, |mb| mb << 20);
        Some(ComponentCache { dir, max_bytes })
    }

    /// The entry's file: content hash + engine compatibility.
    fn entry(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        self.dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
    }

    /// A private directory: created 0700 (its parents as usual); an existing one must be
    /// ours and writable by no one else, and is left as it is.
    fn usable_dir(&self) -> bool {
        use std::os::unix::fs::DirBuilderExt as _;
        if !self.dir.exists() {
            if let Some(parent) = self.dir.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&self.dir);
        }
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let private =
            std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0);
        if !private {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| eprintln!("warning: component cache {} is not a private directory of this user (owned by it, writable by no one else); compiling without the cache", self.dir.display()));
        }
        private
    }

    /// The component from the cache, else compiled (and stored); `sha256` is the bytes' digest.
    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> Result<(Component, Outcome)> {
        if !self.usable_dir() {
            return Ok((Component::new(engine, bytes).map_err(|e| anyhow::anyhow!("{e}"))?, Outcome::Compiled));
        }
        let path = self.entry(engine, sha256);
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let ours = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.uid() == uid && m.mode() & 0o022 == 0);
        if ours {
            if let Some(serialized) = std::fs::read(&path).ok().and_then(|e| checked_entry(e, sha256)) {
                // SAFETY: the entry is in a private directory owned by this user, written by
                // this code from wasmtime's own serialization of a component the trust policy
                // admitted, recorded as compiled from these very bytes (checked above, with
                // the code's digest); wasmtime checks the version, target and configuration
                // and refuses (Err) an entry from another engine.
                if let Ok(c) = unsafe { Component::deserialize(engine, &serialized) } {
                    let _ = filetime_touch(&path);
                    return Ok((c, Outcome::Hit));
                }
            }
        }
        let component = Component::new(engine, bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Ok(serialized) = component.serialize() {
            if let Err(e) = self.store(&path, &entry_bytes(sha256, serialized)) {
                eprintln!("warning: component cache {}: {e}", self.dir.display());
            }
            self.prune();
        }
        Ok((component, Outcome::Compiled))
    }

    fn store(&self, path: &Path, data: &[u8]) -> Result<()> {
        crate::fs::write_private(path, data, "cache-write")
    }

    /// Removes the least recently used entries until the directory fits the bound.
    pub fn prune(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, len, p) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&p).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

const MAGIC: &[u8; 8] = b"lthostc1";

/// An entry: magic, the source component's SHA-256 (hex, 64 bytes), the SHA-256 of the
/// serialized code (32 bytes), the code.
fn entry_bytes(source_sha256: &str, serialized: Vec<u8>) -> Vec<u8> {
    use sha2::Digest as _;
    let mut out = Vec::with_capacity(serialized.len() + 104);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(source_sha256.as_bytes());
    out.extend_from_slice(&sha2::Sha256::digest(&serialized));
    out.extend_from_slice(&serialized);
    out
}

/// The code of an entry compiled from `source_sha256` whose digest matches; else None.
fn checked_entry(mut entry: Vec<u8>, source_sha256: &str) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    let head = 8 + 64 + 32;
    if entry.len() < head || &entry[..8] != MAGIC || &entry[8..72] != source_sha256.as_bytes() {
        return None;
    }
    let code = entry.split_off(head);
    (sha2::Sha256::digest(&code).as_slice() == &entry[72..head]).then_some(code)
}

/// Marks an entry used (its mtime orders eviction).
fn filetime_touch(path: &Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.set_modified(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn compiles_once_then_hits_and_ignores_foreign_entries() {
        let d = tempfile::tempdir().unwrap();
        let cache = ComponentCache { dir: d.path().join("c"), max_bytes: MAX_BYTES };
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).unwrap();
        let bytes = b"\0asm\x0d\0\x01\0";
        let sha = crate::artifact::sha256_hex(bytes);
        assert_eq!(cache.load_or_compile(&engine, bytes, &sha).unwrap().1, Outcome::Compiled);
        assert_eq!(cache.load_or_compile(&engine, bytes, &sha).unwrap().1, Outcome::Hit);
        // A corrupt (or foreign) entry is not trusted: recompiled and replaced.
        let entry = cache.entry(&engine, &sha);
        std::fs::write(&entry, b"not a serialized component").unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(cache.load_or_compile(&engine, bytes, &sha).unwrap().1, Outcome::Compiled);
        assert_eq!(cache.load_or_compile(&engine, bytes, &sha).unwrap().1, Outcome::Hit);
        // An entry of another plugin under this plugin's name is refused and replaced.
        let mut swapped = std::fs::read(&entry).unwrap();
        swapped[8..72].copy_from_slice(crate::artifact::sha256_hex(b"another plugin").as_bytes());
        std::fs::write(&entry, &swapped).unwrap();
        assert_eq!(cache.load_or_compile(&engine, bytes, &sha).unwrap().1, Outcome::Compiled);
        // A shared directory is refused and left as it is.
        let shared = ComponentCache { dir: d.path().join("shared"), max_bytes: MAX_BYTES };
        std::fs::create_dir(&shared.dir).unwrap();
        std::fs::set_permissions(&shared.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(shared.load_or_compile(&engine, bytes, &sha).unwrap().1, Outcome::Compiled);
        assert_eq!(shared.load_or_compile(&engine, bytes, &sha).unwrap().1, Outcome::Compiled);
        assert_eq!(std::fs::metadata(&shared.dir).unwrap().mode() & 0o777, 0o777);
        // The size bound evicts.
        let tiny = ComponentCache { max_bytes: 1, ..cache.clone() };
        tiny.prune();
        assert_eq!(std::fs::read_dir(&cache.dir).unwrap().count(), 0);
    }
}
