//! Unmodified Lightning files as plugins (issue 17): `import torch`, `import lightning as L`,
//! built by `lthost build` with the Python SDK's `torch` and `lightning` packages, give
//! Lightning 2.6.6's per-step losses (tests/reference/lightning_files_reference.py runs the
//! same files in Lightning with the same seed).

use serde_json::Value;

use crate::common::{column, lthost, plugin, read_metrics, repo_root};

pub(crate) fn reference(name: &str) -> Value {
    let path = repo_root().join("tests/reference/lightning_files.json");
    let text = std::fs::read_to_string(&path).expect("run `make reference` (lightning_files.json)");
    let all: Value = serde_json::from_str(&text).expect("json");
    all[name].clone()
}

/// `lthost fit` of plugin `name` on the CPU with `seed`, no progress bar, and `extra`; it must succeed.
fn fit(dir: &std::path::Path, name: &str, seed: &Value, extra: &[&str]) -> crate::common::Run {
    let wasm = plugin(name);
    let seed = seed.to_string();
    let mut args =
        vec!["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--seed", &seed, "--no-progress-bar"];
    args.extend(extra);
    let run = lthost(dir, &args);
    assert!(run.ok(), "{name}: {}", run.stderr);
    run
}

/// `--set` arguments for `key = value`, a JSON object as its dotted keys (`[trainer.mixed_precision]`).
fn set_args(key: &str, value: &Value) -> Vec<String> {
    match value.as_object() {
        Some(table) => table.iter().flat_map(|(k, v)| set_args(&format!("{key}.{k}"), v)).collect(),
        None => vec!["--set".to_string(), format!("{key}={value}")],
    }
}

/// Trains Lightning file plugin `name` as its reference run did; (training losses, the last
/// validation loss) from lthost's metrics.csv, and the reference. Every metrics.csv column
/// Lightning wrote is there, under the same name, ending on the same value, and no other.
pub(crate) fn run_like_lightning(name: &str) -> (Vec<f64>, Option<f64>, Value) {
    let want = reference(name);
    let d = tempfile::tempdir().expect("tempdir");
    let epochs = want["epochs"].to_string();
    let mut args = vec!["--max-epochs".to_string(), epochs, "--log-every-n-steps".into(), "1".into()];
    // The reference's ModelCheckpoint, where it has one: the same checkpoint files.
    let checkpoint = want["checkpoint"].as_object();
    for (k, v) in checkpoint.into_iter().flatten() {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        args.extend(["--set".to_string(), format!("checkpoint.{k}={v}")]);
    }
    if checkpoint.is_some() {
        args.extend(["--set".to_string(), "checkpoint.dirpath=ck".to_string()]);
    }
    // A variant of a file: its plugin, with the reference's hyperparameters.
    if !want["hparams"].is_null() {
        args.extend(["--hparams".to_string(), want["hparams"].to_string()]);
    }
    // ... and its Trainer arguments.
    for (k, v) in want["trainer"].as_object().into_iter().flatten() {
        args.extend(set_args(&format!("trainer.{k}"), v));
    }
    // `Tuner(trainer).lr_find` first, on the same objects: `--lr-find` with its arguments.
    if let Some(kwargs) = want["lr_find"].as_object() {
        args.push("--lr-find".into());
        for (k, v) in kwargs {
            let v = if v.is_null() { "\"none\"".to_string() } else { v.to_string() };
            args.extend(["--set".to_string(), format!("lr_find.{k}={v}")]);
        }
    }
    // `Tuner(trainer).scale_batch_size` first: `--scale-batch-size` with its arguments.
    if let Some(kwargs) = want["scale_batch_size"].as_object() {
        args.push("--scale-batch-size".into());
        for (k, v) in kwargs {
            args.extend(["--set".to_string(), format!("scale_batch_size.{k}={v}")]);
        }
    }
    // Lightning's `LearningRateFinder` callback in the fit: `[callbacks.learning_rate_finder]`.
    for (k, v) in want["learning_rate_finder"].as_object().into_iter().flatten() {
        let v = if v.is_null() { "\"none\"".to_string() } else { v.to_string() };
        args.extend(["--set".to_string(), format!("callbacks.learning_rate_finder.{k}={v}")]);
    }
    // Lightning's `EarlyStopping` beside them: `[early_stopping]`.
    for (k, v) in want["early_stopping"].as_object().into_iter().flatten() {
        args.extend(["--set".to_string(), format!("early_stopping.{k}={v}")]);
    }
    // Lightning's `BatchSizeFinder` callback in the fit: `[callbacks.batch_size_finder]`.
    for (k, v) in want["batch_size_finder"].as_object().into_iter().flatten() {
        args.extend(["--set".to_string(), format!("callbacks.batch_size_finder.{k}={v}")]);
    }
    let file = want["plugin"].as_str().expect("the reference's plugin");
    let run = fit(d.path(), file, &want["seed"], &args.iter().map(String::as_str).collect::<Vec<_>>());
    if let Some(summary) = want["summary"].as_str() {
        // Lightning's model summary of the same module, line for line (layers, types,
        // parameter counts, modes, the totals).
        let lines = |t: &str| t.lines().map(|l| l.trim_end().to_string()).collect::<Vec<_>>();
        let (got, table) = (lines(&run.stdout), lines(summary));
        assert!(
            got.windows(table.len()).any(|w| w == table.as_slice()),
            "{name}: Lightning's summary\n{summary}\nis not in\n{}",
            run.stdout
        );
    }
    if let Some(said) = want["said"].as_array() {
        // Every line Lightning's search logged about batch sizes, in order: each trial's
        // outcome, the dataset-length and max_val stops, the margin, the size it settled on.
        let said: Vec<&str> = said.iter().filter_map(Value::as_str).collect();
        let got: Vec<&str> = run.stdout.lines().filter(|l| l.contains("atch size") || l.contains("margin")).collect();
        assert_eq!(got, said, "{name}: the search's lines\n{}", run.stdout);
    }
    if want["learning_rate_finder"].is_object() {
        // The callback's suggestion, set where Lightning set it (the field and the groups);
        // nowhere with update_attr=False.
        let shown = run.stdout.lines().find_map(|l| l.strip_prefix("Learning rate set to "));
        let shown: Option<f64> = shown.and_then(|v| v.trim().parse().ok());
        let set = want["learning_rate_finder"]["update_attr"].as_bool() != Some(false);
        assert_eq!(shown, want["suggestion"].as_f64().filter(|_| set), "{name}: {}", run.stdout);
    }
    if want["lr_find"].is_object() {
        // The suggestion, set where Lightning set it: the optimizer the fit configured uses it.
        let number_after = |prefix: &str| -> Option<f64> {
            let at = run.stdout.find(prefix)? + prefix.len();
            let rest = &run.stdout[at..];
            let end = rest.find(|c: char| !(c.is_ascii_digit() || "+-.e".contains(c))).unwrap_or(rest.len());
            rest[..end].parse().ok()
        };
        assert_eq!(number_after("Learning rate set to "), want["suggestion"].as_f64(), "{name}: {}", run.stdout);
        let lr = want["set_to"].as_f64();
        assert_eq!(
            number_after("Optimizer: SGD (lr=").or(number_after("Optimizer: Adam (lr=")),
            lr,
            "{name}: the optimizer's lr"
        );
    }
    if checkpoint.is_some() {
        let mut saved: Vec<String> = std::fs::read_dir(d.path().join("ck"))
            .expect("the checkpoint dir")
            .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".ckpt"))
            .collect();
        saved.sort();
        assert_eq!(serde_json::json!(saved), want["checkpoints"], "{name}: checkpoint files");
    }
    let log_dir = d.path().join("lightning_logs/version_0");
    // What save_hyperparameters saved for the loggers (module and DataModule), as
    // Lightning's CSVLogger writes it, or no hparams.yaml where Lightning writes none.
    let hparams = std::fs::read_to_string(log_dir.join("hparams.yaml")).ok();
    assert_eq!(hparams.as_deref(), want["hparams_yaml"].as_str(), "{name}: hparams.yaml");
    let rows = read_metrics(&log_dir);
    let last = want["last"].as_object().expect("the reference's last values");
    let mut columns: Vec<&String> = rows.first().map(|r| r.keys().collect()).unwrap_or_default();
    columns.retain(|c| *c != "epoch" && *c != "step");
    columns.sort();
    let mut expected: Vec<&String> = last.keys().collect();
    expected.sort();
    assert_eq!(columns, expected, "{name}: metrics.csv columns");
    for (k, w) in last {
        let got = column(&rows, k).last().copied().expect("a value");
        assert_close(name, &format!("last {k}"), got, w.as_f64().expect("f64"));
    }
    (column(&rows, "train_loss"), column(&rows, "val_loss").last().copied(), want)
}

pub(crate) fn assert_close(name: &str, what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{name} {what}: lthost {got}, Lightning {want}");
}

pub(crate) fn assert_training_losses(name: &str, got: &[f64], want: &Value) {
    let want: Vec<f64> =
        want["train_loss"].as_array().expect("losses").iter().map(|v| v.as_f64().expect("f64")).collect();
    assert_eq!(got.len(), want.len(), "{name}: one training loss per step");
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(name, &format!("step {step}"), *g, *w);
    }
}

#[test]
fn lightnings_boring_model_file_trains_and_validates_as_in_lightning() {
    // Its data are drawn in the dataloader hooks: the validation set inside Lightning's
    // sanity check (under isolate_rng), from the state the train set is then drawn from.
    let (got, val, want) = run_like_lightning("lit-boring");
    assert_training_losses("lit-boring", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-boring", "last val_loss", val.expect("val_loss logged"), want_val);
}

#[test]
fn lightnings_readme_autoencoder_file_trains_and_validates_as_in_lightning() {
    let (got, val, want) = run_like_lightning("lit-autoencoder");
    assert_training_losses("lit-autoencoder", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-autoencoder", "last val_loss", val.expect("val_loss logged"), want_val);
}

#[test]
fn nanogpt_in_a_lightning_module_with_a_lambda_lr_trains_as_in_lightning() {
    // nanoGPT's warm-up + cosine schedule as a LambdaLR over a bound method: the scheduler
    // runs in the plugin, stepped by the host every optimizer step.
    let (got, val, want) = run_like_lightning("lit-nanogpt");
    assert_training_losses("lit-nanogpt", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-nanogpt", "last val_loss", val.expect("val_loss logged"), want_val);
}

#[test]
fn the_tiny_transformer_file_trains_as_in_lightning() {
    // make bench's transformer workload as a Lightning file: nn.MultiheadAttention (torch's
    // reference path with the averaged weights), LayerNorm, Embedding, data drawn in setup.
    let (got, _, want) = run_like_lightning("python-tiny-transformer");
    assert_training_losses("python-tiny-transformer", &got, &want);
}

/// Trains `name` (a file or a variant: its plugin with the reference's hyperparameters) for
/// `first` of its reference epochs, then resumes from that run's checkpoint to the
/// reference's epochs: the resumed epochs' losses are the uninterrupted run's.
fn assert_resumes_exactly(name: &str, first: u64) {
    let want = reference(name);
    let all = want["train_loss"].as_array().expect("losses").clone();
    let epochs = want["epochs"].as_u64().expect("epochs");
    let file = want["plugin"].as_str().unwrap_or(name);
    let hparams = want["hparams"].to_string();
    let variant = if want["hparams"].is_null() { vec![] } else { vec!["--hparams", hparams.as_str()] };
    let d = tempfile::tempdir().expect("tempdir");
    let first_epochs = first.to_string();
    let args = [&["--max-epochs", &first_epochs, "--log-every-n-steps", "1"][..], &variant].concat();
    fit(d.path(), file, &want["seed"], &args);
    let ckpt = d.path().join("lightning_logs/version_0/checkpoints");
    let last = std::fs::read_dir(&ckpt).expect("checkpoints").flatten().map(|e| e.path()).next().expect("a checkpoint");
    let last = last.to_str().expect("utf-8").to_string();
    let epochs_arg = epochs.to_string();
    let rest =
        [&["--max-epochs", &epochs_arg, "--log-every-n-steps", "1", "--ckpt-path", &last][..], &variant].concat();
    fit(d.path(), file, &want["seed"], &rest);
    let got = column(&read_metrics(&d.path().join("lightning_logs/version_1")), "train_loss");
    assert_eq!(
        got.len() as u64,
        all.len() as u64 * (epochs - first) / epochs,
        "{name}: the resumed run trains the rest"
    );
    for (step, (g, w)) in got.iter().zip(&all[all.len() - got.len()..]).enumerate() {
        assert_close(&format!("{name} resumed"), &format!("step {step}"), *g, w.as_f64().expect("f64"));
    }
}

#[test]
fn a_plugin_run_scheduler_resumes_from_a_checkpoint_where_it_was() {
    // One epoch, then a second resumed from its checkpoint: the LambdaLR's position comes back
    // from the checkpoint.
    assert_resumes_exactly("lit-nanogpt", 1);
}

#[test]
fn a_user_written_optimizer_trains_as_in_lightning_and_resumes_with_its_state() {
    // Lion, a torch.optim.Optimizer subclass with its own step: run in the plugin, stepped by
    // the host, its per-parameter state (exp_avg) in the checkpoint.
    let (got, val, want) = run_like_lightning("lit-lion");
    assert_training_losses("lit-lion", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-lion", "last val_loss", val.expect("val_loss logged"), want_val);
    assert_resumes_exactly("lit-lion", 2);
}

#[test]
fn manual_optimization_with_the_plugins_optimizers_and_schedulers_trains_and_resumes_as_in_lightning() {
    // Lion and SGD stepped by the file (toggling, accumulation over two batches), a LambdaLR
    // stepped by the file per step and a StepLR in on_train_epoch_end: counted by the host,
    // their states in the checkpoint.
    let (got, _, want) = run_like_lightning("lit-manual");
    assert_training_losses("lit-manual", &got, &want);
    assert_resumes_exactly("lit-manual", 1);
}

#[test]
fn lightnings_mnist_example_with_torchmetrics_accuracy_trains_as_in_lightning() {
    // Accuracy objects: updated in validation (logged at the epoch's end from compute()),
    // called per step in training (train_acc_step, and train_acc_epoch from compute()); the
    // reference's ModelCheckpoint monitors the bare `train_acc` (Lightning's callback_metrics
    // hold a metric logged on_step and on_epoch under its bare name too): the same files.
    let (got, val, want) = run_like_lightning("lit-mnist");
    assert_training_losses("lit-mnist", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-mnist", "last val_loss", val.expect("val_loss logged"), want_val);
}

#[test]
fn a_map_style_dataset_is_read_item_by_item_every_epoch_as_torch_reads_it() {
    // __getitem__ adds fresh noise to each item every epoch; the training DataLoader has its
    // own collate_fn (a dict batch with a list of names) and two workers, whose noise comes
    // from torch's per-worker generators; validation's noise from the run's generator. The
    // losses are Lightning's only if every item is read every pass, with the right generator.
    let (got, val, want) = run_like_lightning("lit-augment");
    assert_training_losses("lit-augment", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-augment", "last val_loss", val.expect("val_loss logged"), want_val);
    assert_resumes_exactly("lit-augment", 2);
}

#[test]
fn samplers_and_dataloaders_drawing_from_generators_of_the_files_own_draw_as_in_lightning() {
    // DataLoader(shuffle=True, generator=g): its RandomSampler and its iterator's base seed
    // (which seeds the two workers) draw from g and the run's generator is left alone (without
    // shuffling, the base seed only); the same for a shuffled TensorDataset without workers (where torch's sampler is not asked past the
    // pass's last batch, so g skips the trailing randperm it takes with workers);
    // RandomSampler(replacement=True, num_samples); SubsetRandomSampler; WeightedRandomSampler
    // with its own generator.
    for sampling in ["generator", "sequential", "tensors", "replacement", "subset", "weighted"] {
        let name = format!("lit-augment-{sampling}");
        let (got, val, want) = run_like_lightning(&name);
        assert_training_losses(&name, &got, &want);
        let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
        assert_close(&name, "last val_loss", val.expect("val_loss logged"), want_val);
    }
}

#[test]
fn a_frozen_layer_keeps_its_weights_and_the_rest_trains_as_in_lightning() {
    // freeze=True: the first Linear's `requires_grad_(False)` (a frozen backbone) while SGD
    // with momentum holds every parameter; torch's backward leaves the frozen ones without a
    // gradient and the optimizer skips them (lthost's backward failed on them before).
    let (got, val, want) = run_like_lightning("lit-augment-frozen");
    assert_training_losses("lit-augment-frozen", &got, &want);
    assert_close(
        "lit-augment-frozen",
        "last val_loss",
        val.expect("val_loss logged"),
        want["last_val_loss"].as_f64().expect("a validation loss"),
    );
    assert_resumes_exactly("lit-augment-frozen", 2);
    // run_like_lightning compared the summary with Lightning's: 99 trainable and 288
    // non-trainable parameters, the frozen layer (put in eval mode) one of 4 modules.
    let summary = want["summary"].as_str().expect("Lightning's summary");
    assert!(summary.contains("288       Non-trainable params\n") && summary.contains("1         Modules in eval mode"));
}

#[test]
fn dataloader_workers_start_as_torchs_do_with_their_worker_init_fn_and_lightnings_seeding() {
    // Items that draw from torch's and Python's generators and read get_worker_info(), made by
    // two workers: after seed_everything(workers=True) (Lightning's worker_init_fn reseeds both
    // generators of every worker, the validation stream's too), with a worker_init_fn of the
    // file's (run at each worker's start: every pass, or once with persistent workers).
    for sampling in ["seed-workers", "worker-init", "persistent"] {
        let name = format!("lit-augment-{sampling}");
        let (got, val, want) = run_like_lightning(&name);
        assert_training_losses(&name, &got, &want);
        let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
        assert_close(&name, "last val_loss", val.expect("val_loss logged"), want_val);
    }
}

#[test]
fn dataloaders_reloaded_every_epoch_grow_with_the_epoch_as_in_lightning() {
    // reload_dataloaders_every_n_epochs=1 with DataLoaders built from trainer.current_epoch:
    // 5, 10 and 15 training steps, validation over 20, 40 and 60 points; the train loader
    // asked for again before each epoch's hooks (with the iterator Lightning makes and drops
    // there drawing its base seed), the validation loader at each epoch's validation.
    // Every 2 epochs: the loaders of epoch 0 serve epoch 1 too (5 + 5 + 15 steps). Every 2
    // epochs with validation every 2 epochs (and no sanity check): the validation loader made
    // at the start does not count for epoch 0, so epoch 1's validation asks again (over 40
    // points, not the start's 20).
    for (name, steps) in [
        ("lit-augment-curriculum", 30),
        ("lit-augment-curriculum-every-2", 25),
        ("lit-augment-curriculum-val-every-2", 25),
    ] {
        let (got, val, want) = run_like_lightning(name);
        assert_eq!(got.len(), steps, "{name}: training steps");
        assert_training_losses(name, &got, &want);
        let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
        assert_close(name, "last val_loss", val.expect("val_loss logged"), want_val);
    }
}

#[test]
fn a_run_resumed_with_reloaded_dataloaders_trains_the_epochs_the_whole_run_trains() {
    // lit-augment-curriculum stopped after 2 epochs and resumed to 3: from the checkpoint
    // saved at the second epoch's end (the loaders asked for again after the restore seeing
    // epoch 1, so epoch 2 asks again, with the iterator Lightning drops) and from the one
    // after the third epoch's first batch (seeing epoch 2). The resumed steps train on the
    // points the whole run (Lightning's) trains on, with its losses.
    let want = reference("lit-augment-curriculum");
    let all: Vec<f64> =
        want["train_loss"].as_array().expect("losses").iter().map(|v| v.as_f64().expect("f64")).collect();
    let hp = want["hparams"].to_string();
    let epoch_end = ["--max-epochs", "2", "--set", "checkpoint.save_on_train_epoch_end=true"];
    let mid_epoch = ["--max-steps", "16", "--set", "checkpoint.every_n_train_steps=1"];
    for (first, at) in [(&epoch_end[..], 15), (&mid_epoch[..], 16)] {
        let d = tempfile::tempdir().expect("tempdir");
        let common = [
            "--hparams",
            &hp,
            "--set",
            "trainer.reload_dataloaders_every_n_epochs=1",
            "--log-every-n-steps",
            "1",
            "--set",
            "checkpoint.save_last=true",
        ];
        fit(d.path(), "lit-augment", &want["seed"], &[first, &common].concat());
        let resume = ["--max-epochs", "3", "--ckpt-path", "last"];
        fit(d.path(), "lit-augment", &want["seed"], &[&resume[..], &first[2..], &common].concat());
        let got = column(&read_metrics(&d.path().join("lightning_logs/version_1")), "train_loss");
        assert_eq!(got.len(), all.len() - at, "resumed after step {at}: the remaining steps");
        for (step, (g, w)) in got.iter().zip(&all[at..]).enumerate() {
            assert_close("lit-augment-curriculum resumed", &format!("step {}", step + at), *g, *w);
        }
    }
}

/// lit-augment with a checkpoint every step, killed at `fault` (or not), resumed from
/// `last` when `resume`: the last checkpoint's weights.
fn augment_weights(dir: &std::path::Path, fault: Option<&str>, resume: bool) -> lthost::checkpoint::Checkpoint {
    let wasm = plugin("lit-augment");
    let mut args = vec![
        "fit",
        wasm.to_str().expect("utf-8"),
        "--accelerator",
        "cpu",
        "--seed",
        "42",
        "--no-progress-bar",
        "--max-epochs",
        "3",
    ];
    args.extend(["--set", "checkpoint.save_last=true", "--set", "checkpoint.save_top_k=0"]);
    args.extend(["--set", "checkpoint.every_n_train_steps=1", "--set", "checkpoint.dirpath=ck"]);
    if resume {
        args.extend(["--ckpt-path", "last"]);
    }
    let mut cmd = crate::common::command(env!("CARGO_BIN_EXE_lthost"), dir);
    if let Some(f) = fault {
        cmd.env("LTHOST_FAULT", f);
    }
    let out = cmd.args(&args).output().expect("lthost runs");
    if fault.is_some() {
        assert_eq!(out.status.code(), None, "killed at {fault:?}: {}", String::from_utf8_lossy(&out.stderr));
    } else {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    lthost::checkpoint::load(&dir.join("ck/last.ckpt")).expect("the last checkpoint")
}

#[test]
fn random_items_fetched_by_workers_resume_mid_epoch_exactly() {
    // Killed mid-epoch (15 steps an epoch): the kept order ends with the pass's base seed, so
    // the workers' generators restart from it and the batches already trained on are fetched
    // again to bring them where they were; the weights end bit-identical.
    let full_dir = tempfile::tempdir().expect("tempdir");
    let want = augment_weights(full_dir.path(), None, false);
    for fault in ["step:5", "step:22"] {
        let dir = tempfile::tempdir().expect("tempdir");
        augment_weights(dir.path(), Some(fault), false);
        let got = augment_weights(dir.path(), None, true);
        for (k, t) in want.tensors.iter().filter(|(k, _)| k.starts_with("state_dict.")) {
            assert!(got.tensors[k].equal(t), "{fault}: `{k}` differs from the uninterrupted run");
        }
    }
}

#[test]
fn an_item_that_fails_to_load_names_the_split_the_error_and_the_users_line() {
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-augment");
    let source = std::fs::read_to_string(repo_root().join("tests/plugins/lit-augment/model.py")).expect("model.py");
    let line = source.lines().position(|l| l.contains("raise IndexError")).expect("the raise") + 1;
    let run = lthost(
        d.path(),
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--accelerator",
            "cpu",
            "--max-epochs",
            "1",
            "--no-progress-bar",
            "--hparams",
            r#"{"broken_item": 7}"#,
        ],
    );
    run.assert_fails_with(&[
        "train_dataloader.fetch",
        "train DataLoader: IndexError: item 7 is broken",
        &format!("model.py, line {line}, in __getitem__"),
    ]);
}

#[test]
fn iterable_datasets_without_a_length_run_each_pass_until_they_end_as_in_lightning() {
    // Passes end where the data says; the training stream's noise is drawn between the steps'
    // dropout draws, so the losses are Lightning's only if each batch is made one ahead, as
    // Lightning's fetcher makes them for a DataLoader without a length. The file checks the
    // loop numbers (num_training_batches inf, estimated_stepping_batches -1) and is_last_batch.
    let (got, val, want) = run_like_lightning("lit-stream");
    assert_training_losses("lit-stream", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-stream", "last val_loss", val.expect("val_loss logged"), want_val);
    // An int limit takes that many batches a pass; a fraction of an unknown length is refused
    // as Lightning refuses it.
    let d = tempfile::tempdir().expect("tempdir");
    let limited = ["--max-epochs", "3", "--log-every-n-steps", "1", "--set", "trainer.limit_train_batches=5"];
    fit(d.path(), "lit-stream", &want["seed"], &limited);
    let steps = column(&read_metrics(&d.path().join("lightning_logs/version_0")), "train_loss");
    assert_eq!(steps.len(), 15, "5 batches in each of 3 epochs");
    let wasm = plugin("lit-stream");
    let half =
        ["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--set", "trainer.limit_train_batches=0.5"];
    lthost(d.path(), &half).assert_fails_with(&["limit_train_batches = 0.5", "unknown length", "1.0 or an int"]);
}

#[test]
fn lbfgs_re_evaluates_lightnings_closure_in_automatic_and_manual_optimization_as_in_lightning() {
    // Returned from configure_optimizers, LBFGS calls Lightning's closure up to max_iter times
    // a step: the first evaluation is the host's training_step and backward, the others re-run
    // them in the plugin (train_loss is the last evaluation's, as Lightning logs it). Stepped
    // by the file with its own closure (manual), each evaluation's gradients are read afresh.
    // With the strong-Wolfe line search, its trial steps are torch's.
    for name in ["lit-lbfgs", "lit-lbfgs-manual", "lit-lbfgs-wolfe"] {
        let (got, val, want) = run_like_lightning(name);
        assert_training_losses(name, &got, &want);
        let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
        assert_close(name, "last val_loss", val.expect("val_loss logged"), want_val);
    }
    // Its history (lists of tensors) goes into the checkpoint and comes back.
    assert_resumes_exactly("lit-lbfgs", 1);
}

#[test]
fn a_resnet_with_multistep_lr_trains_as_in_lightning() {
    // BatchNorm, Nesterov SGD with weight decay, and MultiStepLR at epochs 1 and 2.
    let (got, val, want) = run_like_lightning("lit-resnet");
    assert_training_losses("lit-resnet", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-resnet", "last val_loss", val.expect("val_loss logged"), want_val);
}

#[test]
fn an_ordinary_lightning_classifier_trains_as_in_lightning() {
    // Top-level precision settings, random_split fractions, torchmetrics F1/accuracy/AUROC
    // objects through log_dict, the lr read from self.optimizers(), a no_grad validation_step
    // collecting outputs, AdamW parameter groups and ReduceLROnPlateau on val_loss: every
    // metrics.csv column's last value is Lightning's.
    let (got, val, want) = run_like_lightning("lit-classifier");
    assert_training_losses("lit-classifier", &got, &want);
    let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
    assert_close("lit-classifier", "last val_loss", val.expect("val_loss logged"), want_val);
}

/// The results table `lthost validate`/`test` printed: per DataLoader column, metric → value
/// (Lightning's `_print_results` layout: 24-wide name, then one 25-wide column each).
pub(crate) fn results_table(stdout: &str, title: &str) -> Vec<std::collections::BTreeMap<String, f64>> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(title));
    let header = lines.next().unwrap_or_else(|| panic!("no `{title}` table in {stdout}"));
    let columns = header.matches("DataLoader ").count();
    let mut out = vec![std::collections::BTreeMap::new(); columns];
    for line in lines.take_while(|l| !l.trim().is_empty()) {
        let name = line[..24.min(line.len())].trim().to_string();
        for (i, col) in out.iter_mut().enumerate() {
            let cell = line.get(25 + 25 * i..(50 + 25 * i).min(line.len())).unwrap_or("").trim();
            if !cell.is_empty() {
                col.insert(name.clone(), cell.parse::<f64>().unwrap_or_else(|e| panic!("{line}: {e}")));
            }
        }
    }
    out
}

#[test]
fn several_validation_and_test_dataloaders_log_and_report_as_in_lightning() {
    // A list of validation DataLoaders and a dict of test ones, steps and batch hooks taking
    // `dataloader_idx`: the training losses, every metrics.csv column (`val_loss_step/
    // dataloader_idx_1`, the unsuffixed `val_acc_1`) and `lthost validate`/`test`'s table,
    // one column per DataLoader, as Lightning's results.
    let (got, _, want) = run_like_lightning("lit-multi-val");
    assert_training_losses("lit-multi-val", &got, &want);
    let wasm = plugin("lit-multi-val");
    let seed = want["seed"].to_string();
    for (stage, title) in [("validate", "Validate metric"), ("test", "Test metric")] {
        let d = tempfile::tempdir().expect("tempdir");
        let args = [stage, wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--seed", &seed, "--no-progress-bar"];
        let run = lthost(d.path(), &args);
        assert!(run.ok(), "{stage}: {}", run.stderr);
        let table = results_table(&run.stdout, title);
        let results = want["results"][stage].as_array().expect("Lightning's results");
        assert_eq!(table.len(), results.len(), "{stage}: one column per DataLoader\n{}", run.stdout);
        for (i, (col, w)) in table.iter().zip(results).enumerate() {
            let w: std::collections::BTreeMap<String, f64> = w
                .as_object()
                .expect("a result")
                .iter()
                .map(|(k, v)| {
                    (k.split("/dataloader_idx_").next().expect("a name").to_string(), v.as_f64().expect("f64"))
                })
                .collect();
            assert_eq!(col.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{stage} DataLoader {i}");
            for (k, v) in &w {
                assert_close("lit-multi-val", &format!("{stage} DataLoader {i} {k}"), col[k], *v);
            }
        }
    }
}

#[test]
fn save_hyperparameters_chooses_what_the_loggers_get_as_in_lightning() {
    // All arguments, `ignore=`, names, a dict, `logger=False`, no call, a base class's call
    // (the subclass's arguments too), a DataModule's, and both merged; hparams.yaml compared
    // as text by `run_like_lightning`. Also values of every JSON kind (`-values`), and
    // training_step's dict reaching on_train_batch_end as `outputs` (`-outputs`: every column
    // of metrics.csv compared).
    for name in [
        "lit-hparams",
        "lit-hparams-ignore",
        "lit-hparams-names",
        "lit-hparams-nolog",
        "lit-hparams-none",
        "lit-hparams-dict",
        "lit-hparams-inherited",
        "lit-hparams-inherited-ignore",
        "lit-hparams-data",
        "lit-hparams-both",
        "lit-hparams-data-nolog",
        "lit-hparams-values",
        "lit-hparams-outputs",
    ] {
        let (losses, _, want) = run_like_lightning(name);
        assert_training_losses(name, &losses, &want);
    }
}

#[test]
fn a_file_lightning_refuses_to_fit_is_refused_with_lightnings_message() {
    // Lightning's test_invalid_dataloader_idx_raises_step: no `dataloader_idx` beside several
    // validation DataLoaders, a required one beside a single DataLoader; Lightning's message.
    // Also a module and a DataModule that log one hyper-parameter with two values, what
    // training_step may not return (an int; in automatic optimization a dict without "loss"),
    // and what `self.log` cannot take (None, a dict, a str, a list, a Metric the module does not
    // hold).
    for name in [
        "lit-multi-val-no-idx",
        "lit-multi-val-required-idx",
        "lit-hparams-conflict",
        "lit-manual-bad-return",
        "lit-hparams-bad-return-int",
        "lit-hparams-bad-return-dict",
        "lit-hparams-log-metric-not-held",
    ]
    .into_iter()
    .map(String::from)
    .chain((0..7).map(|i| format!("lit-hparams-log-invalid-{i}")))
    {
        let name = name.as_str();
        let want = reference(name);
        let d = tempfile::tempdir().expect("tempdir");
        let wasm = plugin(want["plugin"].as_str().expect("plugin"));
        let hparams = want["hparams"].to_string();
        let args =
            ["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--no-progress-bar", "--hparams", &hparams];
        let run = lthost(d.path(), &args);
        assert!(!run.ok(), "{name}: fitted");
        let msg = want["error"].as_str().expect("Lightning's message");
        assert!(run.stderr.contains(msg), "{name}: {}\n(Lightning: {msg})", run.stderr);
    }
}

#[test]
fn an_unsupported_torch_api_names_itself_and_the_users_line() {
    // In __init__ and in training_step (both exports with an error result: the exception
    // fails the hook as its error); either way the API and the line.
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("torch-probe");
    let source = std::fs::read_to_string(repo_root().join("tests/plugins/torch-probe/model.py")).expect("model.py");
    for (place, hook, code) in
        [("init", "configure", "torch.from_numpy([1.0])"), ("step", "training_step", "x = torch.from_numpy(x)")]
    {
        let line = source.lines().position(|l| l.trim() == code).expect("the line") + 1;
        let hp = format!("{{\"unsupported_in\": \"{place}\"}}");
        let run = lthost(d.path(), &["fit", wasm.to_str().expect("utf-8"), "--max-epochs", "1", "--hparams", &hp]);
        assert!(!run.ok(), "{place}: the run fails");
        let err = run.stderr.lines().rev().find(|l| l.starts_with("error:")).expect("an error line");
        assert!(err.contains(&format!("hook `{hook}`")), "{place}: {err}");
        assert!(err.contains("NotImplementedError: torch.from_numpy"), "{place}: {err}");
        assert!(err.contains(&format!("(model.py, line {line},")), "{place}: {err}");
    }
}

/// Whether `got` is `want`: the same structure and types, integers and booleans equal, floats
/// within 1e-5 (relative, at least absolute), errors by their exception type.
fn same(got: &Value, want: &Value, at: &str, diffs: &mut Vec<String>) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) if w.is_f64() || g.is_f64() => {
            let (g, w) = (g.as_f64().unwrap_or(f64::NAN), w.as_f64().unwrap_or(f64::NAN));
            if !(g - w).abs().le(&(1e-5 * w.abs().max(1.0))) {
                diffs.push(format!("{at}: {g} vs torch {w}"));
            }
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                same(g, w, &format!("{at}[{i}]"), diffs);
            }
        }
        (Value::Object(g), Value::Object(w)) if w.contains_key("error") => {
            if g.get("error") != w.get("error") {
                diffs.push(format!("{at}: {got} vs torch {want}"));
            }
        }
        (Value::Object(g), Value::Object(w)) if g.len() == w.len() => {
            for (k, w) in w {
                match g.get(k) {
                    Some(g) => same(g, w, &format!("{at}.{k}"), diffs),
                    None => diffs.push(format!("{at}: no `{k}`")),
                }
            }
        }
        _ if got == want => {}
        _ => diffs.push(format!("{at}: {} vs torch {}", trim(got), trim(want))),
    }
}

fn trim(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!("{}…", &s[..300])
    } else {
        s
    }
}

#[test]
fn the_torch_package_answers_as_torch_does() {
    // tests/plugins/torch-probe/checks.py: the same checks in torch (the reference) and in a
    // plugin with lthost's torch package: shapes, indexing, overloads, promotion, reductions,
    // functional ops, autograd, caught op errors, modules and their init draws.
    let path = repo_root().join("tests/reference/torch_api.json");
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("run `make reference` (torch_api.json)"))
            .expect("json");
    let d = tempfile::tempdir().expect("tempdir");
    let run = fit(d.path(), "torch-probe", &want["seed"], &["--max-epochs", "1"]);
    // What the file handed to the host stays the file's: the dataset's tensor (given twice),
    // the returned loss, which on_train_batch_end sees as outputs["loss"], with the batch.
    let kept = run.stderr.lines().find_map(|l| l.split_once("torch-probe-kept: ").map(|(_, j)| j));
    let kept: Vec<f64> = serde_json::from_str(kept.expect("the kept line")).expect("json");
    assert!(kept.len() == 3 && kept[0] == kept[1] && kept[2] == 4.0, "{kept:?}");
    let mut got = serde_json::Map::new();
    for line in run.stderr.lines().filter_map(|l| l.split_once("torch-probe: ").map(|(_, j)| j)) {
        let one: serde_json::Map<String, Value> = serde_json::from_str(line).expect("a check's json");
        got.extend(one);
    }
    let got = Value::Object(got);
    let want = &want["checks"];
    assert!(want.as_object().is_some_and(|m| m.len() >= 40), "the reference has the checks");
    let mut diffs = Vec::new();
    same(&got, want, "checks", &mut diffs);
    assert!(diffs.is_empty(), "lthost's torch differs from torch:\n{}", diffs.join("\n"));
}

#[test]
fn lr_find_on_lightning_files_records_and_suggests_what_lightnings_tuner_does() {
    // tests/reference/lightning_files_reference.py `LR_FINDS`: `Tuner(trainer).lr_find` on the
    // unmodified files (early stopping off for lit-boring; lit-mnist's stops early; with
    // gradient accumulation, test_accumulation_and_early_stopping), seeded as
    // `lthost lr-find --seed` is.
    for name in [
        "lr-find-lit-boring",
        "lr-find-lit-mnist",
        "lr-find-lit-boring-accumulate",
        "lr-find-lit-mnist-bf16-mixed",
        "lr-find-lit-mnist-16-mixed",
    ] {
        let want = reference(name);
        let d = tempfile::tempdir().expect("tempdir");
        let wasm = plugin(want["plugin"].as_str().expect("plugin"));
        let seed = want["seed"].to_string();
        let mut args = vec!["lr-find".to_string(), wasm.to_string_lossy().into_owned(), "--accelerator".into()];
        args.extend(["cpu".into(), "--seed".into(), seed, "--output".into(), "out".into()]);
        for (k, v) in want["args"].as_object().expect("lr_find's arguments") {
            let v = if v.is_null() { "none".to_string() } else { v.to_string() };
            args.extend([format!("--{}", k.replace('_', "-")), v]);
        }
        for (k, v) in want["trainer"].as_object().expect("Trainer arguments") {
            args.extend(set_args(&format!("trainer.{k}"), v));
        }
        let run = lthost(d.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(run.ok(), "{name}: {}", run.stderr);
        let text = std::fs::read_to_string(d.path().join("out/lr_find.json")).expect("lr_find.json");
        let got: Value = serde_json::from_str(&text).expect("JSON");
        let list = |v: &Value| -> Vec<f64> { v.as_array().expect("a list").iter().filter_map(Value::as_f64).collect() };
        assert_eq!(list(&got["lr"]), list(&want["lr"]), "{name}: learning rates");
        let (loss, want_loss) = (list(&got["loss"]), list(&want["loss"]));
        assert_eq!(loss.len(), want_loss.len(), "{name}: points");
        for (i, (g, w)) in loss.iter().zip(&want_loss).enumerate() {
            assert_close(name, &format!("smoothed loss {i}"), *g, *w);
        }
        assert_eq!(got["suggestion"], want["suggestion"], "{name}: suggestion");
        // The batches the search drew (Lightning's `_total_batch_idx`).
        assert_eq!(got["total_batch_idx"], want["total_batch_idx"], "{name}: the last batch index");
    }
}

#[test]
fn a_fit_after_lr_find_trains_as_lightnings_tuner_then_fit() {
    // tests/reference/lightning_files_reference.py `LR_FIND_FITS`: `Tuner(trainer).lr_find` with
    // update_attr=True, then `trainer.fit` on the same model, DataModule and Trainer: the
    // suggestion lands in the module's attribute (lit-mnist's `learning_rate`) or attribute and
    // hyper-parameters (lit-hparams' `lr`, the DataModule's too), the fit starts from the
    // initial weights with the generators as they were before the search (Lightning's
    // isolate_rng; lit-mnist's DataModule draws its images again in setup, from there), and
    // hparams.yaml keeps the initial values. `attr_name = "my_fancy_lr"`: that field, an
    // attribute or a hyper-parameter of the module (tuner.md row 5).
    for name in [
        "lr-find-fit-lit-mnist",
        "lr-find-fit-lit-hparams",
        "lr-find-fit-lit-hparams-fancy-attr",
        "lr-find-fit-lit-hparams-fancy-hparams",
    ] {
        let (got, _, want) = run_like_lightning(name);
        assert_training_losses(name, &got, &want);
    }
    // A module without any of the fields is refused before any step, with Lightning's words.
    let want = reference("lr-find-fit-lit-boring");
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-boring");
    let run = lthost(d.path(), &["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--lr-find"]);
    assert!(!run.ok(), "refused");
    let words = want["error"].as_str().expect("Lightning's error");
    assert!(run.stderr.contains(words), "{}", run.stderr);
    assert!(!d.path().join("lightning_logs").exists() || !run.stdout.contains("Epoch"), "no training");
    // Two optimizers (test_error_with_multiple_optimizers): `lthost lr-find` (no update_attr)
    // is refused with Lightning's words, and writes nothing.
    let want = reference("lr-find-lit-manual");
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-manual");
    let run = lthost(d.path(), &["lr-find", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--output", "out"]);
    assert!(!run.ok(), "refused");
    let words = want["error"].as_str().expect("Lightning's error");
    assert!(run.stderr.contains(words), "{words}\n{}", run.stderr);
    assert!(!d.path().join("out").exists(), "nothing written");
}

#[test]
fn a_fit_after_scale_batch_size_trains_as_lightnings_tuner_then_fit() {
    // tests/reference/lightning_files_reference.py `SCALE_BATCH_SIZE_FITS`:
    // `Tuner(trainer).scale_batch_size` then `trainer.fit` on the same objects: the same trials
    // and lines (the first at the DataModule's own size, the dataset-length stop, binsearch's
    // margin, power mode's max_val stop), the size set on the DataModule's attribute and
    // hyper-parameter, and the fit's losses from the initial weights with the generators
    // where the trials left them (lit-autoencoder's DataModule draws its images again). The
    // `model-*` cases keep the size on the module (an attribute or a hyper-parameter), which
    // the DataModule reads through `trainer.lightning_module` (tuner.md row 31).
    for name in [
        "scale-fit-lit-autoencoder",
        "scale-fit-lit-hparams-binsearch",
        "scale-fit-lit-hparams-max-val",
        "scale-fit-lit-hparams-model-attr",
        "scale-fit-lit-hparams-model-hparams",
        "scale-fit-lit-classifier-oom-power",
        "scale-fit-lit-classifier-oom-binsearch",
    ] {
        let (got, _, want) = run_like_lightning(name);
        assert_training_losses(name, &got, &want);
    }
    // A module and DataModule without the field are refused before any step, in Lightning's words.
    let want = reference("scale-fit-lit-boring");
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-boring");
    let run = lthost(d.path(), &["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--scale-batch-size"]);
    assert!(!run.ok(), "refused");
    let words = want["error"].as_str().expect("Lightning's error");
    assert!(run.stderr.contains(words), "{}", run.stderr);
    assert!(!run.stdout.contains("Epoch"), "no training");
}

#[test]
fn the_batch_size_finder_callback_searches_inside_the_fit_as_lightnings() {
    // tests/reference/lightning_files_reference.py `BATCH_SIZE_FINDER_FITS`: Lightning's
    // `BatchSizeFinder` in `Trainer(callbacks=[...])`: the search at on_fit_start, then the
    // same fit from the initial weights and optimizer state with the loaders at the size
    // found: the search's lines, every training loss and the last validation loss.
    for name in ["bsf-fit-lit-autoencoder", "bsf-fit-lit-hparams-binsearch", "bsf-fit-lit-classifier-oom"] {
        let (got, val, want) = run_like_lightning(name);
        assert_training_losses(name, &got, &want);
        let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
        assert_close(name, "last val_loss", val.expect("val_loss logged"), want_val);
    }
    // With the Tuner too: refused, in Lightning's words.
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-autoencoder");
    let args = [
        "fit",
        wasm.to_str().expect("utf-8"),
        "--scale-batch-size",
        "--set",
        "callbacks.batch_size_finder.max_trials=2",
    ];
    let run = lthost(d.path(), &args);
    assert!(!run.ok(), "refused");
    assert!(run.stderr.contains("Trainer is already configured with a `BatchSizeFinder` callback."), "{}", run.stderr);
}

#[test]
fn the_learning_rate_finder_callback_searches_inside_the_fit_as_lightnings() {
    // tests/reference/lightning_files_reference.py `LR_FINDER_FITS`: Lightning's
    // `LearningRateFinder` in `Trainer(callbacks=[...])`: the search at on_fit_start under
    // isolate_rng, the snapshot put back, the suggestion in the field and the optimizer's
    // groups (lit-classifier: its plugin-run ReduceLROnPlateau goes on from it), then the same
    // fit: the suggestion, every training loss, the last validation loss. A search the
    // diverging loss stops early does not stop the fit; with both finders (batch size first)
    // the learning-rate search runs at the size found. With update_attr=False beside
    // EarlyStopping (test_lr_finder_with_early_stopping) the search only reports, and
    // EarlyStopping, set aside during it, ends the fit at Lightning's epoch.
    for name in [
        "lrf-fit-lit-classifier",
        "lrf-fit-lit-hparams",
        "lrf-fit-lit-hparams-diverging",
        "finders-both-lit-classifier",
        "lrf-fit-lit-classifier-early-stopping",
    ] {
        let (got, val, want) = run_like_lightning(name);
        assert_training_losses(name, &got, &want);
        let want_val = want["last_val_loss"].as_f64().expect("a validation loss");
        assert_close(name, "last val_loss", val.expect("val_loss logged"), want_val);
    }
    // With the Tuner too: refused, in Lightning's words.
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-classifier");
    let args =
        ["fit", wasm.to_str().expect("utf-8"), "--lr-find", "--set", "callbacks.learning_rate_finder.max_lr=0.1"];
    let run = lthost(d.path(), &args);
    assert!(!run.ok(), "refused");
    assert!(
        run.stderr.contains("Trainer is already configured with a `LearningRateFinder` callback."),
        "{}",
        run.stderr
    );
}

#[test]
fn a_trial_over_the_plugins_tensor_budget_counts_as_out_of_memory() {
    // lthost-only (Lightning has no tensor budget; its `is_oom_error` is the same rule):
    // lit-autoencoder under a 6 MiB budget. The trial at 256 is refused inside training_step
    // (a Python RuntimeError with the budget's message), the plugin stays usable, power mode
    // halves to 128 and stops (a smaller size ran), and the fit trains at 128 within the budget.
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-autoencoder");
    let args = [
        "fit",
        wasm.to_str().expect("utf-8"),
        "--accelerator",
        "cpu",
        "--seed",
        "42",
        "--max-epochs",
        "1",
        "--scale-batch-size",
        "--set",
        "scale_batch_size.steps_per_trial=2",
        "--set",
        "plugin.tensor_memory_limit_mb=6",
    ];
    let run = lthost(d.path(), &args);
    assert!(run.ok(), "{}\n{}", run.stdout, run.stderr);
    for line in [
        "Batch size 128 succeeded, trying batch size 256",
        "Batch size 256 failed, trying batch size 128",
        "Finished batch size finder, will continue with full run using batch size 128",
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "{line}:\n{}", run.stdout);
    }
    assert!(run.stderr.contains("over its budget of 6 MiB (plugin.tensor_memory_limit_mb)"), "{}", run.stderr);
    // 448 images in batches of 128: 4 steps.
    assert!(run.stdout.contains("(global steps 4)"), "{}", run.stdout);
}

#[test]
fn the_tensorboard_logger_writes_what_lightnings_writes() {
    // Lightning's TensorBoardLogger on the same file: every scalar (hp_metric -1 at step 0
    // when hyper-parameters are logged, epoch, the losses) at the same steps, the hparams
    // plugin's data (flattened, sanitized, bools as numbers, the session's end) and
    // hparams.yaml; with nothing saved, none of the hparams data and an hparams.yaml of `{}`.
    for name in ["lit-hparams-tensorboard", "lit-hparams-tensorboard-none"] {
        let want = reference(name);
        let d = tempfile::tempdir().expect("tempdir");
        let hparams = want["hparams"].to_string();
        let epochs = want["epochs"].to_string();
        let args =
            ["--logger", "tensorboard", "--hparams", &hparams, "--max-epochs", &epochs, "--log-every-n-steps", "1"];
        fit(d.path(), want["plugin"].as_str().expect("plugin"), &want["seed"], &args);
        let log_dir = d.path().join("lightning_logs/version_0");
        let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("tests/reference/read_tensorboard.py"))
            .arg(&log_dir)
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let w = &want["read"];
        for key in ["hparams", "hparam_infos", "metrics", "session_end"] {
            assert_eq!(got[key], w[key], "{name}: {key}");
        }
        let (got_scalars, want_scalars) = (got["scalars"].as_object(), w["scalars"].as_object().expect("scalars"));
        let got_scalars = got_scalars.expect("scalars");
        assert_eq!(got_scalars.keys().collect::<Vec<_>>(), want_scalars.keys().collect::<Vec<_>>(), "{name}: tags");
        for (tag, series) in want_scalars {
            let (g, w) = (got_scalars[tag].as_array().expect("points"), series.as_array().expect("points"));
            assert_eq!(g.len(), w.len(), "{name}: {tag} points");
            for (g, w) in g.iter().zip(w) {
                assert_eq!(g[0], w[0], "{name}: {tag} steps");
                assert_close(name, tag, g[1].as_f64().expect("value"), w[1].as_f64().expect("value"));
            }
        }
        let yaml = std::fs::read_to_string(log_dir.join("hparams.yaml")).expect("hparams.yaml");
        assert_eq!(Some(yaml.as_str()), want["hparams_yaml"].as_str(), "{name}: hparams.yaml");
    }
}

#[test]
fn loggers_made_with_lightnings_arguments_write_where_lightnings_write() {
    // [loggers.csv] / [loggers.tensorboard] with save_dir, name ("" too), an int or string
    // version, prefix and default_hp_metric, against Lightning's CSVLogger and
    // TensorBoardLogger made with the same arguments: every file the run writes (the
    // checkpoint in the first logger's directory), each metrics.csv's header, v_num.
    for name in ["loggers-csv-named", "loggers-tensorboard-unnamed", "loggers-two", "loggers-tensorboard-sub-dir"] {
        let want = reference(name);
        let d = tempfile::tempdir().expect("tempdir");
        let loggers = want["loggers"].as_object().expect("loggers");
        // Lightning's list order (the first logger's directory holds the checkpoints).
        let kinds: Vec<&str> = want["order"].as_array().expect("order").iter().filter_map(Value::as_str).collect();
        let mut args = vec!["--logger".to_string(), kinds.join(","), "--max-epochs".into(), "1".into()];
        args.extend(["--log-every-n-steps".to_string(), "1".into()]);
        for (kind, opts) in loggers {
            for (k, v) in opts.as_object().expect("arguments") {
                args.extend(["--set".to_string(), format!("loggers.{kind}.{k}={v}")]);
            }
        }
        let wasm = plugin("lit-hparams");
        let seed = want["seed"].to_string();
        let mut all = vec!["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--seed", &seed];
        all.extend(args.iter().map(String::as_str));
        let run = lthost(d.path(), &all);
        assert!(run.ok(), "{name}: {}", run.stderr);
        let mut files = Vec::new();
        let mut stack = vec![d.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("a directory").flatten() {
                let path = e.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path.strip_prefix(d.path()).expect("below").to_string_lossy().into_owned();
                files.push(match rel.split_once("events.out.tfevents.") {
                    Some((dir, _)) => format!("{dir}events.out.tfevents"),
                    None => rel,
                });
            }
        }
        files.sort();
        assert_eq!(serde_json::json!(files), want["files"], "{name}: files");
        for (file, header) in want["headers"].as_object().expect("headers") {
            let text = std::fs::read_to_string(d.path().join(file)).expect("metrics.csv");
            assert_eq!(Some(text.lines().next().unwrap_or("")), header.as_str(), "{name}: {file} header");
        }
        let v_num = format!("v_num={}", want["v_num"].as_str().expect("v_num"));
        assert!(run.stdout.contains(&v_num), "{name}: {v_num} in\n{}", run.stdout);
    }
}

#[test]
fn a_requeued_slurm_job_logs_on_in_its_job_ids_version() {
    // Lightning's default logger takes SLURMEnvironment.job_id() as its version (not in an
    // interactive allocation, nor for a logger made with arguments); the job requeued logs
    // on in the same directory, where lthost keeps the first run's rows (Lightning's
    // CSVLogger deletes them).
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-hparams");
    let args = ["fit", wasm.to_str().expect("utf-8"), "--accelerator", "cpu", "--no-progress-bar", "--max-epochs", "1"];
    let fit_in = |job_name: &str, extra: &[&str]| {
        let mut cmd = crate::common::command(env!("CARGO_BIN_EXE_lthost"), d.path());
        cmd.args(args).args(["--log-every-n-steps", "1"]).args(extra);
        let out = cmd.env("SLURM_JOB_ID", "4242").env("SLURM_JOB_NAME", job_name).output().expect("lthost runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    fit_in("train", &[]);
    fit_in("train", &[]);
    let rows = read_metrics(&d.path().join("lightning_logs/version_4242"));
    assert_eq!(column(&rows, "train_loss").len(), 8, "both runs' rows, four steps each");
    fit_in("interactive", &[]);
    // One past the largest, as Lightning's `_get_next_version`.
    assert!(d.path().join("lightning_logs/version_4243/metrics.csv").exists(), "an interactive job numbers versions");
    fit_in("train", &["--set", "loggers.csv.name=exp"]);
    assert!(d.path().join("exp/version_0/metrics.csv").exists(), "a logger made with arguments numbers versions");
}
