//! The hyper-parameters a LightningModule and its DataModule saved (Lightning's
//! `save_hyperparameters`), and which of them the loggers get (Lightning's
//! `_log_hyperparams`, `pytorch/loggers/utilities.py`).

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::callbacks::py_format::repr_str;

/// What a module or DataModule saved: Lightning's `hparams_initial`, and its
/// `save_hyperparameters(logger=...)`. The default is what an object that never called
/// `save_hyperparameters` has: nothing, not logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedHparams {
    pub hparams: Map<String, Value>,
    pub log: bool,
}

impl SavedHparams {
    /// Everything in `hparams` (a JSON object; anything else saves nothing), logged: a module
    /// that saves all of its arguments.
    pub fn logged(hparams: &Value) -> Self {
        SavedHparams { hparams: hparams.as_object().cloned().unwrap_or_default(), log: true }
    }

    /// What a checkpoint keeps once a tuner set `key` (Lightning stores `hparams` as they are
    /// then; hparams.yaml keeps the initial ones): these with `key` set to `value`, when they
    /// hold `key`; None (the saved ones) when they do not.
    pub fn with_set(&self, key: &str, value: Value) -> Option<Map<String, Value>> {
        self.hparams.contains_key(key).then(|| {
            let mut now = self.hparams.clone();
            now.insert(key.to_string(), value);
            now
        })
    }

    /// From a plugin's JSON text, which must be an object.
    pub fn from_json(text: &str, log: bool) -> Result<Self, String> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(hparams)) => Ok(SavedHparams { hparams, log }),
            Ok(other) => Err(format!("saved hyper-parameters must be a JSON object, not `{other}`")),
            Err(e) => Err(format!("saved hyper-parameters that are not valid JSON: {e}")),
        }
    }
}

/// The hyper-parameters the loggers get, as Lightning's `_log_hyperparams`: the module's and
/// the DataModule's merged when both log (a key both hold with different values is an
/// error), else the one that logs; None when neither does (`log_hyperparams` is not called
/// and, for the CSV logger, no hparams.yaml is written).
pub fn to_log(module: &SavedHparams, data: &SavedHparams) -> Result<Option<Value>> {
    let merged = match (module.log, data.log) {
        (false, false) => return Ok(None),
        (true, false) => module.hparams.clone(),
        (false, true) => data.hparams.clone(),
        (true, true) => {
            // Python compares `type(a) != type(b) or a != b`: 1 and 1.0 differ, as their
            // JSON numbers do.
            let inconsistent: Vec<String> = module
                .hparams
                .iter()
                .filter(|(k, v)| data.hparams.get(*k).is_some_and(|d| d != *v))
                .map(|(k, _)| repr_str(k))
                .collect();
            if !inconsistent.is_empty() {
                bail!(
                    "Error while merging hparams: the keys [{}] are present in both the LightningModule's and \
                     LightningDataModule's hparams but have different values.",
                    inconsistent.join(", ")
                );
            }
            let mut merged = module.hparams.clone();
            merged.extend(data.hparams.clone());
            merged
        }
    };
    Ok(Some(Value::Object(merged)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn saved(v: Value, log: bool) -> SavedHparams {
        SavedHparams { hparams: v.as_object().cloned().unwrap_or_default(), log }
    }

    #[test]
    fn merges_as_lightning_log_hyperparams() -> Result<()> {
        let m = saved(json!({"lr": 0.1, "hidden": 32}), true);
        let d = saved(json!({"batch_size": 32, "lr": 0.1}), true);
        assert_eq!(to_log(&SavedHparams::default(), &SavedHparams::default())?, None);
        assert_eq!(to_log(&saved(json!({"lr": 0.1}), false), &SavedHparams::default())?, None);
        assert_eq!(to_log(&m, &SavedHparams::default())?, Some(json!({"lr": 0.1, "hidden": 32})));
        assert_eq!(to_log(&saved(json!({"x": 1}), false), &d)?, Some(json!({"batch_size": 32, "lr": 0.1})));
        assert_eq!(to_log(&m, &d)?, Some(json!({"lr": 0.1, "hidden": 32, "batch_size": 32})));
        Ok(())
    }

    #[test]
    fn refuses_a_key_with_two_values() {
        let m = saved(json!({"lr": 0.1, "n": 1, "it's": 1}), true);
        let d = saved(json!({"lr": 0.2, "n": 1.0, "it's": 1}), true);
        let e = to_log(&m, &d).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            e,
            "Error while merging hparams: the keys ['lr', 'n'] are present in both the LightningModule's and \
             LightningDataModule's hparams but have different values."
        );
    }

    #[test]
    fn reads_a_plugin_answer() {
        assert_eq!(SavedHparams::from_json("{\"a\": 1}", false), Ok(saved(json!({"a": 1}), false)));
        assert!(SavedHparams::from_json("[1]", true).is_err());
        assert!(SavedHparams::from_json("{", true).is_err());
    }
}
