//! Well-known models ported as plugins on the generic ATen ops, against the same models in
//! torch: nanoGPT (plugins/nanogpt, tests/reference/nanogpt_reference.py) on both attention
//! paths, with a resume that keeps its tied embedding tied, and a BasicBlock ResNet
//! (plugins/resnet, tests/reference/resnet_reference.py) with BatchNorm and momentum SGD.

use crate::common::{column, read_metrics, repo_root};
use crate::parity::fit_logging_every_step;

fn reference_of(name: &str) -> serde_json::Value {
    let path = repo_root().join(format!("tests/reference/{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("valid reference JSON")
}

fn reference() -> serde_json::Value {
    reference_of("nanogpt")
}

fn losses_of(name: &str, dir: &std::path::Path, epochs: &str, extra: &[&str]) -> Vec<f64> {
    let r = reference_of(name);
    let seed = r["seed"].as_u64().expect("seed").to_string();
    let threads = r["threads"].as_u64().expect("threads").to_string();
    let run = fit_logging_every_step(dir, name, &seed, epochs, &threads, extra);
    assert!(run.ok(), "{name} failed:\n{}", run.stderr);
    column(&read_metrics(&dir.join("lightning_logs/version_0")), "train_loss")
}

fn losses(dir: &std::path::Path, epochs: &str, extra: &[&str]) -> Vec<f64> {
    losses_of("nanogpt", dir, epochs, extra)
}

#[test]
fn nanogpt_matches_torch_every_step_on_both_attention_paths() {
    let r = reference();
    for (path, hparams) in [("flash", r#"{"flash": true}"#), ("masked", r#"{"flash": false}"#)] {
        let want: Vec<f64> =
            r["losses"][path].as_array().expect("losses").iter().map(|v| v.as_f64().expect("a loss")).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let got = losses(dir.path(), "1", &["--hparams", hparams]);
        assert_eq!(got.len(), want.len(), "{path}: steps");
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        println!("nanogpt {path}: {} steps, largest difference from torch {worst:e}", got.len());
        for (step, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{path} step {step}: lthost {g} vs torch {w}");
        }
    }
}

#[test]
fn nanogpt_from_pretrained_safetensors_weights_matches_torch() {
    let r = reference();
    let want: Vec<f64> =
        r["losses"]["pretrained"].as_array().expect("losses").iter().map(|v| v.as_f64().expect("a loss")).collect();
    let file = r["init_from"].as_str().expect("init_from");
    let data = repo_root().join("tests/reference/files");
    let hparams = format!(r#"{{"init_from": "{file}"}}"#);
    let dir = tempfile::tempdir().expect("tempdir");
    let got = losses(dir.path(), "1", &["--hparams", &hparams, "--data-dir", data.to_str().expect("utf-8")]);
    assert_eq!(got.len(), want.len(), "steps");
    assert_ne!(got[0] as f32, r["losses"]["flash"][0].as_f64().expect("a loss") as f32, "the weights were loaded");
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "step {step}: lthost {g} vs torch {w}");
    }
    // A file that does not fit the model is refused, naming what is off.
    let bad = tempfile::tempdir().expect("tempdir");
    let narrow = format!(r#"{{"init_from": "{file}", "n_embd": 32}}"#);
    let run = crate::parity::fit_logging_every_step(
        bad.path(),
        "nanogpt",
        "1",
        "1",
        "1",
        &["--hparams", &narrow, "--data-dir", data.to_str().expect("utf-8")],
    );
    assert!(!run.ok());
    assert!(
        run.stderr.contains("`transformer.h.0.attn.c_attn.weight` has shape [192, 64], the model's [96, 32]"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_resumed_nanogpt_keeps_its_tied_embedding_and_its_losses() {
    let straight = tempfile::tempdir().expect("tempdir");
    let want = losses(straight.path(), "2", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = losses(dir.path(), "1", &[]);
    let ckpt = dir.path().join("lightning_logs/version_0/checkpoints/epoch=0-step=100.ckpt");
    let saved = lthost::checkpoint::load(&ckpt).expect("a checkpoint");
    assert!(saved.tensors.contains_key("state_dict.transformer.wte.weight"));
    assert!(!saved.tensors.contains_key("state_dict.lm_head.weight"), "a tied parameter is stored once");
    assert_eq!(saved.meta.tied.get("lm_head.weight").map(String::as_str), Some("transformer.wte.weight"));
    let resumed = tempfile::tempdir().expect("tempdir");
    let ckpt_arg = ckpt.to_str().expect("utf-8");
    let got = losses(resumed.path(), "2", &["--ckpt-path", ckpt_arg]);
    assert_eq!(got.len(), 100, "the second epoch only");
    for (step, (g, w)) in got.iter().zip(&want[100..]).enumerate() {
        assert!(*g as f32 == *w as f32, "step {}: resumed {g} vs straight {w}", step + 100);
    }
}

#[test]
fn a_basicblock_resnet_matches_torch_every_step() {
    let r = reference_of("resnet");
    let want: Vec<f64> = r["losses"].as_array().expect("losses").iter().map(|v| v.as_f64().expect("a loss")).collect();
    let epochs = r["epochs"].as_u64().expect("epochs").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let got = losses_of("resnet", dir.path(), &epochs, &[]);
    assert_eq!(got.len(), want.len(), "steps");
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
    println!("resnet: {} steps, largest difference from torch {worst:e}", got.len());
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "step {step}: lthost {g} vs torch {w}");
    }
}
