//! `lthost inspect plugin.wasm`: what a plugin is before running it — its manifest, the
//! worlds it exports and the interfaces it imports (read with wasmparser, nothing is
//! compiled), its signatures and which trusted keys they match.

use std::fmt::Write as _;

use anyhow::{anyhow, Result};
use wasmparser::{Parser, Payload};

use super::manifest;
use super::signing::{signature_data, signer_ids};
use super::trust::{TrustPolicy, Verdict};

/// Top-level imports and exports of a component.
pub fn imports_exports(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>)> {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| anyhow!("not a valid component: {e}"))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(r) if depth == 0 => {
                for i in r {
                    imports.push(i.map_err(|e| anyhow!("reading imports: {e}"))?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(r) if depth == 0 => {
                for e in r {
                    exports.push(e.map_err(|e| anyhow!("reading exports: {e}"))?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// The report `lthost inspect` prints.
pub fn report(name: &str, bytes: &[u8], detached: Option<&[u8]>, trust: &TrustPolicy) -> Result<String> {
    let mut out = String::new();
    let _ = writeln!(out, "plugin        {name} ({} bytes, sha256 {})", bytes.len(), super::sha256_hex(bytes));
    match manifest::read(bytes) {
        Ok(Some(m)) => {
            let _ = writeln!(out, "manifest");
            let _ = writeln!(out, "  name        {}", m.name);
            let _ = writeln!(out, "  version     {}", m.version);
            let _ =
                writeln!(out, "  authors     {}", if m.authors.is_empty() { "-".into() } else { m.authors.join(", ") });
            let _ = writeln!(out, "  description {}", if m.description.is_empty() { "-" } else { &m.description });
            let _ = writeln!(
                out,
                "  wit         {}{}",
                m.wit,
                if m.wit == manifest::WIT { "" } else { "  (this host speaks lt:plugin@0.3.0)" }
            );
            let caps = if m.capabilities.is_empty() { "none".to_string() } else { m.capabilities.join(", ") };
            let _ = writeln!(out, "  requests    {caps}");
            if let Some(d) = &m.defaults {
                let _ = writeln!(out, "  defaults    {}", crate::main_block::describe(d));
            }
        }
        Ok(None) => {
            let _ = writeln!(out, "manifest      none (`lthost manifest` embeds one)");
        }
        Err(e) => {
            let _ = writeln!(out, "manifest      unreadable: {e}");
        }
    }
    let (imports, exports) = imports_exports(bytes)?;
    let lt = |v: &Vec<String>| v.iter().filter(|n| n.starts_with("lt:plugin/")).cloned().collect::<Vec<_>>();
    let worlds: Vec<&str> = lt(&exports)
        .iter()
        .map(|e| match e.split('/').nth(1).and_then(|s| s.split('@').next()) {
            Some("lightning-module") => "LightningModule",
            Some("data-module") => "DataModule",
            Some("logger") => "Logger",
            Some("callback") => "Callback",
            _ => "other",
        })
        .collect();
    let _ = writeln!(
        out,
        "is a          {}",
        if worlds.is_empty() { "nothing lthost runs".into() } else { worlds.join(" + ") }
    );
    let _ = writeln!(out, "exports       {}", exports.join(", "));
    let _ = writeln!(out, "imports       {}", lt(&imports).join(", "));
    let wasi: Vec<String> = imports.iter().filter(|n| n.starts_with("wasi:")).cloned().collect();
    let _ = writeln!(out, "              + {} WASI interfaces ({})", wasi.len(), wasi.join(", "));
    match signature_data(bytes, detached) {
        Ok(Some(d)) => {
            let ids = signer_ids(&d);
            let _ = writeln!(
                out,
                "signatures    {} ({}): {}",
                ids.len(),
                if detached.is_some() { "detached" } else { "embedded" },
                ids.join(", ")
            );
        }
        Ok(None) => {
            let _ = writeln!(out, "signatures    none");
        }
        Err(e) => {
            let _ = writeln!(out, "signatures    malformed: {e}");
        }
    }
    let strict = TrustPolicy { keys: trust.keys.clone(), allow_unsigned: false };
    let verdict = match strict.check(name, bytes, detached) {
        Ok(Verdict::Trusted(keys)) => format!("trusted: signed by {}", keys.join(", ")),
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("refused: {e:#}"),
    };
    let _ = writeln!(out, "trust         {verdict} ({} trusted keys loaded)", trust.keys.len());
    Ok(out)
}
