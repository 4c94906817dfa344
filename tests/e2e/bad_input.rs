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
        "lt:plugin/lightning-module@0.3.0",
    ]);
}

/// `component` without its top-level custom sections named `name`.
fn without_custom_section(component: &[u8], name: &[u8]) -> Vec<u8> {
    fn leb(b: &[u8], mut i: usize) -> (usize, usize) {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let x = b[i];
            i += 1;
            v |= usize::from(x & 0x7f) << shift;
            shift += 7;
            if x < 0x80 {
                return (v, i);
            }
        }
    }
    let mut out = component[..8].to_vec();
    let mut i = 8;
    while i < component.len() {
        let (size, start) = leb(component, i + 1);
        let section = &component[i..start + size];
        let dropped = component[i] == 0 && {
            let (len, at) = leb(component, start);
            &component[at..at + len] == name
        };
        if !dropped {
            out.extend_from_slice(section);
        }
        i = start + size;
    }
    out
}

#[test]
fn a_plugin_built_for_an_older_wit_is_refused_with_the_version() {
    // A plugin of an older lthost SDK names the interfaces of lt:plugin@0.2.0 (made here from
    // a built plugin by renaming them and dropping its signature, which no longer matches).
    let dir = tempfile::tempdir().expect("tempdir");
    let built = std::fs::read(plugin("parity-mlp")).expect("parity-mlp.wasm");
    assert!(built.windows(6).any(|w| w == b"@0.3.0"), "the plugin names lt:plugin@0.3.0");
    let mut old = built;
    for at in 0..old.len().saturating_sub(5) {
        if &old[at..at + 6] == b"@0.3.0" {
            old[at..at + 6].copy_from_slice(b"@0.2.0");
        }
    }
    let f = dir.path().join("old.wasm");
    std::fs::write(&f, without_custom_section(&old, b"signature")).expect("write");
    lthost(dir.path(), &["fit", f.to_str().expect("utf-8"), "--allow-unsigned"]).assert_fails_with(&[
        "plugin `old`",
        "this host speaks lt:plugin@0.3.0",
        "needs rebuilding",
        "lt:plugin/tensor@0.2.0",
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
