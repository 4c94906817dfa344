//! The default example trains to ≥95% validation accuracy and writes Lightning's layout;
//! validate, test and predict run on it too.

use crate::common::{column, leftover_temp_files, lthost, plugin, read_metrics, repo_root};

fn config() -> String {
    repo_root().join("plugins/digits-mlp/run.toml").to_string_lossy().into_owned()
}

#[test]
fn digits_trains_to_95_percent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("digits-mlp");
    let cfg = config();
    // stdout is not a terminal here: the progress bar prints one plain line per epoch.
    let run = lthost(dir.path(), &["run", wasm.to_str().expect("utf-8"), "--config", &cfg]);
    assert!(run.ok(), "digits failed:\n{}", run.stderr);
    assert!(run.stdout.contains("libtorch threads:"), "{}", run.stdout);
    assert!(run.stdout.contains("`Trainer.fit` stopped: `max_epochs=15` reached."), "{}", run.stdout);
    assert!(run.stdout.contains("Epoch 14: 40/40"), "{}", run.stdout);
    let log_dir = dir.path().join("lightning_logs/version_0");
    let rows = read_metrics(&log_dir);
    let acc = column(&rows, "val_acc");
    assert_eq!(acc.len(), 15, "one validation per epoch");
    assert!(*acc.last().expect("a value") >= 0.95, "val_acc {acc:?}");
    let hparams = std::fs::read_to_string(log_dir.join("hparams.yaml")).expect("hparams.yaml");
    assert!(hparams.contains("lr: 0.003") && hparams.contains("dropout: 0.1"), "{hparams}");
    assert!(leftover_temp_files(dir.path()).is_empty());
    // A second run gets the next version, as in Lightning.
    let again = lthost(
        dir.path(),
        &["run", wasm.to_str().expect("utf-8"), "--config", &cfg, "--no-progress-bar", "--max-epochs", "1"],
    );
    assert!(again.ok(), "{}", again.stderr);
    assert!(dir.path().join("lightning_logs/version_1/metrics.csv").exists());
}

#[test]
fn validate_test_and_predict_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("digits-mlp");
    let cfg = config();
    let w = wasm.to_str().expect("utf-8");
    let v = lthost(dir.path(), &["validate", w, "--config", &cfg]);
    assert!(v.ok(), "{}", v.stderr);
    assert!(v.stdout.contains("Validate metric") && v.stdout.contains("val_acc"), "{}", v.stdout);
    let t = lthost(dir.path(), &["test", w, "--config", &cfg]);
    assert!(t.ok(), "{}", t.stderr);
    assert!(t.stdout.contains("test_acc"), "{}", t.stdout);
    let p = lthost(dir.path(), &["predict", w, "--config", &cfg]);
    assert!(p.ok(), "{}", p.stderr);
    let preds = tch::Tensor::read_safetensors(dir.path().join("predictions.safetensors")).expect("predictions");
    let rows: i64 = preds.iter().map(|(_, t)| t.size()[0]).sum();
    assert_eq!(rows, 270);
    let sums = preds[0].1.sum_dim_intlist(Some([1i64].as_slice()), false, None::<tch::Kind>);
    assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5, "probabilities sum to 1");
}

#[test]
fn data_outside_the_grant_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("digits-mlp");
    let data = repo_root().join("plugins/digits-mlp/data");
    let run = lthost(
        dir.path(),
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--hparams",
            r#"{"data_file": "../run.toml"}"#,
            "--max-epochs",
            "1",
        ],
    );
    run.assert_fails_with(&["plugin `digits-mlp`", "hook `setup`", "op `load`", "outside the granted data directory"]);
}

/// The digits example against PyTorch Lightning running the same model on the same data
/// (tests/reference/digits_reference.py): a shuffled train loader, dropout, the sanity
/// check and a validation run per epoch draw from the generator in the same order, so
/// every training step's loss is Lightning's.
#[test]
fn digits_losses_are_lightnings_step_for_step() {
    let path = crate::common::repo_root().join("tests/reference/digits.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    let reference: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let epochs = reference["epochs"].as_u64().expect("epochs").to_string();
    let data = crate::common::repo_root().join("plugins/digits-mlp/data");
    for (seed, want) in reference["seeds"].as_object().expect("seeds") {
        let dir = tempfile::tempdir().expect("tempdir");
        let wasm = crate::common::plugin("digits-mlp");
        let run = crate::common::lthost(
            dir.path(),
            &[
                "fit",
                wasm.to_str().expect("utf-8"),
                "--data-dir",
                data.to_str().expect("utf-8"),
                "--seed",
                seed,
                "--max-epochs",
                &epochs,
                "--log-every-n-steps",
                "1",
                "--threads",
                "1",
                "--no-progress-bar",
                "--accelerator",
                "cpu",
            ],
        );
        assert!(run.ok(), "{}", run.stderr);
        let rows = crate::common::read_metrics(&dir.path().join("lightning_logs/version_0"));
        for (col, tol) in [("train_loss", 1e-6), ("val_loss", 1e-6)] {
            let got = crate::common::column(&rows, col);
            let want: Vec<f64> =
                want[col].as_array().expect("losses").iter().map(|v| v.as_f64().expect("a loss")).collect();
            assert_eq!(got.len(), want.len(), "seed {seed}: {col} count");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= tol, "seed {seed} {col} {i}: lthost {g} vs Lightning {w}");
            }
        }
    }
}

/// The values, not only the names: `validate` and `test` from the last checkpoint print the
/// metrics the fit logged for those weights, and ModelCheckpoint's best (top 2 by val_loss)
/// are the lowest val_loss values of the run.
#[test]
fn metric_values_and_the_best_checkpoint_agree_with_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("digits-mlp");
    let w = wasm.to_str().expect("utf-8");
    let cfg = config();
    let ckpt = dir.path().join("ckpt");
    let c = ckpt.to_str().expect("utf-8");
    let fit = lthost(
        dir.path(),
        &[
            "fit",
            w,
            "--config",
            &cfg,
            "--max-epochs",
            "4",
            "--no-progress-bar",
            "--checkpoint-dir",
            c,
            "--set",
            "checkpoint.monitor=\"val_loss\"",
            "--set",
            "checkpoint.save_top_k=2",
            "--set",
            "checkpoint.save_last=true",
            "--set",
            "checkpoint.filename=\"{epoch}-{val_loss:.6f}\"",
        ],
    );
    assert!(fit.ok(), "{}", fit.stderr);
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let val_loss = column(&rows, "val_loss");
    let val_acc = column(&rows, "val_acc");
    assert_eq!(val_loss.len(), 4);
    // The two kept files are the two lowest val_loss values, and the summary's best is the lowest.
    let mut sorted = val_loss.clone();
    sorted.sort_by(f64::total_cmp);
    let mut kept: Vec<f64> = std::fs::read_dir(&ckpt)
        .expect("ckpt dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".ckpt")?.split("val_loss=").nth(1)?.parse().ok())
        .collect();
    kept.sort_by(f64::total_cmp);
    let rounded: Vec<String> = sorted[..2].iter().map(|v| format!("{v:.6}")).collect();
    assert_eq!(kept.iter().map(|v| format!("{v:.6}")).collect::<Vec<_>>(), rounded, "kept {kept:?}, run {val_loss:?}");
    assert!(fit.stdout.contains(&format!("val_loss={:.6}.ckpt", sorted[0])), "best ckpt:\n{}", fit.stdout);
    // validate from last.ckpt: the last epoch's logged values, to the digit.
    let last = ckpt.join("last.ckpt");
    let l = last.to_str().expect("utf-8");
    let v = lthost(dir.path(), &["validate", w, "--config", &cfg, "--ckpt-path", l]);
    assert!(v.ok(), "{}", v.stderr);
    let printed = |out: &str, name: &str| -> f64 {
        out.lines()
            .find_map(|line| line.strip_prefix(name).map(str::trim))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in:\n{out}"))
    };
    let (want_loss, want_acc) = (val_loss[3], val_acc[3]);
    assert!((printed(&v.stdout, "val_loss") - want_loss).abs() <= 1e-6 * want_loss.abs().max(1.0), "{}", v.stdout);
    assert!((printed(&v.stdout, "val_acc") - want_acc).abs() <= 1e-6, "{}", v.stdout);
    // test from the same weights: its accuracy is a fraction of the 270 test rows.
    let t = lthost(dir.path(), &["test", w, "--config", &cfg, "--ckpt-path", l]);
    assert!(t.ok(), "{}", t.stderr);
    let acc = printed(&t.stdout, "test_acc");
    assert!((acc * 270.0 - (acc * 270.0).round()).abs() < 1e-3 && acc > 0.8, "test_acc {acc}");
}
