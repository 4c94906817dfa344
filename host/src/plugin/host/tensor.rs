//! `lt:plugin/tensor`: tensor creation, inspection, ops and losses on libtorch.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use tch::{Device, Kind, Tensor};
use wasmtime::component::Resource;

use crate::engine::dtype::DType;
use crate::engine::layers;
use crate::engine::memory_budget::MemoryBudget;
use crate::engine::torch_ext::Draw;
use crate::error::{torch_message, OpError, OpResult};
use crate::plugin::bindings::tensor::{self, BinaryOp, CompareOp, ReduceOp, UnaryOp};
use crate::plugin::bindings::types::{Dtype, Reduction};
use crate::plugin::views::TensorView;

type R<T> = wasmtime::Result<T>;
type H = Resource<Tensor>;

/// Largest tensor a plugin may create in one call (elements); a guard against a plugin
/// asking the host for unbounded memory.
pub const MAX_ELEMENTS: i64 = 1 << 31;

pub fn dtype_in(d: Dtype) -> DType {
    match d {
        Dtype::Float32 => DType::Float32,
        Dtype::Float64 => DType::Float64,
        Dtype::Float16 => DType::Float16,
        Dtype::Bfloat16 => DType::BFloat16,
        Dtype::Int64 => DType::Int64,
        Dtype::Int32 => DType::Int32,
        Dtype::Uint8 => DType::UInt8,
        Dtype::Boolean => DType::Bool,
    }
}

pub fn dtype_out(k: Kind, op: &str) -> OpResult<Dtype> {
    Ok(match DType::from_kind(k) {
        Some(DType::Float32) => Dtype::Float32,
        Some(DType::Float64) => Dtype::Float64,
        Some(DType::Float16) => Dtype::Float16,
        Some(DType::BFloat16) => Dtype::Bfloat16,
        Some(DType::Int64) => Dtype::Int64,
        Some(DType::Int32) => Dtype::Int32,
        Some(DType::UInt8) => Dtype::Uint8,
        Some(DType::Bool) => Dtype::Boolean,
        None => return Err(OpError::new(op, format!("dtype {k:?} has no WIT equivalent"))),
    })
}

pub fn reduction(r: Reduction) -> tch::Reduction {
    match r {
        Reduction::Mean => tch::Reduction::Mean,
        Reduction::Sum => tch::Reduction::Sum,
        Reduction::None => tch::Reduction::None,
    }
}

/// Runs a libtorch op; on failure the error names the op and the inputs' shapes.
fn run(op: &str, inputs: &[&Tensor], r: Result<Tensor, tch::TchError>) -> OpResult<Tensor> {
    r.map_err(|e| {
        let shapes: Vec<String> = inputs.iter().map(|t| format!("{:?}", t.size())).collect();
        OpError::new(op, format!("inputs of shape {}: {}", shapes.join(", "), torch_message(&e)))
    })
}

fn check_shape(op: &str, shape: &[i64]) -> OpResult<()> {
    let mut n: i64 = 1;
    for &d in shape {
        if d < 0 {
            return Err(OpError::new(op, format!("negative dimension in shape {shape:?}")));
        }
        n = n.saturating_mul(d);
    }
    if n > MAX_ELEMENTS {
        return Err(OpError::new(op, format!("shape {shape:?} has {n} elements, over the limit of {MAX_ELEMENTS}")));
    }
    Ok(())
}

/// Resolves `path` inside the granted data directory, refusing anything that leaves it.
/// The granted data directory's handle and `path` inside it (`/data/` or `/` prefixes
/// dropped). Reads go through the handle (`cap-std`), so `..`, absolute paths and symlinks
/// that leave the directory are refused by construction, not by comparing names.
pub fn data_file(data_dir: Option<&Path>, declined: bool, path: &str) -> OpResult<(cap_std::fs::Dir, PathBuf)> {
    let op = "load";
    let Some(root) = data_dir else {
        if declined {
            return Err(OpError::new(op, format!("`{path}`: the run has a data directory, but this plugin's manifest does not request it: add \"data-read\" to `capabilities` in its lthost.toml (capabilities = [\"data-read\"]) and build it again")));
        }
        return Err(OpError::new(op, format!("`{path}`: this plugin was granted no data directory (--data-dir)")));
    };
    let rel = Path::new(path.trim_start_matches("/data/").trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(OpError::new(op, format!("`{path}` is outside the granted data directory")));
    }
    let dir = cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority())
        .map_err(|e| OpError::new(op, format!("data directory: {e}")))?;
    Ok((dir, rel.to_path_buf()))
}

/// Reads a file of the granted data directory, at most `max_bytes` of it.
pub fn read_data_file(data_dir: Option<&Path>, declined: bool, path: &str, max_bytes: u64) -> OpResult<Vec<u8>> {
    use std::io::Read as _;
    let op = "load";
    let (dir, rel) = data_file(data_dir, declined, path)?;
    let f = dir.open(&rel).map_err(|e| {
        OpError::new(op, format!("`{path}`: {e} (only files inside the granted data directory can be read)"))
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max_bytes {
        return Err(OpError::new(
            op,
            format!(
                "`{path}` is {} MiB, more than the plugin's tensor budget leaves ({} MiB)",
                len >> 20,
                max_bytes >> 20
            ),
        ));
    }
    let mut out = Vec::with_capacity(len as usize);
    f.take(max_bytes).read_to_end(&mut out).map_err(|e| OpError::new(op, format!("`{path}`: {e}")))?;
    Ok(out)
}

/// Charges `len` bytes the host holds for a load to the plugin's budget.
fn hold<'a>(
    memory: &'a MemoryBudget,
    len: usize,
    op: &str,
    path: &str,
) -> OpResult<crate::engine::memory_budget::Reservation<'a>> {
    memory.reserve(len as u64).ok_or_else(|| {
        OpError::new(
            op,
            format!(
                "`{path}`: holding its {} MiB would pass the plugin's tensor budget (plugin.tensor_memory_limit_mb)",
                len >> 20
            ),
        )
    })
}

/// A safetensors file's tensors, parsed from its bytes (the tensors are made, and charged,
/// one by one).
fn parse_safetensors(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let st =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file ({e:?})"))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let kind = crate::checkpoint::kind_of(view.dtype()).map_err(|e| format!("tensor `{name}`: {e}"))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| format!("tensor `{name}`: {}", torch_message(&e)))?;
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl TensorView<'_> {
    fn dev(&self) -> Device {
        self.device
    }

    fn new_tensor(&mut self, op: &str, t: Result<Tensor, tch::TchError>) -> R<H> {
        let t = run(op, &[], t)?;
        Ok(self.handles.push(t, op)?)
    }

    /// A random tensor: from this instance's own generator if it has one (a DataLoader
    /// worker's), else from the run's (`default`).
    fn random(
        &mut self,
        op: &str,
        what: Draw,
        shape: &[i64],
        default: impl FnOnce() -> Result<Tensor, tch::TchError>,
    ) -> R<H> {
        let dev = self.dev();
        let t = match self.generator.as_deref_mut() {
            Some(g) => {
                let t = g.draw(what, shape).map_err(|e| OpError::new(op, e.detail))?;
                if dev == Device::Cpu {
                    Ok(t)
                } else {
                    t.f_to_device(dev)
                }
            }
            None => default(),
        };
        self.new_tensor(op, t)
    }

    fn unary_with(&mut self, this: &H, op: &str, f: impl FnOnce(&Tensor) -> Result<Tensor, tch::TchError>) -> R<H> {
        let a = self.handles.tensor(this, op)?;
        let out = run(op, &[a], f(a))?;
        Ok(self.handles.push(out, op)?)
    }

    fn binary_with(
        &mut self,
        this: &H,
        other: &H,
        op: &str,
        f: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor, tch::TchError>,
    ) -> R<H> {
        let a = self.handles.tensor(this, op)?;
        let b = self.handles.tensor(other, op)?;
        let out = run(op, &[a, b], f(a, b))?;
        Ok(self.handles.push(out, op)?)
    }

    fn many(&self, handles: &[H], op: &str) -> OpResult<Vec<Tensor>> {
        handles.iter().map(|h| self.handles.tensor(h, op).map(Tensor::shallow_clone)).collect()
    }
}

fn unary_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "neg",
        UnaryOp::Abs => "abs",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Relu => "relu",
        UnaryOp::Gelu => "gelu",
        UnaryOp::GeluTanh => "gelu(tanh)",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Square => "square",
        UnaryOp::Detach => "detach",
        UnaryOp::Clone => "clone",
        UnaryOp::Contiguous => "contiguous",
        UnaryOp::LogicalNot => "logical_not",
    }
}

fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Pow => "pow",
        BinaryOp::Maximum => "maximum",
        BinaryOp::Minimum => "minimum",
        BinaryOp::Remainder => "remainder",
    }
}

fn compare_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
    }
}

fn reduce_name(op: ReduceOp) -> &'static str {
    match op {
        ReduceOp::Sum => "sum",
        ReduceOp::Mean => "mean",
        ReduceOp::Max => "max",
        ReduceOp::Min => "min",
        ReduceOp::Prod => "prod",
        ReduceOp::Std => "std",
        ReduceOp::Var => "var",
        ReduceOp::Logsumexp => "logsumexp",
    }
}

fn reduce(a: &Tensor, op: ReduceOp, dims: &[i64], keepdim: bool) -> Result<Tensor, tch::TchError> {
    let all: Vec<i64> = (0..a.dim() as i64).collect();
    let d: &[i64] = if dims.is_empty() { &all } else { dims };
    match op {
        ReduceOp::Sum => a.f_sum_dim_intlist(Some(d), keepdim, None::<Kind>),
        ReduceOp::Mean => a.f_mean_dim(Some(d), keepdim, None::<Kind>),
        ReduceOp::Max if dims.is_empty() && !keepdim => a.f_max(),
        ReduceOp::Min if dims.is_empty() && !keepdim => a.f_min(),
        ReduceOp::Max => a.f_amax(d, keepdim),
        ReduceOp::Min => a.f_amin(d, keepdim),
        ReduceOp::Prod if dims.is_empty() && !keepdim => a.f_prod(None::<Kind>),
        ReduceOp::Prod if d.len() == 1 => a.f_prod_dim_int(d[0], keepdim, None::<Kind>),
        ReduceOp::Prod => Err(tch::TchError::Torch("prod reduces over one dim at a time".into())),
        ReduceOp::Std => a.f_std_dim(Some(d), true, keepdim),
        ReduceOp::Var => a.f_var_dim(Some(d), true, keepdim),
        ReduceOp::Logsumexp => a.f_logsumexp(d, keepdim),
    }
}

impl tensor::HostTensor for TensorView<'_> {
    fn from_bytes(&mut self, data: Vec<u8>, dtype: Dtype, shape: Vec<i64>) -> R<H> {
        let op = "from_bytes";
        check_shape(op, &shape)?;
        self.handles.check_alloc(op, shape.iter().product())?;
        let d = dtype_in(dtype);
        let numel: i64 = shape.iter().product();
        if data.len() as i64 != numel * d.size() as i64 {
            return Err(OpError::new(
                op,
                format!(
                    "{} bytes do not hold shape {shape:?} of {d:?} ({} bytes)",
                    data.len(),
                    numel * d.size() as i64
                ),
            )
            .into());
        }
        if d == DType::Bool && data.iter().any(|&b| b > 1) {
            return Err(OpError::new(op, "boolean tensors take bytes 0 and 1 only").into());
        }
        let dev = self.dev();
        self.new_tensor(op, Tensor::f_from_data_size(&data, &shape, d.kind()).and_then(|t| t.f_to_device(dev)))
    }

    fn from_f32(&mut self, data: Vec<f32>, shape: Vec<i64>) -> R<H> {
        let op = "from_f32";
        check_shape(op, &shape)?;
        self.handles.check_alloc(op, shape.iter().product())?;
        if data.len() as i64 != shape.iter().product::<i64>() {
            return Err(OpError::new(op, format!("{} values do not fill shape {shape:?}", data.len())).into());
        }
        let dev = self.dev();
        self.new_tensor(
            op,
            Tensor::f_from_slice(&data).and_then(|t| t.f_reshape(&shape)).and_then(|t| t.f_to_device(dev)),
        )
    }

    fn from_i64(&mut self, data: Vec<i64>, shape: Vec<i64>) -> R<H> {
        let op = "from_i64";
        check_shape(op, &shape)?;
        self.handles.check_alloc(op, shape.iter().product())?;
        if data.len() as i64 != shape.iter().product::<i64>() {
            return Err(OpError::new(op, format!("{} values do not fill shape {shape:?}", data.len())).into());
        }
        let dev = self.dev();
        self.new_tensor(
            op,
            Tensor::f_from_slice(&data).and_then(|t| t.f_reshape(&shape)).and_then(|t| t.f_to_device(dev)),
        )
    }

    fn zeros(&mut self, shape: Vec<i64>, dtype: Dtype) -> R<H> {
        check_shape("zeros", &shape)?;
        self.handles.check_alloc("zeros", shape.iter().product())?;
        let o = (dtype_in(dtype).kind(), self.dev());
        self.new_tensor("zeros", Tensor::f_zeros(&shape, o))
    }

    fn ones(&mut self, shape: Vec<i64>, dtype: Dtype) -> R<H> {
        check_shape("ones", &shape)?;
        self.handles.check_alloc("ones", shape.iter().product())?;
        let o = (dtype_in(dtype).kind(), self.dev());
        self.new_tensor("ones", Tensor::f_ones(&shape, o))
    }

    fn full(&mut self, shape: Vec<i64>, value: f64, dtype: Dtype) -> R<H> {
        check_shape("full", &shape)?;
        self.handles.check_alloc("full", shape.iter().product())?;
        let o = (dtype_in(dtype).kind(), self.dev());
        self.new_tensor("full", Tensor::f_full(&shape, value, o))
    }

    fn arange(&mut self, start: f64, end: f64, step: f64, dtype: Dtype) -> R<H> {
        let op = "arange";
        if step == 0.0 || !((end - start) / step).is_finite() || (end - start) / step > MAX_ELEMENTS as f64 {
            return Err(OpError::new(op, format!("bad range {start}..{end} step {step}")).into());
        }
        let d = dtype_in(dtype);
        self.handles
            .check_alloc(op, (((end - start) / step).ceil().max(0.0) as i64).saturating_mul(d.size() as i64))?;
        let o = (d.kind(), self.dev());
        self.new_tensor(op, Tensor::f_arange_start_step(start, end, step, o))
    }

    fn rand(&mut self, shape: Vec<i64>) -> R<H> {
        check_shape("rand", &shape)?;
        self.handles.check_alloc("rand", shape.iter().product())?;
        let o = (Kind::Float, self.dev());
        self.random("rand", Draw::Rand, &shape, || Tensor::f_rand(&shape, o))
    }

    fn randn(&mut self, shape: Vec<i64>) -> R<H> {
        check_shape("randn", &shape)?;
        self.handles.check_alloc("randn", shape.iter().product())?;
        let o = (Kind::Float, self.dev());
        self.random("randn", Draw::Randn, &shape, || Tensor::f_randn(&shape, o))
    }

    fn randint(&mut self, low: i64, high: i64, shape: Vec<i64>) -> R<H> {
        check_shape("randint", &shape)?;
        self.handles.check_alloc("randint", shape.iter().product())?;
        let o = (Kind::Int64, self.dev());
        self.random("randint", Draw::Randint(low, high), &shape, || Tensor::f_randint_low(low, high, &shape, o))
    }

    fn randperm(&mut self, n: i64) -> R<H> {
        check_shape("randperm", &[n])?;
        self.handles.check_alloc("randperm", [n].iter().product())?;
        let o = (Kind::Int64, self.dev());
        self.random("randperm", Draw::Randperm, &[n], || Tensor::f_randperm(n, o))
    }

    fn randperm_seeded(&mut self, n: i64, seed: u64) -> R<H> {
        check_shape("randperm_seeded", &[n])?;
        self.handles.check_alloc("randperm_seeded", n)?;
        let t = crate::engine::torch_ext::Generator::seeded(seed)
            .and_then(|mut g| g.draw(Draw::Randperm, &[n]))
            .map_err(|e| OpError::new("randperm_seeded", e.detail))?;
        let dev = self.dev();
        self.new_tensor("randperm_seeded", if dev == Device::Cpu { Ok(t) } else { t.f_to_device(dev) })
    }

    fn cat(&mut self, tensors: Vec<H>, dim: i64) -> R<H> {
        let ts = self.many(&tensors, "cat")?;
        let refs: Vec<&Tensor> = ts.iter().collect();
        let out = run("cat", &refs, Tensor::f_cat(&ts, dim))?;
        Ok(self.handles.push(out, "cat")?)
    }

    fn stack(&mut self, tensors: Vec<H>, dim: i64) -> R<H> {
        let ts = self.many(&tensors, "stack")?;
        let refs: Vec<&Tensor> = ts.iter().collect();
        let out = run("stack", &refs, Tensor::f_stack(&ts, dim))?;
        Ok(self.handles.push(out, "stack")?)
    }

    fn load(&mut self, path: String) -> R<Vec<(String, H)>> {
        let op = "load";
        // The path is checked before anything else (a refused path says so, whatever its
        // extension).
        data_file(self.data_dir, self.data_declined, &path)?;
        let full = Path::new(&path);
        let ext = full.extension().and_then(|e| e.to_str()).unwrap_or("");
        let file = full.file_name().and_then(|s| s.to_str()).unwrap_or("").trim_end_matches(".gz");
        let bad = |e: crate::datasets::FormatError| OpError::new(op, format!("`{path}`: {e}"));
        let io = |e: std::io::Error| OpError::new(op, format!("`{path}`: {e}"));
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("array")
            .trim_end_matches(".idx")
            .to_string();
        // What the budget has left bounds the bytes read and the bytes inflated.
        // The bytes read (and inflated) are charged to the budget while they are held, and the
        // tensors made from them as they are made: a load never takes more than the budget.
        let memory = Arc::clone(&self.handles.budget.memory);
        let room = |m: &MemoryBudget| m.limit().saturating_sub(m.used());
        let bytes = read_data_file(self.data_dir, self.data_declined, &path, room(&memory))?;
        let _read = hold(&memory, bytes.len(), op, &path)?;
        let named = if file.ends_with("-ubyte") || file.ends_with(".idx") {
            let bytes = crate::datasets::idx::unpack(bytes, ext == "gz", room(&memory)).map_err(io)?;
            let _inflated = hold(&memory, if ext == "gz" { bytes.len() } else { 0 }, op, &path)?;
            vec![(stem, crate::datasets::idx::parse(&bytes, MAX_ELEMENTS).map_err(bad)?)]
        } else {
            match ext {
                "safetensors" => parse_safetensors(&bytes).map_err(|e| OpError::new(op, format!("`{path}`: {e}")))?,
                "npy" => vec![(stem, crate::datasets::npy::parse(&bytes, MAX_ELEMENTS).map_err(bad)?)],
                // A member's inflated bytes and its tensor are held together: half the room each.
                "npz" => crate::datasets::npz::parse(&bytes, MAX_ELEMENTS, room(&memory) / 2).map_err(bad)?,
                _ => return Err(OpError::new(op, format!("`{path}`: unsupported format (expected .safetensors, .npy, .npz, or IDX: *-ubyte, *.idx, optionally .gz; CSV goes through load-csv)")).into()),
            }
        };
        let dev = self.dev();
        let mut out = Vec::with_capacity(named.len());
        for (_, t) in &named {
            check_shape(op, &t.size())?;
        }
        for (name, t) in named {
            let t = run(op, &[], t.f_to_device(dev))?;
            out.push((name, self.handles.push(t, op)?));
        }
        Ok(out)
    }

    fn load_csv(
        &mut self,
        path: String,
        columns: Vec<tensor::CsvColumn>,
        header: bool,
        delimiter: String,
    ) -> R<Vec<(String, H)>> {
        let op = "load_csv";
        data_file(self.data_dir, self.data_declined, &path).map_err(|e| OpError::new(op, e.detail))?;
        let mut chars = delimiter.chars();
        let (Some(delim), None) = (chars.next(), chars.next()) else {
            return Err(
                OpError::new(op, format!("`{path}`: the delimiter must be one character, got {delimiter:?}")).into()
            );
        };
        let cols: Vec<crate::datasets::csv::Column> = columns
            .iter()
            .map(|c| crate::datasets::csv::Column { name: c.name.clone(), kind: dtype_in(c.dtype).kind() })
            .collect();
        let memory = Arc::clone(&self.handles.budget.memory);
        let bytes =
            read_data_file(self.data_dir, self.data_declined, &path, memory.limit().saturating_sub(memory.used()))
                .map_err(|e| OpError::new(op, e.detail))?;
        let _read = hold(&memory, bytes.len(), op, &path)?;
        // The parsed values: at most one per two bytes of text (a cell and its delimiter), 8
        // bytes each; a column is read once.
        let mut names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(OpError::new(op, format!("`{path}`: column `{}` is asked for twice", w[0])).into());
        }
        let _values = hold(&memory, (bytes.len() / 2 + 1).saturating_mul(8), op, &path)?;
        let text = String::from_utf8(bytes).map_err(|e| OpError::new(op, format!("`{path}`: not UTF-8 text ({e})")))?;
        let parsed = crate::datasets::csv::parse(&text, &cols, header, delim, MAX_ELEMENTS as usize)
            .map_err(|e| OpError::new(op, format!("`{path}`: {e}")))?;
        let dev = self.dev();
        let mut out = Vec::with_capacity(parsed.len());
        for (name, t) in parsed {
            let t = run(op, &[], t.f_to_device(dev))?;
            out.push((name, self.handles.push(t, op)?));
        }
        Ok(out)
    }

    fn share(&mut self, this: H) -> R<H> {
        let t = self.handles.tensor(&this, "share")?.shallow_clone();
        Ok(self.handles.push(t, "share")?)
    }

    fn shape(&mut self, this: H) -> R<Vec<i64>> {
        Ok(self.handles.tensor(&this, "shape")?.size())
    }

    fn dtype(&mut self, this: H) -> R<Dtype> {
        let k = self.handles.tensor(&this, "dtype")?.kind();
        Ok(dtype_out(k, "dtype")?)
    }

    fn device(&mut self, this: H) -> R<String> {
        Ok(crate::context::device_name(self.handles.tensor(&this, "device")?.device()))
    }

    fn numel(&mut self, this: H) -> R<i64> {
        Ok(self.handles.tensor(&this, "numel")?.numel() as i64)
    }

    fn requires_grad(&mut self, this: H) -> R<bool> {
        Ok(self.handles.tensor(&this, "requires_grad")?.requires_grad())
    }

    fn set_requires_grad(&mut self, this: H, requires_grad: bool) -> R<Result<(), String>> {
        let t = self.handles.tensor(&this, "requires_grad_")?;
        // torch's Python binding refuses this before the C++ call does nothing.
        if !requires_grad && !t.f_is_leaf().unwrap_or(true) {
            return Ok(Err("requires_grad_: you can only change requires_grad flags of leaf variables. If you want to use a computed variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach().".into()));
        }
        Ok(t.f_set_requires_grad(requires_grad).map(drop).map_err(|e| format!("requires_grad_: {}", torch_message(&e))))
    }

    fn grad(&mut self, this: H) -> R<Option<H>> {
        let g = self.handles.tensor(&this, "grad")?.grad();
        if !g.defined() {
            return Ok(None);
        }
        Ok(Some(self.handles.push(g, "grad")?))
    }

    fn set_grad(&mut self, this: H, grad: Option<H>) -> R<Result<(), String>> {
        let t = self.handles.tensor(&this, "grad")?;
        let g = grad.as_ref().map(|g| self.handles.tensor(g, "grad")).transpose()?;
        Ok(crate::engine::torch_ext::set_grad(t, g).map_err(|e| e.message()))
    }

    fn backward(
        &mut self,
        this: H,
        gradient: Option<H>,
        retain_graph: bool,
        create_graph: bool,
    ) -> R<Result<(), String>> {
        let t = self.handles.tensor(&this, "backward")?;
        let g = gradient.as_ref().map(|g| self.handles.tensor(g, "backward")).transpose()?;
        Ok(crate::engine::torch_ext::backward(t, g, retain_graph, create_graph).map_err(|e| e.message()))
    }

    fn to_bytes(&mut self, this: H) -> R<Vec<u8>> {
        let op = "to_bytes";
        let t = self.handles.tensor(&this, op)?;
        let cpu = run(op, &[t], t.f_to_device(Device::Cpu).and_then(|c| c.f_contiguous()))?;
        let n = cpu.numel();
        let mut buf = vec![0u8; n * cpu.kind().elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut buf, n).map_err(|e| OpError::torch(op, e))?;
        Ok(buf)
    }

    fn to_f32_list(&mut self, this: H) -> R<Vec<f32>> {
        let op = "to_f32_list";
        let t = self.handles.tensor(&this, op)?;
        let cpu = run(
            op,
            &[t],
            t.f_to_device(Device::Cpu).and_then(|c| c.f_to_kind(Kind::Float)).and_then(|c| c.f_contiguous()),
        )?;
        let n = cpu.numel();
        let mut v = vec![0f32; n];
        cpu.f_copy_data(&mut v, n).map_err(|e| OpError::torch(op, e))?;
        Ok(v)
    }

    fn to_i64_list(&mut self, this: H) -> R<Vec<i64>> {
        let op = "to_i64_list";
        let t = self.handles.tensor(&this, op)?;
        let cpu = run(
            op,
            &[t],
            t.f_to_device(Device::Cpu).and_then(|c| c.f_to_kind(Kind::Int64)).and_then(|c| c.f_contiguous()),
        )?;
        let n = cpu.numel();
        let mut v = vec![0i64; n];
        cpu.f_copy_data(&mut v, n).map_err(|e| OpError::torch(op, e))?;
        Ok(v)
    }

    fn item(&mut self, this: H) -> R<f64> {
        let t = self.handles.tensor(&this, "item")?;
        if t.numel() != 1 {
            return Err(OpError::new(
                "item",
                format!("a tensor of shape {:?} has {} elements, not one", t.size(), t.numel()),
            )
            .into());
        }
        Ok(t.f_double_value(&[])
            .or_else(|_| t.f_reshape([1]).and_then(|r| r.f_double_value(&[0])))
            .map_err(|e| OpError::torch("item", e))?)
    }

    fn to_dtype(&mut self, this: H, dtype: Dtype) -> R<H> {
        let k = dtype_in(dtype).kind();
        self.unary_with(&this, "to_dtype", |a| a.f_to_kind(k))
    }

    fn unary(&mut self, this: H, op: UnaryOp) -> R<H> {
        self.unary_with(&this, unary_name(op), |a| match op {
            UnaryOp::Neg => a.f_neg(),
            UnaryOp::Abs => a.f_abs(),
            UnaryOp::Exp => a.f_exp(),
            UnaryOp::Log => a.f_log(),
            UnaryOp::Sqrt => a.f_sqrt(),
            UnaryOp::Sin => a.f_sin(),
            UnaryOp::Cos => a.f_cos(),
            UnaryOp::Relu => a.f_relu(),
            UnaryOp::Gelu => a.f_gelu("none"),
            UnaryOp::GeluTanh => a.f_gelu("tanh"),
            UnaryOp::Tanh => a.f_tanh(),
            UnaryOp::Sigmoid => a.f_sigmoid(),
            UnaryOp::Square => a.f_square(),
            UnaryOp::Detach => a.f_detach(),
            UnaryOp::Clone => a.f_to_dtype(a.kind(), false, true),
            UnaryOp::Contiguous => a.f_contiguous(),
            UnaryOp::LogicalNot => a.f_logical_not(),
        })
    }

    fn binary(&mut self, this: H, op: BinaryOp, other: H) -> R<H> {
        self.binary_with(&this, &other, binary_name(op), |a, b| match op {
            BinaryOp::Add => a.f_add(b),
            BinaryOp::Sub => a.f_sub(b),
            BinaryOp::Mul => a.f_mul(b),
            BinaryOp::Div => a.f_div(b),
            BinaryOp::Pow => a.f_pow(b),
            BinaryOp::Maximum => a.f_maximum(b),
            BinaryOp::Minimum => a.f_minimum(b),
            BinaryOp::Remainder => a.f_remainder_tensor(b),
        })
    }

    fn binary_scalar(&mut self, this: H, op: BinaryOp, v: f64) -> R<H> {
        self.unary_with(&this, binary_name(op), |a| match op {
            BinaryOp::Add => a.f_add_scalar(v),
            BinaryOp::Sub => a.f_sub_scalar(v),
            BinaryOp::Mul => a.f_mul_scalar(v),
            BinaryOp::Div => a.f_div_scalar(v),
            BinaryOp::Pow => a.f_pow_tensor_scalar(v),
            BinaryOp::Maximum => a.f_clamp_min(v),
            BinaryOp::Minimum => a.f_clamp_max(v),
            BinaryOp::Remainder => a.f_remainder(v),
        })
    }

    fn compare(&mut self, this: H, op: CompareOp, other: H) -> R<H> {
        self.binary_with(&this, &other, compare_name(op), |a, b| match op {
            CompareOp::Eq => a.f_eq_tensor(b),
            CompareOp::Ne => a.f_ne_tensor(b),
            CompareOp::Lt => a.f_lt_tensor(b),
            CompareOp::Le => a.f_le_tensor(b),
            CompareOp::Gt => a.f_gt_tensor(b),
            CompareOp::Ge => a.f_ge_tensor(b),
        })
    }

    fn compare_scalar(&mut self, this: H, op: CompareOp, v: f64) -> R<H> {
        self.unary_with(&this, compare_name(op), |a| match op {
            CompareOp::Eq => a.f_eq(v),
            CompareOp::Ne => a.f_ne(v),
            CompareOp::Lt => a.f_lt(v),
            CompareOp::Le => a.f_le(v),
            CompareOp::Gt => a.f_gt(v),
            CompareOp::Ge => a.f_ge(v),
        })
    }

    fn matmul(&mut self, this: H, other: H) -> R<H> {
        self.binary_with(&this, &other, "matmul", |a, b| a.f_matmul(b))
    }

    fn where_self(&mut self, this: H, condition: H, other: H) -> R<H> {
        let op = "where";
        let (a, c, b) =
            (self.handles.tensor(&this, op)?, self.handles.tensor(&condition, op)?, self.handles.tensor(&other, op)?);
        let out = run(op, &[a, c, b], a.f_where_self(c, b))?;
        Ok(self.handles.push(out, op)?)
    }

    fn clamp(&mut self, this: H, min: Option<f64>, max: Option<f64>) -> R<H> {
        self.unary_with(&this, "clamp", |a| match (min, max) {
            (Some(lo), Some(hi)) => a.f_clamp(lo, hi),
            (Some(lo), None) => a.f_clamp_min(lo),
            (None, Some(hi)) => a.f_clamp_max(hi),
            (None, None) => Ok(a.shallow_clone()),
        })
    }

    fn reduce(&mut self, this: H, op: ReduceOp, dims: Vec<i64>, keepdim: bool) -> R<H> {
        self.unary_with(&this, reduce_name(op), |a| reduce(a, op, &dims, keepdim))
    }

    fn argmax(&mut self, this: H, dim: i64, keepdim: bool) -> R<H> {
        self.unary_with(&this, "argmax", |a| a.f_argmax(dim, keepdim))
    }

    fn argmin(&mut self, this: H, dim: i64, keepdim: bool) -> R<H> {
        self.unary_with(&this, "argmin", |a| a.f_argmin(dim, keepdim))
    }

    fn reshape(&mut self, this: H, shape: Vec<i64>) -> R<H> {
        self.unary_with(&this, "reshape", |a| a.f_reshape(&shape))
    }

    fn view(&mut self, this: H, shape: Vec<i64>) -> R<H> {
        self.unary_with(&this, "view", |a| a.f_view_(&shape))
    }

    fn permute(&mut self, this: H, dims: Vec<i64>) -> R<H> {
        self.unary_with(&this, "permute", |a| a.f_permute(&dims))
    }

    fn transpose(&mut self, this: H, d0: i64, d1: i64) -> R<H> {
        self.unary_with(&this, "transpose", |a| a.f_transpose(d0, d1))
    }

    fn squeeze(&mut self, this: H, dim: Option<i64>) -> R<H> {
        self.unary_with(&this, "squeeze", |a| match dim {
            Some(d) => a.f_squeeze_dim(d),
            None => a.f_squeeze(),
        })
    }

    fn unsqueeze(&mut self, this: H, dim: i64) -> R<H> {
        self.unary_with(&this, "unsqueeze", |a| a.f_unsqueeze(dim))
    }

    fn flatten(&mut self, this: H, start: i64, end: i64) -> R<H> {
        self.unary_with(&this, "flatten", |a| a.f_flatten(start, end))
    }

    fn chunk(&mut self, this: H, chunks: i64, dim: i64) -> R<Vec<H>> {
        let op = "chunk";
        let a = self.handles.tensor(&this, op)?;
        if chunks <= 0 {
            return Err(OpError::new(op, format!("chunks must be positive, got {chunks}")).into());
        }
        let size = a
            .size()
            .get(if dim < 0 { (a.dim() as i64 + dim).max(0) as usize } else { dim as usize })
            .copied()
            .unwrap_or(1);
        let chunks = chunks.min(size.max(1));
        let parts = a
            .f_chunk(chunks, dim)
            .map_err(|e| OpError::new(op, format!("input {:?}: {}", a.size(), torch_message(&e))))?;
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            out.push(self.handles.push(p, op)?);
        }
        Ok(out)
    }

    fn narrow(&mut self, this: H, dim: i64, start: i64, length: i64) -> R<H> {
        self.unary_with(&this, "narrow", |a| a.f_narrow(dim, start, length))
    }

    fn index_select(&mut self, this: H, dim: i64, index: H) -> R<H> {
        self.binary_with(&this, &index, "index_select", |a, i| a.f_index_select(dim, i))
    }

    fn roll(&mut self, this: H, shifts: i64, dim: i64) -> R<H> {
        self.unary_with(&this, "roll", |a| a.f_roll([shifts], [dim]))
    }

    fn softmax(&mut self, this: H, dim: i64) -> R<H> {
        self.unary_with(&this, "softmax", |a| a.f_softmax(dim, None::<Kind>))
    }

    fn log_softmax(&mut self, this: H, dim: i64) -> R<H> {
        self.unary_with(&this, "log_softmax", |a| a.f_log_softmax(dim, None::<Kind>))
    }

    fn dropout(&mut self, this: H, p: f64) -> R<H> {
        let training = self.training;
        let a = self.handles.tensor(&this, "dropout")?;
        let out = layers::dropout(a, p, training)?;
        Ok(self.handles.push(out, "dropout")?)
    }

    fn drop(&mut self, rep: H) -> R<()> {
        drop(self.handles.take(rep)?);
        Ok(())
    }
}

impl tensor::Host for TensorView<'_> {
    fn cross_entropy(&mut self, input: H, target: H, r: Reduction, label_smoothing: f64) -> R<H> {
        self.binary_with(&input, &target, "cross_entropy", |x, y| {
            x.f_cross_entropy_loss(y, None::<Tensor>, reduction(r), -100, label_smoothing)
        })
    }

    fn nll_loss(&mut self, input: H, target: H, r: Reduction) -> R<H> {
        self.binary_with(&input, &target, "nll_loss", |x, y| x.f_nll_loss(y, None::<Tensor>, reduction(r), -100))
    }

    fn mse_loss(&mut self, input: H, target: H, r: Reduction) -> R<H> {
        self.binary_with(&input, &target, "mse_loss", |x, y| x.f_mse_loss(y, reduction(r)))
    }

    fn l1_loss(&mut self, input: H, target: H, r: Reduction) -> R<H> {
        self.binary_with(&input, &target, "l1_loss", |x, y| x.f_l1_loss(y, reduction(r)))
    }

    fn binary_cross_entropy_with_logits(&mut self, input: H, target: H, r: Reduction) -> R<H> {
        self.binary_with(&input, &target, "binary_cross_entropy_with_logits", |x, y| {
            x.f_binary_cross_entropy_with_logits(y, None::<Tensor>, None::<Tensor>, reduction(r))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths_stay_inside_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.npy"), b"x").unwrap();
        assert!(read_data_file(Some(dir.path()), false, "a.npy", 1 << 20).is_ok());
        assert!(read_data_file(Some(dir.path()), false, "/data/a.npy", 1 << 20).is_ok());
        assert!(read_data_file(Some(dir.path()), false, "../etc/passwd", 1 << 20).is_err());
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        assert!(
            read_data_file(Some(dir.path()), false, "link", 1 << 20).is_err(),
            "a symlink out of the grant is not followed"
        );
        assert!(read_data_file(Some(dir.path()), false, "a.npy", 0).unwrap_err().detail.contains("budget"));
        assert!(read_data_file(None, false, "a.npy", 1 << 20).unwrap_err().detail.contains("no data directory"));
        // A data directory the manifest did not ask for: the message names the manifest line.
        assert!(read_data_file(None, true, "a.npy", 1 << 20)
            .unwrap_err()
            .detail
            .contains("capabilities = [\"data-read\"]"));
    }

    #[test]
    fn shapes_are_bounded() {
        assert!(check_shape("zeros", &[2, 3]).is_ok());
        assert!(check_shape("zeros", &[-1]).is_err());
        assert!(check_shape("zeros", &[1 << 20, 1 << 20]).is_err());
    }
}
