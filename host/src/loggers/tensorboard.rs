//! Lightning's TensorBoardLogger: real TensorBoard event files
//! (`events.out.tfevents.<time>.<host>.<pid>.0`): TFRecord framing (length, masked CRC32C of
//! the length, the record, masked CRC32C of the record) around `Event` protobufs holding
//! scalar summaries and the hparams plugin's summaries ([`hparams`]); `hparams.yaml` beside
//! them, written at the first save as Lightning does. The protobufs are encoded by hand (a
//! few fields only).

mod hparams;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::options::{LogLocation, LoggerOptions, Version};
use super::{prefixed, to_yaml, Logger};
use crate::fs::write_atomic;

/// TFRecord's masked CRC of the CRC-32C (Castagnoli, the `crc32c` crate).
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// TFRecord framing of one record.
pub fn frame(record: &[u8]) -> Vec<u8> {
    let len = (record.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(record.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(record);
    out.extend_from_slice(&masked_crc(record).to_le_bytes());
    out
}

/// Protobuf wire-format writing, for the few messages needed here.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, (u64::from(field) << 3) | u64::from(wire));
    }
    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    pub fn double(out: &mut Vec<u8>, field: u32, v: f64) {
        key(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn float(out: &mut Vec<u8>, field: u32, v: f32) {
        key(out, field, 5);
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn int(out: &mut Vec<u8>, field: u32, v: i64) {
        key(out, field, 0);
        varint(out, v as u64);
    }
}

/// Event { wall_time = 1, step = 2, file_version = 3, summary = 5 }.
fn event(step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let wall =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut e = Vec::new();
    pb::double(&mut e, 1, wall);
    pb::int(&mut e, 2, step);
    body(&mut e);
    e
}

/// Summary.Value { tag = 1, simple_value = 2 }.
fn scalar_value(tag: &str, v: f64) -> Vec<u8> {
    let mut val = Vec::new();
    pb::bytes(&mut val, 1, tag.as_bytes());
    pb::float(&mut val, 2, v as f32);
    val
}

pub struct TensorBoardLogger {
    /// The version directory, with `sub_dir` when given.
    dir: PathBuf,
    version_dir: PathBuf,
    name: String,
    version: Version,
    /// Lightning's `prefix`: put before every scalar's tag.
    prefix: String,
    /// Lightning's `default_hp_metric`.
    default_hp_metric: bool,
    file: File,
    path: PathBuf,
    /// Every hyper-parameter logged so far (Lightning's `self.hparams`), for hparams.yaml.
    hparams: Map<String, Value>,
    /// hparams.yaml is written at the first save when the directory has none (an earlier
    /// run's, in a version given again, is kept), as Lightning writes it.
    yaml_checked: bool,
}

impl TensorBoardLogger {
    /// Writes a new event file into `at`'s directory.
    pub fn new(at: LogLocation, opts: &LoggerOptions) -> Result<Self> {
        let dir = match &opts.sub_dir {
            Some(s) => at.dir.join(s),
            None => at.dir.clone(),
        };
        let dir = dir.as_path();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{}.0", std::process::id()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut l = TensorBoardLogger {
            dir: dir.to_path_buf(),
            version_dir: at.dir.clone(),
            name: opts.name.clone(),
            version: at.version,
            prefix: opts.prefix.clone(),
            default_hp_metric: opts.default_hp_metric.unwrap_or(true),
            file,
            path,
            hparams: Map::new(),
            yaml_checked: false,
        };
        let first = event(0, |e| pb::bytes(e, 3, b"brain.Event:2"));
        l.write(&first)?;
        Ok(l)
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        self.file.sync_data().with_context(|| format!("syncing {}", self.path.display()))
    }

    fn write(&mut self, record: &[u8]) -> Result<()> {
        self.file.write_all(&frame(record)).with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Logger for TensorBoardLogger {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> Version {
        self.version.clone()
    }
    fn log_dir(&self) -> &Path {
        &self.dir
    }
    fn version_dir(&self) -> &Path {
        &self.version_dir
    }
    /// Lightning's `log_hyperparams`: with `default_hp_metric` the scalar `hp_metric` -1 at
    /// step 0, then the experiment, session-start and session-end summaries; without it only
    /// hparams.yaml gets them.
    fn log_hyperparams(&mut self, hparams: &Value) -> Result<()> {
        let given = hparams.as_object().cloned().unwrap_or_default();
        self.hparams.extend(given.clone());
        if !self.default_hp_metric {
            return Ok(());
        }
        self.log_metrics(&BTreeMap::from([("hp_metric".to_string(), -1.0)]), 0)?;
        for summary in hparams::summaries(&hparams::flattened(&given), &["hp_metric"]) {
            self.write(&event(0, |e| pb::bytes(e, 5, &summary)))?;
        }
        Ok(())
    }
    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        // Every key, `epoch` included, as Lightning's TensorBoardLogger charts them.
        let rec = event(step as i64, |e| {
            let mut summary = Vec::new();
            for (k, v) in prefixed(metrics, &self.prefix).iter() {
                pb::bytes(&mut summary, 1, &scalar_value(k, *v));
            }
            pb::bytes(e, 5, &summary);
        });
        self.write(&rec)
    }
    fn save(&mut self) -> Result<()> {
        self.flush()?;
        if !self.yaml_checked {
            let path = self.dir.join("hparams.yaml");
            if !path.exists() {
                write_atomic(&path, to_yaml(&Value::Object(self.hparams.clone())).as_bytes())?;
            }
            self.yaml_checked = true;
        }
        Ok(())
    }
    /// The events are flushed; hparams.yaml is saved only for a run that succeeded, as
    /// Lightning's TensorBoardLogger.finalize saves.
    fn finalize(&mut self, status: &str) -> Result<()> {
        if status == "success" {
            self.save()
        } else {
            self.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_masking_match_known_values() {
        // RFC 3720 test vector: 32 bytes of zeros.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // TFRecord's mask of a known CRC (tensorflow/core/lib/hash/crc32c.h: Mask).
        assert_eq!(masked_crc(b"123456789"), 0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
        let f = frame(b"abc");
        assert_eq!(f.len(), 8 + 4 + 3 + 4);
        assert_eq!(&f[..8], &3u64.to_le_bytes());
    }
}
