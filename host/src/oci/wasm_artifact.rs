//! The Wasm OCI artifact (CNCF wasm working group): an OCI image manifest whose config is
//! `application/vnd.wasm.config.v0+json` (created, author, `architecture: wasm`,
//! `os: wasip2`, the layer digests, the component's imports and exports) and whose one
//! layer is the component itself, `application/wasm`.
//!
//! lthost adds annotations only: the manifest's name, version and description as the OCI
//! `org.opencontainers.image.*` keys, and a detached signature (base64) under
//! [`SIGNATURE_ANNOTATION`], so a pull can verify a plugin signed either way.

use anyhow::{anyhow, bail, Result};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::reference::check_digest;
use super::registry::OCI_MANIFEST;

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// A detached signature of the layer (lthost's `.sig` file, base64).
pub const SIGNATURE_ANNOTATION: &str = "dev.lthost.signature";

pub struct Artifact {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer_digest: String,
    pub manifest: Vec<u8>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::artifact::sha256_hex(bytes))
}

/// The config and manifest for a component (and its detached signature).
pub fn build(component: &[u8], signature: Option<&[u8]>) -> Result<Artifact> {
    let (imports, exports) = crate::artifact::inspect::imports_exports(component)?;
    let meta = crate::artifact::manifest::read(component)?;
    let created = rfc3339(created_secs());
    let layer_digest = digest(component);
    let mut config = json!({
        "created": created,
        "author": null,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": { "exports": exports, "imports": imports, "target": null },
    });
    if let Some(m) = &meta {
        if !m.authors.is_empty() {
            config["author"] = json!(m.authors.join(", "));
        }
    }
    let config = serde_json::to_vec(&config)?;
    let config_digest = digest(&config);
    let mut annotations = Map::new();
    annotations.insert("org.opencontainers.image.created".into(), json!(created));
    if let Some(m) = &meta {
        annotations.insert("org.opencontainers.image.title".into(), json!(m.name));
        annotations.insert("org.opencontainers.image.version".into(), json!(m.version));
        if !m.description.is_empty() {
            annotations.insert("org.opencontainers.image.description".into(), json!(m.description));
        }
        if !m.authors.is_empty() {
            annotations.insert("org.opencontainers.image.authors".into(), json!(m.authors.join(", ")));
        }
    }
    if let Some(sig) = signature {
        annotations.insert(SIGNATURE_ANNOTATION.into(), json!(base64::engine::general_purpose::STANDARD.encode(sig)));
    }
    let title = match &meta {
        Some(m) => format!("{}.wasm", m.name),
        None => "plugin.wasm".to_string(),
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{
            "mediaType": LAYER_MEDIA_TYPE,
            "digest": layer_digest,
            "size": component.len(),
            "annotations": { "org.opencontainers.image.title": title },
        }],
        "annotations": annotations,
    });
    Ok(Artifact { config, config_digest, layer_digest, manifest: serde_json::to_vec(&manifest)? })
}

/// What a pull needs of a manifest.
#[derive(Debug, PartialEq)]
pub struct WasmManifest {
    pub layer_digest: String,
    pub layer_size: u64,
    pub signature: Option<Vec<u8>>,
}

/// Reads a manifest, refusing anything but a Wasm artifact with one component layer.
pub fn parse_manifest(bytes: &[u8]) -> Result<WasmManifest> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| anyhow!("the manifest is not JSON: {e}"))?;
    if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        bail!("the manifest is not an OCI image manifest (schemaVersion 2)");
    }
    let config_type = v.pointer("/config/mediaType").and_then(Value::as_str).unwrap_or("");
    if config_type != CONFIG_MEDIA_TYPE {
        bail!("not a Wasm component artifact: its config is {config_type:?}, not {CONFIG_MEDIA_TYPE:?} (a container image?)");
    }
    let layers = v.get("layers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let wasm: Vec<&Value> =
        layers.iter().filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(LAYER_MEDIA_TYPE)).collect();
    let [layer] = wasm.as_slice() else {
        bail!("a Wasm artifact has one `{LAYER_MEDIA_TYPE}` layer; this one has {}", wasm.len());
    };
    let layer_digest = layer.get("digest").and_then(Value::as_str).unwrap_or("").to_string();
    check_digest(&layer_digest).map_err(|e| anyhow!("the layer: {e}"))?;
    let layer_size = layer.get("size").and_then(Value::as_u64).ok_or_else(|| anyhow!("the layer has no size"))?;
    let signature = match v.pointer(&format!("/annotations/{SIGNATURE_ANNOTATION}")).and_then(Value::as_str) {
        Some(s) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| anyhow!("the annotation {SIGNATURE_ANNOTATION} is not base64"))?,
        ),
        None => None,
    };
    Ok(WasmManifest { layer_digest, layer_size, signature })
}

/// When the artifact was made: `SOURCE_DATE_EPOCH` when set (reproducible pushes: the same
/// component gives the same config and manifest digests), else now.
fn created_secs() -> i64 {
    if let Some(s) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<i64>().ok()) {
        return s;
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64
}

/// Seconds since the epoch as RFC 3339 UTC (`2026-12-03T17:04:09Z`).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_that_are_not_one_wasm_layer_are_refused() {
        let d = format!("sha256:{}", "b".repeat(64));
        let ok = json!({"schemaVersion": 2, "config": {"mediaType": CONFIG_MEDIA_TYPE},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": d, "size": 3}],
            "annotations": {SIGNATURE_ANNOTATION: "AAE="}});
        let m = parse_manifest(&serde_json::to_vec(&ok).unwrap()).unwrap();
        assert_eq!((m.layer_size, m.signature), (3, Some(vec![0, 1])));
        let mut image = ok.clone();
        image["config"]["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        assert!(parse_manifest(&serde_json::to_vec(&image).unwrap())
            .unwrap_err()
            .to_string()
            .contains("container image"));
        let mut two = ok.clone();
        two["layers"] = json!([ok["layers"][0], ok["layers"][0]]);
        assert!(parse_manifest(&serde_json::to_vec(&two).unwrap()).is_err());
        let mut bad = ok;
        bad["layers"][0]["digest"] = json!("sha256:../../etc");
        assert!(parse_manifest(&serde_json::to_vec(&bad).unwrap()).is_err());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_781_449), "2025-12-03T17:04:09Z");
    }
}
