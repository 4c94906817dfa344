//! Streaming sources against torch.utils.data (tests/reference/stream_reference.py): an
//! IterableDataset yielding batches behind DataLoader(num_workers = 0..3) gives the same
//! per-step losses as plugins/stream-regression's stream with the same workers — worker
//! seeds, round-robin order with uneven shares, draws from the run's generator. A CSV read
//! with `load-csv` and split with `random_split` gives torch's losses and validation rows.
//! A run killed mid-epoch resumes to the same weights; worker failures are clear errors.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{column, component_cache, lthost, plugin, read_metrics, repo_root, trusted_keys, Run};

fn reference() -> Value {
    let path = repo_root().join("tests/reference/streams.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn args(seed: &str, hparams: &[(&str, String)]) -> Vec<String> {
    let mut a: Vec<String> = vec!["fit".into(), plugin("stream-regression").display().to_string()];
    for s in [
        format!("trainer.seed={seed}"),
        "trainer.max_epochs=2".into(),
        "trainer.log_every_n_steps=1".into(),
        "trainer.enable_progress_bar=false".into(),
    ] {
        a.extend(["--set".into(), s]);
    }
    for (k, v) in hparams {
        a.extend(["--set".into(), format!("hparams.{k}={v}")]);
    }
    a
}

fn fit(dir: &Path, seed: &str, hparams: &[(&str, String)]) -> Run {
    let a = args(seed, hparams);
    lthost(dir, &a.iter().map(String::as_str).collect::<Vec<_>>())
}

fn case_hparams(case: &Value) -> Vec<(&'static str, String)> {
    vec![
        ("num_workers", case["num_workers"].to_string()),
        ("batches_per_worker", case["batches_per_worker"].to_string()),
        ("uneven", case["uneven"].to_string()),
    ]
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}, step {i}: lthost {g} vs torch {w}");
    }
}

#[test]
fn streams_give_torch_dataloader_losses_with_0_to_3_workers() {
    let r = reference();
    let streams = r["streams"].as_object().expect("streams");
    assert_eq!(streams.len(), 4);
    for (name, c) in streams {
        for (seed, want) in c["seeds"].as_object().expect("seeds") {
            let dir = tempfile::tempdir().expect("tempdir");
            let run = fit(dir.path(), seed, &case_hparams(&c["case"]));
            assert!(run.ok(), "{name}, seed {seed}: {}", run.stderr);
            let got = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "train_loss");
            let want: Vec<f64> = serde_json::from_value(want.clone()).expect("losses");
            assert_close(&got, &want, &format!("{name}, seed {seed}"));
        }
    }
}

#[test]
fn a_csv_split_with_random_split_trains_as_in_torch() {
    let r = reference();
    let data = Path::new(r["csv"]["path"].as_str().expect("path")).parent().expect("dir").display().to_string();
    for (seed, want) in r["csv"]["seeds"].as_object().expect("seeds") {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = args(seed, &[("source", "\"csv\"".into())]);
        a.extend(["--data-dir".into(), data.clone()]);
        let run = lthost(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(run.ok(), "seed {seed}: {}", run.stderr);
        let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
        let want_losses: Vec<f64> = serde_json::from_value(want["losses"].clone()).expect("losses");
        assert_close(&column(&rows, "train_loss"), &want_losses, &format!("csv, seed {seed}: train"));
        let want_val: Vec<f64> = serde_json::from_value(want["val_losses"].clone()).expect("val");
        assert_close(&column(&rows, "val_loss"), &want_val, &format!("csv, seed {seed}: validation"));
    }
}

fn fit_killed(dir: &Path, fault: Option<&str>, extra: &[&str]) -> Run {
    let mut a = args("3", &[("num_workers", "2".into()), ("batches_per_worker", "3".into())]);
    for s in ["checkpoint.save_last=true", "checkpoint.save_top_k=0", "checkpoint.every_n_train_steps=1"] {
        a.extend(["--set".into(), s.into()]);
    }
    a.extend(["--checkpoint-dir".into(), dir.join("ckpt").display().to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lthost"));
    cmd.args(&a).current_dir(dir).env("LTHOST_TRUSTED_KEYS", trusted_keys()).env("LTHOST_CACHE_DIR", component_cache());
    if let Some(f) = fault {
        cmd.env("LTHOST_FAULT", f);
    }
    let out = cmd.output().expect("lthost runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Killed mid-pass (the workers' shares 3 and 4: 7 batches an epoch), resumed from `last`:
/// the workers restart with the saved base seed, the trained batches are skipped, and the
/// weights end bit-identical to an uninterrupted run's.
#[test]
fn a_stream_with_workers_resumes_mid_epoch_exactly() {
    let full_dir = tempfile::tempdir().expect("tempdir");
    let full = fit_killed(full_dir.path(), None, &[]);
    assert!(full.ok(), "{}", full.stderr);
    let want = lthost::checkpoint::load(&full_dir.path().join("ckpt/last.ckpt")).expect("checkpoint");
    for fault in ["step:3", "step:9"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let killed = fit_killed(dir.path(), Some(fault), &[]);
        assert_eq!(killed.code, None, "{fault}: killed by a signal\n{}", killed.stderr);
        let resumed = fit_killed(dir.path(), None, &["--ckpt-path", "last"]);
        assert!(resumed.ok(), "{fault}: {}", resumed.stderr);
        assert!(resumed.stdout.contains("Restored the training state"), "{fault}: {}", resumed.stdout);
        let got = lthost::checkpoint::load(&dir.path().join("ckpt/last.ckpt")).expect("checkpoint");
        for (k, t) in want.tensors.iter().filter(|(k, _)| k.starts_with("state_dict.")) {
            assert!(got.tensors[k].equal(t), "{fault}: `{k}` differs from the uninterrupted run");
        }
    }
}

/// Lightning's test_resume_training_with (docs/lightning-tests/loops.md row 92): a stream with
/// workers, fitted 2 epochs and resumed from `last` to 4, trains as a straight 4-epoch run
/// (each epoch's pass of the workers made once: no extra pass at the resume).
#[test]
fn a_finished_stream_run_resumed_to_more_epochs_trains_as_a_straight_run() {
    let four = ["--set", "trainer.max_epochs=4"];
    let straight_dir = tempfile::tempdir().expect("tempdir");
    let straight = fit_killed(straight_dir.path(), None, &four);
    assert!(straight.ok(), "{}", straight.stderr);
    let want = lthost::checkpoint::load(&straight_dir.path().join("ckpt/last.ckpt")).expect("checkpoint");
    let dir = tempfile::tempdir().expect("tempdir");
    let first = fit_killed(dir.path(), None, &[]);
    assert!(first.ok(), "{}", first.stderr);
    let two = lthost::checkpoint::load(&dir.path().join("ckpt/last.ckpt")).expect("checkpoint").meta.global_step;
    let resumed = fit_killed(dir.path(), None, &["--ckpt-path", "last", "--set", "trainer.max_epochs=4"]);
    assert!(resumed.ok(), "{}", resumed.stderr);
    let got = lthost::checkpoint::load(&dir.path().join("ckpt/last.ckpt")).expect("checkpoint");
    assert_eq!((two * 2, got.meta.global_step), (want.meta.global_step, want.meta.global_step));
    for (k, t) in want.tensors.iter().filter(|(k, _)| k.starts_with("state_dict.")) {
        assert!(got.tensors[k].equal(t), "`{k}` differs from the straight run's");
    }
}

#[test]
fn worker_failures_name_the_plugin_the_hook_and_the_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = fit(dir.path(), "0", &[("num_workers", "2".into()), ("fail_worker", "1".into())]);
    run.assert_fails_with(&[
        "plugin `stream-regression`",
        "train_stream.next_batch (worker 1)",
        "worker 1 cannot read its shard",
        "DataLoader worker 1",
    ]);
    let run = fit(dir.path(), "0", &[("num_workers", "3".into()), ("panic_worker", "2".into())]);
    run.assert_fails_with(&[
        "plugin `stream-regression`",
        "train_stream.next_batch (worker 2)",
        "a panic or abort in the guest",
    ]);
    assert!(run.stderr.contains("worker 2 hit a bug"), "{}", run.stderr);
    let run = fit(dir.path(), "0", &[("num_workers", "2".into()), ("extra_declared", "1".into())]);
    run.assert_fails_with(&["plugin `stream-regression`", "the train stream ended after 9 batches, but declares 10"]);
    let run = fit(dir.path(), "0", &[("num_workers", "0".into()), ("extra_declared", "2".into())]);
    run.assert_fails_with(&["ended after 4 batches, but declares 6"]);
}

/// An epoch cut short by limit_train_batches drops the rest of the workers' pass; the next
/// epoch starts a new one.
#[test]
fn an_epoch_cut_short_leaves_the_workers_ready_for_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = args("0", &[("num_workers", "2".into()), ("batches_per_worker", "6".into())]);
    a.extend(["--set".into(), "trainer.limit_train_batches=3".into(), "--set".into(), "trainer.max_epochs=3".into()]);
    let run = lthost(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "train_loss").len(), 9);
}
