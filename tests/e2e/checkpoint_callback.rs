//! ModelCheckpoint against Lightning itself: tests/reference/checkpoint_reference.py runs
//! Lightning's ModelCheckpoint on its hook-recording model with each configuration; here
//! lthost's hook-recorder plugin trains with the same `[checkpoint]` and Trainer arguments,
//! and the files left in the directory, the best and last paths, the best score and
//! `best_k_models` (each kept file's score) must be Lightning's. Covers the triggers (every_n_epochs 0 = never, every_n_train_steps alone,
//! a step save waiting for a validation-only monitor), a monitor missing before any
//! validation, NaN scores, Python format specs and auto_insert_metric_name in templates,
//! `last.ckpt` only when a save happens (and at the end when none did), `-v1` versions on a
//! rerun, resuming without removing the file resumed from, `save_last="link"` (last.ckpt a
//! relative symlink to the newest checkpoint, compared link by link), and the refused
//! combinations.

use std::path::Path;

use lthost::callbacks::model_checkpoint::CheckpointConfig;
use lthost::config::TrainerConfig;
use lthost::module::DataModule;
use lthost::plugin::{self, runtime::Runtime, PluginOptions};
use lthost::trainer::{FitReport, Trainer};
use serde_json::{json, Value};

use crate::common::{plugin as plugin_path, repo_root};

fn reference() -> Value {
    let path = repo_root().join("tests/reference/checkpoint.json");
    let text = std::fs::read_to_string(&path).expect("run `make reference` (checkpoint.json)");
    serde_json::from_str(&text).expect("json")
}

/// Fits hook-recorder into `dir` with Lightning's Trainer and ModelCheckpoint arguments.
fn fit(dir: &Path, checkpoint: &Value, trainer: &Value, model: &Value, ckpt_path: Option<&Path>) -> FitReport {
    fit_logging(dir, checkpoint, trainer, model, ckpt_path, None)
}

type Told = std::rc::Rc<std::cell::RefCell<Vec<lthost::loggers::CheckpointSaved>>>;

/// A host callback that does nothing: a run with one attached must decide as a run without.
struct Idle;

impl lthost::callbacks::Callback for Idle {
    fn name(&self) -> &str {
        "Idle"
    }
    fn on_hook(
        &mut self,
        _: lthost::hooks::Hook,
        _: &lthost::callbacks::HookInfo<'_>,
    ) -> anyhow::Result<lthost::callbacks::CallbackAction> {
        Ok(lthost::callbacks::CallbackAction::default())
    }
}

thread_local! {
    /// Attach [`Idle`] to the fits this thread makes.
    static WITH_IDLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A logger keeping what ModelCheckpoint tells its loggers after each save.
struct Recording {
    dir: std::path::PathBuf,
    told: Told,
}

impl lthost::loggers::Logger for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn version(&self) -> lthost::loggers::Version {
        lthost::loggers::Version::Number(0)
    }
    fn log_dir(&self) -> &Path {
        &self.dir
    }
    fn log_hyperparams(&mut self, _: &Value) -> anyhow::Result<()> {
        Ok(())
    }
    fn log_metrics(&mut self, _: &std::collections::BTreeMap<String, f64>, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
    fn save(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn after_save_checkpoint(&mut self, saved: &lthost::loggers::CheckpointSaved) -> anyhow::Result<()> {
        self.told.borrow_mut().push(saved.clone());
        Ok(())
    }
}

/// [`fit`], with a [`Recording`] logger as the run's only logger when `told` is given.
fn fit_logging(
    dir: &Path,
    checkpoint: &Value,
    trainer: &Value,
    model: &Value,
    ckpt_path: Option<&Path>,
    told: Option<Told>,
) -> FitReport {
    // The run seeds and draws from this process's global generator: one at a time (two tests'
    // fits interleaving their draws gave another run's data, now and then).
    let _rng = crate::common::global_rng();
    let mut args = trainer.as_object().cloned().unwrap_or_default();
    for (k, v) in [
        ("logger", json!(false)),
        ("enable_progress_bar", json!(false)),
        ("enable_model_summary", json!(false)),
        ("seed", json!(0)),
        ("accelerator", json!("cpu")),
        ("threads", json!(1)),
        ("default_root_dir", json!(dir)),
    ] {
        args.insert(k.into(), v);
    }
    let cfg: TrainerConfig = serde_json::from_value(Value::Object(args)).expect("Lightning's arguments are lthost's");
    let mut ckpt: CheckpointConfig = serde_json::from_value(checkpoint.clone()).expect("ModelCheckpoint's arguments");
    // `"dirpath": null`: ModelCheckpoint's default directory (see [`listed`]).
    if !checkpoint.get("dirpath").is_some_and(Value::is_null) {
        ckpt.dirpath = Some(dir.to_path_buf());
    }
    let runtime = Runtime::new().expect("runtime");
    let trust = lthost::artifact::trust::TrustPolicy::load(&[crate::common::trusted_keys()], false).expect("trust");
    let opts = PluginOptions { trust: std::sync::Arc::new(trust), ..PluginOptions::default() };
    let wasm = plugin::load(&runtime, &plugin_path("hook-recorder"), &opts).expect("plugin");
    let mut module = wasm.clone();
    let mut data = wasm;
    let mut t = Trainer::new(cfg, None);
    if let Some(told) = told {
        t.cfg.logger = true;
        t.cfg.loggers = Vec::new();
        t.logger_plugins.push(Box::new(move |dir: &Path, _: &lthost::loggers::Version| {
            Ok(Box::new(Recording { dir: dir.to_path_buf(), told: told.clone() }) as Box<dyn lthost::loggers::Logger>)
        }));
    }
    if WITH_IDLE.with(std::cell::Cell::get) {
        t.callbacks.push(Box::new(Idle));
    }
    t.checkpoint = ckpt;
    t.ckpt_path = ckpt_path.map(|p| p.display().to_string());
    t.fit(&mut module, &mut data as &mut dyn DataModule, model).unwrap_or_else(|e| panic!("fit: {e:#}"))
}

/// Where a case's checkpoints are: `dir`, or with `"dirpath": null` ModelCheckpoint's default
/// `<default_root_dir>/checkpoints` (no logger).
fn listed(dir: &Path, checkpoint: &Value) -> std::path::PathBuf {
    match checkpoint.get("dirpath") {
        Some(Value::Null) => dir.join("checkpoints"),
        _ => dir.to_path_buf(),
    }
}

/// The symlinks in `dir` and what each names (`save_last="link"`).
fn links(dir: &Path) -> Value {
    let mut m = serde_json::Map::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        if e.file_type().expect("type").is_symlink() {
            let target = std::fs::read_link(e.path()).expect("link");
            m.insert(e.file_name().to_string_lossy().into_owned(), json!(target.to_string_lossy()));
        }
    }
    Value::Object(m)
}

fn files(dir: &Path) -> Vec<String> {
    let mut f: Vec<String> =
        std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    f.sort();
    f
}

/// The best and last paths a fit reports, by file name.
fn names(report: &FitReport) -> (Option<String>, Option<String>) {
    let name = |p: &Option<std::path::PathBuf>| {
        p.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned())
    };
    (name(&report.best_model_path), name(&report.last_model_path))
}

#[test]
fn model_checkpoint_keeps_the_files_lightning_keeps() {
    let want = reference();
    let mut checked = 0;
    for (name, case) in want["cases"].as_object().expect("cases") {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = run_case(d.path(), case).1;
        let want_files: Vec<String> =
            case["files"].as_array().expect("files").iter().map(|v| v.as_str().expect("str").to_string()).collect();
        assert_eq!(files(&dir), want_files, "{name}: files in the checkpoint directory");
        // A resume into another directory leaves the first run's as it was.
        if let Some(first) = case["first_files"].as_array() {
            let second = case["second_dir"].as_str();
            let left: Vec<String> = files(d.path()).into_iter().filter(|f| Some(f.as_str()) != second).collect();
            assert_eq!(json!(left), json!(first), "{name}: the first run's directory");
        }
        let want_links = case.get("links").cloned().unwrap_or_else(|| json!({}));
        assert_eq!(links(&dir), want_links, "{name}: symlinks (save_last=\"link\") and what they name");
        // ModelCheckpoint's state is kept under Lightning's state key (monitor, mode, triggers).
        if let Some(file) = files(&dir).into_iter().find(|f| !dir.join(f).is_symlink()) {
            let meta = lthost::checkpoint::load(&dir.join(&file)).expect("a checkpoint").meta;
            let key = meta.callbacks.keys().find(|k| k.starts_with("ModelCheckpoint")).cloned();
            assert_eq!(key.as_deref(), case["state_key"].as_str(), "{name}: ModelCheckpoint's state key");
        }
        checked += 1;
    }
    assert!(checked >= 22);
}

/// Runs `case` in `dir` as the reference did: one fit; or `runs` fits into the same directory;
/// or a first fit and a fit resumed from one of its files (`resume_from`), in `second_dir`
/// under the first's or in the same. The last fit's report and its checkpoint directory.
fn run_case(dir: &Path, case: &Value) -> (FitReport, std::path::PathBuf) {
    let (checkpoint, trainer, model) = (&case["checkpoint"], &case["trainer"], &case["model"]);
    if let Some(from) = case["resume_from"].as_str() {
        fit(dir, &case["first"]["checkpoint"], &case["first"]["trainer"], model, None);
        let second = case["second_dir"].as_str().map_or_else(|| dir.to_path_buf(), |s| dir.join(s));
        std::fs::create_dir_all(&second).expect("the second run's directory");
        let report = fit(&second, checkpoint, trainer, model, Some(&dir.join(from)));
        return (report, listed(&second, checkpoint));
    }
    for _ in 1..case["runs"].as_u64().unwrap_or(1) {
        fit(dir, checkpoint, trainer, model, None);
    }
    (fit(dir, checkpoint, trainer, model, None), listed(dir, checkpoint))
}

#[test]
fn model_checkpoint_reports_lightnings_best_and_last() {
    // Every case: the best and last paths, the best score and best_k_models Lightning's
    // ModelCheckpoint reports (after a rerun or a resume: the last fit's), and what each file
    // it left holds.
    let want = reference();
    let mut checked = 0;
    for (name, case) in want["cases"].as_object().expect("cases") {
        let d = tempfile::tempdir().expect("tempdir");
        let (report, dir) = run_case(d.path(), case);
        let (best, last) = names(&report);
        assert_eq!(best.as_deref(), case["best_model_path"].as_str(), "{name}: best_model_path");
        assert_eq!(last.as_deref(), case["last_model_path"].as_str(), "{name}: last_model_path");
        assert!(
            same_score(report.best_model_score, &case["best_model_score"]),
            "{name}: best_model_score {:?} (Lightning {})",
            report.best_model_score,
            case["best_model_score"]
        );
        let kept: std::collections::BTreeMap<String, f64> = report
            .best_k_models
            .iter()
            .map(|(p, v)| (p.file_name().expect("a file").to_string_lossy().into_owned(), *v))
            .collect();
        let want = case["best_k_models"].as_object().expect("best_k_models");
        assert_eq!(kept.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{name}: best_k_models");
        for (file, v) in want {
            assert!(same_score(Some(kept[file]), v), "{name}: best_k_models[{file}] = {} (Lightning {v})", kept[file]);
        }
        for (file, w) in case["contents"].as_object().expect("contents") {
            same_contents(&format!("{name}: {file}"), &dir.join(file), w);
        }
        checked += 1;
    }
    assert!(checked >= 60);
}

#[test]
fn model_checkpoint_tells_its_loggers_what_lightnings_tells_them() {
    // Every single-run case with a directory of its own: Lightning's loggers get
    // `after_save_checkpoint` after each file ModelCheckpoint writes (a top-k file, last.ckpt,
    // the file of a failure; not a link), with its best and last paths, best score and
    // `best_k_models` then (a top-k file is written before `last_model_path` moves).
    let want = reference();
    let mut checked = 0;
    for (name, case) in want["cases"].as_object().expect("cases") {
        let Some(calls) = case.get("after_save_checkpoint").and_then(Value::as_array) else { continue };
        if case.get("runs").is_some() || case.get("resume_from").is_some() {
            continue;
        }
        let d = tempfile::tempdir().expect("tempdir");
        let told = Told::default();
        fit_logging(d.path(), &case["checkpoint"], &case["trainer"], &case["model"], None, Some(told.clone()));
        let got = told.borrow();
        assert_eq!(got.len(), calls.len(), "{name}: after_save_checkpoint calls: {got:?}");
        for (i, (g, w)) in got.iter().zip(calls).enumerate() {
            let what = format!("{name}: call {i}");
            assert_eq!(g.best_model_path, w["best_model_path"].as_str().unwrap_or_default(), "{what}: best");
            assert_eq!(g.last_model_path, w["last_model_path"].as_str().unwrap_or_default(), "{what}: last");
            assert!(same_score(g.best_model_score, &w["best_model_score"]), "{what}: best score {g:?}");
            let kept: std::collections::BTreeMap<&str, f64> =
                g.best_k_models.iter().map(|(p, v)| (p.as_str(), *v)).collect();
            let want_k = w["best_k_models"].as_object().expect("best_k_models");
            assert_eq!(
                kept.keys().copied().collect::<Vec<_>>(),
                want_k.keys().map(String::as_str).collect::<Vec<_>>(),
                "{what}: best_k_models"
            );
            for (file, v) in want_k {
                assert!(same_score(Some(kept[file.as_str()]), v), "{what}: best_k_models[{file}]");
            }
        }
        checked += 1;
    }
    assert!(checked >= 40, "{checked} cases");
}

/// A checkpoint file's epoch, global step and ModelCheckpoint state (paths by file name)
/// against what Lightning's file of that name holds (`contents` in checkpoint.json).
fn same_contents(what: &str, path: &Path, want: &Value) {
    let meta = lthost::checkpoint::load(path).unwrap_or_else(|e| panic!("{what}: {e:#}")).meta;
    // lthost's `current_epoch` is where a resumed run starts: the next epoch after a save at
    // an epoch's end; the epoch the save was made in is Lightning's `epoch`.
    let pos = lthost::loops::checkpointing::LoopPosition::from_meta(&meta).expect("the loops' state");
    let epoch = meta.current_epoch - u64::from(pos.restart().at_epoch_end);
    assert_eq!(
        (json!(epoch), json!(meta.global_step)),
        (want["epoch"].clone(), want["global_step"].clone()),
        "{what}: epoch, global_step"
    );
    // Where each scheduler was when the file was written: a file saved at an epoch's end holds
    // the epoch's step (Lightning's test_model_checkpoint_score_and_ckpt).
    // (A scheduler's state is JSON, or JSON in a string where its owner keeps it as text.)
    let state_of = |s: &Value| s.as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_else(|| s.clone());
    let schedulers: Vec<Value> = meta.schedulers.iter().map(|s| state_of(s)["last_epoch"].clone()).collect();
    assert_eq!(json!(schedulers), want["schedulers"], "{what}: the schedulers' last_epoch");
    let state = meta.callbacks.iter().find(|(k, _)| k.starts_with("ModelCheckpoint")).map(|(_, v)| v.clone());
    let want = want["model_checkpoint"].as_object().expect("its ModelCheckpoint state");
    let Some(state) = state else {
        assert!(want.is_empty(), "{what}: no ModelCheckpoint state");
        return;
    };
    let base = |v: &Value| -> Value {
        match v.as_str().filter(|p| !p.is_empty()) {
            Some(p) => json!(Path::new(p).file_name().expect("a file").to_string_lossy()),
            None => Value::Null,
        }
    };
    let score = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    // Lightning writes a top-k file before it sets the last path, so the first one written
    // with `last.ckpt` has none; lthost writes one state to both (docs/trainer-contract.md).
    let last = base(&state["last_model_path"]);
    let first_with_last = want["last_model_path"].is_null() && last == json!("last.ckpt");
    assert!(
        last == want["last_model_path"] || first_with_last,
        "{what}: last_model_path {last} (Lightning {})",
        want["last_model_path"]
    );
    for key in ["best_model_path", "kth_best_model_path"] {
        assert_eq!(base(&state[key]), want[key], "{what}: ModelCheckpoint {key}");
    }
    for key in ["best_model_score", "current_score", "kth_value"] {
        assert!(
            same_score(score(&state[key]), &want[key]),
            "{what}: ModelCheckpoint {key} {} (Lightning {})",
            state[key],
            want[key]
        );
    }
    let kept: std::collections::BTreeMap<String, Value> = state["best_k_models"]
        .as_object()
        .expect("best_k_models")
        .iter()
        .map(|(p, v)| (base(&json!(p)).as_str().expect("a name").to_string(), v.clone()))
        .collect();
    let want_k = want["best_k_models"].as_object().expect("best_k_models");
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        want_k.keys().collect::<Vec<_>>(),
        "{what}: ModelCheckpoint best_k_models"
    );
    for (f, v) in want_k {
        assert!(same_score(score(&kept[f]), v), "{what}: best_k_models[{f}] {} (Lightning {v})", kept[f]);
    }
}

/// A score against the reference's (a number, or "inf"/"-inf"/"nan" as text, or null):
/// equal to float32 precision, NaN equal to NaN.
fn same_score(got: Option<f64>, want: &Value) -> bool {
    let want = match want {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match (got, want) {
        (None, None) => true,
        (Some(g), Some(w)) if g.is_nan() || w.is_nan() => g.is_nan() && w.is_nan(),
        (Some(g), Some(w)) if g.is_infinite() || w.is_infinite() => g == w,
        (Some(g), Some(w)) => (g - w).abs() <= 1e-6 * w.abs().max(1.0),
        _ => false,
    }
}

#[test]
fn training_step_values_reach_checkpointing_whether_or_not_a_callback_is_attached() {
    // The training step's values are monitor candidates at a mid-epoch validation's save
    // (case `train_metric_mid_epoch`, monitor train_loss, `{train_loss:.3f}` in the name); they
    // once reached ModelCheckpoint only when a callback was attached. With one: Lightning's
    // files and best path still.
    let want = reference();
    let case = &want["cases"]["train_metric_mid_epoch"];
    WITH_IDLE.with(|w| w.set(true));
    let d = tempfile::tempdir().expect("tempdir");
    let (report, dir) = run_case(d.path(), case);
    WITH_IDLE.with(|w| w.set(false));
    assert_eq!(json!(files(&dir)), case["files"]);
    assert_eq!(names(&report).0.as_deref(), case["best_model_path"].as_str());
}

#[test]
fn model_checkpoint_refuses_what_lightning_refuses() {
    let want = reference();
    for (name, case) in want["refused"].as_object().expect("refused") {
        let cfg: CheckpointConfig = serde_json::from_value(case["checkpoint"].clone()).expect("checkpoint args");
        let got = cfg.validate().err().map(|e| e.to_string());
        assert_eq!(got.as_deref(), case["message"].as_str(), "{name}");
    }
}

#[test]
fn resuming_from_a_save_last_link_continues_from_the_checkpoint_it_names() {
    // `--ckpt-path last` with save_last="link": last.ckpt is a link to epoch=1-step=8.ckpt,
    // which is what resumes; that file is kept (never removed after a resume, lthost's rule)
    // and last.ckpt follows the newest save.
    let d = tempfile::tempdir().expect("tempdir");
    let ck = json!({"save_last": "link"});
    fit(d.path(), &ck, &json!({"max_epochs": 2}), &json!({}), None);
    assert_eq!(links(d.path()), json!({"last.ckpt": "epoch=1-step=8.ckpt"}));
    // `last` is the spec `--ckpt-path last` passes.
    let report = fit(d.path(), &ck, &json!({"max_epochs": 4}), &json!({}), Some(Path::new("last")));
    assert_eq!(report.global_step, 16, "resumed at step 8 and trained epochs 2 and 3");
    assert_eq!(files(d.path()), ["epoch=1-step=8.ckpt", "epoch=3-step=16.ckpt", "last.ckpt"]);
    assert_eq!(links(d.path()), json!({"last.ckpt": "epoch=3-step=16.ckpt"}));
}

#[test]
fn a_monitor_not_logged_yet_is_warned_about_in_lightnings_words() {
    // The cases where Lightning's ModelCheckpoint warned (a monitor logged only in validation,
    // asked for at a training epoch's end before any validation ran): `lthost fit` with the
    // same settings says the same, once (the candidates it lists: the logged values, then
    // `epoch` and `step`; Lightning lists the logged ones in the order logged, lthost by name).
    let want = reference();
    let mut checked = 0;
    for (name, case) in want["cases"].as_object().expect("cases") {
        let Some(said) = case["warned"].as_array().filter(|w| !w.is_empty()) else { continue };
        let d = tempfile::tempdir().expect("tempdir");
        let wasm = plugin_path("hook-recorder").display().to_string();
        let mut args: Vec<String> = vec!["fit".into(), wasm, "--no-progress-bar".into(), "--seed".into(), "0".into()];
        for (table, values) in [("trainer", &case["trainer"]), ("checkpoint", &case["checkpoint"])] {
            for (k, v) in values.as_object().expect("arguments") {
                args.extend(["--set".into(), format!("{table}.{k}={v}")]);
            }
        }
        args.extend(["--hparams".into(), case["model"].to_string(), "--checkpoint-dir".into(), "ck".into()]);
        let run = crate::common::lthost(d.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(run.ok(), "{name}: {}", run.stderr);
        for w in said {
            // The words around the list are Lightning's; the list holds Lightning's names (the
            // hook-recorder plugin logs `lr` and `seen` too) and ends with `epoch` and `step`.
            let w = w.as_str().expect("a warning");
            let got: Vec<&str> =
                run.stderr.lines().filter(|l| l.contains("could not find the monitored key")).collect();
            assert_eq!(got.len(), 1, "{name}: said once: {}", run.stderr);
            let split = |line: &str| -> (String, Vec<String>, String) {
                let (head, rest) = line.split_once(": [").expect("a list of candidates");
                let (list, hint) = rest.split_once("]. HINT").expect("the hint");
                (head.to_string(), list.split(", ").map(str::to_string).collect(), hint.to_string())
            };
            let (head, names, hint) = split(got[0].strip_prefix("warning: ").expect("a warning line"));
            let (want_head, want_names, want_hint) = split(w);
            assert_eq!((&head, &hint), (&want_head, &want_hint), "{name}: {}\nLightning: {w}", got[0]);
            assert!(want_names.iter().all(|n| names.contains(n)), "{name}: {names:?} lacks Lightning's {want_names:?}");
            assert_eq!(names[names.len() - 2..], ["'epoch'", "'step'"], "{name}: {names:?}");
        }
        checked += 1;
    }
    assert!(checked >= 1);
}
