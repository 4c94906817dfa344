//! A scheduler the plugin runs (torch's own classes in the Python SDK, a LambdaLR's lambda,
//! a user's subclass): the host only knows when it steps. The loops step it through the
//! module, which hands back the scheduler's state after each step (kept here, so that a
//! checkpoint written after the plugin failed still holds it).

use super::{LOAD, STEP};
use crate::engine::optim::Optimizer;
use crate::engine::schedulers::LrScheduler;
use crate::error::{OpError, OpResult};

pub struct InPlugin {
    pub name: String,
    pub monitors: bool,
    /// Its latest `state_dict()` (JSON text).
    pub state: Option<String>,
}

impl LrScheduler for InPlugin {
    fn name(&self) -> &'static str {
        "plugin scheduler"
    }

    fn step(&mut self, _opt: &mut dyn Optimizer, _metric: Option<f64>) -> OpResult<()> {
        Err(OpError::new(STEP, format!("{} runs in the plugin: call its step() there", self.name)))
    }

    fn is_plateau(&self) -> bool {
        self.monitors
    }

    fn in_plugin(&self) -> bool {
        true
    }

    fn keep_state(&mut self, state: String) {
        self.state = Some(state);
    }

    fn state(&self) -> serde_json::Value {
        self.state.clone().map(serde_json::Value::String).unwrap_or_default()
    }

    /// Keeps the text; the caller hands it to the plugin.
    fn load_state(&mut self, state: &serde_json::Value) -> OpResult<()> {
        match state {
            serde_json::Value::String(s) => {
                self.state = Some(s.clone());
                Ok(())
            }
            _ => {
                Err(OpError::new(LOAD, format!("the checkpoint holds no state of the plugin's for its {}", self.name)))
            }
        }
    }
}
