//! How an epoch ends beside Lightning's: cut short (the epoch-interval ReduceLROnPlateau), or
//! by a stop asked for inside it.
use super::*;

#[test]
fn an_epoch_cut_short_does_not_step_reduce_lr_on_plateau() {
    // tests/reference/native_reference.py `plateaus()`: Lightning steps an epoch-interval
    // ReduceLROnPlateau only after an epoch that reached its last batch.
    let want = reference();
    let cases = want["plateaus"].as_object().expect("plateaus");
    assert_eq!(cases.len(), 3);
    for (name, case) in cases {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = twin_trainer(dir.path(), case);
        let state = at_train_end(&mut t);
        let mut m = Regression::new();
        m.plateau_on = Some(if case["monitor"] == "val_loss" { "val_loss" } else { "train_loss_epoch" });
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
        assert_eq!(report.global_step, case["global_step"], "{name}");
        let (got, lr) = state.borrow_mut().take().and_then(|e| e.scheduler).expect("on_train_end ran");
        let s = &case["scheduler"];
        assert_eq!(got["last_epoch"], s["last_epoch"], "{name}: the plateau's steps");
        assert_eq!(got["num_bad_epochs"], s["num_bad_epochs"], "{name}");
        assert!(exact(got["best"].as_f64().expect("best"), s["best"].as_f64().expect("best")), "{name}: best {got}");
        assert!(exact(lr, s["lr"].as_f64().expect("lr")), "{name}: lr {lr}, Lightning {}", s["lr"]);
    }
}

#[test]
fn a_stop_asked_inside_an_epoch_ends_it_as_in_lightning() {
    // tests/reference/native_reference.py `stops()`: Lightning's test_should_stop_mid_epoch and
    // its min_epochs/min_steps variants.
    let want = reference();
    let cases = want["stops"].as_object().expect("stops");
    assert_eq!(cases.len(), 4);
    for (name, case) in cases {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = twin_trainer(dir.path(), case);
        let at: Vec<u64> = serde_json::from_value(case["at"].clone()).expect("at");
        // Asks to stop once, at the end of that training batch.
        t.callbacks.push(Box::new(Probe(move |hook, info: &HookInfo<'_>| {
            let here = hook == Hook::OnTrainBatchEnd && info.current_epoch == at[0] && info.batch_idx == Some(at[1]);
            Ok(CallbackAction { stop: here.then(|| "asked".into()), ..CallbackAction::default() })
        })));
        let mut m = Regression::new();
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
        assert_eq!(report.global_step, case["global_step"], "{name}: global_step");
        assert_eq!(report.epochs, case["current_epoch"], "{name}: current_epoch");
        for (hook, n) in case["counts"].as_object().expect("counts") {
            assert_eq!(count(&m, hook) as u64, n.as_u64().expect("count"), "{name}: {hook}");
        }
        let losses: Vec<f64> = serde_json::from_value(case["train_losses"].clone()).expect("losses");
        assert_eq!(m.losses.len(), losses.len(), "{name}: training steps");
        assert!(m.losses.iter().zip(&losses).all(|(g, w)| exact(*g, *w)), "{name}: {:?} vs {losses:?}", m.losses);
    }
}
