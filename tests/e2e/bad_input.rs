//! Bad input ends the run with exit code 1 and one error naming the plugin, the hook and
//! (where there is one) the op; the host never panics and leaves no half-written file.

use crate::common::{leftover_temp_files, lthost, plugin, Run};

fn run_faulty(fault: &str, extra: &[&str]) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("faulty");
    let hp = format!(r#"{{"fault": "{fault}"}}"#);
    let mut args = vec![
        "fit",
        wasm.to_str().expect("utf-8"),
        "--hparams",
        &hp,
        "--max-epochs",
        "1",
        "--no-progress-bar",
        "--seed",
        "0",
    ];
    args.extend_from_slice(extra);
    let run = lthost(dir.path(), &args);
    assert!(leftover_temp_files(dir.path()).is_empty(), "half-written files left behind");
    (run, dir)
}

#[test]
fn healthy_faulty_plugin_trains() {
    let (run, _dir) = run_faulty("none", &[]);
    assert!(run.ok(), "{}", run.stderr);
}

#[test]
fn a_file_that_is_not_wasm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("notes.wasm");
    std::fs::write(&f, "just some text").expect("write");
    lthost(dir.path(), &["run", f.to_str().expect("utf-8")])
        .assert_fails_with(&["plugin `notes`", "not a WebAssembly file"]);
}

#[test]
fn a_core_module_is_not_a_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("core.wasm");
    std::fs::write(&f, b"\0asm\x01\0\0\0").expect("write");
    lthost(dir.path(), &["run", f.to_str().expect("utf-8")]).assert_fails_with(&["plugin `core`", "not a component"]);
}

#[test]
fn a_component_missing_the_exports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("empty.wasm");
    // The smallest valid component: a header and nothing else.
    std::fs::write(&f, b"\0asm\x0d\0\x01\0").expect("write");
    lthost(dir.path(), &["run", f.to_str().expect("utf-8")]).assert_fails_with(&[
        "plugin `empty`",
        "is not signed",
        "--allow-unsigned",
    ]);
    lthost(dir.path(), &["run", f.to_str().expect("utf-8"), "--allow-unsigned"]).assert_fails_with(&[
        "plugin `empty`",
        "exports neither",
        "lt:plugin/lightning-module@0.2.0",
    ]);
}

#[test]
fn a_plugin_that_traps() {
    let (run, _d) = run_faulty("trap", &[]);
    run.assert_fails_with(&["plugin `faulty`", "hook `training_step`", "trapped"]);
    assert!(run.stderr.contains("the faulty plugin panics on purpose"), "the guest's panic message reaches stderr");
}

#[test]
fn a_wrong_shaped_matmul() {
    let (run, _d) = run_faulty("matmul", &[]);
    run.assert_fails_with(&["plugin `faulty`", "hook `training_step`", "op `matmul`", "[4, 2]", "[5, 3]"]);
}

#[test]
fn a_handle_used_after_drop() {
    let (run, _d) = run_faulty("use-after-drop", &[]);
    run.assert_fails_with(&["plugin `faulty`", "hook `training_step`", "handle"]);
}

#[test]
fn a_loss_that_is_not_a_scalar() {
    let (run, _d) = run_faulty("non-scalar-loss", &[]);
    run.assert_fails_with(&["plugin `faulty`", "hook `training_step`", "scalar", "[4, 2]"]);
}

#[test]
fn a_loss_without_grad() {
    let (run, _d) = run_faulty("no-grad-loss", &[]);
    run.assert_fails_with(&["plugin `faulty`", "hook `training_step`", "does not require grad"]);
}

#[test]
fn hparams_that_are_not_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("faulty");
    lthost(dir.path(), &["fit", wasm.to_str().expect("utf-8"), "--hparams", "{fault: none}"]).assert_fails_with(&[
        "plugin `faulty`",
        "hook `configure`",
        "not valid JSON",
    ]);
}

#[test]
fn a_plugin_that_refuses_its_hparams() {
    let (run, _d) = run_faulty("configure", &[]);
    run.assert_fails_with(&["plugin `faulty`", "hook `configure`", "refusing to configure"]);
}

#[test]
fn a_plugin_that_loops_forever_is_stopped() {
    let (run, _d) = run_faulty("loop", &["--hook-timeout-s", "1"]);
    run.assert_fails_with(&["plugin `faulty`", "hook `training_step`", "time limit"]);
}

#[test]
fn a_plugin_that_allocates_without_bound_is_stopped() {
    let (run, _d) = run_faulty("alloc", &["--memory-limit-mb", "64"]);
    run.assert_fails_with(&[
        "plugin `faulty`",
        "hook `training_step`",
        "hit its wasm memory limit",
        "linear memory to",
    ]);
}

#[test]
fn a_bad_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, "[trainer]\nmax_epoch = 3\n").expect("write");
    let wasm = plugin("faulty");
    let run = lthost(dir.path(), &["fit", wasm.to_str().expect("utf-8"), "--config", cfg.to_str().expect("utf-8")]);
    run.assert_fails_with(&["run.toml", "max_epoch"]);
}
