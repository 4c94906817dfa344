//! Helpers shared by the end-to-end tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// A plugin built by `make plugins`.
pub fn plugin(name: &str) -> PathBuf {
    let p = repo_root().join("target/plugins").join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: run `make plugins` first", p.display());
    p
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Asserts a clean failure: non-zero exit, no Rust panic, and every `needle` in stderr.
    pub fn assert_fails_with(&self, needles: &[&str]) {
        assert!(!self.ok(), "expected failure, got success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert_eq!(
            self.code,
            Some(1),
            "expected exit code 1 (a reported error), got {:?}\nstderr:\n{}",
            self.code,
            self.stderr
        );
        // A guest's panic is printed by the guest; a host panic is on the main thread.
        assert!(!self.stderr.contains("thread 'main'"), "the host panicked:\n{}", self.stderr);
        let error_part = self.stderr.split("error: ").last().unwrap_or("");
        for n in needles {
            assert!(error_part.contains(n), "stderr does not contain {n:?}:\n{}", self.stderr);
        }
    }
}

/// The development key `make plugins` signs with (and nothing else) is trusted.
pub fn trusted_keys() -> PathBuf {
    repo_root().join(".lthost/trusted")
}

/// The tests share one component cache (concurrent use is safe by design).
pub fn component_cache() -> PathBuf {
    repo_root().join("target/component-cache")
}

/// `program` (lthost, or a launcher that execs it) in `cwd` with the tests' environment: the
/// development key trusted, the shared component cache, no LD_LIBRARY_PATH.
pub fn command(program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(cwd)
        .env_remove("LD_LIBRARY_PATH")
        // A test run inside a SLURM job must not log into the job id's version directory.
        .env_remove("SLURM_JOB_ID")
        .env_remove("SLURM_JOB_NAME")
        .env("LTHOST_TRUSTED_KEYS", trusted_keys())
        .env("LTHOST_CACHE_DIR", component_cache());
    c
}

/// Runs `lthost` with `args` in `cwd`.
pub fn lthost(cwd: &Path, args: &[&str]) -> Run {
    let out: Output = command(env!("CARGO_BIN_EXE_lthost"), cwd).args(args).output().expect("lthost runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The rows of a Lightning-layout metrics.csv, as maps from column to cell.
pub fn read_metrics(log_dir: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(log_dir.join("metrics.csv")).expect("metrics.csv exists");
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().expect("a header").split(',').map(String::from).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(String::from)).collect()).collect()
}

/// The values of one column, in row order, skipping empty cells.
pub fn column(rows: &[HashMap<String, String>], name: &str) -> Vec<f64> {
    rows.iter().filter_map(|r| r.get(name)).filter(|c| !c.is_empty()).map(|c| c.parse().expect("a number")).collect()
}

/// Files left in `dir` (recursively) whose names look like unfinished writes.
pub fn leftover_temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(leftover_temp_files(&p));
        } else if e.file_name().to_string_lossy().starts_with(".tmp")
            || e.file_name().to_string_lossy().starts_with(".lthost-tmp-")
            || p.extension().is_some_and(|x| x == "tmp")
        {
            out.push(p);
        }
    }
    out
}

/// Tests that seed and draw from libtorch's global generator in this process (rather than
/// in an lthost child) hold this: one at a time, so no test draws from another's stream.
pub fn global_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Says in the test output (stderr, which the test harness does not capture) that a check
/// could not run on this machine, and why: no check is skipped silently.
pub fn note_skipped(check: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "note: check skipped on this machine: {check} ({why})");
}
