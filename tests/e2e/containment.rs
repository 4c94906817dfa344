//! The adversarial suite, files: whatever a checkpoint, a plugin's name or a stranger's file
//! in the run directory says, lthost removes and overwrites only files it wrote in this
//! run's directories (issue 14's red-team findings, one test each).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{lthost, plugin, Run};

const VICTIM: &[u8] = b"a file lthost did not write";

/// Rewrites the lthost metadata of a checkpoint (safetensors: 8-byte header length, the
/// JSON header, the data; offsets are relative to the data, so only the header changes).
fn edit_meta(path: &Path, edit: impl FnOnce(&mut Value)) {
    let bytes = std::fs::read(path).expect("checkpoint");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let mut meta: Value =
        serde_json::from_str(header["__metadata__"]["lthost"].as_str().expect("lthost metadata")).expect("meta");
    edit(&mut meta);
    header["__metadata__"]["lthost"] = Value::String(meta.to_string());
    let text = serde_json::to_vec(&header).expect("json");
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).expect("write");
}

fn meta_of(path: &Path) -> Value {
    let bytes = std::fs::read(path).expect("checkpoint");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    serde_json::from_str(header["__metadata__"]["lthost"].as_str().expect("lthost metadata")).expect("meta")
}

/// Points every path ModelCheckpoint keeps at `victim`.
fn aim_at(meta: &mut Value, victim: &Path) {
    let v = victim.display().to_string();
    let callbacks = meta["callbacks"].as_object_mut().expect("callbacks");
    for (key, state) in callbacks.iter_mut() {
        if key.starts_with("ModelCheckpoint") {
            state["best_k_models"] = serde_json::json!({ v.clone(): 0.0 });
            state["best_model_path"] = Value::String(v.clone());
        }
    }
}

fn fit(dir: &Path, extra: &[&str]) -> Run {
    let wasm = plugin("parity-mlp");
    let mut args =
        vec!["fit", wasm.to_str().expect("utf-8"), "--no-progress-bar", "--set", "checkpoint.save_last=true"];
    args.extend_from_slice(extra);
    lthost(dir, &args)
}

fn victim_in(dir: &Path) -> PathBuf {
    let v = dir.join("precious.txt");
    std::fs::write(&v, VICTIM).expect("victim");
    v
}

#[test]
fn a_checkpoint_cannot_make_lthost_remove_files_outside_the_run() {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path();
    let first = fit(root, &["--max-epochs", "1"]);
    assert!(first.ok(), "{}", first.stderr);
    let last = root.join("lightning_logs/version_0/checkpoints/last.ckpt");
    let victim = victim_in(root);
    // Another run's top-k file beside it, in the same directory, is not this plugin's
    // checkpoint either.
    let bystander = root.join("lightning_logs/version_0/checkpoints/epoch=9-step=99.ckpt");
    std::fs::write(&bystander, VICTIM).expect("bystander");

    // `fit --ckpt-path someone-elses.ckpt`: every kept path names the victim.
    let stranger = root.join("someone-elses.ckpt");
    std::fs::copy(&last, &stranger).expect("copy");
    edit_meta(&stranger, |m| aim_at(m, &victim));
    let run = fit(root, &["--max-epochs", "3", "--ckpt-path", stranger.to_str().expect("utf-8")]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stderr.contains("is ignored"), "the refused path is reported:\n{}", run.stderr);
    assert_eq!(std::fs::read(&victim).expect("victim"), VICTIM);

    // The same, aimed at a file in the checkpoint directory that this plugin did not write.
    edit_meta(&stranger, |m| aim_at(m, &bystander));
    let dir0 = root.join("lightning_logs/version_0/checkpoints");
    let run = fit(
        root,
        &[
            "--max-epochs",
            "3",
            "--ckpt-path",
            stranger.to_str().expect("utf-8"),
            "--checkpoint-dir",
            dir0.to_str().expect("utf-8"),
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(std::fs::read(&bystander).expect("bystander"), VICTIM);

    // `--ckpt-path best` never follows a path out of the checkpoint directory.
    edit_meta(&last, |m| aim_at(m, &victim));
    let best =
        fit(root, &["--max-epochs", "4", "--ckpt-path", "best", "--checkpoint-dir", dir0.to_str().expect("utf-8")]);
    best.assert_fails_with(&["--ckpt-path best", "refused"]);
    assert_eq!(std::fs::read(&victim).expect("victim"), VICTIM);
}

#[test]
fn a_planted_last_link_is_neither_followed_nor_replaced() {
    // save_last="link" in a directory where someone left `last.ckpt` as a symlink to a file
    // outside it: the run links `last-v1.ckpt` instead, `--ckpt-path last` does not take the
    // stranger's link, and the file it names is untouched.
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path();
    let victim = victim_in(root);
    let dir = root.join("ck");
    std::fs::create_dir(&dir).expect("dir");
    std::os::unix::fs::symlink(&victim, dir.join("last.ckpt")).expect("planted link");
    let link = ["--set", "checkpoint.save_last=link", "--checkpoint-dir", dir.to_str().expect("utf-8")];
    let run = fit(root, &[&["--max-epochs", "2"][..], &link].concat());
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(std::fs::read_link(dir.join("last.ckpt")).expect("still the planted link"), victim);
    assert_eq!(
        std::fs::read_link(dir.join("last-v1.ckpt")).expect("this run's link"),
        Path::new("epoch=1-step=10.ckpt")
    );
    assert_eq!(std::fs::read(&victim).expect("victim"), VICTIM);
    // A resume through `last`: the run's own link is taken (the newest), never the planted one.
    let run = fit(root, &[&["--max-epochs", "3", "--ckpt-path", "last"][..], &link].concat());
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(std::fs::read_link(dir.join("last-v1.ckpt")).expect("re-pointed"), Path::new("epoch=2-step=15.ckpt"));
    assert_eq!(std::fs::read_link(dir.join("last.ckpt")).expect("untouched"), victim);
    assert_eq!(std::fs::read(&victim).expect("victim"), VICTIM);
}

#[test]
fn auto_resume_takes_only_this_plugins_hpc_checkpoint_and_says_so() {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path();
    assert!(fit(root, &["--max-epochs", "1"]).ok());
    let last = root.join("lightning_logs/version_0/checkpoints/last.ckpt");
    let victim = victim_in(root);

    // A stranger's hpc_ckpt (another plugin's hash) is passed over.
    let hpc = root.join("hpc_ckpt_7.ckpt");
    std::fs::copy(&last, &hpc).expect("copy");
    edit_meta(&hpc, |m| {
        aim_at(m, &victim);
        m["plugin_sha256"] = Value::String("0".repeat(64));
    });
    let run = fit(root, &["--max-epochs", "2"]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stderr.contains("not resuming from") && !run.stdout.contains("Auto-resuming"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(std::fs::read(&victim).expect("victim"), VICTIM);

    // This plugin's own is resumed, announced on stdout, and its hostile paths are dropped.
    std::fs::copy(&last, &hpc).expect("copy");
    edit_meta(&hpc, |m| aim_at(m, &victim));
    let run = fit(root, &["--max-epochs", "3"]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout.contains("Auto-resuming from the HPC checkpoint") && run.stdout.contains("hpc_ckpt_7.ckpt"),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read(&victim).expect("victim"), VICTIM);
}

#[test]
fn plugin_names_cannot_take_the_hosts_keys_or_directories() {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path();
    // A callback plugin named as ModelCheckpoint's state key, a logger named `checkpoints`.
    let key = "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, 'train_time_interval': None}";
    let cb = root.join(format!("{key}.wasm"));
    std::fs::copy(plugin("loss-guard-callback"), &cb).expect("copy");
    let logger = root.join("checkpoints.wasm");
    std::fs::copy(plugin("jsonl-logger"), &logger).expect("copy");
    let run = fit(
        root,
        &[
            "--max-epochs",
            "2",
            "--callback",
            cb.to_str().expect("utf-8"),
            "--logger-plugin",
            logger.to_str().expect("utf-8"),
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let version = root.join("lightning_logs/version_0");
    let meta = meta_of(&version.join("checkpoints/last.ckpt"));
    assert!(
        meta["callbacks"][key]["last_model_path"].is_string(),
        "ModelCheckpoint keeps its own key: {}",
        meta["callbacks"]
    );
    assert!(
        meta["callbacks"][format!("plugin:{key}")]["best"].is_number(),
        "the plugin's state is namespaced: {}",
        meta["callbacks"]
    );
    assert!(
        version.join("plugins/checkpoints/hparams.json").exists()
            && version.join("plugins/checkpoints/status").exists(),
        "the logger writes in its own namespace"
    );
    assert!(!version.join("checkpoints/metrics.jsonl").exists() && !version.join("checkpoints/hparams.json").exists());
    // The resumed run reads each state back from its own key.
    let run = fit(
        root,
        &[
            "--max-epochs",
            "3",
            "--ckpt-path",
            "last",
            "--checkpoint-dir",
            version.join("checkpoints").to_str().expect("utf-8"),
            "--callback",
            cb.to_str().expect("utf-8"),
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    assert!(!run.stderr.contains("is ignored"), "{}", run.stderr);
}

#[test]
fn a_large_callback_state_goes_into_a_tensor_and_resumes_whole() {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path();
    let hoarder = plugin("state-hoarder");
    let h = hoarder.to_str().expect("utf-8");
    let run = fit(root, &["--max-epochs", "2", "--callback", h]);
    assert!(run.ok(), "{}", run.stderr);
    let ckpts = root.join("lightning_logs/version_0/checkpoints");
    let last = ckpts.join("last.ckpt");
    let meta = meta_of(&last);
    assert_eq!(
        meta["callbacks"]["plugin:state-hoarder"]["$tensor"], "callback_state.plugin:state-hoarder",
        "{}",
        meta["callbacks"]
    );
    let run = fit(root, &["--max-epochs", "3", "--ckpt-path", last.to_str().expect("utf-8"), "--callback", h]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("[state-hoarder] restored"), "{}", run.stdout);
}

#[test]
fn a_callback_plugin_gets_no_tensor_interface() {
    let d = tempfile::tempdir().expect("tempdir");
    let adversary = plugin("adversary");
    let run = fit(d.path(), &["--max-epochs", "1", "--callback", adversary.to_str().expect("utf-8")]);
    run.assert_fails_with(&["plugin `adversary`", "WASI only"]);
    assert!(!run.stdout.contains("SANDBOX ESCAPE"));
}

#[test]
fn a_run_logging_only_to_a_plugin_keeps_its_checkpoints_out_of_the_plugins_directory() {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path();
    let wasm = plugin("parity-mlp");
    let logger = plugin("jsonl-logger");
    let run = lthost(
        root,
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--max-epochs",
            "1",
            "--no-progress-bar",
            "--logger",
            logger.to_str().expect("utf-8"),
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let version = root.join("lightning_logs/version_0");
    assert!(version.join("checkpoints").is_dir(), "checkpoints in the version directory");
    assert!(!version.join("plugins/jsonl-logger/checkpoints").exists(), "never inside the logger plugin's grant");
}
