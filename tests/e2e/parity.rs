//! Parity with PyTorch: lthost reproduces every step's loss of Lightning's parity models,
//! bit for bit, as computed by torch itself (tests/reference/parity_reference.py, run by `make test`).

use crate::common::{column, lthost, plugin, read_metrics, repo_root, Run};

pub(crate) fn reference() -> serde_json::Value {
    let path = repo_root().join("tests/reference/parity.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("valid reference JSON")
}

/// `lthost fit` of the plugin `name` in `dir` on the CPU, logging every step (`extra`: more
/// arguments), as the parity tests compare runs.
pub fn fit_logging_every_step(
    dir: &std::path::Path,
    name: &str,
    seed: &str,
    epochs: &str,
    threads: &str,
    extra: &[&str],
) -> Run {
    let wasm = plugin(name);
    let mut args = vec![
        "fit",
        wasm.to_str().expect("utf-8 path"),
        "--seed",
        seed,
        "--max-epochs",
        epochs,
        "--threads",
        threads,
        "--log-every-n-steps",
        "1",
        "--no-progress-bar",
        "--accelerator",
        "cpu",
    ];
    args.extend_from_slice(extra);
    lthost(dir, &args)
}

fn check_model(name: &str) {
    let reference = reference();
    let epochs = reference["epochs"][name].as_u64().expect("epochs").to_string();
    let threads = reference["threads"].as_u64().expect("threads").to_string();
    let seeds = reference["losses"][name].as_object().expect("seeds");
    assert!(!seeds.is_empty());
    for (seed, expected) in seeds {
        let expected: Vec<f64> =
            expected.as_array().expect("losses").iter().map(|v| v.as_f64().expect("a loss")).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let run = fit_logging_every_step(dir.path(), name, seed, &epochs, &threads, &[]);
        assert!(run.ok(), "{name} seed {seed} failed:\n{}", run.stderr);
        let got = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "train_loss");
        assert_eq!(got.len(), expected.len(), "{name} seed {seed}: step count");
        for (step, (g, e)) in got.iter().zip(&expected).enumerate() {
            // Bit for bit: the losses are float32 values, compared as float32 (serde_json's
            // default parser can land one f64 ulp off the JSON's digits, never a float32 ulp).
            assert!(*g as f32 == *e as f32, "{name} seed {seed} step {step}: lthost {g} vs torch {e}");
        }
    }
}

#[test]
fn parity_rnn_matches_pytorch_every_step() {
    check_model("parity-rnn");
}

#[test]
fn parity_mlp_matches_pytorch_every_step() {
    check_model("parity-mlp");
}
