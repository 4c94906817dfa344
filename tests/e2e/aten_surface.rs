//! The generic ATen surface as a plugin sees it (tests/plugins/aten-probe): op errors are
//! values it catches and survives, grad mode and `.grad` behave as torch's, every denied
//! operator is refused with its reason, and the tensor budget holds for generic ops.

use crate::common::{lthost, plugin};

#[test]
fn a_plugin_catches_op_errors_drives_autograd_and_stays_in_its_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("limits.toml");
    std::fs::write(&cfg, "[plugin]\ntensor_memory_limit_mb = 64\n").expect("config");
    // Every registered operator the denylist refuses (by name or by family), by its full name.
    let registered = lthost::engine::aten::Op::registered();
    let denied: Vec<String> =
        lthost::engine::aten_denylist::denied_among(&registered).into_iter().map(String::from).collect();
    assert!(denied.len() > 100, "{} denied", denied.len());
    let hparams = serde_json::json!({ "denied": denied }).to_string();
    let run = probe(dir.path(), &["--config", cfg.to_str().expect("utf-8"), "--hparams", &hparams]);
    assert!(run.ok(), "the probe survives every caught error:\n{}", run.stderr);
    let said = |name: &str| -> String {
        let key = format!("probe {name}: ");
        let line = run.stderr.lines().find_map(|l| l.split_once(&key).map(|(_, v)| v.to_string()));
        line.unwrap_or_else(|| panic!("no `{name}` probe in:\n{}", run.stderr))
    };
    let has = |name: &str, parts: &[&str]| {
        let got = said(name);
        for p in parts {
            assert!(got.contains(p), "probe {name}: {got:?} lacks {p:?}");
        }
    };
    has("mm-shapes", &["error: aten::mm: ", "cannot be multiplied"]);
    has("after-error", &["2x2"]);
    has("unknown-op", &["error: ", "no operator aten::no_such_op"]);
    has("flat-too-many", &["error: ", "at most four arguments"]);
    has("flat-several-results", &["error: aten::max.dim: ", "return one tensor"]);
    has("flat-wrong-type", &["error: aten::add.Tensor: ", "argument `other` expects Tensor"]);
    has("flat-missing", &["error: aten::mm: ", "missing argument `mat2`"]);
    has("index-denied", &["error: ", "aten::from_file", "not allowed"]);
    has("index-same", &["true"]);
    has("binary-wrong-type", &["error: aten::pow.Tensor_Scalar: ", "argument `exponent`"]);
    has("ternary-addmm", &["[4.0, 4.0, 4.0, 4.0]"]);
    has("grad-before", &["true"]);
    has("grad-once", &["[2.0, 2.0, 2.0]"]);
    has("grad-twice", &["[4.0, 4.0, 4.0]"]);
    has("graph-freed", &["error: backward: ", "second time"]);
    has("grad-cleared", &["true"]);
    has("grad-weighted", &["[3.0, 1.5, 0.75]"]);
    has("grad-wrong-shape", &["error: grad: ", "different size"]);
    has("no-grad", &["tracked=false enabled-after=true"]);
    has("requires-grad-nonleaf", &["error: requires_grad_: "]);
    has("inference-mode", &["inference=true tracked=false after: inference=false tracked=true"]);
    has("denied", &[&format!("{n} of {n} refused", n = denied.len())]);
    has("denied-example", &["not allowed in a plugin", "file"]);
    for budget in ["budget-output", "budget-materialise", "budget-resize", "budget-autograd"] {
        has(budget, &["error: aten::", "over its budget of 64 MiB"]);
    }
    has("view-chain", &["ok 4194304"]);
    has("after-budget", &["[16]"]);
    let written: Vec<_> =
        walk(dir.path()).into_iter().filter(|p| !p.starts_with(dir.path().join("lightning_logs"))).collect();
    assert_eq!(written, vec![cfg.clone()], "nothing written outside the run's logs");
}

/// One epoch of tests/plugins/aten-probe on the CPU in `dir`, with `extra` arguments.
fn probe(dir: &std::path::Path, extra: &[&str]) -> crate::common::Run {
    let wasm = plugin("aten-probe");
    let mut args =
        vec!["fit", wasm.to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar", "--accelerator", "cpu"];
    args.extend_from_slice(extra);
    lthost(dir, &args)
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A reference file of tests/reference (run `make reference` first).
fn reference(name: &str) -> serde_json::Value {
    let path = crate::common::repo_root().join("tests/reference").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// Asserts that the probe's `probe <key>: [..]` line holds exactly torch's float32 values.
fn assert_bit_equal(stderr: &str, key: &str, want: &serde_json::Value) {
    let prefix = format!("probe {key}: [");
    let line = stderr.lines().find_map(|l| l.split_once(&prefix).map(|(_, v)| v.to_string()));
    let line = line.unwrap_or_else(|| {
        panic!(
            "no `{key}` line in:
{stderr}"
        )
    });
    let got: Vec<f32> = line.trim_end_matches(']').split(", ").map(|v| v.parse().expect("a float")).collect();
    let want: Vec<f32> = want.as_array().expect("list").iter().map(|v| v.as_f64().expect("float") as f32).collect();
    assert_eq!(got.len(), want.len(), "{key}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "{key}[{i}]: lthost {g} vs torch {w}");
    }
}

#[test]
fn the_sdks_nn_init_draws_torchs_values() {
    let r = reference("init.json");
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = r["seed"].as_u64().expect("seed").to_string();
    let run = probe(dir.path(), &["--seed", &seed, "--hparams", r#"{"init_check": true}"#]);
    assert!(run.ok(), "{}", run.stderr);
    let values = r["values"].as_object().expect("values");
    assert_eq!(values.len(), 13);
    // Bit for bit: the same draws from the same generator state with torch's arithmetic.
    for (name, want) in values {
        assert_bit_equal(&run.stderr, &format!("init {name}"), want);
    }
}

#[test]
fn the_sdks_layers_are_torch_nns_in_weights_forward_and_backward() {
    let r = reference("layers.json");
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = r["seed"].as_u64().expect("seed").to_string();
    let run = probe(dir.path(), &["--seed", &seed, "--threads", "1", "--hparams", r#"{"layer_check": true}"#]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stderr.contains("probe layer mode: training=true"), "{}", run.stderr);
    let mut checked = 0;
    // Bit for bit: torch's kernels on torch's weights, through the products torch makes
    // (MultiheadAttention's packed in-projection and fused mask included).
    for (section, kind) in [("outputs", "out"), ("grads", "grad"), ("input_grads", "input-grad"), ("buffers", "buffer")]
    {
        for (name, want) in r[section].as_object().expect("a section") {
            assert_bit_equal(&run.stderr, &format!("layer {kind} {name}"), want);
            checked += 1;
        }
    }
    assert_eq!(checked, 15 + 18 + 6 + 2, "every output, gradient and buffer compared");
}
