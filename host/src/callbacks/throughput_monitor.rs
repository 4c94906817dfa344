//! Lightning's ThroughputMonitor: per stage, the time, batches and samples so far and, once
//! `window_size` batches have been seen, batches/s and samples/s over the window, logged as
//! `train|time`, `train|device|samples_per_sec`... Training time excludes validation runs.
//! The batch size is the first tensor's leading dimension.

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{Callback, CallbackAction, HookInfo};
use crate::context::Stage;
use crate::hooks::Hook;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThroughputConfig {
    /// Batches in the rate window (Lightning's default 100).
    pub window_size: usize,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        ThroughputConfig { window_size: 100 }
    }
}

/// Running totals of one stage.
struct Meter {
    t0: Instant,
    batches: u64,
    samples: u64,
    /// (elapsed s, batches, samples) of the last `window_size` updates.
    window: VecDeque<(f64, u64, u64)>,
}

impl Meter {
    fn new() -> Self {
        Meter { t0: Instant::now(), batches: 0, samples: 0, window: VecDeque::new() }
    }

    fn update(&mut self, batch_size: u64, window_size: usize) {
        self.batches += 1;
        self.samples += batch_size.max(1);
        if self.window.len() == window_size {
            self.window.pop_front();
        }
        self.window.push_back((self.t0.elapsed().as_secs_f64(), self.batches, self.samples));
    }

    fn compute(&self, stage: &str, window_size: usize) -> Vec<(String, f64)> {
        let Some(&(t, b, s)) = self.window.back() else { return Vec::new() };
        let mut out = vec![
            (format!("{stage}|time"), t),
            (format!("{stage}|batches"), b as f64),
            (format!("{stage}|samples"), s as f64),
        ];
        if self.window.len() == window_size {
            let (t0, b0, s0) = self.window[0];
            let dt = (t - t0).max(1e-12);
            out.push((format!("{stage}|device|batches_per_sec"), (b - b0) as f64 / dt));
            out.push((format!("{stage}|device|samples_per_sec"), (s - s0) as f64 / dt));
        }
        out
    }
}

pub struct ThroughputMonitor {
    cfg: ThroughputConfig,
    train: Meter,
    eval: Meter,
    /// When the current validation run started (its time is taken off training's clock).
    val_started: Option<Instant>,
}

impl ThroughputMonitor {
    pub fn new(cfg: ThroughputConfig) -> Result<Self> {
        if cfg.window_size < 2 {
            bail!("callbacks.throughput_monitor.window_size must be at least 2");
        }
        Ok(ThroughputMonitor { cfg, train: Meter::new(), eval: Meter::new(), val_started: None })
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Fit | Stage::SanityCheck => "train",
        Stage::Validate => "validate",
        Stage::Test => "test",
        Stage::Predict => "predict",
    }
}

impl Callback for ThroughputMonitor {
    fn name(&self) -> &str {
        "ThroughputMonitor"
    }

    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> Result<CallbackAction> {
        let w = self.cfg.window_size;
        let bs = info.batch_size.unwrap_or(1).max(1) as u64;
        let mut action = CallbackAction::default();
        match hook {
            Hook::OnTrainStart => self.train = Meter::new(),
            Hook::OnTrainBatchEnd => {
                self.train.update(bs, w);
                if info.stepping && info.should_update_logs {
                    action.metrics = self.train.compute("train", w);
                }
            }
            Hook::OnValidationStart | Hook::OnTestStart | Hook::OnPredictStart if info.stage != Stage::SanityCheck => {
                self.eval = Meter::new();
                self.val_started = Some(Instant::now());
            }
            Hook::OnValidationBatchEnd | Hook::OnTestBatchEnd | Hook::OnPredictBatchEnd
                if info.stage != Stage::SanityCheck =>
            {
                self.eval.update(bs, w);
                if info.should_update_logs {
                    action.metrics = self.eval.compute(stage_name(info.stage), w);
                    action.metrics_step = Some(info.total_batches);
                }
            }
            Hook::OnValidationEnd => {
                if let Some(t) = self.val_started.take() {
                    // Training's clock skips the validation run.
                    self.train.t0 += t.elapsed();
                }
            }
            _ => {}
        }
        Ok(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_appear_once_the_window_is_full() {
        let mut m = Meter::new();
        for _ in 0..3 {
            m.update(8, 4);
        }
        let keys: Vec<String> = m.compute("train", 4).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["train|time", "train|batches", "train|samples"]);
        m.update(8, 4);
        let got = m.compute("train", 4);
        assert_eq!(got.len(), 5);
        assert_eq!(got[2].1, 32.0);
        assert!(got[4].1 > 0.0 && (got[4].1 / got[3].1 - 8.0).abs() < 1e-9);
    }
}
