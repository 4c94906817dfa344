//! `lt:plugin/aten`: any allowed ATen operator, resolved by name and called by handle through
//! [`engine::aten`](crate::engine::aten); grad mode. An operator's own error (shapes, dtypes,
//! the tensor budget) is returned to the plugin as a value; a bad handle or a hook past its
//! time traps, as every other op.

use std::sync::Arc;

use tch::Tensor;
use wasmtime::component::Resource;

use crate::engine::aten::{Op, Value as AValue};
use crate::engine::torch_ext;
use crate::error::{OpError, OpResult};
use crate::plugin::bindings::aten::{self, Arg, Value};
use crate::plugin::host::tensor::dtype_in;
use crate::plugin::state::PluginState;

type R<T> = wasmtime::Result<T>;

impl PluginState {
    fn arg(&self, a: Arg, op: &str) -> OpResult<AValue> {
        Ok(match a {
            Arg::None => AValue::None,
            Arg::Tensor(h) => AValue::Tensor(self.tensor(&h, op)?.shallow_clone()),
            Arg::Int(i) => AValue::Int(i),
            Arg::Float(f) => AValue::Float(f),
            Arg::Boolean(b) => AValue::Bool(b),
            Arg::Ints(xs) => AValue::Ints(xs),
            Arg::Floats(xs) => AValue::Floats(xs),
            Arg::Bools(xs) => AValue::Bools(xs),
            Arg::Tensors(hs) => AValue::Tensors(
                hs.iter()
                    .map(|h| h.as_ref().map(|h| self.tensor(h, op).map(Tensor::shallow_clone)).transpose())
                    .collect::<OpResult<_>>()?,
            ),
            Arg::Str(s) => AValue::Str(s),
            Arg::Dtype(d) => AValue::Int(dtype_in(d).scalar_type()),
        })
    }

    fn give(&mut self, v: AValue, op: &str) -> OpResult<Value> {
        Ok(match v {
            AValue::None => Value::None,
            AValue::Tensor(t) => Value::Tensor(self.push(t, op)?),
            AValue::Int(i) => Value::Int(i),
            AValue::Float(f) => Value::Float(f),
            AValue::Bool(b) => Value::Boolean(b),
            AValue::Ints(xs) => Value::Ints(xs),
            AValue::Floats(xs) => Value::Floats(xs),
            AValue::Bools(xs) => Value::Bools(xs),
            AValue::Tensors(ts) => Value::Tensors(
                ts.into_iter().map(|t| t.map(|t| self.push(t, op)).transpose()).collect::<OpResult<_>>()?,
            ),
            AValue::Str(s) => Value::Str(s),
        })
    }
}

impl PluginState {
    /// Runs the operator behind `this`: the operator, and its results or torch's error.
    fn run_op(
        &mut self,
        this: &Resource<Arc<Op>>,
        args: Vec<Arg>,
        kwargs: Vec<(String, Arg)>,
    ) -> OpResult<(Arc<Op>, Result<Vec<AValue>, String>)> {
        let op = Arc::clone(self.get(this, "op.call")?);
        let name = op.name();
        crate::plugin::panic_guard::set_op(name);
        let args: Vec<AValue> = args.into_iter().map(|a| self.arg(a, name)).collect::<OpResult<_>>()?;
        let (names, values): (Vec<String>, Vec<Arg>) = kwargs.into_iter().unzip();
        let values: Vec<AValue> = values.into_iter().map(|a| self.arg(a, name)).collect::<OpResult<_>>()?;
        let kw: Vec<(&str, AValue)> = names.iter().map(String::as_str).zip(values).collect();
        let results = op.call_drawing(&args, &kw, self.generator.as_mut());
        Ok((op, results))
    }
}

impl aten::HostOp for PluginState {
    fn resolve(&mut self, name: String) -> R<Result<Resource<Arc<Op>>, String>> {
        crate::plugin::panic_guard::set_op("aten.resolve");
        match Op::find(&name) {
            Ok(op) => Ok(Ok(self.push_any(Arc::new(op), "aten.resolve")?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn name(&mut self, this: Resource<Arc<Op>>) -> R<String> {
        Ok(self.get(&this, "op.name")?.name().to_string())
    }

    fn schema(&mut self, this: Resource<Arc<Op>>) -> R<String> {
        Ok(self.get(&this, "op.schema")?.schema().to_string())
    }

    fn call(
        &mut self,
        this: Resource<Arc<Op>>,
        args: Vec<Arg>,
        kwargs: Vec<(String, Arg)>,
    ) -> R<Result<Vec<Value>, String>> {
        let (op, results) = match self.run_op(&this, args, kwargs)? {
            (op, Ok(r)) => (op, r),
            (_, Err(e)) => return Ok(Err(e)),
        };
        let out = results.into_iter().map(|v| self.give(v, op.name())).collect::<OpResult<Vec<_>>>()?;
        Ok(Ok(out))
    }

    fn call_tensor(
        &mut self,
        this: Resource<Arc<Op>>,
        args: Vec<Arg>,
        kwargs: Vec<(String, Arg)>,
    ) -> R<Result<Resource<Tensor>, String>> {
        let (op, mut results) = match self.run_op(&this, args, kwargs)? {
            (op, Ok(r)) => (op, r),
            (_, Err(e)) => return Ok(Err(e)),
        };
        match (results.len(), results.pop()) {
            (1, Some(AValue::Tensor(t))) => Ok(Ok(self.push(t, op.name())?)),
            _ => {
                Ok(Err(format!("{}: call-tensor is for operators that return one tensor ({})", op.name(), op.schema())))
            }
        }
    }

    fn drop(&mut self, rep: Resource<Arc<Op>>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl aten::Host for PluginState {
    fn raise(&mut self, op: String, message: String) -> R<()> {
        let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        Err(OpError::new(cut(&op, 200), cut(&message, 64 * 1024)).into())
    }

    fn set_grad_enabled(&mut self, enabled: bool) -> R<bool> {
        Ok(torch_ext::set_grad_enabled(enabled))
    }

    fn is_grad_enabled(&mut self) -> R<bool> {
        Ok(torch_ext::grad_enabled())
    }

    fn push_inference_mode(&mut self, enabled: bool) -> R<()> {
        if self.inference_scopes.0.len() >= 1024 {
            return Err(OpError::new("inference_mode", "more than 1024 nested scopes").into());
        }
        self.inference_scopes.0.push(torch_ext::InferenceMode::set(enabled));
        Ok(())
    }

    fn pop_inference_mode(&mut self) -> R<()> {
        self.inference_scopes.0.pop();
        Ok(())
    }
}
