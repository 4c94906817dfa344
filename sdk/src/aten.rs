//! The whole ATen operator set, typed (`aten_ops.rs`, generated from torch's schemas by
//! `tools/gen_ops.py`), over the WIT `aten` interface: an operator is resolved by name once
//! per plugin instance and called by handle. Errors are values ([`TorchError`], torch's
//! message) in the `f_` forms; the plain forms panic with the message, which fails the hook
//! naming the plugin, the hook and the operator, as an uncaught RuntimeError would.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::aten_ops::OP_COUNT;
pub use crate::aten_ops::*;
use crate::bindings::lt::plugin::aten::{self as wit, Arg, Op, Value};
use crate::{Dtype, Tensor};

/// A failed operator: torch's message, prefixed with the operator's name (what a Python
/// plugin sees as a RuntimeError).
#[derive(Debug, Clone, PartialEq)]
pub struct TorchError(pub String);

impl fmt::Display for TorchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TorchError {}

/// A `Scalar` argument: an int, a float or a bool, as torch takes numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    pub fn arg<'a>(self) -> Arg<'a> {
        match self {
            Scalar::Int(i) => Arg::Int(i),
            Scalar::Float(f) => Arg::Float(f),
            Scalar::Bool(b) => Arg::Boolean(b),
        }
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<f32> for Scalar {
    fn from(v: f32) -> Self {
        Scalar::Float(f64::from(v))
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}
impl From<i32> for Scalar {
    fn from(v: i32) -> Self {
        Scalar::Int(i64::from(v))
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}

thread_local! {
    /// Operators resolved so far, by their index in `aten_ops.rs`.
    static OPS: RefCell<Vec<Option<Op>>> = const { RefCell::new(Vec::new()) };
}

/// Resolves any operator by name (`aten::masked_fill.Scalar`): for operators the typed
/// bindings leave out; call it with [`Op::call`].
pub fn op(name: &str) -> Result<Op, TorchError> {
    Op::resolve(name).map_err(TorchError)
}

/// Runs `f` with operator `index` of the generated table (`name`), resolved on first use.
fn with_op<T>(index: usize, name: &str, f: impl FnOnce(&Op) -> Result<T, TorchError>) -> Result<T, TorchError> {
    OPS.with(|ops| {
        let mut ops = ops.borrow_mut();
        if ops.len() <= index {
            ops.resize_with(index + 1, || None);
        }
        if ops[index].is_none() {
            ops[index] = Some(op(name)?);
        }
        f(ops[index].as_ref().expect("resolved above"))
    })
}

fn named<'a>(kwargs: Vec<(&str, Arg<'a>)>) -> Vec<(String, Arg<'a>)> {
    kwargs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Calls operator `index` of the generated table (`name`): its results.
#[doc(hidden)]
pub fn call(index: usize, name: &str, args: &[Arg<'_>], kwargs: Vec<(&str, Arg<'_>)>) -> Result<Results, TorchError> {
    with_op(index, name, |op| op.call(args, &named(kwargs)).map(|v| Results(v.into_iter())).map_err(TorchError))
}

/// Calls operator `index` of the generated table (`name`), one that returns one tensor.
#[doc(hidden)]
pub fn call_tensor(
    index: usize,
    name: &str,
    args: &[Arg<'_>],
    kwargs: Vec<(&str, Arg<'_>)>,
) -> Result<Tensor, TorchError> {
    with_op(index, name, |op| op.call_tensor(args, &named(kwargs)).map_err(TorchError))
}

/// The host's index of each operator of the generated table (`u32::MAX`: not asked yet). A
/// plugin instance is one thread: the atomics are plain loads and stores.
static INDEXES: [AtomicU32; OP_COUNT] = [const { AtomicU32::new(u32::MAX) }; OP_COUNT];

/// The host's index of operator `index` of the generated table (`name`), asked on first use.
#[inline]
fn host_index(index: usize, name: &str) -> Result<u32, TorchError> {
    let slot = &INDEXES[index];
    match slot.load(Ordering::Relaxed) {
        u32::MAX => {
            let i = wit::index(name).map_err(TorchError)?;
            slot.store(i, Ordering::Relaxed);
            Ok(i)
        }
        i => Ok(i),
    }
}

/// How many of `args` a flat call passes: those after the first `keep` default to None and
/// are left out when None (so an operator given only tensors can take the host's unboxed call).
#[inline]
fn given<const N: usize>(keep: usize, args: &[Arg<'_>; N]) -> usize {
    let mut n = N;
    while n > keep && matches!(args[n - 1], Arg::None) {
        n -= 1;
    }
    n
}

/// Calls operator `index` of the generated table (`name`), one that returns one tensor, with
/// its first `N` (at most four) arguments in the schema's order, keyword-only ones included:
/// passed flat, with no list to build on either side.
#[doc(hidden)]
#[inline]
pub fn call_tensor_flat<const N: usize>(
    index: usize,
    name: &str,
    keep: usize,
    args: [Arg<'_>; N],
) -> Result<Tensor, TorchError> {
    const { assert!(N <= 4, "call_tensor_flat takes at most four arguments") };
    let n = given(keep, &args);
    let op = host_index(index, name)?;
    let at = |k: usize| if k < n { &args[k] } else { &Arg::None };
    wit::call_flat(op, n as u8, at(0), at(1), at(2), at(3)).map_err(TorchError)
}

/// As [`call_tensor_flat`], for the panicking forms: an error ends the hook naming the
/// operator (the host does what [`raise`] does), so nothing comes back but the tensor.
#[doc(hidden)]
#[inline]
pub fn apply_tensor_flat<const N: usize>(index: usize, name: &str, keep: usize, args: [Arg<'_>; N]) -> Tensor {
    const { assert!(N <= 4, "apply_tensor_flat takes at most four arguments") };
    let n = given(keep, &args);
    let op = check(host_index(index, name));
    match &args[..n] {
        [Arg::Tensor(a)] => wit::apply_unary(op, a),
        [Arg::Tensor(a), Arg::Tensor(b)] => wit::apply_binary(op, a, b),
        [Arg::Tensor(a), Arg::Tensor(b), Arg::Tensor(c)] => wit::apply_ternary(op, a, b, c),
        _ => {
            let at = |k: usize| if k < n { &args[k] } else { &Arg::None };
            wit::apply_flat(op, n as u8, at(0), at(1), at(2), at(3))
        }
    }
}

/// The value of a `f_` call; an error ends the hook naming the operator ([`raise`]).
#[doc(hidden)]
pub fn check<T>(r: Result<T, TorchError>) -> T {
    r.unwrap_or_else(|e| {
        let (op, message) = e.0.split_once(": ").unwrap_or(("aten", e.0.as_str()));
        raise(op, message)
    })
}

/// Ends the running hook with `message` as op `op`'s error (an uncaught RuntimeError): the
/// failure names the plugin, the hook and the op.
pub fn raise(op: &str, message: &str) -> ! {
    wit::raise(op, message);
    unreachable!("the host ends the hook on raise")
}

/// An operator's results, taken in order.
#[doc(hidden)]
pub struct Results(std::vec::IntoIter<Value>);

impl Results {
    fn next(&mut self, what: &str) -> Result<Value, TorchError> {
        self.0.next().ok_or_else(|| TorchError(format!("the operator returned fewer results than its schema ({what})")))
    }
    fn wrong(what: &str, v: &Value) -> TorchError {
        TorchError(format!("expected {what} from the operator, got {v:?}"))
    }
    pub fn tensor(&mut self) -> Result<Tensor, TorchError> {
        match self.next("a tensor")? {
            Value::Tensor(t) => Ok(t),
            v => Err(Self::wrong("a tensor", &v)),
        }
    }
    pub fn tensors(&mut self) -> Result<Vec<Tensor>, TorchError> {
        match self.next("tensors")? {
            Value::Tensors(ts) => {
                ts.into_iter().map(|t| t.ok_or_else(|| TorchError("an undefined tensor in a list".into()))).collect()
            }
            v => Err(Self::wrong("tensors", &v)),
        }
    }
    pub fn int(&mut self) -> Result<i64, TorchError> {
        match self.next("an int")? {
            Value::Int(i) => Ok(i),
            v => Err(Self::wrong("an int", &v)),
        }
    }
    pub fn ints(&mut self) -> Result<Vec<i64>, TorchError> {
        match self.next("ints")? {
            Value::Ints(xs) => Ok(xs),
            v => Err(Self::wrong("ints", &v)),
        }
    }
    pub fn float(&mut self) -> Result<f64, TorchError> {
        match self.next("a number")? {
            Value::Float(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            Value::Boolean(b) => Ok(f64::from(u8::from(b))),
            v => Err(Self::wrong("a number", &v)),
        }
    }
    pub fn boolean(&mut self) -> Result<bool, TorchError> {
        match self.next("a bool")? {
            Value::Boolean(b) => Ok(b),
            v => Err(Self::wrong("a bool", &v)),
        }
    }
}

/// torch.no_grad(): runs `f` without recording autograd graphs.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let prev = wit::set_grad_enabled(false);
    let out = f();
    wit::set_grad_enabled(prev);
    out
}

/// torch.enable_grad(): runs `f` recording autograd graphs.
pub fn enable_grad<T>(f: impl FnOnce() -> T) -> T {
    let prev = wit::set_grad_enabled(true);
    let out = f();
    wit::set_grad_enabled(prev);
    out
}

/// torch.inference_mode(): runs `f` in inference mode (no autograd; its tensors are
/// inference tensors).
pub fn inference_mode<T>(f: impl FnOnce() -> T) -> T {
    wit::push_inference_mode(true);
    let out = f();
    wit::pop_inference_mode();
    out
}

/// torch.is_grad_enabled().
pub fn is_grad_enabled() -> bool {
    wit::is_grad_enabled()
}

/// `with torch.autocast(device_type, dtype=dtype):` around `f`, entered and left as torch's
/// `__enter__`/`__exit__` do (`device_type` "cpu" or "cuda", `dtype` float16 or bfloat16).
/// A `bf16-mixed` run's steps are already under the trainer's autocast.
pub fn autocast<T>(device_type: &str, dtype: Dtype, enabled: bool, f: impl FnOnce() -> T) -> Result<T, TorchError> {
    let err = |e: String| TorchError(format!("autocast: {e}"));
    let prev_cache = wit::autocast_cache_enabled();
    let prev = wit::autocast_enabled(device_type).map_err(err)?;
    let prev_dtype = wit::autocast_dtype(device_type).map_err(err)?;
    wit::set_autocast_enabled(device_type, enabled).map_err(err)?;
    wit::set_autocast_dtype(device_type, dtype).map_err(err)?;
    wit::autocast_nesting(1).map_err(err)?;
    wit::set_autocast_cache_enabled(prev_cache);
    let out = f();
    if wit::autocast_nesting(-1).map_err(err)? == 0 {
        wit::clear_autocast_cache();
    }
    wit::set_autocast_enabled(device_type, prev).map_err(err)?;
    wit::set_autocast_dtype(device_type, prev_dtype).map_err(err)?;
    Ok(out)
}

/// torch.is_autocast_enabled(device_type).
pub fn is_autocast_enabled(device_type: &str) -> bool {
    wit::autocast_enabled(device_type).unwrap_or(false)
}

/// torch.get_default_dtype(): float32, or a true precision's dtype in steps and configure_model.
pub fn get_default_dtype() -> Dtype {
    wit::default_dtype()
}
