//! Any ATen operator, by its schema name (`aten::masked_fill.Scalar`), called through
//! libtorch's dispatcher as a boxed call (`host/csrc/aten_dispatch.cpp`): the kernels, autograd,
//! dtype promotion, views and in-place semantics of torch itself. An operator is resolved
//! once ([`Op::find`], refused if [`aten_denylist`](super::aten_denylist) lists it) and
//! called with [`Value`]s; missing arguments take the schema's defaults, named ones go by
//! name, one int stands for an `int[N]` list; errors come back as values with torch's message.

use std::ffi::{c_char, c_void, CStr, CString};

use tch::Tensor;

use super::aten_denylist;
use super::torch_ext::{take_error, take_string, Generator};

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

impl Value {
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
    pub fn find(qualified: &str) -> Result<Op, String> {
        let Some(base) = qualified.strip_prefix("aten::") else {
            return Err(format!("`{qualified}`: only operators of the `aten` namespace can be called"));
        };
        let (name, overload) = base.split_once('.').unwrap_or((base, ""));
        if let Some(reason) = aten_denylist::refusal(name, overload) {
            return Err(format!("`{qualified}` is not allowed in a plugin: {reason}"));
        }
        let c_name = CString::new(format!("aten::{name}")).map_err(|_| "an operator name with a NUL".to_string())?;
        let c_overload = CString::new(overload).map_err(|_| "an overload name with a NUL".to_string())?;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings live for the call; a handle or a message comes back.
        let handle = unsafe { lthost_op_find(c_name.as_ptr(), c_overload.as_ptr(), &mut err) };
        if handle.is_null() {
            return Err(take_error(err));
        }
        // SAFETY: a live handle; the schema string is malloc'd and taken by take_string.
        let schema = unsafe { take_string(lthost_op_schema(handle)) };
        let takes_generator = schema.contains("Generator?");
        Ok(Op { handle, name: qualified.to_string(), schema, takes_generator, drawing: std::sync::OnceLock::new() })
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

    /// The overload of the same operator that takes a generator, for one that does not
    /// (torch names it `generator`, or `<overload>_generator`): what a call that must draw
    /// from a generator of its own runs instead.
    pub fn with_generator(&self) -> Option<&Op> {
        if self.takes_generator() {
            return Some(self);
        }
        self.drawing
            .get_or_init(|| {
                let (base, overload) = self.name.split_once('.').unwrap_or((&self.name, ""));
                let sibling = if overload.is_empty() {
                    format!("{base}.generator")
                } else {
                    format!("{base}.{overload}_generator")
                };
                Op::find(&sibling).ok().map(Box::new)
            })
            .as_deref()
    }

    /// Calls the operator with positional `args` and named `kwargs`; its results in order.
    /// Random operators draw from torch's default generator.
    pub fn call(&self, args: &[Value], kwargs: &[(&str, Value)]) -> Result<Vec<Value>, String> {
        self.call_drawing(args, kwargs, None)
    }

    /// As [`Op::call`]; a `Generator?` argument left out draws from `generator` when given
    /// (a DataLoader worker's own), as if passed as `generator=`.
    pub fn call_drawing(
        &self,
        args: &[Value],
        kwargs: &[(&str, Value)],
        generator: Option<&mut Generator>,
    ) -> Result<Vec<Value>, String> {
        if generator.is_some() && !self.takes_generator() {
            if let Some(sibling) = self.with_generator() {
                return sibling.call_drawing(args, kwargs, generator);
            }
        }
        let gen = generator.map_or(std::ptr::null_mut(), |g| g.as_ptr());
        let mut keep = Keep::default();
        let raw_args: Vec<RawValue> = args.iter().map(|v| keep.raw(v)).collect::<Result<_, _>>()?;
        let names: Vec<CString> = kwargs
            .iter()
            .map(|(n, _)| CString::new(*n).map_err(|_| "an argument name with a NUL".to_string()))
            .collect::<Result<_, _>>()?;
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let raw_kw: Vec<RawValue> = kwargs.iter().map(|(_, v)| keep.raw(v)).collect::<Result<_, _>>()?;
        let mut out: *mut RawValue = std::ptr::null_mut();
        let mut n_out: i64 = 0;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: every pointer in the raw values points into `args`, `kwargs` or `keep`, all
        // alive for the call; the results are ours to take and free.
        let rc = unsafe {
            lthost_op_call(
                self.handle,
                raw_args.as_ptr(),
                raw_args.len() as i64,
                name_ptrs.as_ptr(),
                raw_kw.as_ptr(),
                raw_kw.len() as i64,
                gen,
                &mut out,
                &mut n_out,
                &mut err,
            )
        };
        if rc != 0 {
            return Err(format!("{}: {}", self.name, take_error(err)));
        }
        // SAFETY: `out` holds `n_out` results the C++ side made for us.
        let results = unsafe { std::slice::from_raw_parts_mut(out, n_out as usize) };
        let values = results.iter_mut().map(take_value).collect();
        // SAFETY: the tensors were taken (their pointers nulled); the rest is freed here, once.
        unsafe { lthost_values_free(out, n_out) };
        Ok(values)
    }
}

/// The C side's tagged value (`lthost_value`).
#[repr(C)]
struct RawValue {
    tag: i32,
    i: i64,
    d: f64,
    p: *mut c_void,
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

/// Buffers that raw argument values point into, alive until the call returns.
#[derive(Default)]
struct Keep {
    tensor_lists: Vec<Vec<*mut c_void>>,
    bools: Vec<Vec<u8>>,
    strings: Vec<CString>,
}

impl Keep {
    fn raw(&mut self, v: &Value) -> Result<RawValue, String> {
        let mut r = RawValue { tag: NONE, i: 0, d: 0.0, p: std::ptr::null_mut() };
        match v {
            Value::None => {}
            Value::Tensor(t) => (r.tag, r.p) = (TENSOR, t.as_ptr() as *mut c_void),
            Value::Int(i) => (r.tag, r.i) = (INT, *i),
            Value::Float(d) => (r.tag, r.d) = (FLOAT, *d),
            Value::Bool(b) => (r.tag, r.i) = (BOOL, i64::from(*b)),
            Value::Ints(xs) => (r.tag, r.i, r.p) = (INTS, xs.len() as i64, xs.as_ptr() as *mut c_void),
            Value::Floats(xs) => (r.tag, r.i, r.p) = (FLOATS, xs.len() as i64, xs.as_ptr() as *mut c_void),
            Value::Bools(xs) => {
                let bytes: Vec<u8> = xs.iter().map(|&b| u8::from(b)).collect();
                (r.tag, r.i, r.p) = (BOOLS, bytes.len() as i64, bytes.as_ptr() as *mut c_void);
                self.bools.push(bytes);
            }
            Value::Tensors(ts) => {
                let ptrs: Vec<*mut c_void> =
                    ts.iter().map(|t| t.as_ref().map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut c_void)).collect();
                (r.tag, r.i, r.p) = (TENSORS, ptrs.len() as i64, ptrs.as_ptr() as *mut c_void);
                self.tensor_lists.push(ptrs);
            }
            Value::Str(s) => {
                let c = CString::new(s.as_str()).map_err(|_| "a string argument with a NUL".to_string())?;
                (r.tag, r.p) = (STRING, c.as_ptr() as *mut c_void);
                self.strings.push(c);
            }
        }
        Ok(r)
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
            STRING => Value::Str(CStr::from_ptr(r.p as *const c_char).to_string_lossy().into_owned()),
            _ => Value::None,
        }
    }
}

extern "C" {
    fn lthost_op_find(name: *const c_char, overload: *const c_char, err: *mut *mut c_char) -> *mut c_void;
    fn lthost_op_free(op: *mut c_void);
    fn lthost_op_names() -> *mut c_char;
    fn lthost_op_schema(op: *mut c_void) -> *mut c_char;
    fn lthost_op_call(
        op: *mut c_void,
        args: *const RawValue,
        nargs: i64,
        kw_names: *const *const c_char,
        kw_values: *const RawValue,
        nkw: i64,
        generator: *mut c_void,
        out: *mut *mut RawValue,
        nout: *mut i64,
        err: *mut *mut c_char,
    ) -> i32;
    fn lthost_values_free(vals: *mut RawValue, n: i64);
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
                    assert!(e.contains("not allowed in a plugin"), "{n}: {e}");
                    denied += 1;
                }
            }
        }
        assert!(denied > 0 && allowed > 5 * denied, "{allowed} allowed, {denied} denied");
        println!("aten operators registered: {}, allowed: {allowed}, denied: {denied}", names.len());
    }

    #[test]
    fn autograd_runs_through_generic_calls() {
        let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let y = one("aten::mul.Scalar", &[Value::Tensor(w.shallow_clone()), Value::Float(3.0)], &[]);
        let s = one("aten::sum", &[Value::Tensor(y)], &[]);
        s.backward();
        assert!(w.grad().equal(&Tensor::from_slice(&[3.0f32, 3.0, 3.0])));
    }

    #[test]
    fn a_generator_of_its_own_reaches_overloads_without_one() {
        let op = Op::find("aten::randn").expect("found");
        assert!(!op.takes_generator());
        assert_eq!(op.with_generator().expect("a sibling").name(), "aten::randn.generator");
        let draw = |gen: Option<&mut Generator>| {
            t(Op::find("aten::randn")
                .expect("found")
                .call_drawing(&[Value::Ints(vec![5])], &[], gen)
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
    }

    #[test]
    fn errors_are_values_with_torchs_message() {
        let a = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let err = Op::find("aten::mm")
            .expect("found")
            .call(&[Value::Tensor(a.shallow_clone()), Value::Tensor(a.shallow_clone())], &[])
            .expect_err("shapes");
        assert!(err.starts_with("aten::mm: ") && err.contains("cannot be multiplied"), "{err}");
        assert!(!err.contains("Exception raised from"), "{err}");
        let err = Op::find("aten::add.Tensor")
            .expect("found")
            .call(&[Value::Tensor(a.shallow_clone()), Value::Ints(vec![1, 2])], &[])
            .expect_err("type");
        assert!(err.contains("argument `other` expects Tensor, got a list of ints"), "{err}");
        let err = Op::find("aten::add.Tensor")
            .expect("found")
            .call(&[Value::Tensor(a.shallow_clone()), Value::Tensor(a.shallow_clone())], &[("beta", Value::Int(1))])
            .expect_err("name");
        assert!(err.contains("no argument `beta`"), "{err}");
        let err = Op::find("aten::mm").expect("found").call(&[Value::Tensor(a)], &[]).expect_err("missing");
        assert!(err.contains("missing argument `mat2`"), "{err}");
        assert!(Op::find("aten::no_such_op").expect_err("unknown").contains("no operator aten::no_such_op"));
        assert!(Op::find("prim::Constant").expect_err("namespace").contains("only operators of the `aten` namespace"));
        assert!(Op::find("aten::from_file").expect_err("denied").contains("not allowed in a plugin"));
    }
}
