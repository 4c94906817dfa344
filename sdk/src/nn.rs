//! torch.nn layers, written in the plugin on the generic ATen ops: parameters are the
//! plugin's tensors, registered with the host by dotted path (optimizers, checkpoints, the
//! model summary), initialised as torch.nn's `reset_parameters` does (same draws, same
//! order), and a layer's weights can be read, replaced, tied and re-initialised (`init`).

mod attention;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod norm;
mod recurrent;

pub use attention::MultiheadAttention;
pub use conv::{Conv2d, Conv2dOptions};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use linear::Linear;
pub use norm::{BatchNorm, LayerNorm};
pub use recurrent::{Lstm, LstmOptions};

use crate::aten;
use crate::bindings::lt::plugin::parameters as wit;
use crate::{Dtype, Tensor};

/// nn.Module.register_parameter: `value` becomes the parameter at `path` (a leaf that
/// requires grad, on the run's device); use the returned tensor. A tensor that already is a
/// parameter ties the two paths (`lm_head.weight = wte.weight`); a path registered before is
/// given the new tensor.
pub fn register_parameter(path: &str, value: &Tensor) -> Tensor {
    wit::register_parameter(path, value).unwrap_or_else(|e| aten::raise("register_parameter", &e))
}

/// nn.Module.register_buffer (`persistent: false`: not saved in checkpoints).
pub fn register_buffer(path: &str, value: &Tensor, persistent: bool) -> Tensor {
    wit::register_buffer(path, value, persistent).unwrap_or_else(|e| aten::raise("register_buffer", &e))
}

/// The parameter or buffer registered at `path`.
pub fn get(path: &str) -> Option<Tensor> {
    wit::get(path)
}

/// The trainable parameters' paths, each parameter once (torch's `named_parameters()`).
pub fn parameter_names() -> Vec<String> {
    wit::parameter_names()
}

/// Every registered path, in state-dict order.
pub fn state_dict_keys() -> Vec<String> {
    wit::names()
}

/// Registers a free parameter holding a copy of `init` (nn.Parameter(init.clone())).
pub fn parameter(path: &str, init: &Tensor) -> Tensor {
    register_parameter(path, &aten::clone(&aten::detach(init), None))
}

/// What [`load_state_dict`] found: parameters the file lacks, and tensors it has that no
/// registered path takes (torch's `missing_keys`, `unexpected_keys`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadedKeys {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

/// `module.load_state_dict(safetensors.load_file(path))`: copies the tensors of a
/// safetensors file in the granted data directory into the registered parameters and
/// buffers of the same paths (a pretrained backbone), converting dtype and device as
/// `copy_` does. A shape that differs is an error; with `strict`, so is a parameter the file
/// lacks (a tied parameter counts once) or a tensor no path takes.
pub fn load_state_dict(path: &str, strict: bool) -> Result<LoadedKeys, String> {
    let file = Tensor::load(path);
    let registered = state_dict_keys();
    let mut keys = LoadedKeys::default();
    let mut loaded = std::collections::BTreeSet::new();
    for (name, t) in &file {
        let Some(dst) = get(name) else {
            keys.unexpected.push(name.clone());
            continue;
        };
        if dst.shape() != t.shape() {
            return Err(format!("`{path}`: `{name}` has shape {:?}, the model's {:?}", t.shape(), dst.shape()));
        }
        aten::no_grad(|| aten::f_copy_(&dst, t, false)).map_err(|e| format!("`{path}`: `{name}`: {e}"))?;
        loaded.insert(name.as_str());
    }
    keys.missing = parameter_names().into_iter().filter(|n| !loaded.contains(n.as_str())).collect();
    keys.unexpected.retain(|n| !registered.contains(n));
    if strict && (!keys.missing.is_empty() || !keys.unexpected.is_empty()) {
        return Err(format!(
            "`{path}` does not fit the model: missing keys {:?}, unexpected keys {:?}",
            keys.missing, keys.unexpected
        ));
    }
    Ok(keys)
}

/// Records a layer of type `kind` at `path` (the model summary's rows).
pub fn register_module(path: &str, kind: &str) {
    wit::register_module(path, kind);
}

/// `a.b` from a module path and a parameter name.
pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// An uninitialised float32 tensor (torch.empty), on the CPU as torch.nn creates parameters.
pub fn empty(shape: &[i64]) -> Tensor {
    aten::empty(shape, Some(Dtype::Float32), None, None, None, None)
}

/// Whether layers run in training mode (the trainer's `model.train()` / `model.eval()`).
/// The flag changes only between hooks, so inside a module hook it is asked of the host once.
pub fn training() -> bool {
    crate::glue::training()
}

/// F.max_pool2d.
pub fn max_pool2d(x: &Tensor, kernel: (u32, u32), stride: (u32, u32), padding: (u32, u32)) -> Tensor {
    let p = |t: (u32, u32)| [i64::from(t.0), i64::from(t.1)];
    aten::max_pool2d(x, &p(kernel), &p(stride), &p(padding), &[1, 1], false)
}

/// F.avg_pool2d (count_include_pad, no ceil mode, as torch's defaults).
pub fn avg_pool2d(x: &Tensor, kernel: (u32, u32), stride: (u32, u32), padding: (u32, u32)) -> Tensor {
    let p = |t: (u32, u32)| [i64::from(t.0), i64::from(t.1)];
    aten::avg_pool2d(x, &p(kernel), &p(stride), &p(padding), false, true, None)
}

/// F.adaptive_avg_pool2d.
pub fn adaptive_avg_pool2d(x: &Tensor, output_size: (i64, i64)) -> Tensor {
    aten::adaptive_avg_pool2d(x, &[output_size.0, output_size.1])
}
