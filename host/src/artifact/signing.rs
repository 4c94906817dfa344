//! Keys and signatures (the WebAssembly signatures proposal, through `wasmsign2`, which
//! handles components): Ed25519 key pairs in PEM files, signatures embedded as the
//! component's first custom section `signature` (several signers merge into it) or
//! written to a detached file. A signature covers every byte after its own section.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use wasmsign2::{KeyPair, Module, PublicKey, SecretKey, SignatureData};

use super::sections::{is_component, sections};
use crate::fs::write_atomic;

pub const SIGNATURE_SECTION: &str = "signature";

/// A key's short id: the first 12 bytes of HMAC-SHA256("key_id", public key), in hex
/// (the id wasmsign2 records in signatures).
pub fn key_id(pk: &PublicKey) -> String {
    let pk = pk.clone().attach_default_key_id();
    pk.key_id().map(|k| hex(k)).unwrap_or_default()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `<out>.key` (secret, mode 0600) and `<out>.pub`; refuses to overwrite.
pub fn keygen(out: &Path) -> Result<(PathBuf, PathBuf)> {
    let sk_path = out.with_extension("key");
    let pk_path = out.with_extension("pub");
    for p in [&sk_path, &pk_path] {
        if p.exists() {
            bail!("{} exists; not overwriting a key", p.display());
        }
    }
    if let Some(dir) = sk_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let kp = KeyPair::generate();
    write_atomic(&pk_path, kp.pk.to_pem().as_bytes())?;
    // Private from the start: never readable by others, not even for a moment.
    crate::fs::write_private(&sk_path, kp.sk.to_pem().as_bytes(), "write")?;
    Ok((sk_path, pk_path))
}

pub fn read_secret_key(path: &Path) -> Result<SecretKey> {
    use std::os::unix::fs::PermissionsExt as _;
    // As ssh does: a secret key others can read is refused (it may already be someone's).
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!("secret key {} has mode {mode:04o}: others can read it; `chmod 600 {}` (and make a new key if it may have been copied)", path.display(), path.display());
        }
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading key {}", path.display()))?;
    SecretKey::from_any(&bytes).map_err(|e| anyhow!("{}: not an Ed25519 secret key ({e})", path.display()))
}

pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading key {}", path.display()))?;
    PublicKey::from_any(&bytes)
        .map(PublicKey::attach_default_key_id)
        .map_err(|e| anyhow!("{}: not an Ed25519 public key ({e})", path.display()))
}

pub fn public_of(sk: &SecretKey) -> PublicKey {
    PublicKey { pk: sk.sk.public_key(), key_id: None }.attach_default_key_id()
}

/// Signs a component: the signed bytes (embedded) or the detached signature.
pub fn sign(bytes: &[u8], sk: &SecretKey, detached: bool) -> Result<Vec<u8>> {
    if !is_component(bytes) {
        bail!("not a WebAssembly component (lthost plugins are components)");
    }
    sections(bytes)?;
    let module = Module::deserialize(&mut Cursor::new(bytes)).map_err(|e| anyhow!("reading the component: {e}"))?;
    let pk = public_of(sk);
    let (signed, sig) = sk.sign_multi(module, pk.key_id(), detached, false).map_err(|e| anyhow!("signing: {e}"))?;
    if detached {
        return Ok(sig);
    }
    let mut out = Vec::with_capacity(bytes.len() + 256);
    signed.serialize(&mut out).map_err(|e| anyhow!("writing the signed component: {e}"))?;
    Ok(out)
}

/// Signs `input` into `output` (or a detached signature file).
pub fn sign_file(input: &Path, key: &Path, output: &Path, detached: bool) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let sk = read_secret_key(key)?;
    let out = sign(&bytes, &sk, detached).map_err(|e| anyhow!("{}: {e}", input.display()))?;
    write_atomic(output, &out)
}

/// The signature data of a component (embedded, or from a detached file), if signed.
pub fn signature_data(bytes: &[u8], detached: Option<&[u8]>) -> Result<Option<SignatureData>> {
    let payload = match detached {
        Some(d) => d.to_vec(),
        None => match sections(bytes)?.first().and_then(|s| s.custom()) {
            Some((SIGNATURE_SECTION, data)) => data.to_vec(),
            _ => return Ok(None),
        },
    };
    SignatureData::deserialize(&payload).map(Some).map_err(|e| anyhow!("the signature section is malformed: {e}"))
}

/// Key ids of every signature (hex; "anonymous" where a signature names none).
pub fn signer_ids(data: &SignatureData) -> Vec<String> {
    data.signed_hashes_set
        .iter()
        .flat_map(|s| {
            s.signatures.iter().map(|sig| sig.key_id.as_deref().map(hex).unwrap_or_else(|| "anonymous".into()))
        })
        .collect()
}
