//! Lightning's `_Loop.state_dict` / `load_state_dict`: a loop saves its own values under
//! `state_dict`, each progress tracker under its name, and each child loop's entries under
//! the child's name as a prefix (`epoch_loop.batch_progress`), recursively; loading walks the
//! same tree. Checkpoints keep the result under `loops` (the layout of Lightning's
//! `checkpoint["loops"]`; the values are lthost's resume position, see [`crate::loops::checkpointing`]).

use anyhow::{anyhow, Result};
use serde_json::{Map, Value};

use crate::context::Stage;
use crate::loops::evaluation::EvaluationLoop;
use crate::loops::fit::FitLoop;
use crate::progress::Progress;

/// The trainer's loops (Lightning's `fit_loop`, `validate_loop`, `test_loop`,
/// `predict_loop`), each owning its progress and its children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loops {
    pub fit_loop: FitLoop,
    pub validate_loop: EvaluationLoop,
    pub test_loop: EvaluationLoop,
    pub predict_loop: EvaluationLoop,
}

impl Loops {
    /// The evaluation loop that runs `stage`: inside fit, validation (and the sanity check)
    /// is the training epoch loop's `val_loop`.
    pub fn evaluation(&mut self, stage: Stage, fitting: bool) -> &mut EvaluationLoop {
        match stage {
            Stage::Test => &mut self.test_loop,
            Stage::Predict => &mut self.predict_loop,
            _ if fitting => &mut self.fit_loop.epoch_loop.val_loop,
            _ => &mut self.validate_loop,
        }
    }

    /// The evaluation loop running `stage`, to read.
    pub fn evaluation_progress(&self, stage: Stage, fitting: bool) -> &Progress {
        let l = match stage {
            Stage::Test => &self.test_loop,
            Stage::Predict => &self.predict_loop,
            _ if fitting => &self.fit_loop.epoch_loop.val_loop,
            _ => &self.validate_loop,
        };
        &l.batch_progress
    }

    fn named(&self) -> [(&'static str, &dyn Stateful); 4] {
        [
            ("fit_loop", &self.fit_loop),
            ("validate_loop", &self.validate_loop),
            ("test_loop", &self.test_loop),
            ("predict_loop", &self.predict_loop),
        ]
    }

    /// Every loop's state dict, by loop (Lightning's `checkpoint["loops"]`).
    pub fn state_dict(&self) -> StateDict {
        self.named().into_iter().map(|(name, l)| (name.to_string(), Value::Object(l.state_dict()))).collect()
    }

    pub fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        let loops: [(&str, &mut dyn Stateful); 4] = [
            ("fit_loop", &mut self.fit_loop),
            ("validate_loop", &mut self.validate_loop),
            ("test_loop", &mut self.test_loop),
            ("predict_loop", &mut self.predict_loop),
        ];
        for (name, l) in loops {
            let Some(Value::Object(state)) = sd.get(name) else { anyhow::bail!("the loops' state has no `{name}`") };
            l.load_state_dict(state)?;
        }
        Ok(())
    }
}

pub type StateDict = Map<String, Value>;

pub trait Stateful {
    /// The loop's own values (Lightning's `on_save_checkpoint`).
    fn own_state(&self) -> Value {
        Value::Object(Map::new())
    }
    fn load_own_state(&mut self, _state: &Value) -> Result<()> {
        Ok(())
    }
    /// Its progress trackers, by name.
    fn trackers(&self) -> Vec<(&'static str, &Progress)>;
    fn trackers_mut(&mut self) -> Vec<(&'static str, &mut Progress)>;
    /// Its child loops, by name.
    fn children(&self) -> Vec<(&'static str, &dyn Stateful)> {
        Vec::new()
    }
    fn children_mut(&mut self) -> Vec<(&'static str, &mut dyn Stateful)> {
        Vec::new()
    }

    /// This loop and its children as one flat dictionary of prefixed keys.
    fn state_dict(&self) -> StateDict {
        let mut out = StateDict::new();
        self.write_state(&mut out, "");
        out
    }

    fn write_state(&self, out: &mut StateDict, prefix: &str) {
        out.insert(format!("{prefix}state_dict"), self.own_state());
        for (name, p) in self.trackers() {
            out.insert(format!("{prefix}{name}"), serde_json::to_value(p).unwrap_or(Value::Null));
        }
        for (name, child) in self.children() {
            child.write_state(out, &format!("{prefix}{name}."));
        }
    }

    /// Puts back what [`Stateful::state_dict`] wrote; every key must be there.
    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        self.read_state(sd, "")
    }

    fn read_state(&mut self, sd: &StateDict, prefix: &str) -> Result<()> {
        let get = |key: String| sd.get(&key).ok_or_else(|| anyhow!("the loops' state has no `{key}`"));
        self.load_own_state(get(format!("{prefix}state_dict"))?)?;
        for (name, p) in self.trackers_mut() {
            let key = format!("{prefix}{name}");
            *p = serde_json::from_value(get(key.clone())?.clone()).map_err(|e| anyhow!("the loops' `{key}`: {e}"))?;
        }
        for (name, child) in self.children_mut() {
            child.read_state(sd, &format!("{prefix}{name}."))?;
        }
        Ok(())
    }
}

/// Reads `key` of a loop's own state as `T`.
pub fn field<T: serde::de::DeserializeOwned>(state: &Value, key: &str) -> Result<T> {
    let v = state.get(key).ok_or_else(|| anyhow!("the loops' state has no `{key}`"))?;
    serde_json::from_value(v.clone()).map_err(|e| anyhow!("the loops' `{key}`: {e}"))
}
