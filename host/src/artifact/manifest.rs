//! The plugin manifest: a JSON custom section `lthost-manifest` at the top level of the
//! component — name, version, authors, description, the WIT package it was built
//! against, and the capabilities it requests. `lthost manifest` embeds one (from a TOML
//! file); it must be embedded before signing, since signatures cover it.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::sections::{custom_section, sections};

pub const SECTION: &str = "lthost-manifest";
/// The WIT package this host speaks.
pub const WIT: &str = "lt:plugin@0.3.0";

/// What a plugin may ask for; the run grants the intersection with what the user grants.
pub const CAPABILITIES: &[(&str, &str)] = &[
    ("data-read", "read the run's data directory (`/data`, `tensor.load`)"),
    ("logs-write", "write in its own log directory (`/logs`; logger plugins)"),
    ("output-write", "write in its own output directory (`/output` = `<default_root_dir>/plugin_output/<plugin>/`)"),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// The WIT package the plugin was built against.
    #[serde(default = "default_wit")]
    pub wit: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Settings a run starts from, in LightningCLI's layout (`seed_everything`, `trainer`,
    /// `model`, `data`): what a Lightning file's `__main__` block gives Lightning, kept by
    /// `lthost build` (`main_block.rs`, which says what a plugin may not choose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<serde_json::Value>,
}

fn default_wit() -> String {
    WIT.to_string()
}

impl Manifest {
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading manifest {}", path.display()))?;
        let m: Manifest = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("manifest {}: {}", path.display(), e.to_string().trim()))?;
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.version.is_empty() {
            bail!("a manifest needs a name and a version");
        }
        if let Some(bad) = self.capabilities.iter().find(|c| !CAPABILITIES.iter().any(|(n, _)| n == c)) {
            let known: Vec<&str> = CAPABILITIES.iter().map(|(n, _)| *n).collect();
            bail!("unknown capability {bad:?}; known: {}", known.join(", "));
        }
        Ok(())
    }

    pub fn requests(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// The manifest embedded in `bytes`, if any.
pub fn read(bytes: &[u8]) -> Result<Option<Manifest>> {
    for s in sections(bytes)? {
        if let Some((SECTION, data)) = s.custom() {
            let m: Manifest = serde_json::from_slice(data)
                .map_err(|e| anyhow::anyhow!("the `{SECTION}` section is not a valid manifest: {e}"))?;
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// The manifest embedded in the component at `path`, if any, read without reading the rest of
/// the file.
pub fn read_file(path: &Path) -> Result<Option<Manifest>> {
    let Some(data) = super::sections::custom_section_in_file(path, SECTION, 1 << 20)? else { return Ok(None) };
    let m = serde_json::from_slice(&data)
        .map_err(|e| anyhow::anyhow!("the `{SECTION}` section is not a valid manifest: {e}"))?;
    Ok(Some(m))
}

/// `bytes` with `m` as its manifest (an earlier one replaced). Refuses signed components:
/// changing them would void the signatures; add the manifest first, then sign.
pub fn embed(bytes: &[u8], m: &Manifest) -> Result<Vec<u8>> {
    m.validate()?;
    let all = sections(bytes)?;
    if all.iter().any(|s| matches!(s.custom(), Some((super::signing::SIGNATURE_SECTION, _)))) {
        bail!("the component is signed: embed the manifest before signing (a change would void the signatures)");
    }
    let mut out = bytes[..super::sections::PREAMBLE].to_vec();
    for s in all.iter().filter(|s| !matches!(s.custom(), Some((SECTION, _)))) {
        out.extend_from_slice(s.bytes);
    }
    out.extend(custom_section(SECTION, &serde_json::to_vec(m)?));
    Ok(out)
}
