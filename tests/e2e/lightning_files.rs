//! Unmodified Lightning files as plugins (issue 17): `import torch`, `import lightning as L`,
//! built by tools/build-plugin.sh with the Python SDK's `torch` and `lightning` packages, give
//! Lightning 2.6.6's per-step losses (tests/reference/lightning_files_reference.py runs the
//! same files in Lightning with the same seed).

use crate::common::{column, lthost, plugin, read_metrics, repo_root};

fn reference(name: &str) -> serde_json::Value {
    let path = repo_root().join("tests/reference/lightning_files.json");
    let text = std::fs::read_to_string(&path).expect("run `make reference` (lightning_files.json)");
    let all: serde_json::Value = serde_json::from_str(&text).expect("json");
    all[name].clone()
}

#[test]
fn lightnings_boring_model_file_trains_to_lightnings_losses_step_for_step() {
    let want = reference("lit-boring");
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-boring");
    let seed = want["seed"].to_string();
    let epochs = want["epochs"].to_string();
    let run = lthost(
        d.path(),
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--accelerator",
            "cpu",
            "--seed",
            &seed,
            "--max-epochs",
            &epochs,
            "--log-every-n-steps",
            "1",
            "--no-progress-bar",
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let got = column(&read_metrics(&d.path().join("lightning_logs/version_0")), "train_loss");
    let want: Vec<f64> =
        want["train_loss"].as_array().expect("losses").iter().map(|v| v.as_f64().expect("f64")).collect();
    assert_eq!(got.len(), want.len(), "one training loss per step (64 steps × 2 epochs)");
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "step {step}: lthost {g}, Lightning {w}");
    }
}
