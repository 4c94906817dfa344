//! A callback plugin: before each optimizer step it logs the total gradient 2-norm as
//! `grad_norm` (Lightning's `grad_norm(...)["grad_2.0_norm_total"]`), and asks the run to
//! stop when the norm is not finite or exceeds `MAX_NORM` (a diverging run). It also logs
//! the learning rate the step will use, `lr`.

use lthost_sdk::callback::{nothing, Callback, HookInfo, HookResult};
use lthost_sdk::export_callback;
use lthost_sdk::serde_json::{json, Value};

/// Stop once the gradient norm exceeds this.
const MAX_NORM: f64 = 1.0e4;

struct GradNorm {
    /// The largest norm seen (kept in checkpoints).
    max_seen: f64,
}

impl Callback for GradNorm {
    fn new() -> Self {
        GradNorm { max_seen: 0.0 }
    }

    fn name(&self) -> String {
        "grad-norm".into()
    }

    fn hooks() -> Vec<&'static str> {
        vec!["on_before_optimizer_step"]
    }

    fn on_hook(&mut self, _hook: &str, info: &HookInfo) -> Result<HookResult, String> {
        let Some(norm) = info.grad_norm else { return Ok(nothing()) };
        let mut r = nothing();
        r.logs.push(("grad_norm".into(), norm));
        if let Some((_, lr)) = info.lrs.first() {
            r.logs.push(("lr".into(), *lr));
        }
        if !norm.is_finite() || norm > MAX_NORM {
            r.stop = Some(format!("the gradient norm {norm} at step {} diverged (limit {MAX_NORM})", info.global_step));
        }
        self.max_seen = self.max_seen.max(if norm.is_finite() { norm } else { 0.0 });
        Ok(r)
    }

    fn state_dict(&self) -> Option<Value> {
        Some(json!({"max_seen": self.max_seen}))
    }

    fn load_state_dict(&mut self, state: Value) -> Result<(), String> {
        self.max_seen = state["max_seen"].as_f64().ok_or("no max_seen in the state")?;
        Ok(())
    }
}

export_callback!(GradNorm);
