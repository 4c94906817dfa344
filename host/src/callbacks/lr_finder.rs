//! Lightning's learning-rate range test (`Tuner.lr_find`): the learning rate grows from
//! `min_lr` to `max_lr` over `num_training` optimizer steps (exponentially or linearly,
//! torch-scheduler style); after each step the loss is smoothed (`beta = 0.98`, with
//! Lightning's bias correction) and the search stops early once the smoothed loss exceeds
//! `early_stop_threshold` times the best. The suggestion is the learning rate at the
//! steepest descent of loss over lr (`torch.gradient` with the learning rates as
//! coordinates, in float32 as Lightning computes it), skipping the first 10 and last point.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{Callback, CallbackAction, HookInfo};
use crate::hooks::Hook;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrFindConfig {
    pub min_lr: f64,
    pub max_lr: f64,
    /// The optimizer steps of the search (the callback's `num_training_steps`).
    #[serde(alias = "num_training_steps")]
    pub num_training: u64,
    /// "exponential" or "linear".
    pub mode: String,
    /// Stop once the smoothed loss exceeds this many times the best; `"none"` (None): never,
    /// as Lightning's `early_stop_threshold=None`.
    #[serde(deserialize_with = "threshold_or_none")]
    pub early_stop_threshold: Option<f64>,
    /// The field `lthost fit --lr-find` sets to the suggestion (Lightning's `attr_name`);
    /// empty: `lr`, else `learning_rate`, as Lightning looks them up.
    pub attr_name: String,
    /// Set the suggestion on the field and the optimizers (Lightning's `update_attr`, True by
    /// default); `[callbacks.learning_rate_finder]` takes false (a search that only reports).
    pub update_attr: bool,
}

/// A number, or "none" (TOML has no null).
fn threshold_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Threshold {
        Number(f64),
        Named(String),
    }
    match Threshold::deserialize(d)? {
        Threshold::Number(v) => Ok(Some(v)),
        Threshold::Named(s) if s.eq_ignore_ascii_case("none") => Ok(None),
        Threshold::Named(s) => {
            Err(serde::de::Error::custom(format!("early_stop_threshold = {s:?}: expected a number or \"none\"")))
        }
    }
}

impl Default for LrFindConfig {
    fn default() -> Self {
        LrFindConfig {
            min_lr: 1e-8,
            max_lr: 1.0,
            num_training: 100,
            mode: "exponential".into(),
            early_stop_threshold: Some(4.0),
            attr_name: String::new(),
            update_attr: true,
        }
    }
}

impl LrFindConfig {
    /// The schedule that replaces the plugin's schedulers during the search.
    pub fn schedule(&self) -> crate::engine::schedulers::SchedulerKind {
        crate::engine::schedulers::SchedulerKind::RangeTest(crate::engine::schedulers::RangeTestConfig {
            exponential: self.mode.eq_ignore_ascii_case("exponential"),
            min_lr: self.min_lr,
            max_lr: self.max_lr,
            num_iter: self.num_training,
        })
    }

    /// The range schedule on the single optimizer, stepped every optimizer step (Lightning's
    /// `_exchange_scheduler`).
    pub fn search_spec(&self) -> crate::engine::optim::SchedulerSpec {
        crate::engine::optim::SchedulerSpec {
            kind: self.schedule(),
            optimizer: 0,
            interval: crate::engine::optim::Interval::Step,
            frequency: 1,
            monitor: None,
            strict: true,
        }
    }

    /// Lightning's checks: the mode in any case (its callback lower-cases it); bounds in
    /// either order (min_lr above max_lr sweeps down) and a single step are searched as
    /// Lightning searches them; only bounds its formula cannot use are refused.
    pub fn validate(&self) -> Result<()> {
        let mode = self.mode.to_ascii_lowercase();
        if !matches!(mode.as_str(), "linear" | "exponential") {
            bail!("lr_find: mode = {:?}: `mode` should be either of ('linear', 'exponential')", self.mode);
        }
        if !(self.min_lr.is_finite() && self.max_lr.is_finite()) {
            bail!("lr_find: min_lr and max_lr must be finite (got {} and {})", self.min_lr, self.max_lr);
        }
        // Lightning's `min_lr * (max_lr / min_lr) ** r`: min_lr divides, a negative ratio has no power.
        if mode == "exponential" && !(self.min_lr > 0.0 && self.max_lr >= 0.0) {
            bail!(
                "lr_find: the exponential sweep needs min_lr above 0 and max_lr at least 0 (got {} and {}); mode = \
                 \"linear\" takes any bounds",
                self.min_lr,
                self.max_lr
            );
        }
        if self.num_training < 1 {
            bail!("lr_find: num_training must be at least 1");
        }
        // Lightning takes any threshold (0 stops at the second point a positive loss gives).
        if self.early_stop_threshold.is_some_and(f64::is_nan) {
            bail!("lr_find: early_stop_threshold must be a number or \"none\"");
        }
        Ok(())
    }
}

/// What the search recorded: the learning rate of each step and the smoothed loss after it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LrFindResults {
    pub lr: Vec<f64>,
    pub loss: Vec<f64>,
}

/// Lightning's `_LRCallback`.
pub struct LrFinderCallback {
    pub results: Rc<RefCell<LrFindResults>>,
    threshold: Option<f64>,
    beta: f64,
    avg_loss: f64,
    best_loss: f64,
    accumulate: u64,
}

impl LrFinderCallback {
    pub fn new(cfg: &LrFindConfig, accumulate: u64) -> Self {
        LrFinderCallback {
            results: Rc::default(),
            threshold: cfg.early_stop_threshold,
            beta: 0.98,
            avg_loss: 0.0,
            best_loss: 0.0,
            accumulate: accumulate.max(1),
        }
    }
}

impl Callback for LrFinderCallback {
    fn name(&self) -> &str {
        "LRFinder"
    }

    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> Result<CallbackAction> {
        let mut action = CallbackAction::default();
        let window_end = info.batch_idx.is_some_and(|i| (i + 1) % self.accumulate == 0);
        match hook {
            Hook::OnTrainBatchStart if window_end => {
                let lr = info.optim.and_then(|o| o.optimizers.first()).map(|o| o.lr(0)).unwrap_or(f64::NAN);
                self.results.borrow_mut().lr.push(lr);
            }
            Hook::OnTrainBatchEnd if window_end => {
                let Some(loss) = info.loss.and_then(|l| l.f_double_value(&[]).ok()) else {
                    self.results.borrow_mut().loss.push(f64::NAN);
                    return Ok(action);
                };
                let step = info.global_step;
                self.avg_loss = self.beta * self.avg_loss + (1.0 - self.beta) * loss;
                let smoothed = self.avg_loss / (1.0 - self.beta.powf(step as f64 + 1.0));
                if let Some(t) = self.threshold {
                    if step > 1 && smoothed > t * self.best_loss {
                        action.stop = Some(format!(
                            "the smoothed loss {smoothed:.4} passed {t} x the best {:.4}",
                            self.best_loss
                        ));
                    }
                }
                if smoothed < self.best_loss || step == 1 {
                    self.best_loss = smoothed;
                }
                self.results.borrow_mut().loss.push(smoothed);
            }
            _ => {}
        }
        Ok(action)
    }
}

/// Lightning's `suggestion(skip_begin, skip_end)`: the index and learning rate of the
/// steepest negative slope, or None with fewer than two usable points.
pub fn suggestion(r: &LrFindResults, skip_begin: usize, skip_end: usize) -> Result<Option<(usize, f64)>> {
    let n = r.loss.len().min(r.lr.len());
    // Python's `[skip_begin:-skip_end]`: nothing when skip_end is 0.
    if skip_end == 0 || n <= skip_begin + skip_end {
        return Ok(None);
    }
    // Finite as the float32 Lightning's `torch.tensor(losses)` makes of them.
    let idx: Vec<usize> = (skip_begin..n - skip_end).filter(|&i| (r.loss[i] as f32).is_finite()).collect();
    if idx.len() < 2 {
        return Ok(None);
    }
    let f32s = |v: Vec<f32>| Tensor::f_from_slice(&v);
    let losses = f32s(idx.iter().map(|&i| r.loss[i] as f32).collect())?;
    let lrs = f32s(idx.iter().map(|&i| r.lr[i] as f32).collect())?;
    let g = gradient(&losses, &lrs)?;
    let best = g.f_argmin(0, false)?.f_int64_value(&[])? as usize;
    let i = idx[best];
    Ok(Some((i, r.lr[i])))
}

/// ATen's `gradient` of `f` over coordinates `x` (edge_order 1), op for op so that float32
/// rounding, and so the argmin, match torch.
fn gradient(f: &Tensor, x: &Tensor) -> Result<Tensor, tch::TchError> {
    let dx = x.f_diff(1, 0, None::<Tensor>, None::<Tensor>)?;
    let dx1 = dx.f_slice(0, 0, -1, 1)?;
    let dx2 = dx.f_slice(0, 1, None, 1)?;
    let a = dx2.f_neg()?.f_div(&dx1.f_mul(&dx1.f_add(&dx2)?)?)?;
    let b = dx2.f_sub(&dx1)?.f_div(&dx1.f_mul(&dx2)?)?;
    let c = dx1.f_div(&dx2.f_mul(&dx1.f_add(&dx2)?)?)?;
    let center = a
        .f_mul(&f.f_slice(0, 0, -2, 1)?)?
        .f_add(&b.f_mul(&f.f_slice(0, 1, -1, 1)?)?)?
        .f_add(&c.f_mul(&f.f_slice(0, 2, None, 1)?)?)?;
    let first = f.f_slice(0, 1, 2, 1)?.f_sub(&f.f_slice(0, 0, 1, 1)?)?.f_div(&dx.f_get(0)?)?;
    let last = f.f_slice(0, -1, None, 1)?.f_sub(&f.f_slice(0, -2, -1, 1)?)?.f_div(&dx.f_get(-1)?)?;
    let out = Tensor::f_cat(&[first, center, last], 0)?;
    debug_assert_eq!(out.kind(), Kind::Float);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_as_lightning_checks_them() {
        let cfg = |min_lr: f64, max_lr: f64, num_training: u64, mode: &str| LrFindConfig {
            min_lr,
            max_lr,
            num_training,
            mode: mode.into(),
            ..LrFindConfig::default()
        };
        // Taken, as Lightning takes them: a downward sweep, one step, the mode in any case, a
        // linear sweep from 0.
        for ok in [
            cfg(1.0, 1e-8, 3, "exponential"),
            cfg(1e-8, 1.0, 1, "exponential"),
            cfg(1e-3, 0.1, 20, "Linear"),
            cfg(0.0, 0.1, 5, "linear"),
            cfg(1e-3, 0.0, 5, "exponential"),
        ] {
            assert!(ok.validate().is_ok(), "{ok:?}");
        }
        // Refused: no steps, an unknown mode (Lightning's message), bounds the formula cannot use.
        for bad in [
            cfg(1e-8, 1.0, 0, "exponential"),
            cfg(1e-8, 1.0, 5, "cosine"),
            cfg(0.0, 1.0, 5, "exponential"),
            cfg(1e-3, -1.0, 5, "exponential"),
            cfg(f64::NAN, 1.0, 5, "linear"),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let e = cfg(1e-8, 1.0, 5, "cosine").validate().map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(e.contains("`mode` should be either of ('linear', 'exponential')"), "{e}");
    }

    #[test]
    fn suggestions_are_lightnings() {
        // tests/reference/callbacks_reference.py `suggestions()`: Lightning's `_LRFinder.suggestion`
        // on test_lr_finder.py's literal results (too few finite points, NaN and inf, skip_end 0,
        // sin's steepest descent at pi, a float32 overflow, skip_begin 10 and 70).
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/reference/callbacks.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run `make reference`)"));
        let reference: serde_json::Value = serde_json::from_str(&text).expect("callbacks.json");
        let number = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.parse::<f64>().expect("nan or inf"),
            v => v.as_f64().expect("a number"),
        };
        let cases = reference["suggestions"].as_array().expect("suggestions");
        // test_suggestion_parameters_work: the last two cases are one search's results with
        // skip_begin 10 and 70, whose suggestions differ.
        let [.., early, late] = cases.as_slice() else { panic!("the skip_begin cases") };
        assert_eq!((early["skip_begin"].as_u64(), late["skip_begin"].as_u64()), (Some(10), Some(70)));
        assert_ne!(early["index"], late["index"], "skip_begin changes Lightning's suggestion");
        for (i, case) in cases.iter().enumerate() {
            let results = LrFindResults {
                lr: case["lr"].as_array().expect("lr").iter().map(number).collect(),
                loss: case["loss"].as_array().expect("loss").iter().map(number).collect(),
            };
            let skip = |k: &str| case[k].as_u64().expect("skip") as usize;
            let got = suggestion(&results, skip("skip_begin"), skip("skip_end")).expect("suggestion");
            let want = case["index"].as_u64().map(|i| (i as usize, number(&case["suggestion"])));
            assert_eq!(
                got,
                want,
                "case {i}: {:?}",
                &case["loss"].to_string()[..60.min(case["loss"].to_string().len())]
            );
        }
    }

    #[test]
    fn the_run_file_turns_early_stopping_off_with_none() {
        // Lightning's `early_stop_threshold=None`; any number is taken, 0 included.
        let cfg = crate::config::RunConfig::load(None, &["lr_find.early_stop_threshold=\"none\"".into()]).unwrap();
        assert_eq!(cfg.lr_find.early_stop_threshold, None);
        let cfg = crate::config::RunConfig::load(None, &["lr_find.early_stop_threshold=0".into()]).unwrap();
        assert_eq!(cfg.lr_find.early_stop_threshold, Some(0.0));
        cfg.lr_find.validate().unwrap();
        assert_eq!(crate::config::RunConfig::load(None, &[]).unwrap().lr_find.early_stop_threshold, Some(4.0));
        let bad = crate::config::RunConfig::load(None, &["lr_find.early_stop_threshold=\"never\"".into()]);
        assert!(bad.is_err_and(|e| e.to_string().contains("expected a number or \"none\"")));
    }

    #[test]
    fn gradient_matches_numpy_on_uneven_spacing() {
        let f = Tensor::from_slice(&[1.0f32, 4.0, 9.0, 16.0]);
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 5.0]);
        let g: Vec<f32> = Vec::try_from(gradient(&f, &x).unwrap()).unwrap();
        // torch.gradient(tensor([1,4,9,16]), spacing=[tensor([1,2,3,5])]) = [3, 4, 4.5, 3.5]
        let want = [3.0f32, 4.0, 4.5, 3.5];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{g:?}");
        }
    }

    #[test]
    fn suggestion_picks_the_steepest_descent() {
        let lr: Vec<f64> = (0..30).map(|i| 1e-4 * 1.5f64.powi(i)).collect();
        let loss: Vec<f64> =
            lr.iter().map(|l| 2.0 - (l * 100.0).min(1.5) + if *l > 0.05 { 10.0 * l } else { 0.0 }).collect();
        let (i, s) = suggestion(&LrFindResults { lr: lr.clone(), loss }, 10, 1).unwrap().unwrap();
        assert_eq!(s, lr[i]);
        assert!(i >= 10 && i < 29);
        assert!(suggestion(&LrFindResults { lr: vec![1.0; 5], loss: vec![1.0; 5] }, 10, 1).unwrap().is_none());
    }
}
