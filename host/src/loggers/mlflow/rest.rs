//! MLflow's tracking REST API (`/api/2.0/mlflow/...`), the calls a logger makes: the
//! experiment by name (made when missing), a run (made, or found by id), batches of params
//! and metrics, the run's end, and artifacts through the server's proxied artifact store
//! (`mlflow-artifacts:/…`, `mlflow server`'s default). Credentials as MLflow's client takes
//! them: `MLFLOW_TRACKING_TOKEN` (Bearer), or `MLFLOW_TRACKING_USERNAME`/`_PASSWORD` (Basic).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use base64::Engine as _;
use serde_json::{json, Value};

pub struct Tracking {
    agent: ureq::Agent,
    /// `http://host:port` (no trailing slash).
    base: String,
    authorization: Option<String>,
}

/// A run as the server describes it.
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: String,
    pub artifact_uri: String,
}

/// Milliseconds since the epoch (MLflow's timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Tracking {
    pub fn new(uri: &str) -> Result<Self> {
        let base = uri.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!(
                "tracking_uri {uri:?}: lthost speaks to an MLflow tracking server over its REST API (http:// or https://, e.g. \
                 `mlflow server` at http://127.0.0.1:5000); MLflow's file and database stores are written by MLflow's own server"
            );
        }
        let authorization = match std::env::var("MLFLOW_TRACKING_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(t) => Some(format!("Bearer {t}")),
            None => match (std::env::var("MLFLOW_TRACKING_USERNAME"), std::env::var("MLFLOW_TRACKING_PASSWORD")) {
                (Ok(u), Ok(p)) => {
                    Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))))
                }
                _ => None,
            },
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .user_agent(concat!("lthost/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Tracking { agent, base, authorization })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut r = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(a) = &self.authorization {
            r = r.set("Authorization", a);
        }
        r
    }

    /// The answer's JSON, or MLflow's error (`error_code`: message) as an error.
    fn answer(&self, what: &str, res: Result<ureq::Response, ureq::Error>) -> Result<Value> {
        match res {
            Ok(r) => {
                let text = r.into_string().map_err(|e| anyhow!("MLflow {what}: reading the answer: {e}"))?;
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(&text).map_err(|_| anyhow!("MLflow {what}: the server did not answer JSON"))
            }
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let code_name = v.get("error_code").and_then(Value::as_str).unwrap_or("");
                let msg = v.get("message").and_then(Value::as_str).map(str::to_string);
                let msg = msg.unwrap_or_else(|| text.chars().take(300).collect());
                Err(MlflowError {
                    status: code,
                    code: code_name.to_string(),
                    message: format!("MLflow {what}: {code} {code_name}: {msg}"),
                }
                .into())
            }
            Err(ureq::Error::Transport(t)) => Err(anyhow!(
                "MLflow {what}: could not reach the tracking server {} ({})",
                redacted(&self.base),
                crate::oci::registry::transport_cause(&t)
            )),
        }
    }

    fn post(&self, what: &str, path: &str, body: &Value) -> Result<Value> {
        let res = self
            .request("POST", &format!("/api/2.0/mlflow/{path}"))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string());
        self.answer(what, res)
    }

    fn get(&self, what: &str, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let mut r = self.request("GET", &format!("/api/2.0/mlflow/{path}"));
        for (k, v) in query {
            r = r.query(k, v);
        }
        self.answer(what, r.call())
    }

    /// The experiment's id: found by name (a deleted one is an error, as MLflow's), else made.
    pub fn experiment(&self, name: &str, artifact_location: Option<&str>) -> Result<String> {
        match self.get("experiments/get-by-name", "experiments/get-by-name", &[("experiment_name", name)]) {
            Ok(v) => {
                let e = &v["experiment"];
                if e["lifecycle_stage"].as_str() == Some("deleted") {
                    bail!("MLflow experiment {name:?} is deleted; restore it (`mlflow experiments restore`) or name another");
                }
                e["experiment_id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("MLflow: an experiment without an id"))
            }
            Err(e) if e.downcast_ref::<MlflowError>().is_some_and(|m| m.code == "RESOURCE_DOES_NOT_EXIST") => {
                let mut body = json!({ "name": name });
                if let Some(a) = artifact_location {
                    body["artifact_location"] = json!(a);
                }
                let v = self.post("experiments/create", "experiments/create", &body)?;
                v["experiment_id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("MLflow: a new experiment without an id"))
            }
            Err(e) => Err(e),
        }
    }

    pub fn create_run(&self, experiment_id: &str, tags: &[(String, String)]) -> Result<RunInfo> {
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
        let body = json!({ "experiment_id": experiment_id, "start_time": now_ms(), "tags": tags });
        let v = self.post("runs/create", "runs/create", &body)?;
        run_info(&v)
    }

    pub fn get_run(&self, run_id: &str) -> Result<RunInfo> {
        run_info(&self.get("runs/get", "runs/get", &[("run_id", run_id)])?)
    }

    /// One `log-batch` (the caller keeps to MLflow's limits: 1000 metrics, 100 params).
    pub fn log_batch(&self, run_id: &str, metrics: &[Value], params: &[Value]) -> Result<()> {
        let body = json!({ "run_id": run_id, "metrics": metrics, "params": params, "tags": [] });
        self.post("runs/log-batch", "runs/log-batch", &body).map(|_| ())
    }

    pub fn end_run(&self, run_id: &str, status: &str) -> Result<()> {
        let body = json!({ "run_id": run_id, "status": status, "end_time": now_ms() });
        self.post("runs/update", "runs/update", &body).map(|_| ())
    }

    /// Uploads a file under the run's artifact root (`mlflow-artifacts:/…` only: the tracking
    /// server's proxied store).
    pub fn upload_artifact(&self, artifact_uri: &str, path: &str, bytes: &[u8]) -> Result<()> {
        let Some(root) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            bail!(
                "MLflow: the run's artifacts go to {artifact_uri:?}, which lthost cannot write; serve artifacts through the \
                 tracking server (`mlflow server`'s default, `mlflow-artifacts:/`)"
            );
        };
        // `mlflow-artifacts:/exp/run/artifacts`, or with the server named
        // (`mlflow-artifacts://host:port/exp/...`): the path after it.
        let root = match root.strip_prefix("//") {
            Some(rest) => rest.split_once('/').map_or("", |(_, p)| p),
            None => root,
        };
        let root = root.trim_start_matches('/').trim_end_matches('/');
        let encoded: Vec<String> = root.split('/').chain(path.split('/')).map(percent_encode).collect();
        let url = format!("/api/2.0/mlflow-artifacts/artifacts/{}", encoded.join("/"));
        let res = self.request("PUT", &url).set("Content-Type", "application/octet-stream").send_bytes(bytes);
        self.answer(&format!("artifact upload of {path}"), res).map(|_| ())
    }
}

/// A URI without its `user:password@`.
fn redacted(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => uri.to_string(),
    }
}

/// One URL path segment, percent-encoded (RFC 3986 unreserved characters as they are).
fn percent_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn run_info(v: &Value) -> Result<RunInfo> {
    let info = &v["run"]["info"];
    let s = |k: &str| info[k].as_str().map(str::to_string).ok_or_else(|| anyhow!("MLflow: a run without `{k}`"));
    Ok(RunInfo { run_id: s("run_id")?, experiment_id: s("experiment_id")?, artifact_uri: s("artifact_uri")? })
}

/// An error answer of the tracking server.
#[derive(Debug)]
pub struct MlflowError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for MlflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MlflowError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_shown_without_credentials_and_paths_encoded() {
        assert_eq!(redacted("http://u:p@host:5000/x"), "http://***@host:5000/x");
        assert_eq!(redacted("http://host:5000/a@b"), "http://host:5000/a@b");
        assert_eq!(percent_encode("epoch=1-step=8 #1?.ckpt"), "epoch=1-step=8%20%231%3F.ckpt");
    }
}
