//! `lt:plugin/parameters`: parameters and buffers the plugin registers by path, kept in the
//! host's [`ParamStore`](crate::engine::params::ParamStore) (optimizers, checkpoints, summary).

use tch::Tensor;
use wasmtime::component::Resource;

use crate::plugin::bindings::parameters;
use crate::plugin::views::ParametersView;

type R<T> = wasmtime::Result<T>;
type H = Resource<Tensor>;

/// The most modules a plugin may record for the summary.
const MAX_MODULES: usize = 100_000;

impl ParametersView<'_> {
    /// `t` on the run's device (a copy only when it lives elsewhere).
    fn on_run_device(&self, t: &Tensor, op: &str) -> Result<Tensor, String> {
        let dev = self.device;
        if t.device() == dev {
            return Ok(t.shallow_clone());
        }
        t.f_to_device(dev).map_err(|e| format!("{op}: {}", crate::error::torch_message(&e)))
    }
}

impl parameters::Host for ParametersView<'_> {
    fn register_parameter(&mut self, path: String, value: H) -> R<Result<H, String>> {
        let op = "register_parameter";
        let t = self.handles.tensor(&value, op)?;
        let t = match self.on_run_device(t, op) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        match self.params.register_parameter(&path, t) {
            Ok(p) => Ok(Ok(self.handles.push(p, op)?)),
            Err(e) => Ok(Err(e.detail)),
        }
    }

    fn register_buffer(&mut self, path: String, value: H, persistent: bool) -> R<Result<H, String>> {
        let op = "register_buffer";
        let t = self.handles.tensor(&value, op)?;
        let t = match self.on_run_device(t, op) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        match self.params.register_buffer(&path, t, persistent) {
            Ok(b) => Ok(Ok(self.handles.push(b, op)?)),
            Err(e) => Ok(Err(e.detail)),
        }
    }

    fn get(&mut self, path: String) -> R<Option<H>> {
        let Some(t) = self.params.get(&path).map(Tensor::shallow_clone) else { return Ok(None) };
        Ok(Some(self.handles.push(t, "parameters.get")?))
    }

    fn register_module(&mut self, path: String, kind: String) -> R<()> {
        if kind.len() > 64 || path.len() > 1024 || self.params.modules().len() >= MAX_MODULES {
            return Err(crate::error::OpError::new(
                "register_module",
                format!("at most {MAX_MODULES} modules, paths of 1024 bytes and type names of 64"),
            )
            .into());
        }
        self.params.add_module(&path, &kind);
        Ok(())
    }

    fn set_module_training(&mut self, path: String, training: bool) -> R<()> {
        if path.len() > 1024 || (!training && self.params.eval_module_count() >= MAX_MODULES) {
            return Err(crate::error::OpError::new(
                "set_module_training",
                format!("at most {MAX_MODULES} modules and paths of 1024 bytes"),
            )
            .into());
        }
        self.params.set_module_training(&path, training);
        Ok(())
    }

    fn parameter_names(&mut self) -> R<Vec<String>> {
        Ok(self.params.named_parameters().into_iter().map(|(n, _)| n.to_string()).collect())
    }

    fn names(&mut self) -> R<Vec<String>> {
        Ok(self.params.entries().iter().map(|e| e.name.clone()).collect())
    }
}
