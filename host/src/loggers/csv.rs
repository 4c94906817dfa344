//! Lightning's CSVLogger: one row per `log_metrics` call, the header the sorted union of
//! all keys, empty cells where a row lacks a key, numbers as Python writes them (`1.0`,
//! `1e-07`, `nan`). Each row is written when it is logged (Lightning's Trainer saves after
//! every `log_metrics`), appended through a handle kept open, and forgotten; only when new
//! keys widened the header is the file read back and rewritten whole (atomically), as
//! Lightning's `_ExperimentWriter` does — so a row costs one small write, not rows × keys,
//! and a killed run keeps every row it logged. Metric names are checked where they are
//! logged (no commas, quotes or control characters).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::options::{locate, next_free, LogLocation, LoggerOptions, Version};
use super::python_text::float_repr;
use super::{prefixed, to_yaml, Logger};
use crate::fs::{replace_file, write_atomic};

pub struct CsvLogger {
    dir: PathBuf,
    name: String,
    version: Version,
    /// Lightning's `prefix`: put before every metric key.
    prefix: String,
    /// Rows logged since the last save.
    rows: Vec<BTreeMap<String, f64>>,
    keys: BTreeSet<String>,
    /// The header the file has (empty: no file yet).
    header: Vec<String>,
    /// metrics.csv opened for appending (None until the next append after a rewrite).
    file: Option<std::fs::File>,
}

impl CsvLogger {
    /// A logger writing to `root/lightning_logs/version_N`, N the next free number.
    pub fn new(root: &Path) -> Result<Self> {
        let opts = LoggerOptions::default();
        CsvLogger::open(locate(&opts, root, &mut |r| next_free(r))?, &opts)
    }

    /// A logger writing into `at`'s directory. A metrics.csv already there (a version given
    /// again, a requeued SLURM job) is continued: its rows are kept and new ones appended,
    /// where Lightning deletes it.
    pub fn open(at: LogLocation, opts: &LoggerOptions) -> Result<Self> {
        let path = at.dir.join("metrics.csv");
        let header: Vec<String> = match std::fs::read_to_string(&path) {
            Ok(text) => {
                text.lines().next().unwrap_or("").split(',').filter(|k| !k.is_empty()).map(String::from).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if !header.is_empty() {
            eprintln!("note: {} exists: its rows are kept and this run's appended", path.display());
        }
        Ok(CsvLogger {
            dir: at.dir,
            name: opts.name.clone(),
            version: at.version,
            prefix: opts.prefix.clone(),
            rows: Vec::new(),
            keys: header.iter().cloned().collect(),
            header,
            file: None,
        })
    }

    /// The unsaved rows in the current header's columns.
    fn render(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            let cells: Vec<String> =
                self.keys.iter().map(|k| row.get(k).map(|v| cell(k, *v)).unwrap_or_default()).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }

    /// The file's rows so far in the (wider) current header's columns: Lightning's
    /// `_rewrite_with_new_header`. Cells are moved as written, never re-read as numbers.
    fn widened(&self, path: &Path) -> Result<String> {
        let mut out = self.keys.iter().map(String::as_str).collect::<Vec<_>>().join(",");
        out.push('\n');
        if self.header.is_empty() {
            return Ok(out);
        }
        let old = std::fs::read_to_string(path).with_context(|| format!("reading {} back", path.display()))?;
        for line in old.lines().skip(1) {
            let row: BTreeMap<&str, &str> = self.header.iter().map(String::as_str).zip(line.split(',')).collect();
            let cells: Vec<&str> = self.keys.iter().map(|k| row.get(k.as_str()).copied().unwrap_or("")).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        Ok(out)
    }
}

/// A cell as Lightning's writer gets it: `step` and the trainer's `epoch` are ints, every
/// other value a Python float (`str(v)`); a logged fractional `epoch` keeps its fraction.
fn cell(key: &str, v: f64) -> String {
    let whole = v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15;
    match key {
        "step" | "epoch" if whole => format!("{}", v as i64),
        _ => float_repr(v),
    }
}

impl Logger for CsvLogger {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> Version {
        self.version.clone()
    }

    fn log_dir(&self) -> &Path {
        &self.dir
    }

    /// hparams.yaml, as Lightning's `save_hparams_to_yaml`; one an earlier run left in a
    /// version directory given again is kept when it holds the same text, and otherwise
    /// refused (lthost never overwrites a file it did not write).
    fn log_hyperparams(&mut self, hparams: &Value) -> Result<()> {
        let path = self.dir.join("hparams.yaml");
        let text = to_yaml(hparams);
        match std::fs::read(&path) {
            Ok(old) if old == text.as_bytes() => return Ok(()),
            Ok(_) => anyhow::bail!(
                "{} holds an earlier run's other hyper-parameters; lthost does not overwrite it: give the logger \
                 another version (loggers.csv.version; without a [loggers.csv] table a SLURM job's id is the \
                 version) or move the file",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        write_atomic(&path, text.as_bytes())
    }

    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        let mut row = prefixed(metrics, &self.prefix).into_owned();
        row.insert("step".into(), step as f64);
        self.keys.extend(row.keys().cloned());
        self.rows.push(row);
        self.save()
    }

    fn save(&mut self) -> Result<()> {
        use std::io::Write as _;
        if self.rows.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("metrics.csv");
        let same_header = !self.header.is_empty()
            && self.keys.len() == self.header.len()
            && self.keys.iter().zip(&self.header).all(|(a, b)| a == b);
        if same_header {
            let text = self.render();
            if self.file.is_none() {
                let f = std::fs::OpenOptions::new().append(true).open(&path);
                self.file = Some(f.with_context(|| format!("appending to {}", path.display()))?);
            }
            if let Some(f) = self.file.as_mut() {
                f.write_all(text.as_bytes()).with_context(|| format!("appending to {}", path.display()))?;
            }
        } else {
            let text = self.widened(&path)? + &self.render();
            // The new file replaces the one the handle holds.
            self.file = None;
            replace_file(&path, text.as_bytes())?;
            self.header = self.keys.iter().cloned().collect();
        }
        self.rows.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lightning_layout() {
        let root = tempfile::tempdir().unwrap();
        let mut l = CsvLogger::new(root.path()).unwrap();
        let dir = root.path().join("lightning_logs/version_0");
        // Each row is in the file once logged, as after Lightning's save per log_metrics.
        l.log_metrics(&BTreeMap::from([("train_loss".to_string(), 0.5), ("epoch".to_string(), 0.0)]), 49).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("metrics.csv")).unwrap(), "epoch,step,train_loss\n0,49,0.5\n");
        l.log_metrics(&BTreeMap::from([("val_acc".to_string(), 0.9), ("epoch".to_string(), 0.0)]), 99).unwrap();
        l.save().unwrap();
        l.log_hyperparams(&serde_json::json!({"lr": 0.1})).unwrap();
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert_eq!(csv, "epoch,step,train_loss,val_acc\n0,49,0.5,\n0,99,,0.9\n");
        // Same keys: appended; a new key: rewritten with the wider header.
        l.log_metrics(&BTreeMap::from([("train_loss".to_string(), 0.25), ("epoch".to_string(), 1.0)]), 149).unwrap();
        l.save().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
            "epoch,step,train_loss,val_acc\n0,49,0.5,\n0,99,,0.9\n1,149,0.25,\n"
        );
        l.log_metrics(&BTreeMap::from([("lr".to_string(), 0.1)]), 150).unwrap();
        l.save().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
            "epoch,lr,step,train_loss,val_acc\n0,,49,0.5,\n0,,99,,0.9\n1,,149,0.25,\n,0.1,150,,\n"
        );
        assert_eq!(std::fs::read_to_string(dir.join("hparams.yaml")).unwrap(), "lr: 0.1\n");
        assert!(l.rows.is_empty(), "written rows are not kept");
        // Python's float text (Lightning's writer), a logged fractional epoch kept.
        l.log_metrics(&BTreeMap::from([("lr".to_string(), 1e-7), ("epoch".to_string(), 0.5)]), 151).unwrap();
        l.log_metrics(&BTreeMap::from([("lr".to_string(), 1.0), ("train_loss".to_string(), f64::NAN)]), 152).unwrap();
        l.save().unwrap();
        let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert!(text.ends_with(",0.1,150,,\n0.5,1e-07,151,,\n,1.0,152,nan,\n"), "{text}");
        assert_eq!(CsvLogger::new(root.path()).unwrap().version(), Version::Number(1));
    }

    #[test]
    fn a_version_given_again_continues_its_file() -> Result<()> {
        let root = tempfile::tempdir()?;
        let opts = LoggerOptions { version: Some(Version::Number(0)), prefix: "tmp".into(), ..Default::default() };
        let dir = root.path().join("lightning_logs/version_0");
        for (step, key) in [(0, "a"), (1, "b")] {
            let mut l = CsvLogger::open(locate(&opts, root.path(), &mut |r| next_free(r))?, &opts)?;
            l.log_metrics(&BTreeMap::from([(key.to_string(), 1.0)]), step)?;
            l.log_hyperparams(&serde_json::json!({"lr": 0.1}))?;
        }
        // The first run's row is kept (Lightning deletes the file), the header widened.
        assert_eq!(std::fs::read_to_string(dir.join("metrics.csv"))?, "step,tmp-a,tmp-b\n0,1.0,\n1,,1.0\n");
        // Other hyper-parameters would overwrite the first run's hparams.yaml: refused.
        let mut l = CsvLogger::open(locate(&opts, root.path(), &mut |r| next_free(r))?, &opts)?;
        assert!(l.log_hyperparams(&serde_json::json!({"lr": 0.2})).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("hparams.yaml"))?, "lr: 0.1\n");
        Ok(())
    }
}
