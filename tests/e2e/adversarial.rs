//! The adversarial suite: a plugin (tests/plugins/adversary) that tries to get out of its
//! sandbox, and a logger plugin that tries to write into another run. Each attempt ends in
//! a clear error or a harmless refusal, the host alive and unpanicked, other files
//! untouched.

use std::path::{Path, PathBuf};

use crate::common::{lthost, plugin, Run};

struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    secret: PathBuf,
    victim: PathBuf,
}

const SECRET: &[u8] = b"outside the grant";
const VICTIM: &[u8] = b"another run's checkpoint";

/// A granted data directory with symlinks pointing out of it, a secret beside it, and
/// another run's checkpoint.
fn scene() -> Scene {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let data = root.join("data");
    let outside = root.join("outside");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(data.join("digits.safetensors"), b"not really").expect("write");
    let secret = root.join("secret.txt");
    std::fs::write(&secret, SECRET).expect("write");
    std::fs::write(outside.join("secret.txt"), SECRET).expect("write");
    std::os::unix::fs::symlink(&outside, data.join("link-out")).expect("symlink");
    std::os::unix::fs::symlink(&secret, data.join("link-file")).expect("symlink");
    let victim = root.join("lightning_logs/version_0/checkpoints/last.ckpt");
    std::fs::create_dir_all(victim.parent().expect("parent")).expect("mkdir");
    std::fs::write(&victim, VICTIM).expect("write");
    std::fs::write(root.join("limits.toml"), "[plugin]\ntensor_memory_limit_mb = 3000\nmax_live_handles = 1000\n").expect("write");
    Scene { _dir: dir, root, data, secret, victim }
}

impl Scene {
    fn attack(&self, attack: &str) -> Run {
        let hp = format!("{{\"attack\": \"{attack}\", \"victim\": \"/data/../lightning_logs/version_0/checkpoints/last.ckpt\"}}");
        let wasm = plugin("adversary");
        let cfg = self.root.join("limits.toml");
        lthost(&self.root, &["fit", wasm.to_str().expect("utf-8"), "--config", cfg.to_str().expect("utf-8"), "--data-dir", self.data.to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar", "--hparams", &hp])
    }

    fn untouched(&self) {
        assert_eq!(std::fs::read(&self.secret).expect("secret"), SECRET);
        assert_eq!(std::fs::read(&self.victim).expect("victim"), VICTIM, "another run's checkpoint was changed");
        let names: Vec<String> = std::fs::read_dir(&self.data).expect("data").filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 3, "nothing was added to the read-only data directory: {names:?}");
        assert!(!self.root.join("escape.txt").exists() && !Path::new("/tmp/escape.txt").exists());
    }
}

#[test]
fn refused_reads_writes_environment_and_network_are_harmless() {
    let s = scene();
    for attack in ["env", "fs-read", "fs-write", "fs-output", "network"] {
        let run = s.attack(attack);
        assert!(run.ok(), "{attack}: the refused attempts should leave a working run:\n{}{}", run.stdout, run.stderr);
        assert!(!run.stdout.contains("SANDBOX ESCAPE") && !run.stderr.contains("SANDBOX ESCAPE"), "{attack}:\n{}", run.stdout);
        assert!(run.stdout.contains("[adversary] blocked"), "{attack}: the plugin's output is prefixed with its name:\n{}", run.stdout);
        s.untouched();
    }
    let own = s.root.join("plugin_output/adversary/ok.txt");
    assert_eq!(std::fs::read(&own).expect("the plugin's own output"), b"its own output");
    assert!(!s.root.join("plugin_output/escape.txt").exists());
}

#[test]
fn traps_and_bad_handles_end_with_clear_errors() {
    let s = scene();
    let cases: &[(&str, &[&str])] = &[
        ("recursion", &["plugin `adversary`", "hook `training_step`", "stack"]),
        ("forged-handle", &["plugin `adversary`", "hook `training_step`", "handle"]),
        ("wrong-type-handle", &["plugin `adversary`", "hook `training_step`", "handle"]),
        ("huge-tensor", &["plugin `adversary`", "hook `training_step`", "op `zeros`", "over the limit"]),
        ("budget", &["plugin `adversary`", "op `zeros`", "over its budget of 3000 MiB"]),
        ("handles", &["plugin `adversary`", "op `zeros`", "1000 live handles"]),
        ("load-escape", &["plugin `adversary`", "op `load`"]),
        ("load-absolute", &["plugin `adversary`", "op `load`"]),
    ];
    for (attack, needles) in cases {
        let run = s.attack(attack);
        run.assert_fails_with(needles);
        s.untouched();
    }
}

#[test]
fn a_logger_plugin_cannot_write_into_another_run() {
    let s = scene();
    let logger = plugin("jsonl-logger");
    let wasm = plugin("parity-mlp");
    for target in ["/logs/../../version_0/checkpoints/last.ckpt", "../version_0/checkpoints/last.ckpt", "/logs/../escape.ckpt"] {
        let hp = format!("{{\"escape_to\": \"{target}\"}}");
        let run = lthost(&s.root, &["fit", wasm.to_str().expect("utf-8"), "--max-epochs", "1", "--logger", logger.to_str().expect("utf-8"), "--hparams", &hp, "--no-progress-bar"]);
        run.assert_fails_with(&["logger plugin `jsonl-logger`", "log_hyperparams"]);
        s.untouched();
    }
}

#[test]
fn an_op_that_overruns_the_hook_deadline_is_named() {
    let s = scene();
    let cfg = s.root.join("slow.toml");
    std::fs::write(&cfg, "[plugin]\nhook_timeout_s = 0.5\n").expect("write");
    let wasm = plugin("adversary");
    let run = lthost(&s.root, &["fit", wasm.to_str().expect("utf-8"), "--config", cfg.to_str().expect("utf-8"), "--data-dir", s.data.to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar", "--hparams", "{\"attack\": \"slow-op\"}"]);
    run.assert_fails_with(&["plugin `adversary`", "hook `training_step`", "op `matmul`", "this op ended", "time limit"]);
}
