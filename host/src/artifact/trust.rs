//! The trust policy, secure by default: a plugin runs when a trusted key signed it. An
//! unsigned plugin, or one signed only by keys that are not trusted, is refused unless
//! the user passes `--allow-unsigned` (then it runs with a warning). A signed plugin whose
//! bytes changed after signing is always refused. The check runs on the bytes before
//! anything is compiled or cached.
//!
//! Trusted keys (`.pub` files, or directories of them) come from `--trusted-keys`, the
//! `LTHOST_TRUSTED_KEYS` environment variable (paths separated by `:`), and the run
//! file's `[plugin] trusted_keys`.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use sha2::Digest as _;
use wasmsign2::PublicKey;

use super::sections::{is_component, sections, PREAMBLE};
use super::signing::{key_id, read_public_key, signature_data, signer_ids, SIGNATURE_SECTION};

pub const TRUSTED_KEYS_ENV: &str = "LTHOST_TRUSTED_KEYS";

#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// (key file, key).
    pub keys: Vec<(PathBuf, PublicKey)>,
    pub allow_unsigned: bool,
}

/// Why a plugin may run.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Signed by these trusted keys (their files).
    Trusted(Vec<String>),
    /// Not signed; allowed by `--allow-unsigned`.
    Unsigned,
    /// Signed by keys that are not trusted (their ids); allowed by `--allow-unsigned`.
    Untrusted(Vec<String>),
}

impl TrustPolicy {
    /// Loads every `.pub` under the given files and directories. A file or directory that
    /// others may write is refused (whoever can write it can make their own key trusted);
    /// in a directory, a `.pub` that is not a key is skipped with a warning rather than
    /// failing every run.
    pub fn load(paths: &[PathBuf], allow_unsigned: bool) -> Result<Self> {
        let mut keys = Vec::new();
        for p in paths {
            refuse_writable_by_others(p)?;
            if p.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| anyhow!("trusted keys {}: {e}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "pub"))
                    .collect();
                files.sort();
                for f in files {
                    refuse_writable_by_others(&f)?;
                    match read_public_key(&f) {
                        Ok(k) => keys.push((f.clone(), k)),
                        Err(e) => eprintln!("warning: trusted keys: skipping {e:#}"),
                    }
                }
            } else if p.exists() {
                keys.push((p.clone(), read_public_key(p)?));
            } else {
                bail!("trusted keys: {} does not exist", p.display());
            }
        }
        Ok(TrustPolicy { keys, allow_unsigned })
    }

    /// Paths from `LTHOST_TRUSTED_KEYS`.
    pub fn env_paths() -> Vec<PathBuf> {
        std::env::var_os(TRUSTED_KEYS_ENV)
            .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default()
    }

    /// Decides whether `bytes` may run; `detached` is a detached signature, if any.
    pub fn check(&self, name: &str, bytes: &[u8], detached: Option<&[u8]>) -> Result<Verdict> {
        let core_module = bytes.len() >= PREAMBLE && &bytes[..4] == b"\0asm" && bytes[4..8] == [1, 0, 0, 0];
        if !(is_component(bytes) || core_module) {
            bail!("plugin `{name}`: not a WebAssembly component");
        }
        let all = sections(bytes).map_err(|e| anyhow!("plugin `{name}`: {e}"))?;
        let data =
            signature_data(bytes, detached).map_err(|e| anyhow!("plugin `{name}` was changed after signing: {e}"))?;
        let Some(data) = data else {
            // A signature section moved or renamed is a changed signed plugin, not an unsigned one.
            let stray = all.iter().enumerate().any(|(i, s)| match s.custom() {
                Some((SIGNATURE_SECTION, _)) => i > 0,
                Some((_, payload)) if i == 0 => wasmsign2::SignatureData::deserialize(payload)
                    .is_ok_and(|d| d.hash_function == 1 && !d.signed_hashes_set.is_empty()),
                _ => false,
            });
            if stray {
                bail!(
                    "plugin `{name}` was changed after signing: its signature section is not where a signature belongs"
                );
            }
            if self.allow_unsigned {
                return Ok(Verdict::Unsigned);
            }
            bail!("plugin `{name}` is not signed; lthost runs only signed plugins from trusted keys. Sign it (`lthost sign`), or pass --allow-unsigned to run it anyway");
        };
        // The signed content: every byte after the signature section (after the preamble
        // for a detached signature). It must be one of the signed hashes, whoever signed.
        let content = match detached {
            Some(_) => &bytes[PREAMBLE..],
            None => &bytes[PREAMBLE + all[0].bytes.len()..],
        };
        let digest = sha2::Sha256::digest(content).to_vec();
        if !data.signed_hashes_set.iter().any(|s| s.hashes.contains(&digest)) {
            bail!("plugin `{name}` was changed after signing (its content no longer matches the signed hash); refusing it");
        }
        let mut trusted = Vec::new();
        for (file, pk) in &self.keys {
            if pk.verify(&mut Cursor::new(bytes), detached).is_ok() {
                trusted.push(format!("{} ({})", file.display(), key_id(pk)));
            }
        }
        if !trusted.is_empty() {
            return Ok(Verdict::Trusted(trusted));
        }
        let signers = signer_ids(&data);
        let trusted_ids: Vec<String> = self.keys.iter().map(|(_, k)| key_id(k)).collect();
        if signers.iter().any(|s| trusted_ids.contains(s)) {
            bail!("plugin `{name}`: the signature of a trusted key does not verify: the plugin or its signature was changed; refusing it");
        }
        if self.allow_unsigned {
            return Ok(Verdict::Untrusted(signers));
        }
        bail!(
            "plugin `{name}` is signed by {}, which {} not among the trusted keys ({} loaded); trust the key (--trusted-keys, {TRUSTED_KEYS_ENV}, [plugin] trusted_keys) or pass --allow-unsigned",
            signers.join(", "),
            if signers.len() == 1 { "is" } else { "are" },
            self.keys.len()
        )
    }

    /// [`check`], printing the warning `--allow-unsigned` promises.
    pub fn admit(&self, name: &str, bytes: &[u8], detached: Option<&[u8]>) -> Result<Verdict> {
        let v = self.check(name, bytes, detached)?;
        match &v {
            Verdict::Unsigned => {
                eprintln!("warning: plugin `{name}` is not signed; running it because of --allow-unsigned")
            }
            Verdict::Untrusted(ids) => eprintln!(
                "warning: plugin `{name}` is signed by untrusted key(s) {}; running it because of --allow-unsigned",
                ids.join(", ")
            ),
            Verdict::Trusted(_) => {}
        }
        Ok(v)
    }
}

/// The detached signature next to a plugin (`plugin.wasm.sig`), if there is one.
pub fn detached_for(path: &Path) -> Option<Vec<u8>> {
    let mut p = path.as_os_str().to_owned();
    p.push(".sig");
    std::fs::read(PathBuf::from(p)).ok()
}

/// Refuses a trusted-keys file or directory that a group or everyone may write.
fn refuse_writable_by_others(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(m) = std::fs::metadata(p) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            bail!("trusted keys {} has mode {mode:04o}: others can write it, and so make their own keys trusted; `chmod go-w {}`", p.display(), p.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn key_files_others_can_write_or_read_are_refused_and_bad_keys_skipped() {
        let d = tempfile::tempdir().unwrap();
        let keys = d.path().join("trusted");
        let (sk, _pk) = super::super::signing::keygen(&keys.join("me")).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(keys.join("broken.pub"), b"not a key").unwrap();
        std::fs::set_permissions(keys.join("broken.pub"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let policy = TrustPolicy::load(std::slice::from_ref(&keys), false).unwrap();
        assert_eq!(policy.keys.len(), 1, "the bad .pub is skipped, the good one kept");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = TrustPolicy::load(std::slice::from_ref(&keys), false).err().unwrap().to_string();
        assert!(err.contains("others can write it"), "{err}");
        assert!(super::super::signing::read_secret_key(&sk).is_ok());
        std::fs::set_permissions(&sk, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = super::super::signing::read_secret_key(&sk).err().unwrap().to_string();
        assert!(err.contains("others can read it"), "{err}");
    }
}
