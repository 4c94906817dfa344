//! Lightning's `precision` (issue 19): models trained in `bf16-mixed` (autocast around the
//! steps), `64-true` and `bf16-true` (module and inputs converted) give the per-step losses
//! of Lightning 2.6.6 training them with the same `precision` (tests/reference/
//! parity_reference.py and lightning_files_reference.py run Lightning); the aliases and
//! `16-mixed` on the CPU are taken as Lightning takes them, and checkpoints cross precisions.

use crate::common::{column, lthost, plugin, read_metrics};
use crate::lightning_files::{assert_training_losses, reference as file_reference, run_like_lightning};
use crate::parity::{fit_logging_every_step, reference as parity_reference};

#[test]
fn the_parity_models_train_in_each_precision_as_in_lightning() {
    let reference = parity_reference();
    let threads = reference["threads"].as_u64().expect("threads").to_string();
    for name in ["parity-mlp", "parity-rnn"] {
        let epochs = reference["epochs"][name].as_u64().expect("epochs").to_string();
        let runs = reference["precision"][name].as_object().expect("Lightning's runs per precision");
        assert_eq!(runs.len(), 4, "{name}: 32-true and three others");
        for (precision, want) in runs.iter().filter(|(p, _)| *p != "32-true") {
            let dir = tempfile::tempdir().expect("tempdir");
            let run =
                fit_logging_every_step(dir.path(), name, "0", &epochs, &threads, &["--precision", precision.as_str()]);
            if let Some(error) = want["error"].as_str() {
                // torch cannot run it on this CPU (bfloat16 autocast LSTM without AVX-512):
                // lthost runs the same kernel and ends with torch's error, not a panic.
                assert!(
                    !run.ok() && run.stderr.contains(error),
                    "{name} {precision}: torch said {error}; {}",
                    run.stderr
                );
                assert!(!run.stderr.contains("panicked"), "{name} {precision}: {}", run.stderr);
                continue;
            }
            let want: Vec<f64> = want.as_array().expect("losses").iter().map(|v| v.as_f64().expect("f64")).collect();
            assert!(run.ok(), "{name} {precision}: {}", run.stderr);
            let got = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "train_loss");
            assert_eq!(got.len(), want.len(), "{name} {precision}: step count");
            for (step, (g, w)) in got.iter().zip(&want).enumerate() {
                // Lightning's to the bit: float64 losses (64-true) within serde_json's one-ulp
                // parse, the others as the float32 values they are.
                let same =
                    if precision == "64-true" { (g - w).abs() <= 1e-15 * w.abs() } else { *g as f32 == *w as f32 };
                assert!(same, "{name} {precision} step {step}: lthost {g}, Lightning {w}");
            }
        }
    }
}

#[test]
fn lightning_files_train_in_each_precision_as_in_lightning() {
    for name in [
        "python-tiny-transformer-bf16-mixed",
        "python-tiny-transformer-64-true",
        "python-tiny-transformer-bf16-true",
        "lit-resnet-bf16-mixed",
        "lit-resnet-64-true",
        "lit-nanogpt-bf16-mixed",
        "lit-nanogpt-bf16-true",
        "lit-mnist-bf16-mixed",
        "lit-mnist-64-true",
        "lit-boring-bf16-true",
        "lit-multi-val-bf16-mixed",
        "lit-boring-16",
        "lit-augment-workers-64-true",
        "lit-manual-16-mixed",
        "lit-lion-16-mixed",
        "lit-mnist-16-mixed",
    ] {
        // Every metrics.csv column Lightning wrote ends on Lightning's value (validation
        // under autocast too); every training loss is Lightning's.
        let (got, _, want) = run_like_lightning(name);
        assert_training_losses(name, &got, &want);
    }
}

#[test]
fn the_rust_tiny_transformer_trains_in_each_precision_as_lightning_trains_its_file() {
    // The Rust plugin and the Lightning file are one model (tests/e2e/languages.rs): in each
    // precision the Rust SDK's layers give the losses Lightning gives the file.
    for precision in ["bf16-mixed", "64-true", "bf16-true"] {
        let want = file_reference(&format!("python-tiny-transformer-{precision}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let wasm = plugin("tiny-transformer");
        let (seed, epochs) = (want["seed"].to_string(), want["epochs"].to_string());
        let run = lthost(
            dir.path(),
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
                "--precision",
                precision,
            ],
        );
        assert!(run.ok(), "{precision}: {}", run.stderr);
        let got = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "train_loss");
        assert_training_losses(&format!("tiny-transformer {precision}"), &got, &want);
    }
}

#[test]
fn precision_values_are_taken_and_refused_in_lightnings_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("parity-mlp");
    let fit = |precision: &str| {
        let args = ["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--seed", "0", "--max-epochs", "1"];
        lthost(dir.path(), &[&args[..], &["--no-progress-bar", "--precision", precision]].concat())
    };
    // The alias 16 is 16-mixed, which Lightning runs as bf16-mixed on the CPU, saying both.
    let run = fit("16");
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stderr.contains("`precision=16` is supported for historical reasons but its usage is discouraged. Please set your precision to 16-mixed instead!"), "{}", run.stderr);
    assert!(run.stderr.contains("You passed `Trainer(accelerator='cpu', precision='16-mixed')` but AMP with fp16 is not supported on CPU. Using `precision='bf16-mixed'` instead."), "{}", run.stderr);
    assert!(run.stdout.contains("Using bfloat16 Automatic Mixed Precision (AMP)"), "{}", run.stdout);
    // 64 and "32" without a word.
    let run = fit("64");
    assert!(run.ok() && !run.stderr.contains("historical"), "{}", run.stderr);
    let run = fit("17-mixed");
    assert!(!run.ok());
    assert!(
        run.stderr.contains("Precision '17-mixed' is invalid. Allowed precision values: ('transformer-engine', 'transformer-engine-float16', '16-true', '16-mixed', 'bf16-true', 'bf16-mixed', '32-true', '64-true', 64, 32, 16, '64', '32', '16', 'bf16')"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_checkpoint_of_one_precision_resumes_in_another() {
    // bf16-true weights and Adam state (bfloat16) resumed in 32-true: converted to the
    // parameters' dtype as torch's load_state_dict converts them; and back.
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("parity-mlp");
    let w = wasm.to_str().expect("utf-8");
    let common = [
        "--accelerator",
        "cpu",
        "--seed",
        "0",
        "--no-progress-bar",
        "--log-every-n-steps",
        "1",
        "--set",
        "checkpoint.save_last=true",
    ];
    let run = lthost(dir.path(), &[&["fit", w, "--max-epochs", "1", "--precision", "bf16-true"], &common[..]].concat());
    assert!(run.ok(), "{}", run.stderr);
    for (precision, version, epochs) in [("32-true", 1, "2"), ("64-true", 2, "3"), ("bf16-mixed", 3, "4")] {
        let args = ["fit", w, "--max-epochs", epochs, "--precision", precision, "--ckpt-path", "last"];
        let run = lthost(dir.path(), &[&args[..], &common[..]].concat());
        assert!(run.ok(), "{precision}: {}", run.stderr);
        let losses = column(&read_metrics(&dir.path().join(format!("lightning_logs/version_{version}"))), "train_loss");
        assert_eq!(losses.len(), 5, "{precision}: one more epoch");
        assert!(losses.iter().all(|l| l.is_finite()), "{precision}: {losses:?}");
    }
}

/// `lthost fit` of parity-mlp in 16-mixed with the reference's scaler (Lightning's
/// `MixedPrecision("16-mixed", "cpu", scaler=GradScaler("cpu", ...))`), `extra` appended.
fn fit_with_scaler(dir: &std::path::Path, scaler: &serde_json::Value, extra: &[&str]) -> crate::common::Run {
    let wasm = plugin("parity-mlp");
    let init = format!("trainer.mixed_precision.scaler.init_scale={:?}", scaler["init_scale"].as_f64().expect("f64"));
    let interval = format!("trainer.mixed_precision.scaler.growth_interval={}", scaler["growth_interval"]);
    let args = [
        "fit",
        wasm.to_str().expect("utf-8"),
        "--accelerator",
        "cpu",
        "--seed",
        "0",
        "--threads",
        "1",
        "--no-progress-bar",
        "--log-every-n-steps",
        "1",
        "--set",
        "trainer.mixed_precision.precision=\"16-mixed\"",
        "--set",
        "trainer.mixed_precision.device=\"cpu\"",
        "--set",
        &init,
        "--set",
        &interval,
        "--set",
        "checkpoint.save_last=true",
    ];
    lthost(dir, &[&args[..], extra].concat())
}

#[test]
fn sixteen_mixed_skips_overflowing_steps_and_moves_the_scale_as_torchs_grad_scaler() {
    // Lightning's run overflowed the float16 backward and skipped steps, backed the scale off
    // and grew it again; lthost's steps give its losses, and its last checkpoint holds the
    // scaler state Lightning's has at the end. Resumed from the end of epoch 2, the run goes
    // on with the scale it had there, to the same losses and the same final state.
    let reference = parity_reference();
    let scaler = &reference["scaler"]["args"];
    let want = &reference["scaler"]["parity-mlp"];
    assert!(want["skipped"].as_u64().expect("skipped steps") >= 3, "the reference overflows: {want}");
    let losses: Vec<f64> =
        want["losses"].as_array().expect("losses").iter().map(|v| v.as_f64().expect("f64")).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = fit_with_scaler(dir.path(), scaler, &["--max-epochs", "4"]);
    assert!(run.ok(), "{}", run.stderr);
    let got = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "train_loss");
    assert_eq!(got.len(), losses.len());
    for (step, (g, w)) in got.iter().zip(&losses).enumerate() {
        assert!(*g as f32 == *w as f32, "16-mixed step {step}: lthost {g}, Lightning {w}");
    }
    let state = |dir: &std::path::Path, version: u32| {
        let path = dir.join(format!("lightning_logs/version_{version}/checkpoints/last.ckpt"));
        lthost::checkpoint::load(&path).expect("last.ckpt").meta.precision_plugin.expect("the scaler's state")
    };
    assert_eq!(state(dir.path(), 0), want["state"], "the scaler's state at the end");

    let resumed = tempfile::tempdir().expect("tempdir");
    let run = fit_with_scaler(resumed.path(), scaler, &["--max-epochs", "2"]);
    assert!(run.ok(), "{}", run.stderr);
    let run = fit_with_scaler(resumed.path(), scaler, &["--max-epochs", "4", "--ckpt-path", "last"]);
    assert!(run.ok(), "{}", run.stderr);
    let got = column(&read_metrics(&resumed.path().join("lightning_logs/version_1")), "train_loss");
    let half = losses.len() / 2;
    assert_eq!(got.len(), losses.len() - half);
    for (step, (g, w)) in got.iter().zip(&losses[half..]).enumerate() {
        assert!(*g as f32 == *w as f32, "resumed 16-mixed step {}: lthost {g}, Lightning {w}", step + half);
    }
    assert_eq!(state(resumed.path(), 1), want["state"], "the resumed run's scaler state at the end");
}

#[test]
fn a_step_sees_the_runs_precision_as_in_lightning() {
    // tests/plugins/torch-probe's training_step prints what it sees: trainer.precision, the CPU
    // autocast state and dtype, the default dtype, the batch's dtype and a layer's output
    // dtype; Lightning's lines for the same file are in torch_api.json.
    let text = std::fs::read_to_string(crate::common::repo_root().join("tests/reference/torch_api.json"))
        .expect("run `make reference` (torch_api.json)");
    let reference: serde_json::Value = serde_json::from_str(&text).expect("json");
    let seen = reference["precision"].as_object().expect("Lightning's lines per precision");
    assert_eq!(seen.len(), 4);
    for (precision, want) in seen {
        let dir = tempfile::tempdir().expect("tempdir");
        let wasm = plugin("torch-probe");
        let args = ["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--seed", "42", "--max-epochs", "1"];
        let run = lthost(dir.path(), &[&args[..], &["--no-progress-bar", "--precision", precision.as_str()]].concat());
        assert!(run.ok(), "{precision}: {}", run.stderr);
        let line = run.stderr.lines().find_map(|l| l.split_once("torch-probe-precision: ").map(|(_, j)| j));
        let got: serde_json::Value = serde_json::from_str(line.expect("the probe's line")).expect("json");
        assert_eq!(&got, want, "{precision}: what the step sees");
    }
}
