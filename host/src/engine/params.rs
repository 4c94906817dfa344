//! The model's state dict, owned by the host: trainable parameters and buffers (running
//! statistics), registered by dotted path in creation order, like `nn.Module.state_dict()`.
//! One parameter may sit under two paths (weight tying): it is one tensor, trained once and
//! counted once, as torch's `named_parameters()` yields a shared parameter once.

use std::collections::{HashMap, HashSet};

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
    /// Kept in checkpoints (a buffer registered with `persistent=False` is not).
    pub persistent: bool,
}

/// Parameters and buffers by dotted path. Layers hold shallow clones of the same tensors,
/// so in-place optimizer updates are seen everywhere.
#[derive(Debug, Default)]
pub struct ParamStore {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    /// Layers by dotted path and type (`Linear`, `Conv2d`...), for the model summary.
    modules: Vec<(String, String)>,
    /// The registered layers in eval mode (`module.training` false), for the summary.
    eval_modules: HashSet<String>,
}

/// What makes two handles the same tensor: the same elements at the same place.
fn same_tensor(a: &Tensor, b: &Tensor) -> bool {
    a.numel() > 0
        && a.data_ptr() == b.data_ptr()
        && a.size() == b.size()
        && a.stride() == b.stride()
        && a.kind() == b.kind()
        && a.device() == b.device()
}

impl ParamStore {
    /// Registers a trainable parameter; `tensor` is made a leaf that requires grad.
    pub fn add_parameter(&mut self, name: &str, tensor: Tensor) -> OpResult<Tensor> {
        let leaf = Self::leaf(name, tensor)?;
        self.insert(name, EntryKind::Parameter, leaf, true)
    }

    /// Registers a buffer: state that is saved but not trained.
    pub fn add_buffer(&mut self, name: &str, tensor: Tensor) -> OpResult<Tensor> {
        self.register_buffer(name, tensor, true)
    }

    /// nn.Module.register_parameter, as a plugin calls it: `tensor` becomes the parameter at
    /// `name` (a leaf sharing its storage). A tensor that already is a parameter under another
    /// path is tied there: the very same tensor, under both paths. A path already registered
    /// is given the new tensor (torch's `module.weight = other`), in its place in the order.
    pub fn register_parameter(&mut self, name: &str, tensor: Tensor) -> OpResult<Tensor> {
        let tied = self
            .entries
            .iter()
            .find(|e| e.kind == EntryKind::Parameter && same_tensor(&e.tensor, &tensor))
            .map(|e| e.tensor.shallow_clone());
        let param = match tied {
            Some(t) => t,
            None => Self::leaf(name, tensor)?,
        };
        match self.index.get(name) {
            Some(&i) if self.entries[i].kind == EntryKind::Parameter => {
                self.entries[i].tensor = param.shallow_clone();
                Ok(param)
            }
            Some(_) => Err(OpError::new("register_parameter", format!("`{name}` is already a buffer"))),
            None => self.insert(name, EntryKind::Parameter, param, true),
        }
    }

    /// nn.Module.register_buffer: `persistent: false` keeps it out of checkpoints.
    pub fn register_buffer(&mut self, name: &str, tensor: Tensor, persistent: bool) -> OpResult<Tensor> {
        let t = tensor.f_detach().map_err(|e| OpError::torch("register_buffer", e))?;
        self.insert(name, EntryKind::Buffer, t, persistent)
    }

    fn leaf(name: &str, tensor: Tensor) -> OpResult<Tensor> {
        if !tensor.is_floating_point() {
            return Err(OpError::new(
                "register",
                format!("parameter `{name}` must be floating point, got {:?}", tensor.kind()),
            ));
        }
        tensor.f_detach().and_then(|t| t.f_set_requires_grad(true)).map_err(|e| OpError::torch("register", e))
    }

    fn insert(&mut self, name: &str, kind: EntryKind, tensor: Tensor, persistent: bool) -> OpResult<Tensor> {
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(OpError::new("register", format!("invalid parameter path `{name}`")));
        }
        if self.index.contains_key(name) {
            return Err(OpError::new("register", format!("`{name}` is already registered")));
        }
        let handle = tensor.shallow_clone();
        self.index.insert(name.to_string(), self.entries.len());
        self.entries.push(Entry { name: name.to_string(), kind, tensor, persistent });
        Ok(handle)
    }

    /// Records that a layer of `kind` lives at `path`.
    pub fn add_module(&mut self, path: &str, kind: &str) {
        self.modules.push((path.to_string(), kind.to_string()));
    }

    pub fn modules(&self) -> &[(String, String)] {
        &self.modules
    }

    /// Records the mode of the layer at `path` (only registered layers are shown).
    pub fn set_module_training(&mut self, path: &str, training: bool) {
        if training {
            self.eval_modules.remove(path);
        } else {
            self.eval_modules.insert(path.to_string());
        }
    }

    /// Whether the layer at `path` is in train mode (every layer is until told otherwise).
    pub fn module_training(&self, path: &str) -> bool {
        !self.eval_modules.contains(path)
    }

    /// How many paths were told to be in eval mode (what bounds the record).
    pub fn eval_module_count(&self) -> usize {
        self.eval_modules.len()
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.entries[i].tensor)
    }

    /// Every entry in registration order, tied paths included (the state dict's keys).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries a checkpoint stores: the persistent ones, each tied tensor once (under its
    /// first path).
    pub fn stored(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.persistent && self.tied_to(e).is_none())
    }

    /// The earlier path a tied entry shares its tensor with (None: it is the first).
    pub fn tied_to(&self, entry: &Entry) -> Option<&str> {
        self.entries
            .iter()
            .take_while(|e| !std::ptr::eq(*e, entry))
            .find(|e| same_tensor(&e.tensor, &entry.tensor))
            .map(|e| e.name.as_str())
    }

    /// Trainable parameters, each once, with its first path, in registration order
    /// (`named_parameters()`: the optimizer's order).
    pub fn named_parameters(&self) -> Vec<(&str, Tensor)> {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::Parameter && self.tied_to(e).is_none())
            .map(|e| (e.name.as_str(), e.tensor.shallow_clone()))
            .collect()
    }

    /// Trainable parameters in registration order, each once.
    pub fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters().into_iter().map(|(_, t)| t).collect()
    }

    /// Number of trainable elements (a tied parameter counted once).
    pub fn num_parameters(&self) -> i64 {
        self.named_parameters().iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// Trainable elements grouped by the first path component, in first-seen order
    /// (the rows of Lightning's model summary).
    pub fn summary(&self) -> Vec<(String, i64)> {
        let mut rows: Vec<(String, i64)> = Vec::new();
        for (name, t) in self.named_parameters() {
            let top = name.split('.').next().unwrap_or("").to_string();
            let n = t.numel() as i64;
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

    #[test]
    fn ties_one_tensor_under_two_paths_and_replaces_by_path() {
        let f = |n: i64| Tensor::zeros([n, 2], (tch::Kind::Float, tch::Device::Cpu));
        let mut ps = ParamStore::default();
        let a = ps.register_parameter("wte.weight", f(3)).unwrap();
        let b = ps.register_parameter("lm_head.weight", f(3)).unwrap();
        assert_eq!(ps.num_parameters(), 12);
        // `wte.weight = lm_head.weight`: one tensor under both paths, first path first.
        let tied = ps.register_parameter("wte.weight", b.shallow_clone()).unwrap();
        assert_eq!(tied.data_ptr(), b.data_ptr());
        assert_ne!(ps.get("wte.weight").unwrap().data_ptr(), a.data_ptr());
        assert_eq!(ps.named_parameters().iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec!["wte.weight"]);
        assert_eq!(ps.num_parameters(), 6);
        assert_eq!(ps.entries().len(), 2, "both keys stay in the state dict");
        assert_eq!(ps.tied_to(&ps.entries()[1]), Some("wte.weight"));
        // Gradients reach the shared tensor once.
        (&tied * 2.0).sum(tch::Kind::Float).backward();
        assert!(b.grad().equal(&Tensor::full([3, 2], 2.0, (tch::Kind::Float, tch::Device::Cpu))));
        let buf = ps.register_buffer("mask", f(1), false).unwrap();
        assert!(!buf.requires_grad() && !ps.entries()[2].persistent);
        assert!(ps.register_parameter("mask", f(1)).unwrap_err().detail.contains("already a buffer"));
    }
}
