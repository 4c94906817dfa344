//! Lightning's CSVLogger: one row per `log_metrics` call, the header the sorted union of
//! all keys, empty cells where a row lacks a key. A save appends the new rows; only when
//! new keys widened the header is the file rewritten whole (atomically), as Lightning's
//! `_ExperimentWriter` does — so a save costs the new rows, not rows × keys. Metric names
//! are checked where they are logged (no commas, quotes or control characters).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::{next_version, replace_file, to_yaml, write_atomic, Logger};

pub struct CsvLogger {
    dir: PathBuf,
    version: u64,
    rows: Vec<BTreeMap<String, f64>>,
    keys: BTreeSet<String>,
    /// Rows already in the file, and the header it has.
    written: usize,
    header: Vec<String>,
}

impl CsvLogger {
    /// A logger writing to `root/lightning_logs/version_N`, N the next free number.
    pub fn new(root: &Path) -> Result<Self> {
        let base = root.join("lightning_logs");
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let version = next_version(&base);
        let dir = base.join(format!("version_{version}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(CsvLogger::at(dir, version))
    }

    /// A logger writing into an existing version directory.
    pub fn at(dir: PathBuf, version: u64) -> Self {
        CsvLogger { dir, version, rows: Vec::new(), keys: BTreeSet::new(), written: 0, header: Vec::new() }
    }

    /// The header line and the rows from `from` on, in the current header's columns.
    fn render(&self, from: usize, header: bool) -> String {
        let keys: Vec<&String> = self.keys.iter().collect();
        let mut out = String::new();
        if header {
            out = keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",");
            out.push('\n');
        }
        for row in &self.rows[from..] {
            let cells: Vec<String> = keys
                .iter()
                .map(|k| match row.get(*k) {
                    Some(v) if *k == "step" || *k == "epoch" => format!("{}", *v as i64),
                    Some(v) => format!("{v}"),
                    None => String::new(),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

impl Logger for CsvLogger {
    fn name(&self) -> &str {
        "lightning_logs"
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn log_dir(&self) -> &Path {
        &self.dir
    }

    fn log_hyperparams(&mut self, hparams: &Value) -> Result<()> {
        write_atomic(&self.dir.join("hparams.yaml"), to_yaml(hparams).as_bytes())
    }

    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        let mut row = metrics.clone();
        row.insert("step".into(), step as f64);
        self.keys.extend(row.keys().cloned());
        self.rows.push(row);
        Ok(())
    }

    fn save(&mut self) -> Result<()> {
        use std::io::Write as _;
        if self.rows.len() == self.written {
            return Ok(());
        }
        let path = self.dir.join("metrics.csv");
        let same_header = self.written > 0
            && self.keys.len() == self.header.len()
            && self.keys.iter().zip(&self.header).all(|(a, b)| a == b);
        if same_header {
            let text = self.render(self.written, false);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .with_context(|| format!("appending to {}", path.display()))?;
            f.write_all(text.as_bytes()).with_context(|| format!("appending to {}", path.display()))?;
        } else {
            replace_file(&path, self.render(0, true).as_bytes())?;
            self.header = self.keys.iter().cloned().collect();
        }
        self.written = self.rows.len();
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
        l.log_metrics(&BTreeMap::from([("train_loss".to_string(), 0.5), ("epoch".to_string(), 0.0)]), 49).unwrap();
        l.log_metrics(&BTreeMap::from([("val_acc".to_string(), 0.9), ("epoch".to_string(), 0.0)]), 99).unwrap();
        l.save().unwrap();
        l.log_hyperparams(&serde_json::json!({"lr": 0.1})).unwrap();
        let dir = root.path().join("lightning_logs/version_0");
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
        assert_eq!(CsvLogger::new(root.path()).unwrap().version(), 1);
    }
}
