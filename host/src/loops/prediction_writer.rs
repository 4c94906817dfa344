//! `predictions.safetensors`, written as the predictions come: each batch's bytes go to a
//! temp file in the output directory as soon as `predict_step` returns it, so a prediction
//! run holds one batch in memory, however many batches there are. `finish` writes the
//! safetensors header (`batch_<i>` in order) and the data behind it to another temp file and
//! renames it into place: a crash leaves the old file or the new one, never half of one.

use std::io::{Seek as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Map, Value};
use tch::{Device, Kind, Tensor};

pub struct PredictionWriter {
    dir: PathBuf,
    data: tempfile::NamedTempFile,
    header: Map<String, Value>,
    offset: u64,
    count: usize,
}

fn dtype_name(k: Kind) -> Result<&'static str> {
    Ok(match k {
        Kind::Float => "F32",
        Kind::Double => "F64",
        Kind::Half => "F16",
        Kind::BFloat16 => "BF16",
        Kind::Int64 => "I64",
        Kind::Int => "I32",
        Kind::Int16 => "I16",
        Kind::Int8 => "I8",
        Kind::Uint8 => "U8",
        Kind::Bool => "BOOL",
        other => bail!("cannot write a {other:?} prediction"),
    })
}

impl PredictionWriter {
    /// A writer whose file will go in `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let data =
            crate::fs::temp_file_in(dir).with_context(|| format!("creating a temp file in {}", dir.display()))?;
        Ok(PredictionWriter { dir: dir.to_path_buf(), data, header: Map::new(), offset: 0, count: 0 })
    }

    /// Appends the next batch's prediction (`batch_<i>`).
    pub fn push(&mut self, t: &Tensor) -> Result<()> {
        let name = format!("batch_{}", self.count);
        self.push_named(name, t)
    }

    /// Appends a prediction: `batch_<i>`, or `dataloader_<d>.batch_<i>` with several
    /// DataLoaders (Lightning's list of lists).
    pub fn push_prediction(&mut self, p: &crate::loops::prediction::Prediction) -> Result<()> {
        let name = match p.dataloader_idx {
            Some(d) => format!("dataloader_{d}.batch_{}", p.batch_idx),
            None => format!("batch_{}", p.batch_idx),
        };
        self.push_named(name, &p.tensor)
    }

    fn push_named(&mut self, name: String, t: &Tensor) -> Result<()> {
        let i = self.count;
        let cpu = t
            .f_detach()
            .and_then(|t| t.f_to_device(Device::Cpu))
            .and_then(|t| t.f_contiguous())
            .map_err(|e| anyhow!("prediction {i}: {e}"))?;
        let n = cpu.numel();
        let mut bytes = vec![0u8; n * cpu.kind().elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut bytes, n).map_err(|e| anyhow!("prediction {i}: {e}"))?;
        self.data.write_all(&bytes).context("writing predictions")?;
        let end = self.offset + bytes.len() as u64;
        self.header.insert(
            name,
            json!({"dtype": dtype_name(cpu.kind())?, "shape": cpu.size(), "data_offsets": [self.offset, end]}),
        );
        self.offset = end;
        self.count += 1;
        Ok(())
    }

    /// Writes `<dir>/<name>` atomically; returns how many batches it holds.
    pub fn finish(mut self, name: &str) -> Result<usize> {
        let mut header = serde_json::to_vec(&Value::Object(std::mem::take(&mut self.header)))?;
        // safetensors pads the header to a multiple of 8 with spaces.
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let mut out = crate::fs::temp_file_in(&self.dir)?;
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        self.data.as_file_mut().flush()?;
        self.data.as_file_mut().rewind()?;
        std::io::copy(self.data.as_file_mut(), out.as_file_mut()).context("writing predictions")?;
        out.as_file().sync_all()?;
        let path = self.dir.join(name);
        out.persist(&path).with_context(|| format!("writing {}", path.display()))?;
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_as_safetensors_in_order() {
        let d = tempfile::tempdir().unwrap();
        let mut w = PredictionWriter::new(d.path()).unwrap();
        w.push(&Tensor::from_slice(&[1f32, 2.0, 3.0]).reshape([3, 1])).unwrap();
        w.push(&Tensor::from_slice(&[7i64])).unwrap();
        assert_eq!(w.finish("p.safetensors").unwrap(), 2);
        let back = Tensor::read_safetensors(d.path().join("p.safetensors")).unwrap();
        let get = |n: &str| back.iter().find(|(k, _)| k == n).map(|(_, t)| t.shallow_clone()).unwrap();
        assert!(get("batch_0").equal(&Tensor::from_slice(&[1f32, 2.0, 3.0]).reshape([3, 1])));
        assert!(get("batch_1").equal(&Tensor::from_slice(&[7i64])));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temp file left");
    }
}
