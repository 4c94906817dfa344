//! Dataset files: `.npz` written by NumPy (stored and deflated) read back exactly; MNIST-
//! format IDX files (plain and gzipped) training the mnist-cnn example; malformed files
//! refused with the file and the byte offset that is wrong.

use std::io::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::common::{lthost, plugin, repo_root};

#[test]
fn npz_archives_from_numpy_read_back_exactly() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/reference/data.json"))
            .expect("data.json: run `make reference`"),
    )
    .expect("JSON");
    let want = reference["npz"].as_object().expect("npz contents");
    for file in ["arrays.npz", "arrays_compressed.npz"] {
        let bytes =
            std::fs::read(repo_root().join("tests/reference/npz").join(file)).expect("written by data_reference.py");
        let got = lthost::datasets::npz::parse(&bytes, 1 << 31, 1 << 30).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got.len(), want.len(), "{file}");
        for (name, t) in got {
            let w = &want[&name];
            assert_eq!(
                t.size(),
                serde_json::from_value::<Vec<i64>>(w["shape"].clone()).expect("shape"),
                "{file}:{name}"
            );
            let values = Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).expect("values");
            assert_eq!(
                values,
                serde_json::from_value::<Vec<f64>>(w["values"].clone()).expect("values"),
                "{file}:{name}"
            );
        }
        // Cut anywhere: refused, never a panic.
        for cut in [10, bytes.len() / 2, bytes.len() - 5] {
            assert!(lthost::datasets::npz::parse(&bytes[..cut], 1 << 31, 1 << 30).is_err(), "{file} cut at {cut}");
        }
    }
}

/// MNIST-format files: 28x28 images whose label is where a bright band is.
fn write_mnist(dir: &Path, n: usize, prefix: &str, gz: bool) {
    let mut images = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i * 7 % 10) as u8;
        for r in 0..28 {
            for c in 0..28 {
                let band = r / 2 == label as usize + 2;
                images.push(if band { 200 + ((i + c) % 50) as u8 } else { ((i * 31 + r * 7 + c * 3) % 40) as u8 });
            }
        }
        labels.push(label);
    }
    let img = lthost::datasets::idx::write(0x08, &[n as u32, 28, 28], &images);
    let lab = lthost::datasets::idx::write(0x08, &[n as u32], &labels);
    let save = |name: &str, bytes: &[u8]| {
        if gz {
            let f = std::fs::File::create(dir.join(format!("{name}.gz"))).expect("create");
            let mut z = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            z.write_all(bytes).expect("gzip");
            z.finish().expect("gzip");
        } else {
            std::fs::write(dir.join(name), bytes).expect("write");
        }
    };
    save(&format!("{prefix}-images-idx3-ubyte"), &img);
    save(&format!("{prefix}-labels-idx1-ubyte"), &lab);
}

#[test]
fn mnist_cnn_trains_on_idx_files() {
    let d = tempfile::tempdir().expect("tempdir");
    let data = d.path().join("mnist");
    std::fs::create_dir(&data).expect("mkdir");
    write_mnist(&data, 640, "train", false);
    write_mnist(&data, 200, "t10k", true);
    let wasm = plugin("mnist-cnn");
    let run = lthost(
        d.path(),
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--max-epochs",
            "3",
            "--seed",
            "0",
            "--no-progress-bar",
            "--hparams",
            "{\"val_size\": 128, \"batch_size\": 32, \"lr\": 0.003}",
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let acc = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("val_acc"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("val_acc in the summary");
    assert!(acc > 0.9, "the CNN learns the banded digits: val_acc {acc}\n{}", run.stdout);
    let test = lthost(
        d.path(),
        &["test", wasm.to_str().expect("utf-8"), "--data-dir", data.to_str().expect("utf-8"), "--no-progress-bar"],
    );
    assert!(test.ok() && test.stdout.contains("test_acc"), "{}", test.stderr);
}

#[test]
fn malformed_files_name_the_file_and_the_byte() {
    let d = tempfile::tempdir().expect("tempdir");
    let data = d.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let good = lthost::datasets::idx::write(0x08, &[4, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    std::fs::write(data.join("short-ubyte"), &good[..good.len() - 3]).expect("write");
    std::fs::write(data.join("magic.idx"), [1u8, 0, 8, 1, 0, 0, 0, 1, 9]).expect("write");
    std::fs::write(data.join("kind.idx"), [0u8, 0, 0x42, 1, 0, 0, 0, 1, 9]).expect("write");
    std::fs::write(data.join("bad.npy"), b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}").expect("write");
    std::fs::write(data.join("bad.npz"), b"PK\x03\x04 not really a zip").expect("write");
    std::fs::write(data.join("what.txt"), b"?").expect("write");
    let cases: &[(&str, &[&str])] = &[
        ("short-ubyte", &["`short-ubyte`", "byte 12", "need 8 bytes", "holds 5"]),
        ("magic.idx", &["`magic.idx`", "byte 0", "two zero bytes"]),
        ("kind.idx", &["`kind.idx`", "byte 2", "type code 0x42"]),
        ("bad.npy", &["`bad.npy`", "byte 10"]),
        ("bad.npz", &["`bad.npz`", "not a zip"]),
        ("what.txt", &["`what.txt`", "unsupported format"]),
    ];
    let wasm = plugin("digits-mlp");
    for (file, needles) in cases {
        let hp = format!("{{\"data_file\": \"{file}\"}}");
        let run = lthost(
            d.path(),
            &[
                "fit",
                wasm.to_str().expect("utf-8"),
                "--data-dir",
                data.to_str().expect("utf-8"),
                "--max-epochs",
                "1",
                "--hparams",
                &hp,
            ],
        );
        let mut all = vec!["plugin `digits-mlp`", "op `load`"];
        all.extend_from_slice(needles);
        run.assert_fails_with(&all);
    }
}

/// mnist-cnn with `augment`: each batch randomly cropped and flipped by lthost_sdk's
/// transforms gives the losses of the same augmentation written in torch
/// (tests/reference/transforms_reference.py), step for step.
#[test]
fn augmented_batches_train_as_in_torch() {
    let path = repo_root().join("tests/reference/transforms.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let data = r["dir"].as_str().expect("dir");
    let wasm = plugin("mnist-cnn");
    for (seed, want) in r["seeds"].as_object().expect("seeds") {
        let d = tempfile::tempdir().expect("tempdir");
        let run = lthost(
            d.path(),
            &[
                "fit",
                wasm.to_str().expect("utf-8"),
                "--data-dir",
                data,
                "--seed",
                seed,
                "--max-epochs",
                "2",
                "--no-progress-bar",
                "--set",
                "trainer.log_every_n_steps=1",
                "--set",
                "trainer.limit_val_batches=0",
                "--hparams",
                "{\"augment\": true, \"val_size\": 32, \"batch_size\": 32, \"lr\": 0.003}",
            ],
        );
        assert!(run.ok(), "{}", run.stderr);
        let got = crate::common::column(
            &crate::common::read_metrics(&d.path().join("lightning_logs/version_0")),
            "train_loss",
        );
        let want: Vec<f64> = serde_json::from_value(want.clone()).expect("losses");
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-5, "seed {seed}, step {i}: lthost {g} vs torch {w}");
        }
    }
}
