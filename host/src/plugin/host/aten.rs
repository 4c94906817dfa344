//! `lt:plugin/aten`: any allowed ATen operator, resolved by name and called by handle through
//! [`engine::aten`](crate::engine::aten); grad mode. An operator's own error (shapes, dtypes,
//! the tensor budget) is returned to the plugin as a value; a bad handle or a hook past its
//! time traps, as every other op.

use std::sync::Arc;

use smallvec::SmallVec;
use tch::Tensor;
use wasmtime::component::{Resource, ResourceTable};

use crate::engine::aten::{Arg as AArg, Op, Results, Value as AValue};
use crate::engine::autocast::{self, AutocastDevice};
use crate::engine::torch_ext;
use crate::error::{OpError, OpResult};
use crate::plugin::bindings::aten::{self, Arg, Value};
use crate::plugin::bindings::types::Dtype;
use crate::plugin::handles::tensor_in;
use crate::plugin::host::tensor::{dtype_in, dtype_out};
use crate::plugin::views::AtenView;

type R<T> = wasmtime::Result<T>;

/// torch.autocast's `device_type` ("cpu" or "cuda").
fn autocast_device(name: &str) -> Result<AutocastDevice, String> {
    AutocastDevice::parse(name)
        .ok_or_else(|| format!("autocast has no state for device type {name:?} (lthost runs \"cpu\" and \"cuda\")"))
}

/// A guest's argument as the engine's, borrowing its tensors from `table` and its lists and
/// strings from the lifted call (nothing copied).
fn arg<'a>(table: &'a ResourceTable, a: &'a Arg, op: &str) -> OpResult<AArg<'a>> {
    Ok(match a {
        Arg::None => AArg::None,
        Arg::Tensor(h) => AArg::Tensor(tensor_in(table, h, op)?),
        Arg::Int(i) => AArg::Int(*i),
        Arg::Float(f) => AArg::Float(*f),
        Arg::Boolean(b) => AArg::Bool(*b),
        Arg::Ints(xs) => AArg::Ints(xs),
        Arg::Floats(xs) => AArg::Floats(xs),
        Arg::Bools(xs) => AArg::Bools(xs),
        Arg::Tensors(hs) => AArg::Tensors(
            hs.iter().map(|h| h.as_ref().map(|h| tensor_in(table, h, op)).transpose()).collect::<OpResult<_>>()?,
        ),
        Arg::Str(s) => AArg::Str(s),
        Arg::Dtype(d) => AArg::Int(dtype_in(*d).scalar_type()),
    })
}

impl AtenView<'_> {
    fn give(&mut self, v: AValue, op: &str) -> OpResult<Value> {
        Ok(match v {
            AValue::None => Value::None,
            AValue::Tensor(t) => Value::Tensor(self.handles.push(t, op)?),
            AValue::Int(i) => Value::Int(i),
            AValue::Float(f) => Value::Float(f),
            AValue::Bool(b) => Value::Boolean(b),
            AValue::Ints(xs) => Value::Ints(xs),
            AValue::Floats(xs) => Value::Floats(xs),
            AValue::Bools(xs) => Value::Bools(xs),
            AValue::Tensors(ts) => Value::Tensors(
                ts.into_iter().map(|t| t.map(|t| self.handles.push(t, op)).transpose()).collect::<OpResult<_>>()?,
            ),
            AValue::Str(s) => Value::Str(s),
        })
    }

    /// Runs the operator behind `this`: the operator, and its results or torch's error.
    fn run_op(
        &mut self,
        this: &Resource<Arc<Op>>,
        args: &[Arg],
        kwargs: &[(String, Arg)],
    ) -> OpResult<(Arc<Op>, OpResult<Results>)> {
        let op = Arc::clone(self.handles.get(this, "op.call")?);
        let name = op.name();
        crate::plugin::panic_guard::set_op(name);
        let table = &self.handles.table;
        let args: SmallVec<[AArg<'_>; 8]> = args.iter().map(|a| arg(table, a, name)).collect::<OpResult<_>>()?;
        let kwargs: SmallVec<[(&str, AArg<'_>); 4]> =
            kwargs.iter().map(|(n, a)| Ok((n.as_str(), arg(table, a, name)?))).collect::<OpResult<_>>()?;
        let results = op.call_drawing(&args, &kwargs, self.generator.as_deref_mut());
        Ok((op, results))
    }
}

impl aten::HostOp for AtenView<'_> {
    fn resolve(&mut self, name: String) -> R<Result<Resource<Arc<Op>>, String>> {
        crate::plugin::panic_guard::set_op("aten.resolve");
        match Op::find(&name) {
            Ok(op) => Ok(Ok(self.handles.push_any(Arc::new(op), "aten.resolve")?)),
            Err(e) => Ok(Err(e.detail)),
        }
    }

    fn name(&mut self, this: Resource<Arc<Op>>) -> R<String> {
        Ok(self.handles.get(&this, "op.name")?.name().to_string())
    }

    fn schema(&mut self, this: Resource<Arc<Op>>) -> R<String> {
        Ok(self.handles.get(&this, "op.schema")?.schema().to_string())
    }

    fn call(
        &mut self,
        this: Resource<Arc<Op>>,
        args: Vec<Arg>,
        kwargs: Vec<(String, Arg)>,
    ) -> R<Result<Vec<Value>, String>> {
        let (op, results) = match self.run_op(&this, &args, &kwargs)? {
            (op, Ok(r)) => (op, r),
            (_, Err(e)) => return Ok(Err(e.message())),
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
        match self.run_op(&this, &args, &kwargs)? {
            (op, Ok(r)) => {
                let one = op.one_tensor(r);
                Ok(self.hand_over(op.name(), one)?.map_err(|e| e.message()))
            }
            (_, Err(e)) => Ok(Err(e.message())),
        }
    }

    fn drop(&mut self, rep: Resource<Arc<Op>>) -> R<()> {
        self.handles.take(rep)?;
        Ok(())
    }
}

impl AtenView<'_> {
    /// The operator at index `op` (`aten.index`): a bad index traps, as a bad handle does.
    fn indexed(&self, op: u32) -> OpResult<&'static Op> {
        let found = self.ops.get(op).ok_or_else(|| OpError::new("aten.call", format!("no operator at index {op}")))?;
        crate::plugin::panic_guard::set_op(found.name());
        Ok(found)
    }

    /// Calls the operator at index `op` with tensors `given` as its first arguments, the rest
    /// taking their defaults: the result as a handle, or torch's error.
    fn call_on_tensors(&mut self, op: u32, given: &[&Resource<Tensor>]) -> R<OpResult<Resource<Tensor>>> {
        let op = self.indexed(op)?;
        let mut tensors: SmallVec<[&Tensor; 3]> = SmallVec::new();
        for h in given {
            tensors.push(tensor_in(&self.handles.table, h, op.name())?);
        }
        let result = op.call_on_tensors(&tensors, self.generator.as_deref_mut());
        drop(tensors);
        self.hand_over(op.name(), result)
    }

    /// As [`call_on_tensors`](Self::call_on_tensors) with the first `n` of `args` (at most
    /// four), of any kind.
    fn call_flat_args(&mut self, op: u32, n: u8, args: [Arg; 4]) -> R<OpResult<Resource<Tensor>>> {
        let Some(given) = args.get(..usize::from(n)) else {
            return Ok(Err(OpError::new("", format!("call-flat takes at most four arguments, got n = {n}"))));
        };
        let mut handles: SmallVec<[&Resource<Tensor>; 4]> = SmallVec::new();
        for g in given {
            if let Arg::Tensor(h) = g {
                handles.push(h);
            }
        }
        if handles.len() == given.len() && given.len() < 4 {
            return self.call_on_tensors(op, &handles);
        }
        let op = self.indexed(op)?;
        let mut args: SmallVec<[AArg<'_>; 4]> = SmallVec::new();
        for g in given {
            args.push(arg(&self.handles.table, g, op.name())?);
        }
        let result = op.call_tensor_in_order(&args, self.generator.as_deref_mut());
        drop(args);
        self.hand_over(op.name(), result)
    }

    /// A `try-*` call's result: the tensor, or none with torch's error kept for `last-error`.
    fn kept_error(&mut self, r: R<OpResult<Resource<Tensor>>>) -> R<Option<Resource<Tensor>>> {
        match r? {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                *self.last_op_error = Some(e.message());
                Ok(None)
            }
        }
    }

    /// Operator `op`'s tensor as a new handle of the guest's, or torch's error as a value.
    fn hand_over(&mut self, op: &str, result: OpResult<Tensor>) -> R<OpResult<Resource<Tensor>>> {
        match result {
            Ok(t) => Ok(Ok(self.handles.push(t, op)?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

/// An `apply-*` call's result: torch's error ends the hook naming the operator, as `raise`.
fn applied(r: R<OpResult<Resource<Tensor>>>) -> R<Resource<Tensor>> {
    r?.map_err(|mut e| {
        if e.op.is_empty() {
            e.op = "aten".into();
        }
        e.into()
    })
}

impl aten::Host for AtenView<'_> {
    fn index(&mut self, name: String) -> R<Result<u32, String>> {
        crate::plugin::panic_guard::set_op("aten.index");
        Ok(self.ops.index(&name).map_err(|e| e.detail))
    }

    fn call_flat(&mut self, op: u32, n: u8, a: Arg, b: Arg, c: Arg, d: Arg) -> R<Result<Resource<Tensor>, String>> {
        Ok(self.call_flat_args(op, n, [a, b, c, d])?.map_err(|e| e.message()))
    }

    fn apply_flat(&mut self, op: u32, n: u8, a: Arg, b: Arg, c: Arg, d: Arg) -> R<Resource<Tensor>> {
        applied(self.call_flat_args(op, n, [a, b, c, d]))
    }

    fn apply_unary(&mut self, op: u32, a: Resource<Tensor>) -> R<Resource<Tensor>> {
        applied(self.call_on_tensors(op, &[&a]))
    }

    fn apply_binary(&mut self, op: u32, a: Resource<Tensor>, b: Resource<Tensor>) -> R<Resource<Tensor>> {
        applied(self.call_on_tensors(op, &[&a, &b]))
    }

    fn apply_ternary(
        &mut self,
        op: u32,
        a: Resource<Tensor>,
        b: Resource<Tensor>,
        c: Resource<Tensor>,
    ) -> R<Resource<Tensor>> {
        applied(self.call_on_tensors(op, &[&a, &b, &c]))
    }

    fn try_flat(&mut self, op: u32, n: u8, a: Arg, b: Arg, c: Arg, d: Arg) -> R<Option<Resource<Tensor>>> {
        let r = self.call_flat_args(op, n, [a, b, c, d]);
        self.kept_error(r)
    }

    fn try_method(
        &mut self,
        op: u32,
        n: u8,
        a: Resource<Tensor>,
        b: Arg,
        c: Arg,
        d: Arg,
    ) -> R<Option<Resource<Tensor>>> {
        let r = self.call_flat_args(op, n, [Arg::Tensor(a), b, c, d]);
        self.kept_error(r)
    }

    fn try_unary(&mut self, op: u32, a: Resource<Tensor>) -> R<Option<Resource<Tensor>>> {
        let r = self.call_on_tensors(op, &[&a]);
        self.kept_error(r)
    }

    fn try_binary(&mut self, op: u32, a: Resource<Tensor>, b: Resource<Tensor>) -> R<Option<Resource<Tensor>>> {
        let r = self.call_on_tensors(op, &[&a, &b]);
        self.kept_error(r)
    }

    fn try_ternary(
        &mut self,
        op: u32,
        a: Resource<Tensor>,
        b: Resource<Tensor>,
        c: Resource<Tensor>,
    ) -> R<Option<Resource<Tensor>>> {
        let r = self.call_on_tensors(op, &[&a, &b, &c]);
        self.kept_error(r)
    }

    fn last_error(&mut self) -> R<String> {
        Ok(self.last_op_error.take().unwrap_or_default())
    }

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

    fn get_rng_state(&mut self) -> R<Vec<u8>> {
        let state = match self.generator.as_deref_mut() {
            Some(own) => own.state(),
            None => torch_ext::cpu_rng_state(),
        };
        Ok(state?)
    }

    fn set_rng_state(&mut self, state: Vec<u8>) -> R<Result<(), String>> {
        Ok(match self.generator.as_deref_mut() {
            Some(own) => own.set_state(&state),
            None => torch_ext::set_cpu_rng_state(&state),
        }
        .map_err(|e| e.detail))
    }

    fn set_float32_matmul_precision(&mut self, precision: String) -> R<Result<(), String>> {
        Ok(torch_ext::set_float32_matmul_precision(&precision).map_err(|e| e.detail))
    }

    fn autocast_enabled(&mut self, device_type: String) -> R<Result<bool, String>> {
        Ok(autocast_device(&device_type).map(autocast::is_enabled))
    }

    fn set_autocast_enabled(&mut self, device_type: String, enabled: bool) -> R<Result<(), String>> {
        Ok(autocast_device(&device_type).map(|d| autocast::set_enabled(d, enabled)))
    }

    fn autocast_dtype(&mut self, device_type: String) -> R<Result<Dtype, String>> {
        Ok(autocast_device(&device_type)
            .and_then(|d| dtype_out(autocast::dtype(d), "get_autocast_dtype").map_err(|e| e.detail)))
    }

    fn set_autocast_dtype(&mut self, device_type: String, dtype: Dtype) -> R<Result<(), String>> {
        let device = match autocast_device(&device_type) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match dtype {
            Dtype::Float16 | Dtype::Bfloat16 => {
                autocast::set_dtype(device, dtype_in(dtype).kind());
                Ok(())
            }
            other => Err(format!("autocast computes in float16 or bfloat16, not {other:?}")),
        })
    }

    fn autocast_nesting(&mut self, by: i32) -> R<Result<i32, String>> {
        Ok(match by {
            1 => {
                let depth = autocast::increment_nesting();
                if depth > 1024 {
                    autocast::decrement_nesting();
                    Err("more than 1024 nested autocast scopes".into())
                } else {
                    Ok(depth)
                }
            }
            -1 => Ok(autocast::decrement_nesting()),
            other => Err(format!("autocast nesting moves by 1 or -1, not {other}")),
        })
    }

    fn clear_autocast_cache(&mut self) -> R<()> {
        autocast::clear_cache();
        Ok(())
    }

    fn autocast_cache_enabled(&mut self) -> R<bool> {
        Ok(autocast::cache_enabled())
    }

    fn set_autocast_cache_enabled(&mut self, enabled: bool) -> R<()> {
        autocast::set_cache_enabled(enabled);
        Ok(())
    }

    fn default_dtype(&mut self) -> R<Dtype> {
        Ok(dtype_out(autocast::default_dtype(), "get_default_dtype")?)
    }

    fn manual_seed(&mut self, seed: u64) -> R<()> {
        match self.generator.as_deref_mut() {
            Some(own) => *own = torch_ext::Generator::seeded(seed)?,
            // torch's own: at::manual_seed takes the seed's 64 bits (u64 through i64).
            None => tch::manual_seed(seed as i64),
        }
        Ok(())
    }
}
