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
    std::fs::write(root.join("limits.toml"), "[plugin]\ntensor_memory_limit_mb = 3000\nmax_live_handles = 1000\n")
        .expect("write");
    Scene { _dir: dir, root, data, secret, victim }
}

impl Scene {
    /// A parity-mlp run logging to the jsonl-logger plugin with `hparams` (the logger's
    /// attacks) and `extra` arguments.
    fn with_logger(&self, hparams: &str, extra: &[&str]) -> Run {
        let (logger, wasm) = (plugin("jsonl-logger"), plugin("parity-mlp"));
        let mut args = vec![
            "fit",
            wasm.to_str().expect("utf-8"),
            "--max-epochs",
            "1",
            "--logger",
            logger.to_str().expect("utf-8"),
            "--hparams",
            hparams,
            "--no-progress-bar",
        ];
        args.extend_from_slice(extra);
        lthost(&self.root, &args)
    }

    fn attack(&self, attack: &str) -> Run {
        let hp = format!(
            "{{\"attack\": \"{attack}\", \"victim\": \"/data/../lightning_logs/version_0/checkpoints/last.ckpt\"}}"
        );
        let wasm = plugin("adversary");
        let cfg = self.root.join("limits.toml");
        lthost(
            &self.root,
            &[
                "fit",
                wasm.to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "--data-dir",
                self.data.to_str().expect("utf-8"),
                "--max-epochs",
                "1",
                "--no-progress-bar",
                "--hparams",
                &hp,
            ],
        )
    }

    fn untouched(&self) {
        assert_eq!(std::fs::read(&self.secret).expect("secret"), SECRET);
        assert_eq!(std::fs::read(&self.victim).expect("victim"), VICTIM, "another run's checkpoint was changed");
        let names: Vec<String> = std::fs::read_dir(&self.data)
            .expect("data")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
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
        assert!(
            !run.stdout.contains("SANDBOX ESCAPE") && !run.stderr.contains("SANDBOX ESCAPE"),
            "{attack}:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("[adversary] blocked"),
            "{attack}: the plugin's output is prefixed with its name:\n{}",
            run.stdout
        );
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
    for target in
        ["/logs/../../version_0/checkpoints/last.ckpt", "../version_0/checkpoints/last.ckpt", "/logs/../escape.ckpt"]
    {
        let run = s.with_logger(&format!("{{\"escape_to\": \"{target}\"}}"), &[]);
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
    let run = lthost(
        &s.root,
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
            "--data-dir",
            s.data.to_str().expect("utf-8"),
            "--max-epochs",
            "1",
            "--no-progress-bar",
            "--hparams",
            "{\"attack\": \"slow-op\"}",
        ],
    );
    run.assert_fails_with(&[
        "plugin `adversary`",
        "hook `training_step`",
        "op `matmul`",
        "this op ended",
        "time limit",
    ]);
}

#[test]
fn a_blocking_sleep_ends_at_the_hook_deadline() {
    let s = scene();
    let cfg = s.root.join("sleepy.toml");
    std::fs::write(&cfg, "[plugin]\nhook_timeout_s = 1.0\n").expect("write");
    let wasm = plugin("adversary");
    let started = std::time::Instant::now();
    let run = lthost(
        &s.root,
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
            "--max-epochs",
            "1",
            "--no-progress-bar",
            "--hparams",
            "{\"attack\": \"sleep\"}",
        ],
    );
    run.assert_fails_with(&["plugin `adversary`", "hook `training_step`", "time limit"]);
    assert!(started.elapsed().as_secs() < 30, "a 60 s sleep under a 1 s limit took {:?}", started.elapsed());
    assert!(!run.stdout.contains("SANDBOX ESCAPE"));
}

/// Starts an adversary run, waits for `marker` on its stdout, sends SIGTERM, and returns
/// the exit code, what it printed, and how long it took to end after the signal.
fn signal_during(root: &Path, attack: &str, marker: &str) -> (Option<i32>, String, std::time::Duration) {
    use std::io::BufRead as _;
    let wasm = plugin("adversary");
    let hp = format!("{{\"attack\": \"{attack}\"}}");
    let mut child = crate::common::command(env!("CARGO_BIN_EXE_lthost"), root)
        .args(["fit", wasm.to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar", "--hparams", &hp])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut out = String::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        out.push_str(&line);
        out.push('\n');
        if line.contains(marker) {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let sent = std::time::Instant::now();
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    for line in lines.map_while(Result::ok) {
        out.push_str(&line);
        out.push('\n');
    }
    let code = child.wait().expect("wait").code();
    (code, out, sent.elapsed())
}

#[test]
fn a_signal_stops_a_sleeping_or_spinning_plugin_and_saves_the_run() {
    for (attack, marker) in [("sleep", "[adversary] sleeping"), ("spin", "[adversary] spinning")] {
        let d = tempfile::tempdir().expect("tempdir");
        let (code, out, took) = signal_during(d.path(), attack, marker);
        assert_eq!(code, Some(143), "{attack}: exit code 128 + SIGTERM:\n{out}");
        assert!(took.as_secs_f64() < 5.0, "{attack}: the run took {took:?} to honour SIGTERM:\n{out}");
        // A sleep wakes and the step may finish (saved between steps, with the plugin's
        // state); a spin is stopped inside the hook (saved without it).
        assert!(out.contains("signal 15 stopped") || out.contains("signal 15 received"), "{attack}:\n{out}");
        if attack == "spin" {
            assert!(out.contains("signal 15 stopped plugin `adversary` in hook `training_step`"), "{out}");
        }
        assert!(!out.contains("SANDBOX ESCAPE"), "{attack}:\n{out}");
        let last = d.path().join("lightning_logs/version_0/checkpoints/last.ckpt");
        assert!(last.exists(), "{attack}: the run was saved to {}:\n{out}", last.display());
    }
}

#[test]
fn a_logger_plugin_cannot_write_past_its_disk_quota() {
    let s = scene();
    let quota = ["--set", "plugin.disk_quota_mb=4"];
    let run = s.with_logger("{\"fill_mb\": 64}", &quota);
    run.assert_fails_with(&["logger plugin `jsonl-logger`", "log_hyperparams", "fill.bin"]);
    assert!(run.stderr.contains("reached its disk quota of 4 MiB"), "{}", run.stderr);
    let fill = s.root.join("lightning_logs/version_1/plugins/jsonl-logger/fill.bin");
    let fill = if fill.exists() { fill } else { s.root.join("lightning_logs/version_0/plugins/jsonl-logger/fill.bin") };
    let size = std::fs::metadata(&fill).expect("the logger wrote up to its quota").len();
    assert!(size <= 4 << 20, "the logger wrote {size} bytes under a 4 MiB quota");
    // Within its quota it works as before.
    let ok = s.with_logger("{\"fill_mb\": 2}", &quota);
    assert!(ok.ok(), "{}", ok.stderr);
}

#[test]
fn symlinks_a_logger_plugin_leaves_are_removed() {
    let s = scene();
    let run = s.with_logger("{\"symlink_to\": \"../../../../secret.txt\"}", &[]);
    let dir = s.root.join("lightning_logs/version_1/plugins/jsonl-logger");
    assert!(run.ok(), "the logger may make a symlink in its own directory:\n{}", run.stderr);
    assert!(run.stderr.contains("left a symlink"), "{}", run.stderr);
    assert!(std::fs::symlink_metadata(dir.join("link")).is_err(), "the symlink is gone:\n{}{}", run.stdout, run.stderr);
    s.untouched();
}
