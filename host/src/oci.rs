//! Plugins in OCI registries: `lthost push`, `lthost pull` and `lthost run oci://…`, in
//! the Wasm OCI artifact layout of the CNCF wasm working group (an OCI image manifest whose
//! config is `application/vnd.wasm.config.v0+json` and whose one layer is the component,
//! `application/wasm`), so `wkg oci pull` and ORAS read what lthost pushes and the other way
//! round.
//!
//! A pulled plugin is checked before anything keeps it: the manifest against its digest
//! (the one asked for, and the registry's), the layer against the manifest's digest and
//! size, then the trust policy on the component's bytes, exactly as for a local file (an
//! embedded signature, or a detached one carried in the manifest's annotations). Only then
//! is it stored, by digest, in the pull cache ([`store`]), where a run by digest finds it
//! without asking the registry again.

pub mod auth;
pub mod reference;
pub mod registry;
pub mod store;
pub mod wasm_artifact;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

pub use reference::Reference;
use registry::Registry;
use store::PullCache;

/// The scheme that marks a plugin argument as a registry reference.
pub const SCHEME: &str = "oci://";

/// How to reach a registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport {
    /// Plain HTTP for a registry other than localhost (ORAS's `--plain-http`).
    pub plain_http: bool,
}

/// What `push` did.
pub struct Pushed {
    pub manifest_digest: String,
    pub layer_digest: String,
    pub size: u64,
    /// Blobs the registry already had.
    pub reused: usize,
}

/// Pushes a component (and its detached signature, if given) as a Wasm OCI artifact.
pub fn push(component: &[u8], signature: Option<&[u8]>, to: &Reference, how: Transport) -> Result<Pushed> {
    if to.digest.is_some() {
        bail!("{to}: push to a tag (REGISTRY/REPO:TAG); a digest names what was pushed, it is not a place to push to");
    }
    let artifact = wasm_artifact::build(component, signature)?;
    let mut reg = Registry::connect(to, how)?;
    let mut reused = 0;
    for (digest, bytes) in [(&artifact.config_digest, artifact.config.as_slice()), (&artifact.layer_digest, component)]
    {
        if reg.blob_exists(digest)? {
            reused += 1;
        } else {
            reg.upload_blob(digest, bytes)?;
        }
    }
    let manifest_digest = reg.put_manifest(to.tag_or_latest(), &artifact.manifest)?;
    Ok(Pushed { manifest_digest, layer_digest: artifact.layer_digest, size: component.len() as u64, reused })
}

/// A pulled plugin, verified and in the pull cache.
pub struct Pulled {
    /// The component in the cache (its detached signature, if any, beside it as `.sig`).
    pub path: PathBuf,
    pub manifest_digest: String,
    /// Found in the cache by digest: the registry was not asked.
    pub cached: bool,
    /// The tag pointed at another manifest when it was last pulled: (before, now).
    pub moved: Option<(String, String)>,
}

/// Checks a component before it is kept: `(name, bytes, detached signature)`.
pub type Verify<'a> = &'a dyn Fn(&str, &[u8], Option<&[u8]>) -> Result<()>;

/// Pulls `from` into the pull cache, verifying digests, then `verify` (the trust policy).
pub fn pull(from: &Reference, how: Transport, verify: Verify<'_>) -> Result<Pulled> {
    let cache = PullCache::from_env()?;
    // By digest, a verified copy already here answers without the registry.
    if let Some(d) = &from.digest {
        if let Some(path) = cache.lookup(d, verify)? {
            return Ok(Pulled { path, manifest_digest: d.clone(), cached: true, moved: None });
        }
    }
    let mut reg = Registry::connect(from, how)?;
    let manifest_bytes = reg.get_manifest(from.reference())?;
    let manifest_digest = format!("sha256:{}", crate::artifact::sha256_hex(&manifest_bytes));
    if let Some(want) = &from.digest {
        if *want != manifest_digest {
            bail!("{from}: the registry sent a manifest whose digest is {manifest_digest}, not the one asked for; refused");
        }
    }
    let m = wasm_artifact::parse_manifest(&manifest_bytes).with_context(|| format!("{from}"))?;
    let path = match cache.lookup(&manifest_digest, verify)? {
        Some(path) => path,
        None => {
            let layer = reg.get_blob(&m.layer_digest, m.layer_size)?;
            let signature = m.signature.as_deref();
            // Named as the plugin's manifest names it (a plain name), else as the repository.
            let named = crate::artifact::manifest::read(&layer).ok().flatten().map(|m| m.name);
            let name = named.as_deref().map(std::ffi::OsStr::new).and_then(crate::run_dir::plain_name);
            let name = name.unwrap_or(from.name()).to_string();
            verify(&name, &layer, signature).with_context(|| format!("{from} ({manifest_digest})"))?;
            cache.store(&manifest_digest, &manifest_bytes, &name, &layer, signature)?
        }
    };
    let moved = match &from.digest {
        Some(_) => None,
        None => cache.record_tag(from, &manifest_digest)?,
    };
    Ok(Pulled { path, manifest_digest, cached: false, moved })
}

/// Tags this process resolved, as `oci://…@sha256:…`: the DDP launcher starts the other
/// ranks on these, so a tag that moves meanwhile cannot give ranks different plugins.
static PINS: std::sync::Mutex<Vec<(std::ffi::OsString, std::ffi::OsString)>> = std::sync::Mutex::new(Vec::new());

/// `arg` as the other ranks of this run must see it (a resolved tag pinned to its digest).
pub fn pinned(arg: &std::ffi::OsStr) -> std::ffi::OsString {
    let pins = PINS.lock().map(|p| p.clone()).unwrap_or_default();
    pins.into_iter().find(|(a, _)| a == arg).map_or_else(|| arg.to_owned(), |(_, p)| p)
}

/// A plugin argument: a file, or `oci://REGISTRY/REPO:TAG` (or `@sha256:…`) pulled, verified
/// and cached first; a moved tag is reported on stderr.
pub fn resolve_plugin(arg: &Path, verify: Verify<'_>) -> Result<PathBuf> {
    let Some(s) = arg.to_str().and_then(|s| s.strip_prefix(SCHEME)) else {
        return Ok(arg.to_path_buf());
    };
    let r = Reference::parse(s)?;
    let pulled = pull(&r, Transport::default(), verify)?;
    if r.digest.is_none() {
        let pinned = Reference { digest: Some(pulled.manifest_digest.clone()), ..r.clone() };
        if let Ok(mut pins) = PINS.lock() {
            pins.push((arg.as_os_str().to_owned(), format!("{SCHEME}{pinned}").into()));
        }
    }
    if let Some((before, now)) = &pulled.moved {
        eprintln!("note: {r} moved: it was {before} when last pulled, it is {now} now");
    }
    if !pulled.cached {
        eprintln!("pulled {r} ({})", pulled.manifest_digest);
    }
    Ok(pulled.path)
}
