//! The checkpoint file: one safetensors file holding every tensor (the model's parameters
//! and buffers under `state_dict.<path>`, optimizer state under `optimizer.<k>.…`, the
//! generator state, the current epoch's data order) and, in the safetensors metadata under
//! `lthost`, JSON with everything else (versions, counters, hyper-parameters, scheduler and
//! callback states). Python reads it with `safetensors.torch.load_file`.
//!
//! Written atomically (temp file in the same directory, fsync, rename, fsync of the
//! directory); read whole and validated, so a truncated or corrupt file is refused, never
//! loaded in part.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::progress::Progress;

/// Format 2 keeps the loops' state dicts under `loops`; format 1 (read still) kept a flat
/// `position`.
pub const FORMAT: u32 = 2;
pub const WIT_VERSION: &str = "0.3.0";

/// The loops' position as format 1 wrote it (the loops now write their state dicts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FlatPosition {
    pub current_epoch: u64,
    pub global_step: u64,
    pub epoch_progress: Progress,
    pub batch_progress: Progress,
    pub step_progress: Progress,
    pub zero_grad_progress: Progress,
    pub batches_that_stepped: u64,
    pub scheduler_steps: u64,
    /// Training batches of the current epoch already done (0: at an epoch boundary).
    pub batches_done_in_epoch: u64,
    /// A validation run was due after the last batch and had not run yet.
    pub val_pending: bool,
    /// Saved at a training epoch's end (Lightning's `on_train_epoch_end`, where its loops
    /// count that epoch processed but not yet completed: `current_epoch` is one less there).
    #[serde(default)]
    pub at_epoch_end: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    pub format: u32,
    pub lthost_version: String,
    pub wit_version: String,
    pub plugin: String,
    pub plugin_sha256: String,
    pub weights_only: bool,
    /// The epoch and optimizer step the run had reached.
    #[serde(default)]
    pub current_epoch: u64,
    #[serde(default)]
    pub global_step: u64,
    /// The loops' state dicts (Lightning's `checkpoint["loops"]` layout): enough to resume
    /// exactly where the run stopped.
    #[serde(default)]
    pub loops: serde_json::Map<String, Value>,
    /// Format 1's position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<FlatPosition>,
    pub hparams: Value,
    pub optimizers: Vec<Value>,
    pub schedulers: Vec<Value>,
    /// Callback states by state key (ModelCheckpoint's best paths, ...).
    pub callbacks: BTreeMap<String, Value>,
    /// Tied parameters: a state-dict key stored under the earlier key it shares a tensor with.
    #[serde(default)]
    pub tied: BTreeMap<String, String>,
    /// The precision plugin's state (Lightning's `checkpoint["MixedPrecision"]`): 16-mixed's
    /// GradScaler `state_dict()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_plugin: Option<Value>,
}

pub struct Checkpoint {
    pub meta: Meta,
    pub tensors: BTreeMap<String, Tensor>,
}

struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn dtype_of(k: Kind) -> Result<Dtype> {
    Ok(match k {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        other => bail!("cannot checkpoint a {other:?} tensor"),
    })
}

pub(crate) fn kind_of(d: Dtype) -> Result<Kind> {
    Ok(match d {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        other => bail!("unsupported dtype {other:?}"),
    })
}

fn to_bytes(t: &Tensor) -> Result<Bytes> {
    let cpu = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let n = cpu.numel();
    let mut data = vec![0u8; n * cpu.kind().elt_size_in_bytes()];
    cpu.f_copy_data_u8(&mut data, n)?;
    Ok(Bytes { dtype: dtype_of(cpu.kind())?, shape: cpu.size().iter().map(|&d| d as usize).collect(), data })
}

/// A callback state larger than this (as JSON) is kept in a tensor of its own
/// (`callback_state.<key>`, its UTF-8 JSON as bytes) instead of the header, whose size
/// safetensors bounds (100 MB); the header keeps `{"$tensor": name}` in its place.
pub const INLINE_STATE_BYTES: usize = 64 << 10;
/// The most one callback's state may take.
pub const MAX_STATE_BYTES: usize = 1 << 30;
const STATE_TENSOR: &str = "callback_state.";

/// Serialises a checkpoint to bytes.
pub fn to_vec(ckpt: &Checkpoint) -> Result<Vec<u8>> {
    let mut views = Vec::with_capacity(ckpt.tensors.len());
    for (name, t) in &ckpt.tensors {
        views.push((name.clone(), to_bytes(t).with_context(|| format!("checkpointing `{name}`"))?));
    }
    let mut meta = ckpt.meta.clone();
    for (key, state) in meta.callbacks.iter_mut() {
        let text = serde_json::to_vec(state)?;
        if text.len() > MAX_STATE_BYTES {
            bail!(
                "the state of callback `{key}` is {} MiB, over the {} MiB a callback state may take",
                text.len() >> 20,
                MAX_STATE_BYTES >> 20
            );
        }
        if text.len() > INLINE_STATE_BYTES {
            let name = format!("{STATE_TENSOR}{key}");
            *state = serde_json::json!({ "$tensor": name });
            views.push((name, Bytes { dtype: Dtype::U8, shape: vec![text.len()], data: text }));
        }
    }
    let meta = HashMap::from([("lthost".to_string(), serde_json::to_string(&meta)?)]);
    safetensors::tensor::serialize(views.iter().map(|(n, b)| (n.as_str(), b)), &Some(meta))
        .map_err(|e| anyhow!("serialising the checkpoint: {e:?}"))
}

/// Serialises a checkpoint and checks that its bytes load as [`load`] parses them (a header
/// past safetensors' bound, say, is refused here, before any file is written or an older
/// checkpoint removed).
pub fn to_checked_vec(ckpt: &Checkpoint) -> Result<Vec<u8>> {
    let bytes = to_vec(ckpt)?;
    SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("the checkpoint would not load ({e:?})"))?;
    Ok(bytes)
}

/// Writes checkpoint bytes atomically (temp file, fsync, rename; `ckpt-write` is the
/// fault-injection point before the rename).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::fs::write_atomic_as(path, bytes, "ckpt-write")
}

/// Checks and writes a checkpoint ([`to_checked_vec`], [`write`]).
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    write(path, &to_checked_vec(ckpt)?)
}

/// The metadata of the checkpoint `name` in `dir`, from its header alone (a regular file,
/// not followed through a symlink).
pub fn read_meta(dir: &crate::run_dir::RunDir, name: &str) -> Result<Meta> {
    use std::io::Read as _;
    let mut f = dir.open_regular(name)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| anyhow!("{name}: too short for a checkpoint"))?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        bail!("{name}: header too large");
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|_| anyhow!("{name}: the header is cut short"))?;
    let header: Value = serde_json::from_slice(&header)?;
    let text = header["__metadata__"]["lthost"].as_str().ok_or_else(|| anyhow!("{name}: not an lthost checkpoint"))?;
    Ok(serde_json::from_str(text)?)
}

/// Reads and validates a checkpoint; a truncated or corrupt file is an error naming it.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let shown = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("reading checkpoint {shown}"))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("checkpoint {shown} is corrupt or truncated ({e:?}); it was not loaded"))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| anyhow!("checkpoint {shown}: bad header ({e:?})"))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("lthost"))
        .ok_or_else(|| anyhow!("checkpoint {shown} has no lthost metadata: not an lthost checkpoint"))?;
    let meta: Meta =
        serde_json::from_str(text).map_err(|e| anyhow!("checkpoint {shown}: metadata is not valid ({e})"))?;
    if !(1..=FORMAT).contains(&meta.format) || (meta.format == 1) != meta.position.is_some() {
        bail!("checkpoint {shown} has format {}, this lthost reads formats 1 to {FORMAT}", meta.format);
    }
    let mut meta = meta;
    let mut tensors = BTreeMap::new();
    for (key, state) in meta.callbacks.iter_mut() {
        // Only this callback's own tensor: a state naming another tensor stays as it is.
        let own = format!("{STATE_TENSOR}{key}");
        if let Some(name) = state.get("$tensor").and_then(Value::as_str).filter(|n| *n == own).map(str::to_string) {
            let view = st.tensor(&name).map_err(|_| {
                anyhow!("checkpoint {shown}: the state of callback `{key}` is missing (tensor `{name}`)")
            })?;
            *state = serde_json::from_slice(view.data())
                .map_err(|e| anyhow!("checkpoint {shown}: the state of callback `{key}` is not valid ({e})"))?;
        }
    }
    for (name, view) in st.tensors() {
        if name.starts_with(STATE_TENSOR) {
            continue;
        }
        let kind = kind_of(view.dtype()).map_err(|e| anyhow!("checkpoint {shown}, tensor `{name}`: {e}"))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| anyhow!("checkpoint {shown}, tensor `{name}`: {e}"))?;
        tensors.insert(name, t);
    }
    Ok(Checkpoint { meta, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ckpt");
        let mut tensors = BTreeMap::new();
        tensors.insert("state_dict.w".to_string(), Tensor::from_slice(&[1f32, 2.0, 3.0]));
        tensors.insert("rng.cpu".to_string(), Tensor::from_slice(&[7u8, 8]));
        let meta = Meta { format: FORMAT, plugin: "p".into(), ..Meta::default() };
        save(&path, &Checkpoint { meta, tensors }).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.meta.plugin, "p");
        assert!(back.tensors["state_dict.w"].equal(&Tensor::from_slice(&[1f32, 2.0, 3.0])));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = load(&path).err().unwrap().to_string();
        assert!(err.contains("corrupt or truncated"), "{err}");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load(&path).is_err());
    }
}
