//! Any ATen operator, by its schema name (`aten::masked_fill.Scalar`), called through
//! libtorch's dispatcher as a boxed call (`host/csrc/aten_dispatch.cpp`): the kernels, autograd,
//! dtype promotion, views and in-place semantics of torch itself. An operator is resolved
//! once ([`Op::find`], refused if [`aten_denylist`](super::aten_denylist) lists it) and
//! called with [`Value`]s; missing arguments take the schema's defaults, named ones go by
//! name, one int stands for an `int[N]` list; errors come back as values with torch's message.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Mutex, OnceLock};

use smallvec::SmallVec;
use tch::Tensor;

use super::aten_denylist;
use super::sync_batch_norm::substitute;
use super::torch_ext::{take_error, take_string, Generator};
use crate::error::{OpError, OpResult};

/// An argument or result of an operator call.
#[derive(Debug)]
pub enum Value {
    None,
    Tensor(Tensor),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Bools(Vec<bool>),
    /// A tensor list; `None` elements make it a `Tensor?[]` (as `aten::index` takes).
    Tensors(Vec<Option<Tensor>>),
    /// A string, or a device (`"cpu"`, `"cuda:0"`).
    Str(String),
}

/// An argument of an operator call, borrowing what it passes (nothing is copied or
/// reference-counted for a call).
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    None,
    Tensor(&'a Tensor),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ints(&'a [i64]),
    Floats(&'a [f64]),
    Bools(&'a [bool]),
    /// A tensor list; `None` elements make it a `Tensor?[]`.
    Tensors(Vec<Option<&'a Tensor>>),
    /// A string, or a device (`"cpu"`, `"cuda:0"`).
    Str(&'a str),
}

/// An operator's results, in order (most return one or two: kept inline).
pub type Results = SmallVec<[Value; 2]>;

impl Value {
    /// This value as an argument of another call.
    pub fn as_arg(&self) -> Arg<'_> {
        match self {
            Value::None => Arg::None,
            Value::Tensor(t) => Arg::Tensor(t),
            Value::Int(i) => Arg::Int(*i),
            Value::Float(f) => Arg::Float(*f),
            Value::Bool(b) => Arg::Bool(*b),
            Value::Ints(xs) => Arg::Ints(xs),
            Value::Floats(xs) => Arg::Floats(xs),
            Value::Bools(xs) => Arg::Bools(xs),
            Value::Tensors(ts) => Arg::Tensors(ts.iter().map(Option::as_ref).collect()),
            Value::Str(s) => Arg::Str(s),
        }
    }

    /// The tensor, if this is one.
    pub fn into_tensor(self) -> Option<Tensor> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

/// A resolved operator as plugins hold it: shared, so a call can outlive the table borrow.
pub type SharedOp = std::sync::Arc<Op>;

/// A resolved operator (`c10::OperatorHandle`).
pub struct Op {
    handle: *mut c_void,
    name: String,
    schema: String,
    /// Whether it takes a `Generator?` argument (read from the schema once).
    takes_generator: bool,
    /// How many values it returns.
    returns: usize,
    /// Whether torch tags it `nondeterministic_seeded` (it draws random numbers).
    seeded: bool,
    /// `direct[n]`: whether a call given its first `n` arguments as tensors (the rest taking
    /// their defaults) goes straight to the unboxed kernel ([`Op::call_on_tensors`]).
    direct: [bool; 4],
    /// The overload that takes a generator, for one that does not (`aten::randn` →
    /// `aten::randn.generator`), found on first need.
    drawing: std::sync::OnceLock<Option<Box<Op>>>,
}

// SAFETY: an OperatorHandle is an immutable reference into the dispatcher's registry; torch
// calls the same handle from any thread.
unsafe impl Send for Op {}
// SAFETY: as above; `call` takes `&self` and the handle is never mutated.
unsafe impl Sync for Op {}

impl Drop for Op {
    fn drop(&mut self) {
        // SAFETY: a handle lthost_op_find allocated, freed once.
        unsafe { lthost_op_free(self.handle) }
    }
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Op({})", self.schema)
    }
}

impl Op {
    /// The operator `qualified` (`aten::name` or `aten::name.overload`), unless the denylist
    /// refuses it or libtorch has no such operator.
    pub fn find(qualified: &str) -> OpResult<Op> {
        if let Some(host_op) = substitute(qualified) {
            return Op::lookup(qualified, host_op, "");
        }
        let Some(base) = qualified.strip_prefix("aten::") else {
            return Err(OpError::new(
                qualified,
                format!("`{qualified}`: only operators of the `aten` namespace can be called"),
            ));
        };
        let (name, overload) = base.split_once('.').unwrap_or((base, ""));
        if let Some(reason) = aten_denylist::refusal(name, overload) {
            return Err(OpError::new(qualified, format!("`{qualified}` is not allowed in a plugin: {reason}")));
        }
        Op::lookup(qualified, &format!("aten::{name}"), overload)
    }

    /// The dispatcher's operator `name`.`overload`, known to the plugin as `qualified`.
    fn lookup(qualified: &str, name: &str, overload: &str) -> OpResult<Op> {
        let c_name = CString::new(name).map_err(|_| OpError::new(qualified, "an operator name with a NUL"))?;
        let c_overload = CString::new(overload).map_err(|_| OpError::new(qualified, "an overload name with a NUL"))?;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings live for the call; a handle or a message comes back.
        let handle = unsafe { lthost_op_find(c_name.as_ptr(), c_overload.as_ptr(), &mut err) };
        if handle.is_null() {
            return Err(OpError::new(qualified, take_error(err)));
        }
        // SAFETY: a live handle; the schema string is malloc'd and taken by take_string.
        let schema = unsafe { take_string(lthost_op_schema(handle)) };
        let takes_generator = schema.contains("Generator?");
        // SAFETY: a live handle.
        let (returns, seeded) = unsafe { (lthost_op_returns(handle) as usize, lthost_op_seeded(handle)) };
        // SAFETY: a live handle.
        let direct = [0, 1, 2, 3].map(|n| unsafe { lthost_op_direct(handle, n) });
        let name = qualified.to_string();
        Ok(Op { handle, name, schema, takes_generator, returns, seeded, direct, drawing: std::sync::OnceLock::new() })
    }

    /// [`Op::find`], once per name for the whole process: operators are immutable, so every
    /// plugin instance (workers' too) shares one, kept for the run (at most one per operator
    /// libtorch has). A refusal is not kept.
    pub fn interned(qualified: &str) -> OpResult<&'static Op> {
        static FOUND: OnceLock<Mutex<HashMap<String, &'static Op>>> = OnceLock::new();
        let mut found = FOUND
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| OpError::new(qualified, "the operator table is poisoned"))?;
        // Keyed by what the name resolves to now (a substituted operator is another).
        let key = substitute(qualified).unwrap_or(qualified);
        if let Some(op) = found.get(key) {
            return Ok(op);
        }
        let op: &'static Op = Box::leak(Box::new(Op::find(qualified)?));
        found.insert(key.to_string(), op);
        Ok(op)
    }

    /// Every `aten::` operator registered with libtorch's dispatcher (`aten::name[.overload]`),
    /// sorted; [`Op::find`] refuses those the denylist names.
    pub fn registered() -> Vec<String> {
        // SAFETY: a malloc'd string of names, taken and freed by take_string.
        let all = unsafe { take_string(lthost_op_names()) };
        let mut names: Vec<String> = all.lines().filter(|l| l.starts_with("aten::")).map(String::from).collect();
        names.sort();
        names
    }

    /// `aten::name.overload` as it was asked for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator's schema, as torch prints it.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Whether the operator takes a `Generator?` argument.
    pub fn takes_generator(&self) -> bool {
        self.takes_generator
    }

    /// Whether it draws random numbers (torch's `nondeterministic_seeded` tag).
    pub fn seeded(&self) -> bool {
        self.seeded
    }

    /// Whether it is called unboxed (its arguments have one of the shapes
    /// `host/csrc/aten_dispatch.cpp` calls so), rather than boxed.
    pub fn unboxed(&self) -> bool {
        // SAFETY: a live handle.
        unsafe { lthost_op_unboxed(self.handle) }
    }

    /// The overload of the same operator that takes a generator, for one that does not:
    /// the overload whose arguments are this one's plus `Generator? generator` (`aten::randn`
    /// → `aten::randn.generator`, `aten::rand.out` → `aten::rand.generator_out`), found on
    /// first need; what a call that must draw from a generator of its own runs instead.
    pub fn with_generator(&self) -> Option<&Op> {
        if self.takes_generator() {
            return Some(self);
        }
        self.drawing
            .get_or_init(|| {
                let base = self.name.split_once('.').map_or(self.name.as_str(), |(b, _)| b);
                let own = arguments(&self.schema, false);
                Op::registered()
                    .iter()
                    .filter(|n| n.split_once('.').is_some_and(|(b, _)| b == base))
                    .filter_map(|n| Op::find(n).ok())
                    .find(|o| o.takes_generator() && arguments(&o.schema, true) == own)
                    .map(Box::new)
            })
            .as_deref()
    }

    /// Calls the operator with positional `args` and named `kwargs`; its results in order.
    /// Random operators draw from torch's default generator.
    pub fn call(&self, args: &[Value], kwargs: &[(&str, Value)]) -> OpResult<Vec<Value>> {
        let args: SmallVec<[Arg<'_>; 8]> = args.iter().map(Value::as_arg).collect();
        let kwargs: SmallVec<[(&str, Arg<'_>); 4]> = kwargs.iter().map(|(n, v)| (*n, v.as_arg())).collect();
        Ok(self.call_drawing(&args, &kwargs, None)?.into_vec())
    }

    /// Calls the operator with borrowed arguments; a `Generator?` argument left out draws
    /// from `generator` when given (a DataLoader worker's own), as if passed as `generator=`,
    /// else from torch's default generator.
    pub fn call_drawing(
        &self,
        args: &[Arg<'_>],
        kwargs: &[(&str, Arg<'_>)],
        generator: Option<&mut Generator>,
    ) -> OpResult<Results> {
        self.invoke(args, false, kwargs, generator)
    }

    /// As [`call_drawing`](Self::call_drawing), with `args` the schema's first arguments in
    /// its order, keyword-only ones included (what a binding generated from the schema
    /// passes), and no named ones.
    pub fn call_in_order(&self, args: &[Arg<'_>], generator: Option<&mut Generator>) -> OpResult<Results> {
        self.invoke(args, true, &[], generator)
    }

    /// As [`call_in_order`](Self::call_in_order), for an operator that returns one tensor:
    /// that tensor (no result list: the plugins' commonest call).
    pub fn call_tensor_in_order(&self, args: &[Arg<'_>], generator: Option<&mut Generator>) -> OpResult<Tensor> {
        if self.returns != 1 {
            return self.one_tensor(self.call_in_order(args, generator)?);
        }
        let generator = match self.redirect(generator) {
            Redirect::Here(g) => g,
            Redirect::Sibling(sibling, g) => return self.one_tensor(sibling.from_order(&self.schema, args, g)?),
            Redirect::Refused(e) => return Err(e),
        };
        let mut out = [RawValue::NONE];
        let n = self.raw_call(args, true, &[], generator, &mut out)?;
        if n == 1 && out[0].tag == TENSOR && !out[0].p.is_null() {
            // SAFETY: a fresh `at::Tensor*` from the call, taken once.
            return Ok(unsafe { Tensor::from_ptr(std::mem::replace(&mut out[0].p, std::ptr::null_mut()).cast()) });
        }
        // SAFETY: what the call returned, released once.
        unsafe { lthost_values_release(out.as_mut_ptr(), n as i64) };
        Err(self.not_one_tensor())
    }

    /// Whether a call given `n` tensors goes straight to the unboxed kernel
    /// ([`call_on_tensors`](Self::call_on_tensors)).
    pub fn direct_with(&self, n: usize) -> bool {
        self.direct.get(n).copied().unwrap_or(false)
    }

    /// As [`call_tensor_in_order`](Self::call_tensor_in_order) with `tensors` as the first
    /// arguments: where the schema allows, straight to the unboxed kernel with nothing to
    /// convert (a typed C++ call, as torch's `at::neg` makes), else as any other call.
    pub fn call_on_tensors(&self, tensors: &[&Tensor], generator: Option<&mut Generator>) -> OpResult<Tensor> {
        if !self.direct_with(tensors.len()) || (generator.is_some() && self.seeded) {
            let args: SmallVec<[Arg<'_>; 4]> = tensors.iter().map(|t| Arg::Tensor(t)).collect();
            return self.call_tensor_in_order(&args, generator);
        }
        let ptrs: SmallVec<[*const c_void; 4]> = tensors.iter().map(|t| t.as_ptr() as *const c_void).collect();
        let mut out: *mut c_void = std::ptr::null_mut();
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: the pointers are live tensors borrowed for the call; a fresh `at::Tensor*`
        // or a message comes back, each taken once.
        let rc = unsafe { lthost_op_call_direct(self.handle, ptrs.as_ptr(), ptrs.len() as i64, &mut out, &mut err) };
        if rc != 0 || out.is_null() {
            return Err(OpError::new(&self.name, take_error(err)));
        }
        // SAFETY: as above.
        Ok(unsafe { Tensor::from_ptr(out.cast()) })
    }

    /// The one tensor `results` (of this operator) should be, for a one-tensor call.
    pub fn one_tensor(&self, mut results: Results) -> OpResult<Tensor> {
        match (results.len(), results.pop()) {
            (1, Some(Value::Tensor(t))) => Ok(t),
            _ => Err(self.not_one_tensor()),
        }
    }

    /// The error of a one-tensor call of an operator that returns something else.
    fn not_one_tensor(&self) -> OpError {
        OpError::new(&self.name, format!("call-tensor is for operators that return one tensor ({})", self.schema))
    }

    fn invoke(
        &self,
        args: &[Arg<'_>],
        in_order: bool,
        kwargs: &[(&str, Arg<'_>)],
        generator: Option<&mut Generator>,
    ) -> OpResult<Results> {
        let generator = match self.redirect(generator) {
            Redirect::Here(g) => g,
            Redirect::Sibling(sibling, g) if in_order => return sibling.from_order(&self.schema, args, g),
            Redirect::Sibling(sibling, g) => return sibling.invoke(args, false, kwargs, g),
            Redirect::Refused(e) => return Err(e),
        };
        let mut out: SmallVec<[RawValue; 4]> = SmallVec::new();
        out.resize_with(self.returns, || RawValue::NONE);
        let n = self.raw_call(args, in_order, kwargs, generator, &mut out)?;
        let results = &mut out[..n];
        let values = results.iter_mut().map(take_value).collect();
        // SAFETY: the tensors were taken (their pointers nulled); the rest is freed here, once.
        unsafe { lthost_values_release(results.as_mut_ptr(), n as i64) };
        Ok(values)
    }

    /// Where a call drawing from `generator` runs: here, on the sibling that takes a generator
    /// (this op draws from the process's generator, which a worker must not), or nowhere.
    fn redirect<'g>(&self, generator: Option<&'g mut Generator>) -> Redirect<'_, 'g> {
        if generator.is_none() || self.takes_generator() || !self.seeded() {
            return Redirect::Here(generator);
        }
        match self.with_generator() {
            Some(sibling) => Redirect::Sibling(sibling, generator),
            None => Redirect::Refused(OpError::new(
                &self.name,
                "draws from the process's generator and no overload takes one of its own, so a DataLoader \
                 worker (which draws only from its own generator, for reproducible passes) cannot call it; \
                 draw the randomness with an op that takes `generator` (aten::bernoulli.p, aten::rand.generator)",
            )),
        }
    }

    /// Calls this op with `args` given in the order of `schema` (another overload's): the
    /// keyword-only ones by name.
    fn from_order(&self, schema: &str, args: &[Arg<'_>], generator: Option<&mut Generator>) -> OpResult<Results> {
        let (positional, named) = by_name(schema, args)?;
        let named: SmallVec<[(&str, Arg<'_>); 4]> = named.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
        self.invoke(&positional, false, &named, generator)
    }

    /// The C++ call: results written to `out` (room for the schema's returns), their count
    /// returned; the caller takes or releases them.
    fn raw_call(
        &self,
        args: &[Arg<'_>],
        in_order: bool,
        kwargs: &[(&str, Arg<'_>)],
        generator: Option<&mut Generator>,
        out: &mut [RawValue],
    ) -> OpResult<usize> {
        let gen = generator.map_or(std::ptr::null_mut(), |g| g.as_ptr());
        let mut keep = Keep::default();
        let mut raw_args: SmallVec<[RawValue; 4]> = SmallVec::new();
        for v in args {
            raw_args.push(keep.raw(v));
        }
        let mut names: SmallVec<[RawName; 4]> = SmallVec::new();
        let mut raw_kw: SmallVec<[RawValue; 4]> = SmallVec::new();
        for (n, v) in kwargs {
            names.push(RawName { p: n.as_ptr().cast(), len: n.len() as i64 });
            raw_kw.push(keep.raw(v));
        }
        let mut n_out: i64 = 0;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: every pointer in the raw values points into `args`, `kwargs` or `keep`, all
        // alive for the call; `out` has room for the schema's returns, which become ours.
        let rc = unsafe {
            lthost_op_call(
                self.handle,
                raw_args.as_ptr(),
                raw_args.len() as i64,
                in_order,
                names.as_ptr(),
                raw_kw.as_ptr(),
                raw_kw.len() as i64,
                gen,
                out.as_mut_ptr(),
                out.len() as i64,
                &mut n_out,
                &mut err,
            )
        };
        if rc != 0 {
            return Err(OpError::new(&self.name, take_error(err)));
        }
        Ok(n_out as usize)
    }
}

/// Where a call runs (see [`Op::redirect`]).
enum Redirect<'o, 'g> {
    Here(Option<&'g mut Generator>),
    Sibling(&'o Op, Option<&'g mut Generator>),
    Refused(OpError),
}

/// A schema's arguments as written, without the keyword-only marker and (with
/// `drop_generator`) without its `Generator?` argument: what two overloads compare by.
fn arguments(schema: &str, drop_generator: bool) -> Vec<String> {
    let mut args = written_arguments(schema);
    args.retain(|a| a != "*" && !(drop_generator && a.starts_with("Generator?")));
    args
}

/// `args` given in `schema`'s order, keyword-only ones included, as positional ones and the
/// keyword-only ones by name: how they go to an overload whose order differs (the sibling
/// that takes a generator has it among the keyword-only arguments).
fn by_name<'a>(schema: &str, args: &[Arg<'a>]) -> OpResult<(Vec<Arg<'a>>, Vec<(String, Arg<'a>)>)> {
    let written = written_arguments(schema);
    let count = written.iter().filter(|a| *a != "*").count();
    if args.len() > count {
        return Err(OpError::new(schema, format!("takes {count} arguments, got {}", args.len())));
    }
    let kw_start = written.iter().position(|a| a == "*").unwrap_or(written.len());
    let names = written.iter().filter(|a| *a != "*").map(|a| {
        let decl = a.split('=').next().unwrap_or(a);
        decl.rsplit(' ').next().unwrap_or(decl).to_string()
    });
    let (mut positional, mut named) = (Vec::new(), Vec::new());
    for (k, (name, arg)) in names.zip(args).enumerate() {
        if k < kw_start {
            positional.push(arg.clone());
        } else {
            named.push((name, arg.clone()));
        }
    }
    Ok((positional, named))
}

/// A schema's arguments as written, the keyword-only marker `*` included.
fn written_arguments(schema: &str) -> Vec<String> {
    let Some(open) = schema.find('(') else { return Vec::new() };
    let mut depth = 0usize;
    let mut args = Vec::new();
    let mut cur = String::new();
    for c in schema[open + 1..].chars() {
        match c {
            '(' | '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    args.push(cur.trim().to_string());
    args.retain(|a| !a.is_empty());
    args
}

/// The C side's tagged value (`lthost_value`).
#[repr(C)]
struct RawValue {
    tag: i32,
    i: i64,
    d: f64,
    p: *mut c_void,
}

impl RawValue {
    const NONE: RawValue = RawValue { tag: NONE, i: 0, d: 0.0, p: std::ptr::null_mut() };
}

/// An argument name (`lthost_name`): bytes, not NUL-terminated.
#[repr(C)]
struct RawName {
    p: *const c_char,
    len: i64,
}

const NONE: i32 = 0;
const TENSOR: i32 = 1;
const INT: i32 = 2;
const FLOAT: i32 = 3;
const BOOL: i32 = 4;
const INTS: i32 = 5;
const FLOATS: i32 = 6;
const TENSORS: i32 = 7;
const STRING: i32 = 8;
const BOOLS: i32 = 9;

/// Pointer arrays that raw tensor-list arguments point into, alive until the call returns.
#[derive(Default)]
struct Keep {
    tensor_lists: Vec<Vec<*mut c_void>>,
}

impl Keep {
    fn raw(&mut self, v: &Arg<'_>) -> RawValue {
        let mut r = RawValue::NONE;
        match v {
            Arg::None => {}
            Arg::Tensor(t) => (r.tag, r.p) = (TENSOR, t.as_ptr() as *mut c_void),
            Arg::Int(i) => (r.tag, r.i) = (INT, *i),
            Arg::Float(d) => (r.tag, r.d) = (FLOAT, *d),
            Arg::Bool(b) => (r.tag, r.i) = (BOOL, i64::from(*b)),
            Arg::Ints(xs) => (r.tag, r.i, r.p) = (INTS, xs.len() as i64, xs.as_ptr() as *mut c_void),
            Arg::Floats(xs) => (r.tag, r.i, r.p) = (FLOATS, xs.len() as i64, xs.as_ptr() as *mut c_void),
            // A Rust bool is one byte, 0 or 1: the C side reads it as uint8_t.
            Arg::Bools(xs) => (r.tag, r.i, r.p) = (BOOLS, xs.len() as i64, xs.as_ptr() as *mut c_void),
            Arg::Tensors(ts) => {
                let ptrs: Vec<*mut c_void> =
                    ts.iter().map(|t| t.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut c_void)).collect();
                (r.tag, r.i, r.p) = (TENSORS, ptrs.len() as i64, ptrs.as_ptr() as *mut c_void);
                self.tensor_lists.push(ptrs);
            }
            Arg::Str(s) => (r.tag, r.i, r.p) = (STRING, s.len() as i64, s.as_ptr() as *mut c_void),
        }
        r
    }
}

/// Takes one result (its tensors become owned `Tensor`s; their pointers are nulled so that
/// lthost_values_free leaves them alone).
fn take_value(r: &mut RawValue) -> Value {
    // SAFETY (every arm): the C++ side set `tag` and `p` consistently: a fresh `at::Tensor*`,
    // an array of `i` elements, or a NUL-terminated string.
    unsafe {
        match r.tag {
            TENSOR => Value::Tensor(Tensor::from_ptr(std::mem::replace(&mut r.p, std::ptr::null_mut()).cast())),
            INT => Value::Int(r.i),
            FLOAT => Value::Float(r.d),
            BOOL => Value::Bool(r.i != 0),
            INTS => Value::Ints(std::slice::from_raw_parts(r.p as *const i64, r.i as usize).to_vec()),
            FLOATS => Value::Floats(std::slice::from_raw_parts(r.p as *const f64, r.i as usize).to_vec()),
            TENSORS => {
                let xs = std::slice::from_raw_parts_mut(r.p as *mut *mut c_void, r.i as usize);
                Value::Tensors(
                    xs.iter_mut()
                        .map(|p| {
                            let p = std::mem::replace(p, std::ptr::null_mut());
                            (!p.is_null()).then(|| Tensor::from_ptr(p.cast()))
                        })
                        .collect(),
                )
            }
            STRING => Value::Str(
                String::from_utf8_lossy(std::slice::from_raw_parts(r.p as *const u8, r.i as usize)).into_owned(),
            ),
            _ => Value::None,
        }
    }
}

extern "C" {
    fn lthost_op_find(name: *const c_char, overload: *const c_char, err: *mut *mut c_char) -> *mut c_void;
    fn lthost_op_free(op: *mut c_void);
    fn lthost_op_names() -> *mut c_char;
    fn lthost_op_schema(op: *mut c_void) -> *mut c_char;
    fn lthost_op_returns(op: *mut c_void) -> i64;
    fn lthost_op_seeded(op: *mut c_void) -> bool;
    fn lthost_op_unboxed(op: *mut c_void) -> bool;
    fn lthost_op_direct(op: *mut c_void, n: i64) -> bool;
    fn lthost_op_call_direct(
        op: *mut c_void,
        tensors: *const *const c_void,
        n: i64,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> i32;
    fn lthost_op_call(
        op: *mut c_void,
        args: *const RawValue,
        nargs: i64,
        in_order: bool,
        kw_names: *const RawName,
        kw_values: *const RawValue,
        nkw: i64,
        generator: *mut c_void,
        out: *mut RawValue,
        cap: i64,
        nout: *mut i64,
        err: *mut *mut c_char,
    ) -> i32;
    fn lthost_values_release(vals: *mut RawValue, n: i64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn t(v: Value) -> Tensor {
        v.into_tensor().expect("a tensor")
    }

    fn one(op: &str, args: &[Value], kwargs: &[(&str, Value)]) -> Tensor {
        let mut out = Op::find(op).expect("found").call(args, kwargs).expect("called");
        assert_eq!(out.len(), 1, "{op}: one result");
        t(out.remove(0))
    }

    #[test]
    fn ops_are_torchs_kernels_with_schema_defaults_and_named_arguments() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
        let x = Tensor::from_slice(&[1.0f32, -2.0, 3.0, -4.0]).view([2, 2]);
        let mask = x.lt(0.0);
        let got = one(
            "aten::masked_fill.Scalar",
            &[Value::Tensor(x.shallow_clone()), Value::Tensor(mask.shallow_clone()), Value::Float(9.5)],
            &[],
        );
        assert!(got.equal(&x.masked_fill(&mask, 9.5)));
        // Named `alpha`, fused as torch's add(…, alpha=).
        let y = Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4]).view([2, 2]);
        let got = one(
            "aten::add.Tensor",
            &[Value::Tensor(x.shallow_clone()), Value::Tensor(y.shallow_clone())],
            &[("alpha", Value::Float(2.5))],
        );
        assert!(got.equal(&crate::engine::torch_ext::add_alpha(&x, &y, 2.5).expect("add")));
        // A number where a tensor goes is a wrapped number: float32 + 1 stays float32, as `x + 1`.
        let got = one("aten::add.Tensor", &[Value::Tensor(x.shallow_clone()), Value::Int(1)], &[]);
        assert!(got.kind() == Kind::Float && got.equal(&(&x + 1.0)));
        // Defaults: keepdim=False, dtype=None.
        let got = one("aten::sum.dim_IntList", &[Value::Tensor(x.shallow_clone()), Value::Ints(vec![1])], &[]);
        assert!(got.equal(&x.sum_dim_intlist(1, false, None::<Kind>)));
        // One int for `int[2] kernel_size`.
        let img = Tensor::arange(32, (Kind::Float, Device::Cpu)).view([1, 2, 4, 4]);
        let got = one("aten::max_pool2d", &[Value::Tensor(img.shallow_clone()), Value::Int(2)], &[]);
        assert!(got.equal(&img.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)));
    }

    #[test]
    fn lists_several_results_and_optional_tensors() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
        let x = Tensor::arange(10, (Kind::Float, Device::Cpu));
        let parts = Op::find("aten::split_with_sizes")
            .expect("found")
            .call(&[Value::Tensor(x.shallow_clone()), Value::Ints(vec![3, 7])], &[])
            .expect("called");
        let [Value::Tensors(parts)] = parts.as_slice() else { panic!("one tensor list: {parts:?}") };
        assert_eq!(parts.iter().map(|p| p.as_ref().expect("defined").size()[0]).collect::<Vec<_>>(), vec![3, 7]);
        let m = x.view([2, 5]);
        let out = Op::find("aten::max.dim")
            .expect("found")
            .call(&[Value::Tensor(m.shallow_clone()), Value::Int(1)], &[])
            .expect("called");
        assert_eq!(out.len(), 2, "values and indices");
        let (values, indices) = m.max_dim(1, false);
        let mut out = out.into_iter();
        assert!(t(out.next().expect("values")).equal(&values));
        assert!(t(out.next().expect("indices")).equal(&indices));
        // x[:, idx] as `aten::index.Tensor(self, Tensor?[] indices)`.
        let idx = Tensor::from_slice(&[4i64, 0]);
        let got = one(
            "aten::index.Tensor",
            &[Value::Tensor(m.shallow_clone()), Value::Tensors(vec![None, Some(idx.shallow_clone())])],
            &[],
        );
        assert!(got.equal(&m.index_select(1, &idx)));
        let size =
            Op::find("aten::size.int").expect("found").call(&[Value::Tensor(m), Value::Int(1)], &[]).expect("called");
        assert!(matches!(size.as_slice(), [Value::Int(5)]));
    }

    #[test]
    fn every_registered_aten_operator_resolves_unless_denied() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
        let names = Op::registered();
        assert!(names.len() > 2000, "libtorch registers thousands of aten operators: {}", names.len());
        let (mut allowed, mut denied) = (0, 0);
        for n in &names {
            match Op::find(n) {
                Ok(op) => {
                    assert!(op.schema().starts_with(n.split('.').next().expect("a name")), "{n}: {}", op.schema());
                    allowed += 1;
                }
                Err(e) => {
                    assert!(e.detail.contains("not allowed in a plugin"), "{n}: {e}");
                    denied += 1;
                }
            }
        }
        assert!(denied > 0 && allowed > 5 * denied, "{allowed} allowed, {denied} denied");
        println!("aten operators registered: {}, allowed: {allowed}, denied: {denied}", names.len());
    }

    #[test]
    fn autograd_runs_through_generic_calls() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
        let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let y = one("aten::mul.Scalar", &[Value::Tensor(w.shallow_clone()), Value::Float(3.0)], &[]);
        let s = one("aten::sum", &[Value::Tensor(y)], &[]);
        s.backward();
        assert!(w.grad().equal(&Tensor::from_slice(&[3.0f32, 3.0, 3.0])));
    }

    #[test]
    fn a_generator_of_its_own_reaches_overloads_without_one() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
        let op = Op::find("aten::randn").expect("found");
        assert!(!op.takes_generator());
        assert_eq!(op.with_generator().expect("a sibling").name(), "aten::randn.generator");
        let draw = |gen: Option<&mut Generator>| {
            t(Op::find("aten::randn")
                .expect("found")
                .call_drawing(&[Arg::Ints(&[5])], &[], gen)
                .expect("drawn")
                .remove(0))
        };
        let mut a = Generator::seeded(3).expect("generator");
        let mut b = Generator::seeded(3).expect("generator");
        let (x, y) = (draw(Some(&mut a)), draw(Some(&mut b)));
        assert!(x.equal(&y), "the same seed, the same draw");
        let z = draw(Some(&mut a));
        assert!(!x.equal(&z), "the generator advanced");
        assert!(Op::find("aten::randint.low").expect("found").with_generator().is_some());
        // The sibling is found by its arguments, whatever torch named it.
        let out = Op::find("aten::rand.out").expect("found");
        assert_eq!(out.with_generator().expect("a sibling").name(), "aten::rand.generator_out");
        assert!(Op::find("aten::add.Tensor").expect("found").with_generator().is_none());
        // A random op with no generator overload is refused where only a generator of its
        // own may be drawn from, rather than drawing from the process's.
        let dropout = Op::find("aten::dropout").expect("found");
        assert!(dropout.seeded() && dropout.with_generator().is_none());
        let x = Tensor::ones([4], (Kind::Float, Device::Cpu));
        let err = dropout
            .call_drawing(&[Arg::Tensor(&x), Arg::Float(0.5), Arg::Bool(true)], &[], Some(&mut a))
            .expect_err("refused in a worker");
        assert!(err.op == "aten::dropout" && err.detail.contains("DataLoader worker"), "{err}");
        // Deterministic ops run with a worker's generator as everywhere.
        let neg = Op::find("aten::neg").expect("found");
        assert!(!neg.seeded());
        assert!(neg.call_drawing(&[Arg::Tensor(&x)], &[], Some(&mut a)).is_ok());
    }

    #[test]
    fn in_order_calls_fill_keyword_only_arguments_by_position() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
        let x = Tensor::from_slice(&[1.0f32, 2.0]);
        let add = Op::find("aten::add.Tensor").expect("found");
        // `alpha` is keyword-only: positional in a plain call is refused, in order it is taken.
        let args = [Arg::Tensor(&x), Arg::Tensor(&x), Arg::Float(3.0)];
        assert!(add.call_drawing(&args, &[], None).expect_err("keyword-only").detail.contains("keyword-only"));
        let y = t(add.call_in_order(&args, None).expect("called").remove(0));
        assert!(y.equal(&Tensor::from_slice(&[4.0f32, 8.0])));
        // Fewer arguments than the schema has: the rest take their defaults.
        let y = t(add.call_in_order(&args[..2], None).expect("called").remove(0));
        assert!(y.equal(&Tensor::from_slice(&[2.0f32, 4.0])));
        // To the generator-taking sibling (a worker's draw) keyword-only ones go by name.
        let draw = |gen: &mut Generator| {
            let op = Op::find("aten::rand").expect("found");
            let args = [Arg::Ints(&[3]), Arg::Int(i64::from(Kind::Double as i32))];
            t(op.call_in_order(&args, Some(gen)).expect("drawn").remove(0))
        };
        let mut a = Generator::seeded(5).expect("generator");
        let mut b = Generator::seeded(5).expect("generator");
        let (u, v) = (draw(&mut a), draw(&mut b));
        assert_eq!(u.kind(), Kind::Double);
        assert!(u.equal(&v), "the worker's generator, the same draw");
    }

    #[test]
    fn unboxed_shapes_give_the_boxed_results() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
                                                                // Each shape called unboxed, against tch (torch's C++ API) on the same inputs: a wrong
                                                                // C++ type in the table would give garbage or crash here.
        let x = Tensor::from_slice(&[1.0f32, -2.0, 3.0, -4.0]).reshape([2, 2]).set_requires_grad(true);
        let w = Tensor::from_slice(&[0.5f32, 1.5, -1.0, 2.0]).reshape([2, 2]);
        let b = Tensor::from_slice(&[0.25f32, -0.25]);
        let run = |op: &str, args: &[Arg<'_>]| {
            let found = Op::find(op).expect("found");
            assert!(found.unboxed() || op == "aten::sum", "{op} is called unboxed");
            t(found.call_in_order(args, None).expect(op).remove(0))
        };
        let same =
            |a: Tensor, b: Tensor, what: &str| assert!(a.allclose(&b, 0.0, 0.0, false), "{what}: {a:?} vs {b:?}");
        same(run("aten::neg", &[Arg::Tensor(&x)]), x.neg(), "T");
        same(run("aten::mm", &[Arg::Tensor(&x), Arg::Tensor(&w)]), x.mm(&w), "TT");
        same(run("aten::mul.Scalar", &[Arg::Tensor(&x), Arg::Float(2.5)]), x.g_mul_scalar(2.5), "TS");
        same(run("aten::squeeze.dim", &[Arg::Tensor(&x), Arg::Int(0)]), x.squeeze_dim(0), "TI");
        same(run("aten::tril", &[Arg::Tensor(&x), Arg::Int(-1)]), x.tril(-1), "TY");
        same(run("aten::sub.Tensor", &[Arg::Tensor(&x), Arg::Tensor(&w), Arg::Int(2)]), x.g_sub(&(&w * 2)), "TTS");
        same(run("aten::add.Scalar", &[Arg::Tensor(&x), Arg::Int(1), Arg::Int(3)]), x.g_add_scalar(3), "TSS");
        same(
            run("aten::where.self", &[Arg::Tensor(&x.gt(0)), Arg::Tensor(&x), Arg::Tensor(&w)]),
            x.where_self(&x.gt(0), &w),
            "TTT",
        );
        same(run("aten::linear", &[Arg::Tensor(&x), Arg::Tensor(&w), Arg::Tensor(&b)]), x.linear(&w, Some(&b)), "TTo");
        same(
            run("aten::linear", &[Arg::Tensor(&x), Arg::Tensor(&w), Arg::None]),
            x.linear::<Tensor>(&w, None),
            "TTo none",
        );
        same(run("aten::transpose.int", &[Arg::Tensor(&x), Arg::Int(0), Arg::Int(1)]), x.transpose(0, 1), "TII");
        same(
            run("aten::_softmax", &[Arg::Tensor(&x), Arg::Int(1), Arg::Bool(false)]),
            x.softmax(1, Kind::Float),
            "TIB",
        );
        let sm = run("aten::softmax.int", &[Arg::Tensor(&x), Arg::Int(1), Arg::Int(i64::from(Kind::Double as i32))]);
        same(sm, x.softmax(1, Kind::Double), "TId");
        same(run("aten::dropout", &[Arg::Tensor(&x), Arg::Float(0.5), Arg::Bool(false)]), x.shallow_clone(), "TFB");
        // Autograd records through the unboxed call as through the boxed one.
        let y = run("aten::mul.Tensor", &[Arg::Tensor(&x), Arg::Tensor(&x)]);
        run("aten::sum", &[Arg::Tensor(&y)]).backward();
        same(x.grad(), &x * 2, "grad");
        // Outside the shapes: boxed, as every other operator.
        assert!(!Op::find("aten::conv2d").expect("found").unboxed());
        assert!(!Op::find("aten::add_.Tensor").expect("found").unboxed(), "in-place ops are boxed");
        // A number where a tensor goes stays a wrapped number (float32 * 2 is float32).
        assert_eq!(run("aten::mul.Tensor", &[Arg::Tensor(&w), Arg::Int(2)]).kind(), Kind::Float);
    }

    #[test]
    fn errors_are_values_with_torchs_message() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // tests share the global generator
        let a = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let err = Op::find("aten::mm")
            .expect("found")
            .call(&[Value::Tensor(a.shallow_clone()), Value::Tensor(a.shallow_clone())], &[])
            .expect_err("shapes");
        assert!(err.op == "aten::mm" && err.detail.contains("cannot be multiplied"), "{err}");
        assert!(!err.detail.contains("Exception raised from"), "{err}");
        let err = Op::find("aten::add.Tensor")
            .expect("found")
            .call(&[Value::Tensor(a.shallow_clone()), Value::Ints(vec![1, 2])], &[])
            .expect_err("type");
        assert!(err.detail.contains("argument `other` expects Tensor, got a list of ints"), "{err}");
        let err = Op::find("aten::add.Tensor")
            .expect("found")
            .call(&[Value::Tensor(a.shallow_clone()), Value::Tensor(a.shallow_clone())], &[("beta", Value::Int(1))])
            .expect_err("name");
        assert!(err.detail.contains("no argument `beta`"), "{err}");
        let err = Op::find("aten::mm").expect("found").call(&[Value::Tensor(a)], &[]).expect_err("missing");
        assert!(err.detail.contains("missing argument `mat2`"), "{err}");
        assert!(Op::find("aten::no_such_op").expect_err("unknown").detail.contains("no operator aten::no_such_op"));
        assert!(Op::find("prim::Constant")
            .expect_err("namespace")
            .detail
            .contains("only operators of the `aten` namespace"));
        assert!(Op::find("aten::from_file").expect_err("denied").detail.contains("not allowed in a plugin"));
    }
}
