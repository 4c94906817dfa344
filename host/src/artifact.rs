//! Shared plugins as artifacts: a manifest inside the component (who made it, what it
//! asks for), signatures following the WebAssembly signatures proposal (wasmsign2), the
//! trust policy that decides whether a plugin may run, and `lthost inspect`.

pub mod inspect;
pub mod manifest;
pub mod sections;
pub mod signing;
pub mod trust;

/// SHA-256 of `bytes` in hex (a plugin's identity in checkpoints, the cache and `inspect`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}
