//! The model's state dict, owned by the host: trainable parameters and buffers (running
//! statistics), registered by dotted path in creation order, like `nn.Module.state_dict()`.

use std::collections::HashMap;

use tch::Tensor;

use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Parameter,
    Buffer,
}

#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub tensor: Tensor,
}

/// Parameters and buffers by dotted path. Layers hold shallow clones of the same tensors,
/// so in-place optimizer updates are seen everywhere.
#[derive(Debug, Default)]
pub struct ParamStore {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    /// Layers by dotted path and type (`Linear`, `Conv2d`...), for the model summary.
    modules: Vec<(String, &'static str)>,
}

impl ParamStore {
    /// Registers a trainable parameter; `tensor` is made a leaf that requires grad.
    pub fn add_parameter(&mut self, name: &str, tensor: Tensor) -> OpResult<Tensor> {
        if !tensor.is_floating_point() {
            return Err(OpError::new(
                "register",
                format!("parameter `{name}` must be floating point, got {:?}", tensor.kind()),
            ));
        }
        let leaf =
            tensor.f_detach().and_then(|t| t.f_set_requires_grad(true)).map_err(|e| OpError::torch("register", e))?;
        self.insert(name, EntryKind::Parameter, leaf)
    }

    /// Registers a buffer: state that is saved but not trained.
    pub fn add_buffer(&mut self, name: &str, tensor: Tensor) -> OpResult<Tensor> {
        let t = tensor.f_detach().map_err(|e| OpError::torch("register", e))?;
        self.insert(name, EntryKind::Buffer, t)
    }

    fn insert(&mut self, name: &str, kind: EntryKind, tensor: Tensor) -> OpResult<Tensor> {
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(OpError::new("register", format!("invalid parameter path `{name}`")));
        }
        if self.index.contains_key(name) {
            return Err(OpError::new("register", format!("`{name}` is already registered")));
        }
        let handle = tensor.shallow_clone();
        self.index.insert(name.to_string(), self.entries.len());
        self.entries.push(Entry { name: name.to_string(), kind, tensor });
        Ok(handle)
    }

    /// Records that a layer of `kind` lives at `path`.
    pub fn add_module(&mut self, path: &str, kind: &'static str) {
        self.modules.push((path.to_string(), kind));
    }

    pub fn modules(&self) -> &[(String, &'static str)] {
        &self.modules
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.entries[i].tensor)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Trainable parameters in registration order (the optimizer's order).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.entries.iter().filter(|e| e.kind == EntryKind::Parameter).map(|e| e.tensor.shallow_clone()).collect()
    }

    /// Number of trainable elements.
    pub fn num_parameters(&self) -> i64 {
        self.entries.iter().filter(|e| e.kind == EntryKind::Parameter).map(|e| e.tensor.numel() as i64).sum()
    }

    /// Trainable elements grouped by the first path component, in first-seen order
    /// (the rows of Lightning's model summary).
    pub fn summary(&self) -> Vec<(String, i64)> {
        let mut rows: Vec<(String, i64)> = Vec::new();
        for e in self.entries.iter().filter(|e| e.kind == EntryKind::Parameter) {
            let top = e.name.split('.').next().unwrap_or("").to_string();
            let n = e.tensor.numel() as i64;
            match rows.iter_mut().find(|(name, _)| *name == top) {
                Some(row) => row.1 += n,
                None => rows.push((top, n)),
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_in_order_and_refuses_duplicates() {
        let mut ps = ParamStore::default();
        let _ = ps.add_parameter("enc.0.weight", Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu))).unwrap();
        let _ = ps.add_buffer("enc.1.running_mean", Tensor::zeros([3], (tch::Kind::Float, tch::Device::Cpu))).unwrap();
        let _ = ps.add_parameter("head.bias", Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu))).unwrap();
        assert_eq!(ps.parameters().len(), 2);
        assert!(ps.parameters()[0].requires_grad());
        assert_eq!(ps.num_parameters(), 10);
        assert_eq!(ps.summary(), vec![("enc".to_string(), 6), ("head".to_string(), 4)]);
        let dup = ps.add_parameter("head.bias", Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu)));
        assert!(dup.unwrap_err().detail.contains("already registered"));
        assert!(ps.add_parameter("a..b", Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu))).is_err());
        let int = ps.add_parameter("ints", Tensor::zeros([1], (tch::Kind::Int64, tch::Device::Cpu)));
        assert!(int.unwrap_err().detail.contains("floating point"));
    }
}
