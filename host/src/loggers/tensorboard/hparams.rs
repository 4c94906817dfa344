//! The hparams plugin's data as Lightning's `TensorBoardLogger.log_hyperparams` writes it:
//! the params flattened (`a/b`) and sanitized (`_flatten_dict`, `_sanitize_params`), then
//! torch's `hparams(params, {"hp_metric": -1})`: an experiment, a session-start and a
//! session-end summary.

use serde_json::{Map, Value};

use super::pb;
use crate::loggers::python_text;

/// One hyper-parameter as torch's `hparams()` stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// int, float and bool (`isinstance(True, int)`: 1.0): `DATA_TYPE_FLOAT64`.
    Number(f64),
    /// str, and `str(v)` of anything else (None, a list): `DATA_TYPE_STRING`.
    Text(String),
}

/// `_sanitize_params(_flatten_dict(params))`: nested objects (and lists holding only objects)
/// become `a/b` and `a/0/b` keys; None and other lists become Python's `str(v)`.
pub fn flattened(params: &Map<String, Value>) -> Vec<(String, Param)> {
    let mut out = Vec::new();
    flatten_into(params, "", &mut out);
    out
}

fn flatten_into(params: &Map<String, Value>, parent: &str, out: &mut Vec<(String, Param)>) {
    for (k, v) in params {
        let key = if parent.is_empty() { k.clone() } else { format!("{parent}/{k}") };
        match v {
            Value::Object(inner) => flatten_into(inner, &key, out),
            Value::Array(items) if items.iter().all(Value::is_object) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(inner) = item {
                        flatten_into(inner, &format!("{key}/{i}"), out);
                    }
                }
            }
            Value::Number(n) => out.push((key, Param::Number(n.as_f64().unwrap_or(f64::NAN)))),
            Value::Bool(b) => out.push((key, Param::Number(f64::from(u8::from(*b))))),
            Value::String(s) => out.push((key, Param::Text(s.clone()))),
            other => out.push((key, Param::Text(python_text::repr(other)))),
        }
    }
}

const DATA_TYPE_STRING: i64 = 1;
const DATA_TYPE_FLOAT64: i64 = 3;
const STATUS_SUCCESS: i64 = 1;

/// The `Summary` messages torch's `hparams(params, metrics)` returns, in Lightning's order of
/// writing: experiment, session start, session end.
pub fn summaries(params: &[(String, Param)], metrics: &[&str]) -> [Vec<u8>; 3] {
    // Experiment { hparam_infos = 4: HParamInfo { name = 1, type = 4 }, metric_infos = 5:
    // MetricInfo { name = 1: MetricName { tag = 2 } } }.
    let mut experiment = Vec::new();
    for (name, p) in params {
        let mut info = Vec::new();
        pb::bytes(&mut info, 1, name.as_bytes());
        pb::int(&mut info, 4, if matches!(p, Param::Number(_)) { DATA_TYPE_FLOAT64 } else { DATA_TYPE_STRING });
        pb::bytes(&mut experiment, 4, &info);
    }
    for m in metrics {
        let mut tag = Vec::new();
        pb::bytes(&mut tag, 2, m.as_bytes());
        let mut info = Vec::new();
        pb::bytes(&mut info, 1, &tag);
        pb::bytes(&mut experiment, 5, &info);
    }
    // SessionStartInfo { hparams = 1: map<string, google.protobuf.Value { number_value = 2,
    // string_value = 3 }> }, entries by key as protobuf's deterministic form writes them.
    let mut sorted: Vec<&(String, Param)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut start = Vec::new();
    for (name, p) in sorted {
        let mut value = Vec::new();
        match p {
            Param::Number(v) => pb::double(&mut value, 2, *v),
            Param::Text(s) => pb::bytes(&mut value, 3, s.as_bytes()),
        }
        let mut entry = Vec::new();
        pb::bytes(&mut entry, 1, name.as_bytes());
        pb::bytes(&mut entry, 2, &value);
        pb::bytes(&mut start, 1, &entry);
    }
    // SessionEndInfo { status = 1 }.
    let mut end = Vec::new();
    pb::int(&mut end, 1, STATUS_SUCCESS);
    [
        summary("_hparams_/experiment", 2, &experiment),
        summary("_hparams_/session_start_info", 3, &start),
        summary("_hparams_/session_end_info", 4, &end),
    ]
}

/// Summary { value = 1: Value { tag = 1, metadata = 9: SummaryMetadata { plugin_data = 1:
/// PluginData { plugin_name = 1, content = 2: HParamsPluginData { <field>: message } } } } }.
fn summary(tag: &str, field: u32, message: &[u8]) -> Vec<u8> {
    let mut content = Vec::new();
    pb::bytes(&mut content, field, message);
    let mut plugin_data = Vec::new();
    pb::bytes(&mut plugin_data, 1, b"hparams");
    pb::bytes(&mut plugin_data, 2, &content);
    let mut metadata = Vec::new();
    pb::bytes(&mut metadata, 1, &plugin_data);
    let mut value = Vec::new();
    pb::bytes(&mut value, 1, tag.as_bytes());
    pb::bytes(&mut value, 9, &metadata);
    let mut out = Vec::new();
    pb::bytes(&mut out, 1, &value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn summaries_are_torchs_bytes() {
        // `torch.utils.tensorboard.summary.hparams({"b": True, "lr": 0.1, "s": "x"},
        // {"hp_metric": -1})`, each `SerializeToString().hex()`, in the project venv.
        let v = serde_json::json!({"lr": 0.1, "s": "x", "b": true});
        let params = flattened(v.as_object().cloned().as_ref().unwrap_or(&Map::new()));
        let [exp, ssi, sei] = summaries(&params, &["hp_metric"]);
        assert_eq!(
            hex(&exp),
            "0a4c0a145f68706172616d735f2f6578706572696d656e744a340a320a0768706172616d731227122522050a01622003\
             22060a026c72200322050a017320012a0d0a0b120968705f6d6574726963"
        );
        assert_eq!(
            hex(&ssi),
            "0a5a0a1c5f68706172616d735f2f73657373696f6e5f73746172745f696e666f4a3a0a380a0768706172616d73122d1a2b0a0e0a01621209\
             11000000000000f03f0a0f0a026c721209119a9999999999b93f0a080a017312031a0178"
        );
        assert_eq!(
            hex(&sei),
            "0a2f0a1a5f68706172616d735f2f73657373696f6e5f656e645f696e666f4a110a0f0a0768706172616d73120422020801"
        );
    }

    #[test]
    fn flattens_and_sanitizes_as_lightning() {
        // `_sanitize_params(_flatten_dict(json.loads(text)))` in the project venv (keys sorted):
        // {'dl/0/a': 1, 'dl/1/b': 2, 'f': True, 'l': '[1, 2]', 'mixed': "[{'a': 1}, 2]",
        // 'n/a': 1, 'n/b/c': 'x', 'z': 'None'}: `'e': []` and `'o': {}` leave nothing.
        let v = serde_json::json!({"n": {"a": 1, "b": {"c": "x"}}, "dl": [{"a": 1}, {"b": 2}], "l": [1, 2],
            "z": null, "mixed": [{"a": 1}, 2], "f": true, "e": [], "o": {}});
        let got = flattened(v.as_object().cloned().as_ref().unwrap_or(&Map::new()));
        let want = vec![
            ("dl/0/a".to_string(), Param::Number(1.0)),
            ("dl/1/b".to_string(), Param::Number(2.0)),
            ("f".to_string(), Param::Number(1.0)),
            ("l".to_string(), Param::Text("[1, 2]".into())),
            ("mixed".to_string(), Param::Text("[{'a': 1}, 2]".into())),
            ("n/a".to_string(), Param::Number(1.0)),
            ("n/b/c".to_string(), Param::Text("x".into())),
            ("z".to_string(), Param::Text("None".into())),
        ];
        assert_eq!(got, want);
    }
}
