//! Lightning's EarlyStopping: stop when a monitored metric stops improving (patience,
//! min_delta), reaches a threshold, diverges, or becomes non-finite.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::callbacks::py_format::{repr_float, PyNumber};
use crate::config::{Limit, ValCheckInterval};

/// `[early_stopping]` in the run file; absent: no early stopping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStoppingConfig {
    pub monitor: String,
    /// Printed as given (an int stays an int in Lightning's improvement message).
    pub min_delta: PyNumber,
    pub patience: u64,
    /// "min" or "max".
    pub mode: String,
    /// A missing monitor is an error (true) or skips the check (false).
    pub strict: bool,
    pub check_finite: bool,
    /// Printed as given (Lightning's message prints `100` for an int, `100.0` for a float).
    pub stopping_threshold: Option<PyNumber>,
    pub divergence_threshold: Option<PyNumber>,
    /// Check at the training epoch's end (true) or after each validation run (false). Unset:
    /// Lightning's rule ([`EarlyStopping::checks_on_train_epoch_end`]).
    pub check_on_train_epoch_end: Option<bool>,
    /// Lightning's `verbose`: each improvement and stop is said (on stderr, as Lightning's
    /// logger says it).
    pub verbose: bool,
    /// Lightning's `log_rank_zero_only`: with one process there is only rank 0 to say it.
    pub log_rank_zero_only: bool,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig {
            monitor: String::new(),
            min_delta: PyNumber::float(0.0),
            patience: 3,
            mode: "min".into(),
            strict: true,
            check_finite: true,
            stopping_threshold: None,
            divergence_threshold: None,
            check_on_train_epoch_end: None,
            verbose: false,
            log_rank_zero_only: false,
        }
    }
}

pub struct EarlyStopping {
    pub cfg: EarlyStoppingConfig,
    pub best: f64,
    pub wait_count: u64,
    /// The epoch whose check stopped the run (Lightning's `stopped_epoch`; 0 until then).
    pub stopped_epoch: u64,
    /// Why the run was stopped, once it was.
    pub reason: Option<String>,
    pub stopping_reason: StoppingReason,
    /// The last improvement message (Lightning's `_improvement_message`), said when verbose.
    pub last_message: Option<String>,
}

/// Lightning's `EarlyStoppingReason` (its values are Lightning's, in checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoppingReason {
    #[default]
    NotStopped = 0,
    StoppingThreshold = 1,
    DivergenceThreshold = 2,
    PatienceExhausted = 3,
    NonFiniteMetric = 4,
}

impl StoppingReason {
    fn from_value(v: u64) -> Option<Self> {
        use StoppingReason::*;
        [NotStopped, StoppingThreshold, DivergenceThreshold, PatienceExhausted, NonFiniteMetric]
            .get(v as usize)
            .copied()
    }

    /// The name Lightning's enum member has.
    pub fn name(self) -> &'static str {
        match self {
            StoppingReason::NotStopped => "NOT_STOPPED",
            StoppingReason::StoppingThreshold => "STOPPING_THRESHOLD",
            StoppingReason::DivergenceThreshold => "DIVERGENCE_THRESHOLD",
            StoppingReason::PatienceExhausted => "PATIENCE_EXHAUSTED",
            StoppingReason::NonFiniteMetric => "NON_FINITE_METRIC",
        }
    }
}

impl EarlyStopping {
    /// Lightning's `EarlyStopping.state_key`.
    pub fn state_key(&self) -> String {
        use crate::callbacks::state_key::{state_key, PyValue};
        let kwargs =
            [("monitor", PyValue::Str(self.cfg.monitor.clone())), ("mode", PyValue::Str(self.cfg.mode.clone()))];
        state_key("EarlyStopping", &kwargs)
    }

    /// The key older lthost checkpoints used (see [`Self::state_key`]).
    pub fn legacy_state_key(&self) -> String {
        format!("EarlyStopping{{'monitor': {:?}}}", self.cfg.monitor)
    }

    pub fn new(cfg: EarlyStoppingConfig) -> Result<Self> {
        if cfg.monitor.is_empty() {
            bail!("early_stopping.monitor is required");
        }
        if !matches!(cfg.mode.as_str(), "min" | "max") {
            bail!("early_stopping.mode must be \"min\" or \"max\"");
        }
        let best = if cfg.mode == "min" { f64::INFINITY } else { f64::NEG_INFINITY };
        Ok(EarlyStopping {
            cfg,
            best,
            wait_count: 0,
            stopped_epoch: 0,
            reason: None,
            stopping_reason: StoppingReason::NotStopped,
            last_message: None,
        })
    }

    /// Lightning's `monitor_op`, in float32 as Lightning compares its logged tensors.
    fn better(&self, a: f32, b: f32) -> bool {
        if self.cfg.mode == "min" {
            a < b
        } else {
            a > b
        }
    }

    /// Where Lightning checks when `check_on_train_epoch_end` is unset (its `setup`): at the
    /// training epoch's end when validation runs once per epoch at its end
    /// (`val_check_interval == 1.0`, which an int 1 also equals, and
    /// `check_val_every_n_epoch == 1`), else after each validation run.
    pub fn checks_on_train_epoch_end(
        &self,
        val_check_interval: &ValCheckInterval,
        every_n_epochs: Option<u64>,
    ) -> bool {
        let once_per_epoch = matches!(
            val_check_interval,
            ValCheckInterval::Every(Limit::Fraction(f)) if *f == 1.0
        ) || matches!(val_check_interval, ValCheckInterval::Every(Limit::Batches(1)));
        self.cfg.check_on_train_epoch_end.unwrap_or(once_per_epoch && every_n_epochs == Some(1))
    }

    /// Lightning's `_run_early_stopping_check` at `epoch`; returns true when the run should
    /// stop.
    pub fn check(&mut self, metrics: &BTreeMap<String, f64>, epoch: u64) -> Result<bool> {
        let Some(&current) = metrics.get(&self.cfg.monitor) else {
            if self.cfg.strict {
                let known: Vec<&String> = metrics.keys().collect();
                bail!(
                    "EarlyStopping conditioned on metric `{}` which is not available; available metrics are: {known:?}",
                    self.cfg.monitor
                );
            }
            return Ok(false);
        };
        let m = &self.cfg.monitor;
        let order = if self.cfg.mode == "min" { "<" } else { ">" };
        // Lightning's sign convention, as it is (a negative min_delta included): the delta
        // counts towards improvement in `mode`'s direction.
        let delta = if self.cfg.mode == "min" { -self.cfg.min_delta.value } else { self.cfg.min_delta.value } as f32;
        let now = current as f32;
        // Values as Python prints them (Lightning's f-strings of a float32 tensor and floats).
        let shown = repr_float(f64::from(now));
        let (stop, reason) = if self.cfg.check_finite && !now.is_finite() {
            let why = format!("Monitored metric {m} = {shown} is not finite. Previous best value was {:.3}. Signaling Trainer to stop.", self.best);
            (Some(why), StoppingReason::NonFiniteMetric)
        } else if let Some(t) = self.cfg.stopping_threshold.filter(|t| self.better(now, t.value as f32)) {
            let why = format!("Stopping threshold reached: {m} = {shown} {order} {t}. Signaling Trainer to stop.");
            (Some(why), StoppingReason::StoppingThreshold)
        } else if let Some(t) = self.cfg.divergence_threshold.filter(|t| self.better(-now, -t.value as f32)) {
            let why = format!("Divergence threshold reached: {m} = {shown} {order} {t}. Signaling Trainer to stop.");
            (Some(why), StoppingReason::DivergenceThreshold)
        } else if self.better(now - delta, self.best as f32) {
            // Lightning's `_improvement_message`, said when verbose.
            let said = if self.best.is_finite() {
                format!(
                    "Metric {m} improved by {:.3} >= min_delta = {}. New best score: {:.3}",
                    (self.best as f32 - now).abs(),
                    self.cfg.min_delta.abs(),
                    now
                )
            } else {
                format!("Metric {m} improved. New best score: {now:.3}")
            };
            if self.cfg.verbose {
                eprintln!("{said}");
            }
            self.last_message = Some(said);
            self.best = f64::from(now);
            self.wait_count = 0;
            (None, self.stopping_reason)
        } else {
            self.wait_count += 1;
            let why = (self.wait_count >= self.cfg.patience)
                .then(|| format!("Monitored metric {m} did not improve in the last {} records. Best score: {:.3}. Signaling Trainer to stop.", self.wait_count, self.best));
            let reason = if why.is_some() { StoppingReason::PatienceExhausted } else { self.stopping_reason };
            (why, reason)
        };
        self.stopping_reason = reason;
        let stopping = stop.is_some();
        if stopping {
            self.stopped_epoch = epoch;
            self.reason = stop;
        }
        Ok(stopping)
    }

    /// Lightning's `state_dict` (a non-finite best score as the string Python writes for it,
    /// `"inf"`, `"-inf"` or `"nan"`: JSON has no infinity).
    pub fn state(&self) -> serde_json::Value {
        let best = match self.best {
            b if b.is_finite() => serde_json::json!(b),
            b if b.is_nan() => serde_json::json!("nan"),
            b if b > 0.0 => serde_json::json!("inf"),
            _ => serde_json::json!("-inf"),
        };
        serde_json::json!({
            "wait_count": self.wait_count,
            "stopped_epoch": self.stopped_epoch,
            "best_score": best,
            "patience": self.cfg.patience,
            "stopping_reason": self.stopping_reason as u64,
            "stopping_reason_message": self.reason,
        })
    }

    /// Lightning's `load_state_dict`: the saved patience replaces the configured one, as in
    /// Lightning; a state older lthost versions wrote (best score and wait count) loads too.
    pub fn load_state(&mut self, s: &serde_json::Value) {
        match &s["best_score"] {
            serde_json::Value::Number(n) => self.best = n.as_f64().unwrap_or(self.best),
            serde_json::Value::String(t) => self.best = t.parse().unwrap_or(self.best),
            _ => {}
        }
        self.wait_count = s["wait_count"].as_u64().unwrap_or(0);
        self.stopped_epoch = s["stopped_epoch"].as_u64().unwrap_or(0);
        if let Some(p) = s["patience"].as_u64() {
            self.cfg.patience = p;
        }
        self.stopping_reason = s["stopping_reason"].as_u64().and_then(StoppingReason::from_value).unwrap_or_default();
        self.reason = s["stopping_reason_message"].as_str().map(str::to_string);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(v: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([("loss".to_string(), v)])
    }

    impl EarlyStopping {
        fn check_at(&mut self, m: &BTreeMap<String, f64>) -> Result<bool> {
            self.check(m, 0)
        }
    }

    #[test]
    fn messages_are_lightnings() -> Result<()> {
        // `EarlyStopping(monitor="val_loss", min_delta=0.1, patience=2)._evaluate_stopping_criteria`
        // over these values, in the project venv (Lightning 2.6.6).
        let mut es = EarlyStopping::new(EarlyStoppingConfig {
            monitor: "val_loss".into(),
            min_delta: PyNumber::float(0.1),
            patience: 2,
            ..Default::default()
        })?;
        let want = [
            (1.0, Some("Metric val_loss improved. New best score: 1.000")),
            (0.85, Some("Metric val_loss improved by 0.150 >= min_delta = 0.1. New best score: 0.850")),
            (0.8, None),
            (0.7, Some("Metric val_loss improved by 0.150 >= min_delta = 0.1. New best score: 0.700")),
            (0.65, None),
        ];
        for (v, msg) in want {
            es.last_message = None;
            let m = BTreeMap::from([("val_loss".to_string(), f64::from(v as f32))]);
            assert!(!es.check(&m, 0)?);
            assert_eq!(es.last_message.as_deref(), msg, "{v}");
        }
        let m = BTreeMap::from([("val_loss".to_string(), f64::from(0.64f32))]);
        assert!(es.check(&m, 0)?);
        // An int min_delta prints as one (Lightning keeps the argument's type: `min_delta = 1`).
        let cfg: EarlyStoppingConfig = serde_json::from_value(serde_json::json!({"monitor": "m", "min_delta": 1}))?;
        let mut es_int = EarlyStopping::new(cfg)?;
        for v in [9.0, 5.0] {
            es_int.check(&BTreeMap::from([("m".to_string(), v)]), 0)?;
        }
        assert_eq!(
            es_int.last_message.as_deref(),
            Some("Metric m improved by 4.000 >= min_delta = 1. New best score: 5.000")
        );
        assert_eq!(
            es.reason.as_deref(),
            Some("Monitored metric val_loss did not improve in the last 2 records. Best score: 0.700. Signaling Trainer to stop.")
        );
        Ok(())
    }

    #[test]
    fn patience_min_delta_and_thresholds() {
        let mut es = EarlyStopping::new(EarlyStoppingConfig {
            monitor: "loss".into(),
            patience: 2,
            min_delta: PyNumber::float(0.1),
            ..EarlyStoppingConfig::default()
        })
        .unwrap();
        assert!(!es.check_at(&at(1.0)).unwrap());
        assert!(!es.check_at(&at(0.95)).unwrap(), "not better by min_delta: wait 1");
        assert!(es.check_at(&at(0.95)).unwrap(), "wait 2 = patience");
        let mut es = EarlyStopping::new(EarlyStoppingConfig {
            monitor: "loss".into(),
            stopping_threshold: Some(PyNumber::float(0.5)),
            ..EarlyStoppingConfig::default()
        })
        .unwrap();
        assert!(es.check_at(&at(0.4)).unwrap());
        let mut es = EarlyStopping::new(EarlyStoppingConfig {
            monitor: "loss".into(),
            divergence_threshold: Some(PyNumber::float(5.0)),
            ..EarlyStoppingConfig::default()
        })
        .unwrap();
        assert!(es.check_at(&at(6.0)).unwrap());
        let mut es =
            EarlyStopping::new(EarlyStoppingConfig { monitor: "loss".into(), ..EarlyStoppingConfig::default() })
                .unwrap();
        assert!(es.check_at(&at(f64::NAN)).unwrap());
        assert!(es.check_at(&BTreeMap::new()).is_err(), "strict");
        let unknown =
            EarlyStoppingConfig { monitor: "loss".into(), mode: "unknown_option".into(), ..Default::default() };
        assert!(EarlyStopping::new(unknown).is_err(), "Lightning's test_early_stopping_mode_options");
    }
}
