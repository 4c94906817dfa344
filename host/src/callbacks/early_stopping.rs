//! Lightning's EarlyStopping: stop when a monitored metric stops improving (patience,
//! min_delta), reaches a threshold, diverges, or becomes non-finite.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `[early_stopping]` in the run file; absent: no early stopping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStoppingConfig {
    pub monitor: String,
    pub min_delta: f64,
    pub patience: u64,
    /// "min" or "max".
    pub mode: String,
    /// A missing monitor is an error (true) or skips the check (false).
    pub strict: bool,
    pub check_finite: bool,
    pub stopping_threshold: Option<f64>,
    pub divergence_threshold: Option<f64>,
    /// Check at the training epoch's end (true) or after validation (false). Unset: after
    /// validation when there is validation.
    pub check_on_train_epoch_end: Option<bool>,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig {
            monitor: String::new(),
            min_delta: 0.0,
            patience: 3,
            mode: "min".into(),
            strict: true,
            check_finite: true,
            stopping_threshold: None,
            divergence_threshold: None,
            check_on_train_epoch_end: None,
        }
    }
}

pub struct EarlyStopping {
    pub cfg: EarlyStoppingConfig,
    pub best: f64,
    pub wait_count: u64,
    /// Why the run was stopped, once it was.
    pub reason: Option<String>,
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
        Ok(EarlyStopping { cfg, best, wait_count: 0, reason: None })
    }

    fn better(&self, a: f64, b: f64) -> bool {
        if self.cfg.mode == "min" {
            a < b
        } else {
            a > b
        }
    }

    /// Lightning's `_evaluate_stopping_criteria`; returns true when the run should stop.
    pub fn check(&mut self, metrics: &BTreeMap<String, f64>) -> Result<bool> {
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
        // torch's sign convention: min_delta counts towards improvement in `mode`'s direction.
        let delta = if self.cfg.mode == "min" { -self.cfg.min_delta.abs() } else { self.cfg.min_delta.abs() };
        let stop = if self.cfg.check_finite && !current.is_finite() {
            Some(format!("Monitored metric {m} = {current} is not finite. Previous best value was {:.3}. Signaling Trainer to stop.", self.best))
        } else if self.cfg.stopping_threshold.is_some_and(|t| self.better(current, t)) {
            Some(format!(
                "Stopping threshold reached: {m} = {current} {} {}. Signaling Trainer to stop.",
                if self.cfg.mode == "min" { "<" } else { ">" },
                self.cfg.stopping_threshold.unwrap_or_default()
            ))
        } else if self.cfg.divergence_threshold.is_some_and(|t| self.better(-current, -t)) {
            Some(format!("Divergence threshold reached: {m} = {current}. Signaling Trainer to stop."))
        } else if self.better(current - delta, self.best) {
            self.best = current;
            self.wait_count = 0;
            None
        } else {
            self.wait_count += 1;
            (self.wait_count >= self.cfg.patience)
                .then(|| format!("Monitored metric {m} did not improve in the last {} records. Best score: {:.3}. Signaling Trainer to stop.", self.wait_count, self.best))
        };
        let stopping = stop.is_some();
        if stopping {
            self.reason = stop;
        }
        Ok(stopping)
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({"best_score": if self.best.is_finite() { serde_json::json!(self.best) } else { serde_json::Value::Null }, "wait_count": self.wait_count})
    }

    pub fn load_state(&mut self, s: &serde_json::Value) {
        if let Some(b) = s["best_score"].as_f64() {
            self.best = b;
        }
        self.wait_count = s["wait_count"].as_u64().unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(v: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([("loss".to_string(), v)])
    }

    #[test]
    fn patience_min_delta_and_thresholds() {
        let mut es = EarlyStopping::new(EarlyStoppingConfig {
            monitor: "loss".into(),
            patience: 2,
            min_delta: 0.1,
            ..EarlyStoppingConfig::default()
        })
        .unwrap();
        assert!(!es.check(&at(1.0)).unwrap());
        assert!(!es.check(&at(0.95)).unwrap(), "not better by min_delta: wait 1");
        assert!(es.check(&at(0.95)).unwrap(), "wait 2 = patience");
        let mut es = EarlyStopping::new(EarlyStoppingConfig {
            monitor: "loss".into(),
            stopping_threshold: Some(0.5),
            ..EarlyStoppingConfig::default()
        })
        .unwrap();
        assert!(es.check(&at(0.4)).unwrap());
        let mut es = EarlyStopping::new(EarlyStoppingConfig {
            monitor: "loss".into(),
            divergence_threshold: Some(5.0),
            ..EarlyStoppingConfig::default()
        })
        .unwrap();
        assert!(es.check(&at(6.0)).unwrap());
        let mut es =
            EarlyStopping::new(EarlyStoppingConfig { monitor: "loss".into(), ..EarlyStoppingConfig::default() })
                .unwrap();
        assert!(es.check(&at(f64::NAN)).unwrap());
        assert!(es.check(&BTreeMap::new()).is_err(), "strict");
    }
}
