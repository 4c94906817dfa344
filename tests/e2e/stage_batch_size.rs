//! The batch-size finder in validate, test and predict runs against Lightning 2.6.6
//! (tests/reference/lightning_files_reference.py `EVAL_BATCH_SIZE`; docs/lightning-tests/
//! tuner.md rows 40 and 41): `[callbacks.batch_size_finder]` searches at the stage's start and
//! the run goes on at the size found; `--scale-batch-size` is the Tuner's own run first.

use serde_json::Value;

use crate::common::{lthost, plugin};
use crate::lightning_files::{assert_close, reference, results_table};

/// Runs the reference's case with lthost; its stdout.
fn run_case(name: &str, dir: &std::path::Path) -> String {
    let want = reference(name);
    let stage = want["stage"].as_str().expect("the stage");
    let wasm = plugin(want["plugin"].as_str().expect("the plugin"));
    let seed = want["seed"].to_string();
    let mut args: Vec<String> = vec![stage.into(), wasm.to_string_lossy().into_owned(), "--accelerator".into()];
    args.extend(["cpu".into(), "--seed".into(), seed, "--no-progress-bar".into()]);
    if !want["hparams"].is_null() {
        args.extend(["--hparams".into(), want["hparams"].to_string()]);
    }
    let table = match want["how"].as_str() {
        Some("tuner") => {
            args.push("--scale-batch-size".into());
            "scale_batch_size"
        }
        _ => "callbacks.batch_size_finder",
    };
    for (k, v) in want["args"].as_object().expect("the finder's arguments") {
        args.extend(["--set".into(), format!("{table}.{k}={v}")]);
    }
    let run = lthost(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.ok(), "{name}: {}", run.stderr);
    // Every line Lightning's search logged about batch sizes, in order.
    let said: Vec<&str> = want["said"].as_array().expect("said").iter().filter_map(Value::as_str).collect();
    let got: Vec<&str> = run.stdout.lines().filter(|l| l.contains("atch size") || l.contains("margin")).collect();
    assert_eq!(got, said, "{name}: the search's lines\n{}", run.stdout);
    run.stdout
}

#[test]
fn the_batch_size_finder_searches_validate_and_test_runs_as_lightnings() {
    // Validate and test: the trials at init_val and up (the loop asks for its loaders at each
    // trial), the dataset-length stop, binsearch's margin; then the run over the whole loader
    // at the size found gives Lightning's results.
    // A trial whose test_step runs out of memory (CUDA's message) fails that step only: the
    // plugin goes on, as Lightning's module does, and power mode halves.
    // The `*-batch-only` runs have no finder: steps that take the batch alone are called so.
    let cases = ["bsf-validate-lit-autoencoder", "bsf-test-lit-hparams", "scale-validate-lit-hparams-binsearch"];
    let batch_only = ["validate-lit-hparams-batch-only", "test-lit-hparams-batch-only"];
    for name in cases.into_iter().chain(["bsf-test-lit-hparams-oom"]).chain(batch_only) {
        let want = reference(name);
        let d = tempfile::tempdir().expect("tempdir");
        let stdout = run_case(name, d.path());
        let title = if want["stage"] == "test" { "Test metric" } else { "Validate metric" };
        let got = results_table(&stdout, title);
        let results = want["results"].as_array().expect("results");
        assert_eq!(got.len(), results.len(), "{name}: DataLoaders\n{stdout}");
        for (g, w) in got.iter().zip(results) {
            let w = w.as_object().expect("a result");
            assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{name}: metrics");
            for (k, v) in w {
                assert_close(name, k, g[k], v.as_f64().expect("f64"));
            }
        }
    }
}

#[test]
fn the_batch_size_finder_searches_predict_runs_as_lightnings() {
    // Predict: each trial runs every batch; the predictions come in batches of the size found.
    for name in [
        "bsf-predict-lit-hparams",
        "scale-predict-lit-hparams",
        "scale-predict-lit-hparams-oom",
        "predict-lit-hparams-batch-only",
    ] {
        let want = reference(name);
        let d = tempfile::tempdir().expect("tempdir");
        run_case(name, d.path());
        let path = d.path().join("predictions.safetensors");
        let mut got = tch::Tensor::read_safetensors(&path).expect("predictions");
        got.sort_by_key(|(n, _)| n.trim_start_matches("batch_").parse::<u64>().unwrap_or(u64::MAX));
        let batches = want["predictions"].as_array().expect("predictions");
        assert_eq!(got.len(), batches.len(), "{name}: prediction batches");
        for (i, ((_, t), w)) in got.iter().zip(batches).enumerate() {
            let rows = w.as_array().expect("rows");
            assert_eq!(t.size()[0], rows.len() as i64, "{name}: batch {i}'s size");
            let values: Vec<f64> = Vec::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).expect("values");
            let want: Vec<f64> =
                rows.iter().flat_map(|r| r.as_array().expect("a row").iter()).filter_map(Value::as_f64).collect();
            assert_eq!(values.len(), want.len(), "{name}: batch {i}");
            for (j, (g, w)) in values.iter().zip(&want).enumerate() {
                assert_close(name, &format!("batch {i} value {j}"), *g, *w);
            }
        }
    }
}

#[test]
fn the_batch_size_finder_refuses_several_loaders_and_the_tuner_beside_it() {
    // Lightning's BatchSizeFinder.setup refuses a stage with several DataLoaders
    // (test_batch_size_finder_with_multiple_eval_dataloaders), before any hook of the module.
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-multi-val");
    let args = ["validate", wasm.to_str().expect("utf-8"), "--set", "callbacks.batch_size_finder.max_trials=2"];
    let run = lthost(d.path(), &args);
    run.assert_fails_with(&["The Batch size finder cannot be used with multiple val dataloaders."]);
    // Under fast_dev_run the search is skipped, but the callback's `setup` checks still run.
    let args = [
        "validate",
        wasm.to_str().expect("utf-8"),
        "--set",
        "callbacks.batch_size_finder.max_trials=2",
        "--set",
        "trainer.fast_dev_run=true",
    ];
    let run = lthost(d.path(), &args);
    run.assert_fails_with(&["The Batch size finder cannot be used with multiple val dataloaders."]);
    // A stage limited to 0 batches has nothing to search (Lightning's finder fails on an
    // assertion there): no trial, and the run goes on.
    let wasm = plugin("lit-hparams");
    let args = [
        "predict",
        wasm.to_str().expect("utf-8"),
        "--set",
        "callbacks.batch_size_finder.max_trials=3",
        "--set",
        "trainer.limit_predict_batches=0",
    ];
    let run = lthost(d.path(), &args);
    assert!(run.ok(), "{}", run.stderr);
    assert!(!run.stdout.contains("atch size"), "no search: {}", run.stdout);
    // The Tuner beside the callback: Lightning's refusal.
    let args = [
        "test",
        wasm.to_str().expect("utf-8"),
        "--scale-batch-size",
        "--set",
        "callbacks.batch_size_finder.max_trials=2",
    ];
    let run = lthost(d.path(), &args);
    run.assert_fails_with(&["Trainer is already configured with a `BatchSizeFinder` callback."]);
}
