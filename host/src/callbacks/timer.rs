//! Lightning's Timer: wall time per stage (training from `on_train_start` to
//! `on_train_end`, validation runs, test, predict), the clock `max_time` is checked
//! against, and state for checkpoints so that a resumed run keeps counting where the
//! interrupted one stopped.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::context::Stage;
use crate::hooks::Hook;

const STAGES: [&str; 4] = ["train", "validate", "test", "predict"];

#[derive(Debug, Default, Clone)]
pub struct Timer {
    /// Time counted before this process (restored from a checkpoint), per stage.
    offset: [Duration; 4],
    /// Finished intervals of this process, per stage.
    done: [Duration; 4],
    running: [Option<Instant>; 4],
}

fn slot(stage: Stage) -> usize {
    match stage {
        Stage::Fit => 0,
        Stage::Validate | Stage::SanityCheck => 1,
        Stage::Test => 2,
        Stage::Predict => 3,
    }
}

impl Timer {
    /// Starts and stops the stage clocks at Lightning's points (the sanity check is not
    /// counted as validation).
    pub fn on_hook(&mut self, hook: Hook, stage: Stage) {
        let (i, start) = match hook {
            Hook::OnTrainStart => (0, true),
            Hook::OnTrainEnd => (0, false),
            Hook::OnValidationStart if stage != Stage::SanityCheck => (1, true),
            Hook::OnValidationEnd if stage != Stage::SanityCheck => (1, false),
            Hook::OnTestStart => (2, true),
            Hook::OnTestEnd => (2, false),
            Hook::OnPredictStart => (3, true),
            Hook::OnPredictEnd => (3, false),
            _ => return,
        };
        if start {
            self.running[i] = Some(Instant::now());
        } else if let Some(t) = self.running[i].take() {
            self.done[i] += t.elapsed();
        }
    }

    /// Lightning's `time_elapsed(stage)`.
    pub fn elapsed(&self, stage: Stage) -> Duration {
        let i = slot(stage);
        self.offset[i] + self.done[i] + self.running[i].map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Seconds per stage that ran, for the summary.
    pub fn report(&self) -> Vec<(&'static str, f64)> {
        [Stage::Fit, Stage::Validate, Stage::Test, Stage::Predict]
            .into_iter()
            .map(|s| (STAGES[slot(s)], self.elapsed(s).as_secs_f64()))
            .filter(|(_, t)| *t > 0.0)
            .collect()
    }

    pub fn state(&self) -> Value {
        let m: serde_json::Map<String, Value> = [Stage::Fit, Stage::Validate, Stage::Test, Stage::Predict]
            .into_iter()
            .map(|s| (STAGES[slot(s)].to_string(), json!(self.elapsed(s).as_secs_f64())))
            .collect();
        json!({ "time_elapsed": m })
    }

    pub fn load_state(&mut self, v: &Value) {
        for (i, name) in STAGES.iter().enumerate() {
            if let Some(s) = v["time_elapsed"][name].as_f64().filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e12) {
                self.offset[i] = Duration::from_secs_f64(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_count_separately_and_resume() {
        let mut t = Timer::default();
        t.on_hook(Hook::OnTrainStart, Stage::Fit);
        t.on_hook(Hook::OnValidationStart, Stage::SanityCheck);
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.elapsed(Stage::Fit) >= Duration::from_millis(5));
        assert_eq!(t.elapsed(Stage::Validate), Duration::ZERO);
        t.on_hook(Hook::OnTrainEnd, Stage::Fit);
        let saved = t.state();
        let mut r = Timer::default();
        r.load_state(&saved);
        assert_eq!(r.elapsed(Stage::Fit).as_millis(), t.elapsed(Stage::Fit).as_millis());
        r.load_state(&json!({"time_elapsed": {"train": -3.0}}));
        assert_eq!(r.elapsed(Stage::Fit).as_millis(), t.elapsed(Stage::Fit).as_millis());
    }
}
