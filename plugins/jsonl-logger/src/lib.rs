//! A logger plugin: one JSON object per `log_metrics` call in `/logs/metrics.jsonl` (and one
//! per checkpoint ModelCheckpoint wrote, `{"checkpoint": ...}`), the hyper-parameters in
//! `/logs/hparams.json`. `/logs` is the only place it may write.
//! A hyper-parameter `escape_to` makes it try to write there too, and `fill_mb` makes it
//! write that many MiB into `/logs/fill.bin`, `symlink_to` makes it leave a symlink
//! `/logs/link` pointing there (the sandbox tests: its grant, its quota, its leftovers).

use std::io::Write as _;

use lthost_sdk::export_logger;
use lthost_sdk::logger::{CheckpointCallback, Logger};
use lthost_sdk::serde_json::{self, json, Value};

struct Jsonl {
    lines: Vec<String>,
}

impl Logger for Jsonl {
    fn new() -> Self {
        Jsonl { lines: Vec::new() }
    }

    fn name(&self) -> String {
        "jsonl".into()
    }

    fn log_hyperparams(&mut self, params: &Value) -> Result<(), String> {
        if let Some(path) = params.get("escape_to").and_then(Value::as_str) {
            std::fs::write(path, b"escaped").map_err(|e| format!("writing {path}: {e}"))?;
        }
        if let Some(target) = params.get("symlink_to").and_then(Value::as_str) {
            symlink(target, "/logs/link")?;
        }
        if let Some(mb) = params.get("fill_mb").and_then(Value::as_u64) {
            let mut f = std::fs::File::create("/logs/fill.bin").map_err(|e| e.to_string())?;
            let chunk = vec![7u8; 1 << 20];
            for i in 0..mb {
                f.write_all(&chunk).map_err(|e| format!("writing MiB {i} of /logs/fill.bin: {e}"))?;
            }
        }
        std::fs::write("/logs/hparams.json", params.to_string()).map_err(|e| e.to_string())
    }

    fn log_metrics(&mut self, step: u64, metrics: &[(String, f64)]) -> Result<(), String> {
        let map: serde_json::Map<String, Value> = metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        self.lines.push(json!({"step": step, "metrics": map}).to_string());
        Ok(())
    }

    /// Lightning's `after_save_checkpoint`: which file, and ModelCheckpoint's best and last.
    fn after_save_checkpoint(&mut self, c: &CheckpointCallback) -> Result<(), String> {
        let best_k: serde_json::Map<String, Value> =
            c.best_k_models.iter().map(|(p, s)| (p.clone(), json!(s))).collect();
        let line = json!({"checkpoint": {
            "saved": c.saved, "monitor": c.monitor, "save_top_k": c.save_top_k,
            "best_model_path": c.best_model_path, "best_model_score": c.best_model_score,
            "last_model_path": c.last_model_path, "best_k_models": best_k,
        }});
        self.lines.push(line.to_string());
        Ok(())
    }

    /// Appends the buffered lines in one write (each WASI write is a host call).
    fn save(&mut self) -> Result<(), String> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let mut text = self.lines.join("\n");
        text.push('\n');
        self.lines.clear();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open("/logs/metrics.jsonl")
            .map_err(|e| e.to_string())?;
        f.write_all(text.as_bytes()).map_err(|e| e.to_string())
    }

    /// Writes what is left and the run's end status to `/logs/status`.
    fn finalize(&mut self, status: &str) -> Result<(), String> {
        self.save()?;
        std::fs::write("/logs/status", status).map_err(|e| e.to_string())
    }
}

/// wasi-libc's `symlink` (std's WASI symlink API is unstable).
fn symlink(target: &str, link: &str) -> Result<(), String> {
    extern "C" {
        fn symlink(target: *const std::ffi::c_char, link: *const std::ffi::c_char) -> std::ffi::c_int;
    }
    let (t, l) = (
        std::ffi::CString::new(target).map_err(|e| e.to_string())?,
        std::ffi::CString::new(link).map_err(|e| e.to_string())?,
    );
    // SAFETY: two NUL-terminated strings that outlive the call.
    let rc = unsafe { symlink(t.as_ptr(), l.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("symlink {link} -> {target}: {}", std::io::Error::last_os_error()))
    }
}

export_logger!(Jsonl);
