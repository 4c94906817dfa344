//! A Lightning file's `if __name__ == "__main__":` block as the plugin's defaults. `lthost
//! build` reads the block (`sdk/python/lightning/_main_block.py`: `seed_everything`, the
//! `Trainer(...)` arguments, the module's and data module's constructor arguments,
//! LightningCLI's defaults), checks each item here, and keeps the ones lthost runs in the
//! manifest (`defaults`, LightningCLI's layout). A run starts from them; its config, `--set`
//! and flags go over them.
//!
//! Defaults come with a plugin someone else may have written, so they choose how to train,
//! never where to write or whom to talk to: paths (`default_root_dir`, a logger's
//! `save_dir`, ModelCheckpoint's `dirpath`, names with a path in them) and MLflow (a
//! tracking server) are dropped, with a note, at build and again at every run.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::lightning_cli::Layout;

/// The keys of LightningCLI's layout a plugin's defaults may hold.
const KEYS: &[&str] = &["seed_everything", "trainer", "model", "data"];

/// What `_main_block.py` found: items with their lines, and notes.
#[derive(serde::Deserialize)]
struct Found {
    items: Vec<Item>,
    notes: Vec<Note>,
    file: String,
}

#[derive(serde::Deserialize)]
struct Item {
    key: String,
    value: Value,
    line: u64,
}

#[derive(serde::Deserialize)]
struct Note {
    line: u64,
    text: String,
}

/// The defaults to keep (None: the block gives none lthost runs) and the notes to print, from
/// `_main_block.py`'s JSON (`found`; None when it wrote none). Each item is checked as the run
/// will read it, with the items kept before it; one that fails is a note, never the build's
/// failure.
pub fn checked(found: Option<&str>) -> (Option<Value>, Vec<String>) {
    let found: Found = match found.map(serde_json::from_str) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            return (None, vec![format!("the __main__ block is not read (its reading is not valid JSON: {e})")])
        }
        None => return (None, vec!["the __main__ block is not read (its reading was not written)".into()]),
    };
    let mut notes: Vec<String> = found.notes.iter().map(|n| format!("{}:{}: {}", found.file, n.line, n.text)).collect();
    let mut doc = Map::new();
    for item in found.items {
        let at = format!("{}:{}", found.file, item.line);
        let mut one = Map::new();
        put(&mut one, &item.key, item.value.clone());
        let why = safe(&mut one);
        notes.extend(why.into_iter().map(|w| format!("{at}: {w}")));
        let mut with = doc.clone();
        merge_item(&mut with, one);
        match runs(with.clone(), &at) {
            Err(e) => notes.push(format!("{e:#}; not used (the run's settings decide it)")),
            Ok(()) => doc = with,
        }
    }
    if doc.is_empty() {
        return (None, notes);
    }
    (Some(Value::Object(doc)), notes)
}

/// Whether `doc` is settings a run reads: converted as the run converts it, then read into
/// the run's settings.
fn runs(doc: Map<String, Value>, at: &str) -> Result<()> {
    let (table, _) = crate::lightning_cli::doc_to_run_table(doc, at, Layout::Code)?;
    crate::config::RunConfig::load_over(Some(table), None, &[]).map_err(|e| anyhow::anyhow!("{at}: {e:#}"))?;
    Ok(())
}

/// `key` (`trainer.max_epochs`, `trainer.callbacks`, `model.lr`, `seed_everything`) set to
/// `value` in LightningCLI's layout; callbacks and loggers are one item each.
fn put(doc: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            doc.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = doc.entry(head.to_string()).or_insert_with(|| json!({}));
            if let Value::Object(m) = inner {
                if matches!(key, "trainer.callbacks" | "trainer.logger") && value.is_object() {
                    m.insert(rest.to_string(), json!([value]));
                } else {
                    m.insert(rest.to_string(), value);
                }
            }
        }
    }
}

/// `one`'s settings into `doc`: callbacks and loggers appended, the rest replaced.
fn merge_item(doc: &mut Map<String, Value>, one: Map<String, Value>) {
    for (k, v) in one {
        match (doc.get_mut(&k), v) {
            (Some(Value::Object(have)), Value::Object(more)) => {
                for (k2, v2) in more {
                    match (have.get_mut(&k2), v2) {
                        (Some(Value::Array(a)), Value::Array(b)) => a.extend(b),
                        (_, v2) => {
                            have.insert(k2, v2);
                        }
                    }
                }
            }
            (_, v) => {
                doc.insert(k, v);
            }
        }
    }
}

/// A path a plugin's defaults may name: one plain directory name (no separator, not `.`,
/// `..` or `~...`).
fn plain_name(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty() && !s.contains(['/', '\\']) && s != "." && s != ".." && !s.starts_with('~'),
        _ => true,
    }
}

/// Drops what a plugin's defaults may not choose (paths, servers, keys outside
/// LightningCLI's `seed_everything`/`trainer`/`model`/`data`); what was dropped, said.
pub fn safe(doc: &mut Map<String, Value>) -> Vec<String> {
    let mut why = Vec::new();
    doc.retain(|k, _| {
        let keep = KEYS.contains(&k.as_str());
        if !keep {
            why.push(format!("`{k}` is not taken from a plugin (only seed_everything, trainer, model and data)"));
        }
        keep
    });
    let Some(Value::Object(t)) = doc.get_mut("trainer") else { return why };
    if t.remove("default_root_dir").is_some() {
        why.push("Trainer's default_root_dir is not taken from a plugin: the run's directory is the user's (--default-root-dir)".into());
    }
    // How many processes run is the user's to say (a plugin's defaults could start many).
    let one_process = |k: &str, v: &Value| match k {
        "devices" => v == &json!(1) || v == &json!("1") || v == &json!("auto"),
        "num_nodes" => v == &json!(1),
        "strategy" => matches!(v.as_str(), Some("auto" | "single_device")),
        _ => true,
    };
    for k in ["devices", "num_nodes", "strategy"] {
        if t.get(k).is_some_and(|v| !v.is_null() && !one_process(k, v)) {
            t.remove(k);
            why.push(format!(
                "Trainer's {k} is not taken from a plugin beyond one process (give --devices, --num-nodes or --strategy)"
            ));
        }
    }
    // One logger or callback may stand alone (LightningCLI's layout): as a list of one here;
    // `dict_kwargs` are arguments as `init_args` are.
    for key in ["logger", "callbacks"] {
        if let Some(v) = t.get_mut(key).filter(|v| v.is_object() || v.is_string()) {
            *v = json!([v.take()]);
        }
        for c in t.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(Value::Object(extra)) = c.as_object_mut().and_then(|m| m.remove("dict_kwargs")) {
                let args = c.as_object_mut().map(|m| m.entry("init_args").or_insert_with(|| json!({})));
                match args {
                    Some(Value::Object(a)) => a.extend(extra),
                    Some(other) => *other = Value::Object(extra),
                    None => {}
                }
            }
        }
    }
    if let Some(logger) = t.get_mut("logger") {
        if let Value::Array(list) = logger {
            list.retain_mut(|l| {
                let name = class_name(l);
                if name == "MLFlowLogger" {
                    why.push("MLFlowLogger is not taken from a plugin (a plugin's defaults never choose a server to send the run to); give it in the run's config".into());
                    return false;
                }
                for arg in ["save_dir", "name", "version", "sub_dir"] {
                    let drop = init_args(l).and_then(|a| a.get(arg)).is_some_and(|v| arg == "save_dir" || !plain_name(v));
                    if drop {
                        if let Some(a) = init_args(l) {
                            a.remove(arg);
                        }
                        why.push(format!("{name}'s {arg} is not taken from a plugin (a path: the run's directory decides)"));
                    }
                }
                true
            });
        }
    }
    if t.get("logger").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        t.remove("logger"); // what was dropped leaves the run's own loggers, not none
    }
    if let Some(Value::Array(list)) = t.get_mut("callbacks") {
        for c in list.iter_mut() {
            let name = class_name(c);
            if !matches!(name.as_str(), "ModelCheckpoint" | "OnExceptionCheckpoint") {
                continue;
            }
            for arg in ["dirpath", "filename"] {
                let drop = init_args(c).and_then(|a| a.get(arg)).is_some_and(|v| arg == "dirpath" || !plain_name(v));
                if drop {
                    if let Some(a) = init_args(c) {
                        a.remove(arg);
                    }
                    why.push(format!(
                        "{name}'s {arg} is not taken from a plugin (a path: checkpoints go in the run's directory)"
                    ));
                }
            }
        }
    }
    why
}

fn class_name(v: &Value) -> String {
    let path = v.get("class_path").and_then(Value::as_str).or(v.as_str()).unwrap_or("");
    path.rsplit('.').next().unwrap_or("").to_string()
}

fn init_args(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.get_mut("init_args").and_then(Value::as_object_mut)
}

/// The run table of a plugin's defaults (checked again: a manifest can be written by hand),
/// and the defaults it holds.
pub fn run_table(defaults: &Value, plugin: &str) -> Result<(toml::Table, Value)> {
    let shown = format!("plugin `{plugin}`'s defaults (its manifest)");
    let Value::Object(doc) = defaults else { bail!("{shown}: expected LightningCLI's layout (a mapping)") };
    let mut doc = doc.clone();
    for why in safe(&mut doc) {
        eprintln!("note: {shown}: {why}");
    }
    let (table, _) = crate::lightning_cli::doc_to_run_table(doc.clone(), &shown, Layout::Code)?;
    Ok((table, Value::Object(doc)))
}

/// The defaults kept in the manifest of the plugin at `path`, if it has any and `admitted`
/// (the run's trust policy, given the bytes and a detached signature) lets it run. A plugin
/// that cannot be read, or is refused, has none here: loading it says why, as before.
pub fn defaults_of(path: &std::path::Path, admitted: impl Fn(&[u8], Option<&[u8]>) -> bool) -> Option<Value> {
    // The manifest alone first: a plugin without defaults costs no read of its whole file.
    let defaults = crate::artifact::manifest::read_file(path).ok()??.defaults?;
    let bytes = std::fs::read(path).ok()?;
    admitted(&bytes, crate::artifact::trust::detached_for(path).as_deref()).then_some(defaults)
}

/// One line naming the defaults, for the run's output.
pub fn describe(defaults: &Value) -> String {
    let mut parts = Vec::new();
    let Value::Object(doc) = defaults else { return String::new() };
    for (k, v) in doc {
        match v {
            Value::Object(m) => {
                for (k2, v2) in m {
                    parts.push(format!("{}.{}={}", k.escape_debug(), k2.escape_debug(), short(v2)));
                }
            }
            v => parts.push(format!("{}={}", k.escape_debug(), short(v))),
        }
    }
    parts.join(", ")
}

/// A value as the run's output shows it (JSON escapes what a terminal would act on).
fn short(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(short).collect::<Vec<_>>().join(", ")),
        Value::Object(m) if m.contains_key("class_path") => class_name(v).escape_debug().to_string(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(items: Value) -> String {
        json!({"items": items, "notes": [{"line": 9, "text": "a note"}], "file": "model.py"}).to_string()
    }

    #[test]
    fn each_item_is_checked_and_the_rest_kept() {
        let (doc, notes) = checked(Some(&found(json!([
            {"key": "seed_everything", "value": 7, "line": 3},
            {"key": "trainer.max_epochs", "value": 3, "line": 4},
            {"key": "trainer.profiler", "value": "simple", "line": 4},
            {"key": "trainer.max_epoch", "value": 3, "line": 4},
            {"key": "trainer.callbacks", "value": {"class_path": "ModelCheckpoint", "init_args": {"dirpath": "/etc", "monitor": "val_loss"}}, "line": 5},
            {"key": "trainer.callbacks", "value": {"class_path": "EarlyStopping", "init_args": {"monitor": "val_loss"}}, "line": 5},
            {"key": "trainer.callbacks", "value": {"class_path": "MyCallback", "init_args": {}}, "line": 5},
            {"key": "trainer.logger", "value": {"class_path": "CSVLogger", "init_args": {"save_dir": "logs", "name": "../x"}}, "line": 6},
            {"key": "trainer.default_root_dir", "value": "/tmp", "line": 6},
            {"key": "model.lr", "value": 0.05, "line": 7},
            {"key": "trainer.callbacks", "value": {"class_path": "ModelCheckpoint", "init_args": {"monitor": "x"}}, "line": 8},
            {"key": "trainer.devices", "value": 4, "line": 8},
            {"key": "trainer.max_epochs", "value": 1e30, "line": 9},
        ]))));
        let doc = doc.unwrap();
        assert_eq!(doc["seed_everything"], json!(7));
        assert_eq!(doc["trainer"]["max_epochs"], json!(3));
        assert!(doc["trainer"].get("profiler").is_none() && doc["trainer"].get("max_epoch").is_none());
        assert!(doc["trainer"].get("default_root_dir").is_none());
        let cbs = doc["trainer"]["callbacks"].as_array().unwrap();
        assert_eq!(cbs.len(), 2);
        assert_eq!(cbs[0]["init_args"], json!({"monitor": "val_loss"}));
        assert_eq!(doc["trainer"]["logger"][0]["init_args"], json!({}));
        assert_eq!(doc["model"]["lr"], json!(0.05));
        let all = notes.join("\n");
        for want in [
            "model.py:9: a note",
            "model.py:4: trainer.profiler",
            "max_epoch",
            "MyCallback",
            "dirpath",
            "save_dir",
            "CSVLogger's name",
            "default_root_dir",
        ] {
            assert!(all.contains(want), "{want} in {all}");
        }
        let (t, _) = run_table(&doc, "m").unwrap();
        assert_eq!(t["trainer"]["seed"].as_integer(), Some(7));
        assert_eq!(t["trainer"]["max_epochs"].as_integer(), Some(3));
        assert_eq!(t["hparams"]["lr"].as_float(), Some(0.05));
        assert_eq!(t["checkpoint"]["monitor"].as_str(), Some("val_loss"));
    }

    #[test]
    fn no_seed_is_no_seeding_and_a_hand_written_manifest_is_checked_again() {
        let (doc, _) = checked(Some(&found(json!([{"key": "trainer.max_epochs", "value": 2, "line": 1}]))));
        let (t, _) = run_table(&doc.unwrap(), "m").unwrap();
        assert!(t["trainer"].get("seed").is_none());
        let crafted = json!({"trainer": {"default_root_dir": "/", "logger": {"class_path": "MLFlowLogger", "init_args": {"tracking_uri": "http://x"}}},
                             "lthost": {"plugin": {"data_dir": "/"}}});
        let (t, kept) = run_table(&crafted, "m").unwrap();
        assert!(t.get("plugin").is_none() && t.get("loggers").is_none());
        assert!(t["trainer"].get("default_root_dir").is_none());
        assert!(!describe(&kept).contains("MLFlow") && !describe(&kept).contains("lthost"));
        // Arguments under `dict_kwargs` are checked as `init_args` are.
        let crafted = json!({"trainer": {"logger": {"class_path": "CSVLogger", "dict_kwargs": {"save_dir": "/etc"}},
                                         "callbacks": {"class_path": "ModelCheckpoint", "dict_kwargs": {"dirpath": "~/x"}},
                                         "strategy": "ddp", "devices": 8}});
        let (t, _) = run_table(&crafted, "m").unwrap();
        assert!(t["loggers"]["csv"].get("save_dir").is_none());
        assert!(t.get("checkpoint").is_none_or(|c| c.get("dirpath").is_none()));
        assert!(t["trainer"].get("strategy").is_none() && t["trainer"].get("devices").is_none());
        assert!(checked(Some(&found(json!([])))).0.is_none());
        assert!(checked(None).1[0].contains("not read"));
    }
}
