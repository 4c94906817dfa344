//! The DataLoader against torch.utils.data (tests/reference/data_reference.py): the rows of
//! every pass for each sampler, batch sizes and drop_last, and the generator's state after
//! three passes (torch.rand values drawn after them) — lthost draws what torch draws.

use lthost::data::fetchers::DataLoader;
use lthost::data::sampler::Sampler;
use lthost::module::{DatasetSpec, Split};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::common::repo_root;

fn sampler(case: &Value, weights: &[f64]) -> Option<Sampler> {
    if let Some(w) = case.get("weighted") {
        return Some(Sampler::Weighted {
            weights: weights.to_vec(),
            num_samples: w["num_samples"].as_i64().expect("n"),
            replacement: w["replacement"].as_bool().expect("bool"),
        });
    }
    case.get("distributed").map(|d| Sampler::Distributed {
        num_replicas: d["num_replicas"].as_i64().expect("n"),
        rank: d["rank"].as_i64().expect("rank"),
        shuffle: d["shuffle"].as_bool().expect("bool"),
        seed: d["seed"].as_i64().expect("seed"),
        drop_last: d["drop_last"].as_bool().expect("bool"),
    })
}

#[test]
fn samplers_visit_the_rows_torch_visits_and_draw_what_torch_draws() {
    let path = repo_root().join("tests/reference/data.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    let reference: Value = serde_json::from_str(&text).expect("JSON");
    let n = reference["n"].as_i64().expect("n");
    let weights: Vec<f64> =
        reference["weights"].as_array().expect("weights").iter().map(|w| w.as_f64().expect("w")).collect();
    let cases = reference["cases"].as_object().expect("cases");
    assert!(cases.len() >= 9);
    let _rng = crate::common::global_rng();
    for (name, c) in cases {
        let case = &c["case"];
        for (seed, want) in c["seeds"].as_object().expect("seeds") {
            tch::manual_seed(seed.parse().expect("seed"));
            let spec = DatasetSpec {
                columns: vec![Tensor::arange(n, (Kind::Int64, Device::Cpu))],
                batch_size: case["batch_size"].as_u64().expect("bs") as usize,
                shuffle: case["shuffle"].as_bool().unwrap_or(false),
                drop_last: case["drop_last"].as_bool().unwrap_or(false),
                sampler: sampler(case, &weights),
                items: None,
                persistent_workers: false,
            };
            let loader = DataLoader::new(spec, Split::Train, "test").expect("a loader");
            for (epoch, want_pass) in want["passes"].as_array().expect("passes").iter().enumerate() {
                let got: Vec<Vec<i64>> = loader
                    .epoch_from(Device::Cpu, None, 0, epoch as u64)
                    .expect("a pass")
                    .map(|b| Vec::<i64>::try_from(&b.expect("a batch")[0]).expect("ints"))
                    .collect();
                let want_pass: Vec<Vec<i64>> = serde_json::from_value(want_pass.clone()).expect("batches");
                assert_eq!(got, want_pass, "{name}, seed {seed}, pass {epoch}");
            }
            let after = Vec::<f32>::try_from(Tensor::rand([3], (Kind::Float, Device::Cpu))).expect("floats");
            let want_after: Vec<f32> = serde_json::from_value(want["after"].clone()).expect("floats");
            assert_eq!(after, want_after, "{name}, seed {seed}: the generator after three passes");
        }
    }
}

#[test]
fn bad_samplers_are_refused_with_the_reason() {
    let col = || vec![Tensor::arange(4, (Kind::Int64, Device::Cpu))];
    let spec = |s: Sampler| DatasetSpec {
        columns: col(),
        batch_size: 2,
        shuffle: false,
        drop_last: false,
        sampler: Some(s),
        items: None,
        persistent_workers: false,
    };
    let e = DataLoader::new(
        spec(Sampler::Weighted { weights: vec![1.0; 3], num_samples: 2, replacement: true }),
        Split::Train,
        "plugin `p`",
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("plugin `p`") && e.contains("3 weights for 4 rows"), "{e}");
    let e = DataLoader::new(
        spec(Sampler::Weighted { weights: vec![1.0, 0.0, 0.0, 0.0], num_samples: 2, replacement: false }),
        Split::Train,
        "p",
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("without replacement"), "{e}");
    let e = DataLoader::new(
        spec(Sampler::Distributed { num_replicas: 2, rank: 5, shuffle: false, seed: 0, drop_last: false }),
        Split::Train,
        "p",
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("rank 5"), "{e}");
}

/// Prefetching on a background thread changes nothing but timing: the digits run gives the
/// same losses with the batches gathered inline and three ahead.
#[test]
fn prefetching_keeps_the_losses() {
    let wasm = crate::common::plugin("digits-mlp");
    let data = repo_root().join("plugins/digits-mlp/data");
    let mut losses = Vec::new();
    for depth in ["0", "3"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = format!("trainer.prefetch_batches={depth}");
        let run = crate::common::lthost(
            dir.path(),
            &[
                "fit",
                wasm.to_str().expect("utf-8"),
                "--data-dir",
                data.to_str().expect("utf-8"),
                "--seed",
                "1",
                "--max-epochs",
                "2",
                "--log-every-n-steps",
                "1",
                "--no-progress-bar",
                "--set",
                &set,
            ],
        );
        assert!(run.ok(), "{}", run.stderr);
        losses.push(crate::common::column(
            &crate::common::read_metrics(&dir.path().join("lightning_logs/version_0")),
            "train_loss",
        ));
    }
    assert_eq!(losses[0].len(), 80);
    assert_eq!(losses[0], losses[1]);
}
