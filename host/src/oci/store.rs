//! The pull cache: what was pulled and verified, by digest, so a run by digest needs no
//! registry and a tag that moves is noticed.
//!
//! Where: `LTHOST_OCI_DIR`, else `$XDG_CACHE_HOME/lthost/oci`, else `~/.cache/lthost/oci`
//! (made private, 0700). Layout: `manifests/sha256/<hex>.json` (written last: an entry
//! exists once its manifest does), `plugins/sha256/<manifest hex>/<name>.wasm` (and its
//! `.sig`), `tags/<registry>/<repository>/@tags/<tag>` (the manifest digest the tag had). Every file is
//! written whole (temp file + rename); what is read back is checked against its digest and
//! verified again, never trusted because it is here.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

use super::wasm_artifact::parse_manifest;
use super::{Reference, Verify};

pub struct PullCache {
    pub dir: PathBuf,
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

impl PullCache {
    pub fn from_env() -> Result<Self> {
        let dir = if let Some(d) = std::env::var_os("LTHOST_OCI_DIR").filter(|d| !d.is_empty()) {
            PathBuf::from(d)
        } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(d).join("lthost/oci")
        } else {
            let home =
                std::env::var_os("HOME").ok_or_else(|| anyhow!("no HOME for the pull cache; set LTHOST_OCI_DIR"))?;
            PathBuf::from(home).join(".cache/lthost/oci")
        };
        Ok(PullCache { dir })
    }

    fn manifest_path(&self, digest: &str) -> PathBuf {
        self.dir.join("manifests/sha256").join(format!("{}.json", hex(digest)))
    }

    /// A manifest's component (and its own detached signature): kept by the manifest's
    /// digest, so two manifests of one layer never share a signature file.
    fn plugin_dir(&self, manifest_digest: &str) -> PathBuf {
        self.dir.join("plugins/sha256").join(hex(manifest_digest))
    }

    /// The one component kept for a manifest (named as the plugin).
    fn plugin_in(&self, manifest_digest: &str) -> Option<PathBuf> {
        let entries = std::fs::read_dir(self.plugin_dir(manifest_digest)).ok()?;
        entries.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "wasm"))
    }

    fn make_dir(&self, d: &Path) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|e| anyhow!("making the pull cache {}: {e}", d.display()))
    }

    /// The component of a cached manifest, checked (digests) and verified again; None when
    /// it is not here whole.
    pub fn lookup(&self, manifest_digest: &str, verify: Verify<'_>) -> Result<Option<PathBuf>> {
        let Ok(manifest) = std::fs::read(self.manifest_path(manifest_digest)) else { return Ok(None) };
        if format!("sha256:{}", crate::artifact::sha256_hex(&manifest)) != manifest_digest {
            return Ok(None);
        }
        let Ok(m) = parse_manifest(&manifest) else { return Ok(None) };
        let Some(path) = self.plugin_in(manifest_digest) else { return Ok(None) };
        let Ok(bytes) = std::fs::read(&path) else { return Ok(None) };
        if format!("sha256:{}", crate::artifact::sha256_hex(&bytes)) != m.layer_digest {
            return Ok(None);
        }
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
        verify(name, &bytes, m.signature.as_deref())?;
        Ok(Some(path))
    }

    /// Keeps a verified pull; returns the component's path.
    pub fn store(
        &self,
        manifest_digest: &str,
        manifest: &[u8],
        name: &str,
        layer: &[u8],
        sig: Option<&[u8]>,
    ) -> Result<PathBuf> {
        parse_manifest(manifest)?;
        let dir = self.plugin_dir(manifest_digest);
        self.make_dir(&dir)?;
        let path = dir.join(format!("{name}.wasm"));
        crate::fs::write_atomic(&path, layer)?;
        if let Some(sig) = sig {
            crate::fs::write_atomic(&path.with_extension("wasm.sig"), sig)?;
        }
        let mp = self.manifest_path(manifest_digest);
        if let Some(parent) = mp.parent() {
            self.make_dir(parent)?;
        }
        crate::fs::write_atomic(&mp, manifest)?;
        Ok(path)
    }

    /// Records what a tag points at now; returns (before, now) when it moved.
    pub fn record_tag(&self, r: &Reference, manifest_digest: &str) -> Result<Option<(String, String)>> {
        // `@tags` cannot be a repository's path component (no `@` in OCI names).
        let path = self.dir.join("tags").join(&r.registry).join(&r.repository).join("@tags").join(r.tag_or_latest());
        let before = std::fs::read_to_string(&path).ok().map(|s| s.trim().to_string());
        if before.as_deref() == Some(manifest_digest) {
            return Ok(None);
        }
        if let Some(parent) = path.parent() {
            self.make_dir(parent)?;
        }
        crate::fs::write_atomic(&path, manifest_digest.as_bytes())?;
        Ok(before.filter(|b| !b.is_empty()).map(|b| (b, manifest_digest.to_string())))
    }
}
