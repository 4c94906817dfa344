//! Hyper-parameters: the run's JSON object laid over the module's defaults.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct Hparams(pub Map<String, Value>);

impl Hparams {
    /// `defaults` overlaid with the JSON object `given`.
    pub fn merged(defaults: Value, given: &str) -> Result<Hparams, String> {
        let mut map = match defaults {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let given: Value =
            serde_json::from_str(given).map_err(|e| format!("hyper-parameters are not valid JSON: {e}"))?;
        match given {
            Value::Object(m) => map.extend(m),
            Value::Null => {}
            other => return Err(format!("hyper-parameters must be a JSON object, got {other}")),
        }
        Ok(Hparams(map))
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.0.get(key).and_then(Value::as_f64).unwrap_or(default)
    }

    pub fn u64_or(&self, key: &str, default: u64) -> u64 {
        self.0.get(key).and_then(Value::as_u64).unwrap_or(default)
    }

    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(default)
    }

    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.0.get(key).and_then(Value::as_str).unwrap_or(default)
    }
}
