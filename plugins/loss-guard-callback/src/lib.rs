//! A callback plugin: after each training batch it checks `train_loss`; it asks the run to
//! stop when the loss is not finite or exceeds `LIMIT` times the best loss seen (a
//! divergence guard), and logs how many batches it checked. Its best loss is kept in
//! checkpoints.

use lthost_sdk::callback::{metric, nothing, Callback, HookInfo, HookResult};
use lthost_sdk::export_callback;
use lthost_sdk::serde_json::{json, Value};

/// Stop when the loss exceeds this multiple of the best loss so far.
const LIMIT: f64 = 3.0;

struct LossGuard {
    best: f64,
    checks: u64,
}

impl Callback for LossGuard {
    fn new() -> Self {
        LossGuard { best: f64::INFINITY, checks: 0 }
    }

    fn name(&self) -> String {
        "loss-guard".into()
    }

    fn hooks() -> Vec<&'static str> {
        vec!["on_train_batch_end"]
    }

    fn on_hook(&mut self, _hook: &str, info: &HookInfo) -> Result<HookResult, String> {
        let Some(loss) = metric(info, "train_loss") else { return Ok(nothing()) };
        self.checks += 1;
        let mut r = nothing();
        r.logs.push(("guard_checks".into(), self.checks as f64));
        if !loss.is_finite() || loss > LIMIT * self.best {
            r.stop = Some(format!(
                "train_loss {loss} at step {} is more than {LIMIT}x the best {}",
                info.global_step, self.best
            ));
        }
        self.best = self.best.min(loss);
        Ok(r)
    }

    fn state_dict(&self) -> Option<Value> {
        Some(json!({"best": self.best, "checks": self.checks}))
    }

    fn load_state_dict(&mut self, state: Value) -> Result<(), String> {
        self.best = state["best"].as_f64().ok_or("no best in the state")?;
        self.checks = state["checks"].as_u64().unwrap_or(0);
        Ok(())
    }
}

export_callback!(LossGuard);
