//! Resumed runs beside Lightning's: the hooks they call (Lightning's resume cases RS-a..g).
use super::*;

#[test]
fn a_resumed_run_calls_the_hooks_lightning_does() {
    // tests/reference/native_reference.py `resumes()`: Lightning's resume cases (loops.md RS-a..d).
    // lthost differs where a checkpoint predates the end of its epoch (taken at the last batch's
    // end with a validation due): lthost runs that validation and finishes the epoch (its
    // on_train_epoch_end and epoch metrics, as the uninterrupted run does); Lightning counts the
    // epoch done without them and also skips the next epoch's on_train_epoch_start.
    // (case, count, lthost minus Lightning):
    let differs: &[(&str, &str, i64)] = &[
        ("rs_b_last_batch_val_due", "on_train_epoch_start", 1),
        ("rs_b_last_batch_val_due", "on_train_epoch_end", 1),
        ("rs_b_last_batch_val_due", "on_validation_start", 1),
        ("rs_b_last_batch_val_due", "validation_step", 2),
        // A validation cut by a failure runs again from its first batch (its epoch mean is
        // the uninterrupted run's); Lightning continues it from the failed batch.
        ("rs_e_failure_in_mid_epoch_validation", "validation_step", 1),
        ("rs_f_failure_in_epoch_end_validation", "validation_step", 1),
        ("rs_g_save_on_exception", "validation_step", 1),
    ];
    // lthost's own save at a signal (`last.ckpt` in the checkpoint directory), beside what
    // Lightning's on_exception saves; Lightning saves nothing of its own then.
    let signal_saves: &[(&str, &str)] = &[("rs_h_sigterm_on_exception", "last.ckpt")];
    let want = reference();
    let cases = want["resumes"].as_object().expect("resumes");
    assert_eq!(cases.len(), 10);
    for (name, case) in cases {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let saves = dir.path().join("saves");
        let mut first = case["first"].as_object().cloned().expect("first fit's arguments");
        first.insert("num_sanity_val_steps".into(), 0.into());
        let mut checkpoint: CheckpointConfig =
            serde_json::from_value(case["checkpoint"].clone()).expect("ModelCheckpoint's arguments");
        checkpoint.dirpath = Some(saves.clone());
        let fails =
            case["fail_val_at"].as_array().map(|a| (a[0].as_u64().expect("epoch"), a[1].as_u64().expect("batch")));
        let sigterm_at =
            case["sigterm_at"].as_array().map(|a| (a[0].as_u64().expect("epoch"), a[1].as_u64().expect("batch")));
        let mut m = Regression::new();
        m.fail_validation_at = fails;
        let mut t = Trainer::new(lightning_config(dir.path(), &first), None);
        t.cfg.enable_checkpointing = true;
        t.checkpoint = checkpoint;
        if let Some(at) = sigterm_at {
            // SIGTERM arriving in on_train_batch_end, as the Lightning twin sends it.
            let flag = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            t.signal = Some(flag.clone());
            t.callbacks.push(Box::new(Probe(move |hook, info: &HookInfo<'_>| {
                if hook == Hook::OnTrainBatchEnd && Some((info.current_epoch, info.batch_idx.unwrap_or(0))) == Some(at)
                {
                    flag.store(libc::SIGTERM as usize, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(CallbackAction::default())
            })));
        }
        let first_fit = t.fit(&mut m, &mut Points::default(), &serde_json::json!({}));
        assert_eq!(first_fit.is_err(), fails.is_some(), "{name}: the first fit fails where asked");
        if sigterm_at.is_some() {
            let report = first_fit.expect("an interrupted fit");
            assert_eq!(report.interrupted, Some(libc::SIGTERM), "{name}: the signal ended the run");
        }
        let mut saved: Vec<String> = std::fs::read_dir(&saves)
            .expect("saves")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        for (_, own) in signal_saves.iter().filter(|(n, _)| n == name) {
            assert!(saved.iter().any(|f| f == own), "{name}: lthost's signal save {own} in {saved:?}");
            saved.retain(|f| f != own);
        }
        saved.sort();
        assert_eq!(serde_json::to_value(&saved).expect("names"), case["saved"], "{name}: the first fit's files");
        first.insert("max_epochs".into(), case["max_epochs"].clone());
        let root = tempfile::tempdir().expect("tempdir");
        let mut m = Regression::new();
        let file = saves.join(case["file"].as_str().expect("file"));
        let mut t = Trainer::new(lightning_config(root.path(), &first), None);
        t.ckpt_path = Some(file.display().to_string());
        let end = at_train_end(&mut t);
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("resumed fit");
        assert_eq!(report.global_step, case["global_step"], "{name}: global_step");
        // The step logged values get: after a resume from inside a batch's validation, that
        // batch's step counts once.
        let stepped = end.borrow().as_ref().map(|e| e.batches_that_stepped);
        assert_eq!(stepped, case["batches_that_stepped"].as_u64(), "{name}: _batches_that_stepped");
        for (hook, n) in case["counts"].as_object().expect("counts") {
            let delta = differs.iter().find(|d| d.0 == name && d.1 == hook).map_or(0, |d| d.2);
            let want = n.as_i64().expect("count") + delta;
            assert_eq!(count(&m, hook) as i64, want, "{name}: {hook} (Lightning {n}, lthost's difference {delta})");
        }
    }
}

#[test]
fn a_finished_run_resumed_from_last_to_more_epochs_saves_the_straight_runs_loops() {
    // Lightning's test_restart_from_last_parity and ..._with_val_parity (docs/lightning-tests/
    // loops.md rows 10, 11): 4 epochs straight with save_last, against 2 epochs and then a fit
    // resumed from that run's last.ckpt to 4: both last.ckpt hold the same loops' state (every
    // progress counter, the validation loop's included) and lthost, which restores the
    // generators too, the same weights. Lightning 2.6.6 (its test, run in the venv): the loops
    // equal; 4 epochs started, 8 batches; the validation loop's total the last epoch's 2
    // batches. (Where an epoch counts as completed in the file differs by design: lthost's
    // marks a save after the epoch's end `at_epoch_end`, the position a resume starts from.)
    for with_val in [false, true] {
        let _one = serial();
        let cfg = |root: &Path, epochs: i64| TrainerConfig {
            limit_train_batches: Limit::Batches(2),
            limit_val_batches: Limit::Batches(if with_val { 2 } else { 0 }),
            val_check_interval: with_val.then_some(ValCheckInterval::Every(Limit::Batches(2))),
            ..quiet(root, epochs)
        };
        let save_last = |dir: &Path| CheckpointConfig {
            dirpath: Some(dir.to_path_buf()),
            save_last: SaveLast::Yes,
            save_top_k: -1,
            ..CheckpointConfig::default()
        };
        let last = |dir: &Path| crate::checkpoint::load(&dir.join("last.ckpt")).expect("last.ckpt");
        let straight_dir = tempfile::tempdir().expect("tempdir");
        let mut straight = Regression::new();
        fit(cfg(straight_dir.path(), 4), &mut straight, Some(save_last(&straight_dir.path().join("ck"))), None);
        let resumed_dir = tempfile::tempdir().expect("tempdir");
        let ck = resumed_dir.path().join("ck");
        fit(cfg(resumed_dir.path(), 2), &mut Regression::new(), Some(save_last(&ck)), None);
        let first = resumed_dir.path().join("first.ckpt");
        std::fs::copy(ck.join("last.ckpt"), &first).expect("copy");
        let mut resumed = Regression::new();
        fit(cfg(resumed_dir.path(), 4), &mut resumed, Some(save_last(&ck)), Some(&first));
        let (want, got) = (last(&straight_dir.path().join("ck")), last(&ck));
        assert_eq!(got.meta.loops, want.meta.loops, "with validation: {with_val}");
        assert_eq!((got.meta.current_epoch, got.meta.global_step), (want.meta.current_epoch, want.meta.global_step));
        let w = &want.meta.loops["fit_loop"];
        assert_eq!(w["epoch_progress"]["total"]["started"], 4, "{w}");
        assert_eq!(w["epoch_loop.batch_progress"]["total"]["ready"], 8, "{w}");
        let val_batches = w["epoch_loop.val_loop.batch_progress"]["total"]["completed"].as_u64();
        assert_eq!(val_batches, Some(if with_val { 2 } else { 0 }), "validation batches: {w}");
        assert_eq!(resumed.weights().len(), straight.weights().len());
        for (g, w) in resumed.weights().iter().zip(straight.weights()) {
            assert!(g.equal(&w), "with validation: {with_val}: {g:?} != {w:?}");
        }
    }
}
