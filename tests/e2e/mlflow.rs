//! The MLflow logger against a real tracking server: `mlflow server` from the venv, started
//! on localhost by the test (SQLite store, proxied artifacts). A run is read back with
//! MLflow's own client (tests/reference/mlflow_readback.py): every value of metrics.csv at
//! its step, the hyper-parameters, the tags and run name, the checkpoints as artifacts,
//! FINISHED; a failing run ends FAILED; a file URI and an unreachable server are named.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{column, lthost, plugin, read_metrics, repo_root};

/// The tracking server, stopped (its whole process group) when dropped.
struct Server {
    child: Child,
    uri: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this test started (setsid below).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        use std::os::unix::process::CommandExt as _;
        std::fs::create_dir_all(dir).expect("server dir");
        let mlflow = repo_root().join(".venv/bin/mlflow");
        assert!(mlflow.exists(), "{} is missing: the venv installs it (requirements.txt)", mlflow.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let mut cmd = Command::new(&mlflow);
        cmd.args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .env("DO_NOT_TRACK", "true")
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).expect("log"))
            .process_group(0);
        let child = cmd.spawn().expect("mlflow server starts");
        let server = Server { child, uri: format!("http://127.0.0.1:{port}") };
        // Its start takes 10–30 s on two busy cores.
        let deadline = Instant::now() + Duration::from_secs(180);
        while ureq::get(&format!("{}/health", server.uri)).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "mlflow server did not answer in 180 s:\n{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }

    /// The run as MLflow's client reads it.
    fn read_back(&self, experiment: &str, run_name: &str) -> Value {
        let out = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("tests/reference/mlflow_readback.py"))
            .args(["--tracking-uri", &self.uri, "--experiment", experiment, "--run-name", run_name])
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    }
}

fn run_file(dir: &Path, uri: &str, run_name: &str, extra: &str) -> PathBuf {
    let data = repo_root().join("plugins/digits-mlp/data");
    let text = format!(
        "[trainer]\nmax_epochs = 2\nseed = 42\nlog_every_n_steps = 10\nloggers = [\"csv\", \"mlflow\"]\n\n\
         [plugin]\ndata_dir = \"{}\"\n\n[hparams]\nhidden = 64\nlr = 0.003\nbatch_size = 32\n\n\
         [loggers.mlflow]\ntracking_uri = \"{uri}\"\nexperiment_name = \"lthost-e2e\"\nrun_name = \"{run_name}\"\n\
         tags = {{ team = \"vision\" }}\n{extra}",
        data.display()
    );
    let p = dir.join(format!("{run_name}.toml"));
    std::fs::write(&p, text).expect("run file");
    p
}

#[test]
fn runs_reach_a_real_mlflow_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Bad tracking URIs are named before any server is needed.
    let file_uri = run_file(d, "file:./mlruns", "file-store", "");
    let digits = plugin("digits-mlp");
    let digits_s = digits.to_str().expect("utf-8");
    let fit = |cfg: &Path, extra: &[&str]| {
        let mut args = vec!["fit", digits_s, "--config", cfg.to_str().expect("utf-8"), "--no-progress-bar"];
        args.extend_from_slice(extra);
        lthost(d, &args)
    };
    fit(&file_uri, &[]).assert_fails_with(&["file:./mlruns", "tracking server"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let unreachable = run_file(d, &format!("http://127.0.0.1:{closed}"), "unreachable", "");
    fit(&unreachable, &[]).assert_fails_with(&["could not reach the tracking server"]);

    let server = Server::start(&d.join("server"));
    let cfg = run_file(d, &server.uri, "digits", "log_model = \"all\"\n");
    let run = fit(&cfg, &["--default-root-dir", d.join("ok").to_str().expect("utf-8")]);
    assert!(run.ok(), "{}", run.stderr);
    let got = server.read_back("lthost-e2e", "digits");
    assert_eq!(got["status"], "FINISHED");
    assert_eq!(got["run_name"], "digits");
    assert_eq!(got["tags"]["team"], "vision");
    assert_eq!(got["tags"]["mlflow.runName"], "digits");
    for (k, v) in [("hidden", "64"), ("lr", "0.003"), ("batch_size", "32"), ("dropout", "0.1")] {
        assert_eq!(got["params"][k], v, "param {k}: {}", got["params"]);
    }
    // Every value of metrics.csv, at its step, in MLflow's history of that key.
    let log_dir = d.join("ok/lightning_logs/version_0");
    let rows = read_metrics(&log_dir);
    let mut checked = 0;
    for key in ["train_loss", "val_loss", "val_acc", "epoch"] {
        let history: Vec<(u64, f64)> = got["metrics"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no history for {key}: {}", got["metrics"]))
            .iter()
            .map(|p| (p[0].as_u64().expect("step"), p[1].as_f64().expect("value")))
            .collect();
        let csv: Vec<(u64, f64)> = rows
            .iter()
            .filter(|r| r.get(key).is_some_and(|c| !c.is_empty()))
            .map(|r| (r["step"].parse().expect("step"), r[key].parse().expect("value")))
            .collect();
        assert!(!csv.is_empty(), "metrics.csv has no {key}");
        for (step, value) in &csv {
            assert!(
                history.iter().any(|(s, v)| s == step && v == value),
                "{key} = {value} at step {step} is not in MLflow: {history:?}"
            );
            checked += 1;
        }
        assert_eq!(history.len(), csv.len(), "{key}: one MLflow value per logged value");
    }
    assert_eq!(
        checked,
        column(&rows, "train_loss").len() + 2 * column(&rows, "val_loss").len() + column(&rows, "epoch").len()
    );
    // log_model = "all": every checkpoint, with its metadata and aliases, byte for byte.
    let artifacts: Vec<(String, u64)> = got["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| (a[0].as_str().expect("path").to_string(), a[1].as_u64().expect("size")))
        .collect();
    let ckpts: Vec<PathBuf> =
        std::fs::read_dir(log_dir.join("checkpoints")).expect("checkpoints").flatten().map(|e| e.path()).collect();
    assert!(!ckpts.is_empty());
    for c in &ckpts {
        let (file, stem) = (c.file_name().unwrap().to_string_lossy(), c.file_stem().unwrap().to_string_lossy());
        let size = std::fs::metadata(c).expect("ckpt").len();
        assert!(artifacts.contains(&(format!("{stem}/{file}"), size)), "{file} ({size} bytes) not among {artifacts:?}");
        assert!(artifacts.iter().any(|(p, _)| *p == format!("{stem}/metadata.yaml")), "{artifacts:?}");
        assert!(artifacts.iter().any(|(p, _)| *p == format!("{stem}/aliases.txt")), "{artifacts:?}");
    }

    // A run that fails ends FAILED.
    let faulty = plugin("faulty");
    let failing = run_file(d, &server.uri, "faulty", "");
    let failed = lthost(
        d,
        &[
            "fit",
            faulty.to_str().expect("utf-8"),
            "--config",
            failing.to_str().expect("utf-8"),
            "--hparams",
            r#"{"fault": "trap"}"#,
            "--no-progress-bar",
        ],
    );
    assert!(!failed.ok());
    assert_eq!(server.read_back("lthost-e2e", "faulty")["status"], "FAILED");
}
