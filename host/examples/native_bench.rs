//! The floor for `make bench`: Lightning's parity models trained directly against `tch` in
//! Rust — no WebAssembly, no trainer — with the same data, initialisation (torch.nn's
//! `reset_parameters`, drawn in torch's order), optimizer (torch.optim.Adam's update, op for
//! op: libtorch's C++ Adam rounds differently) and generator draws (a DataLoader base seed
//! per epoch) as lthost's parity plugins, so the losses agree. Gradients are handled as
//! lthost handles them: `run_backward` returns fresh gradients each step and the optimizer
//! consumes them (torch's `zero_grad(set_to_none=True)`), nothing accumulates into `.grad`;
//! the loss is read once per epoch, after its last step.
//! Prints one JSON object: seconds per epoch, the last step's loss, start-up.
//!
//!     cargo run --release -p lthost --example native_bench -- parity-rnn 4 1 [seed]

use std::time::Instant;

use anyhow::{bail, Result};
use lthost::engine::init;
use tch::nn;
use tch::{Device, Kind, Reduction, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

/// torch.nn.Linear / Conv2d's reset_parameters: kaiming_uniform_(a=sqrt(5)) on the weight
/// of `shape`, then the bias uniform in ±1/sqrt(fan_in).
/// Draws come from lthost's `engine::init` (torch.nn.init's, bound for bound).
fn weight_and_bias(vs: &nn::Path, name: &str, shape: &[i64]) -> Result<(Tensor, Tensor)> {
    let fan_in: i64 = shape[1..].iter().product();
    let w = vs.var_copy(&format!("{name}_weight"), &e(init::kaiming_uniform_sqrt5(shape, Device::Cpu))?);
    let b = vs
        .var_copy(&format!("{name}_bias"), &e(init::uniform(&[shape[0]], 1.0 / (fan_in as f64).sqrt(), Device::Cpu))?);
    Ok((w, b))
}

/// The DataLoader iterator's base-seed draw (`torch.empty((), dtype=torch.int64).random_()`).
fn draw_base_seed() {
    let mut s = Tensor::empty([], (Kind::Int64, Device::Cpu));
    let _ = s.random_();
}

/// torch.optim.Adam (betas 0.9/0.999, eps 1e-8, no weight decay), `_single_tensor_adam`.
struct Adam {
    lr: f64,
    step: f64,
    params: Vec<Tensor>,
    state: Vec<(Tensor, Tensor)>,
}

impl Adam {
    fn new(vs: &nn::VarStore, lr: f64) -> Adam {
        Adam::with_params(vs.trainable_variables(), lr)
    }

    fn with_params(params: Vec<Tensor>, lr: f64) -> Adam {
        let state = params.iter().map(|p| (p.zeros_like(), p.zeros_like())).collect();
        Adam { lr, step: 0.0, params, state }
    }

    /// Back-propagates `loss` into fresh gradients of the parameters (none accumulated).
    fn backward(&self, loss: &Tensor) -> Vec<Tensor> {
        Tensor::run_backward(&[loss], &self.params, false, false)
    }

    fn step(&mut self, grads: &[Tensor]) {
        let _g = tch::no_grad_guard();
        let (b1, b2) = (0.9f64, 0.999f64);
        self.step += 1.0;
        let step_size = self.lr / (1.0 - b1.powf(self.step));
        let bc2_sqrt = (1.0 - b2.powf(self.step)).sqrt();
        for ((p, (m, v)), g) in self.params.iter_mut().zip(&mut self.state).zip(grads) {
            let _ = m.lerp_(g, 1.0 - b1);
            let _ = v.g_mul_scalar_(b2);
            let _ = v.addcmul_(&(g * (1.0 - b2)), g);
            let mut denom = v.sqrt() / bc2_sqrt;
            let _ = denom.g_add_scalar_(1e-8);
            let _ = p.addcdiv_(&(&*m * -step_size), &denom);
        }
    }
}

struct Run {
    epoch_seconds: Vec<f64>,
    last_loss: f64,
    first_step: Option<f64>,
}

/// The training loop every workload shares: per epoch, the DataLoader's draws
/// (`start_epoch`, which returns the number of batches), then per batch the loss
/// (`loss_of`), backward and the optimizer step; timed per epoch, the loss read at its end.
// Not inlined, so callgrind can count its instructions alone (`--toggle-collect=native_bench::train*`).
#[inline(never)]
fn train(
    epochs: usize,
    opt: &mut Adam,
    mut start_epoch: impl FnMut() -> Result<i64>,
    mut loss_of: impl FnMut(i64) -> Result<Tensor>,
) -> Result<Run> {
    let mut run = Run { epoch_seconds: Vec::new(), last_loss: f64::NAN, first_step: None };
    for _ in 0..epochs {
        let t0 = Instant::now();
        draw_base_seed();
        let mut last = None;
        for i in 0..start_epoch()? {
            run.first_step.get_or_insert_with(|| {
                lthost::startup::since_process_start().map(|d| d.as_secs_f64()).unwrap_or(f64::NAN)
            });
            let loss = loss_of(i)?;
            let grads = opt.backward(&loss);
            opt.step(&grads);
            last = Some(loss);
        }
        if let Some(loss) = last {
            run.last_loss = loss.double_value(&[]);
        }
        run.epoch_seconds.push(t0.elapsed().as_secs_f64());
    }
    Ok(run)
}

fn parity_rnn(epochs: usize) -> Result<Run> {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let stdv = 1.0 / 20f64.sqrt();
    let flat: Vec<Tensor> = [
        ("weight_ih_l0", vec![80, 10]),
        ("weight_hh_l0", vec![80, 20]),
        ("bias_ih_l0", vec![80]),
        ("bias_hh_l0", vec![80]),
    ]
    .iter()
    .map(|(n, s)| Ok(root.var_copy(&format!("rnn_{n}"), &e(init::uniform(s, stdv, Device::Cpu))?)))
    .collect::<Result<_>>()?;
    let (w, b) = weight_and_bias(&root, "linear_out", &[5, 20])?;
    let x = Tensor::randn([300, 100, 10], CPU);
    let halves = x.chunk(2, -1);
    let y = &halves[0] + halves[1].roll([1], [-1]);
    let mut opt = Adam::new(&vs, 0.02);
    train(
        epochs,
        &mut opt,
        || Ok(10),
        |i| {
            let (xb, yb) = (x.narrow(0, i * 30, 30), y.narrow(0, i * 30, 30));
            let h = Tensor::zeros([1, 30, 20], CPU);
            let (seq, _, _) = xb.lstm(&[h.shallow_clone(), h], &flat, true, 1, 0.0, true, false, true);
            Ok(seq.linear(&w, Some(&b)).mse_loss(&yb, Reduction::Mean))
        },
    )
}

fn parity_mlp(epochs: usize) -> Result<Run> {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let (w1, b1) = weight_and_bias(&root, "c_d1", &[128, 784])?;
    let bn_w = root.var_copy("c_d1_bn_weight", &Tensor::ones([128], CPU));
    let bn_b = root.var_copy("c_d1_bn_bias", &Tensor::zeros([128], CPU));
    let (mean, var) = (Tensor::zeros([128], CPU), Tensor::ones([128], CPU));
    let (w2, b2) = weight_and_bias(&root, "c_d2", &[10, 128])?;
    let x = Tensor::rand([640, 1, 28, 28], CPU);
    let y = Tensor::randint_low(0, 10, [640], (Kind::Int64, Device::Cpu));
    let mut opt = Adam::new(&vs, 0.02);
    train(
        epochs,
        &mut opt,
        || Ok(5),
        |i| {
            let xb = x.narrow(0, i * 128, 128).view([128, -1]);
            let h = xb.linear(&w1, Some(&b1)).tanh();
            let h = h.batch_norm(Some(&bn_w), Some(&bn_b), Some(&mean), Some(&var), true, 0.1, 1e-5, false);
            let logits = h.dropout(0.3, true).linear(&w2, Some(&b2));
            Ok(logits.cross_entropy_loss::<Tensor>(&y.narrow(0, i * 128, 128), None, Reduction::Mean, -100, 0.0))
        },
    )
}

/// An IDX file of unsigned bytes (the MNIST format): its dims and data.
fn read_idx(path: &std::path::Path) -> Result<(Vec<i64>, Vec<u8>)> {
    let raw = std::fs::read(path)?;
    if raw.len() < 4 || raw[2] != 0x08 {
        bail!("{}: not an unsigned-byte IDX file", path.display());
    }
    let nd = raw[3] as usize;
    let dims: Vec<i64> = (0..nd)
        .map(|i| u32::from_be_bytes([raw[4 + 4 * i], raw[5 + 4 * i], raw[6 + 4 * i], raw[7 + 4 * i]]) as i64)
        .collect();
    Ok((dims, raw[4 + 4 * nd..].to_vec()))
}

/// plugins/mnist-cnn: conv(1→16, 3×3) → ReLU → max-pool 2 → conv(16→32, 3×3) → ReLU →
/// max-pool 2 → Linear(800→10), Adam 0.001, batch 64, shuffled (RandomSampler's draws), on
/// the IDX files in $BENCH_MNIST_DIR (the last n/5 images held out, as the plugin does).
fn mnist_cnn(epochs: usize) -> Result<Run> {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let (w1, b1) = weight_and_bias(&root, "conv1", &[16, 1, 3, 3])?;
    let (w2, b2) = weight_and_bias(&root, "conv2", &[32, 16, 3, 3])?;
    let (wf, bf) = weight_and_bias(&root, "fc", &[10, 800])?;
    let dir = std::path::PathBuf::from(
        std::env::var("BENCH_MNIST_DIR")
            .map_err(|_| anyhow::anyhow!("mnist-cnn reads its IDX files from $BENCH_MNIST_DIR"))?,
    );
    let (dims, pixels) = read_idx(&dir.join("train-images-idx3-ubyte"))?;
    let (_, labels) = read_idx(&dir.join("train-labels-idx1-ubyte"))?;
    let n = dims[0];
    let m = Tensor::from_slice(&[0.1307f32]).view([1, 1, 1, 1]);
    let s = Tensor::from_slice(&[0.3081f32]).view([1, 1, 1, 1]);
    let x = (Tensor::from_slice(&pixels).to_kind(Kind::Float).view([n, 784]) / 255.0).view([n, 1, 28, 28]);
    let x = (x - &m) / &s;
    let y = Tensor::from_slice(&labels).to_kind(Kind::Int64);
    let train_rows = n - (n / 5).min(5000);
    let mut opt = Adam::new(&vs, 0.001);
    let order = std::cell::RefCell::new(Tensor::empty([0], (Kind::Int64, Device::Cpu)));
    let start_epoch = || {
        // RandomSampler: a seed from the run's generator, then randperm with a generator seeded by it.
        let seed = lthost::engine::torch_ext::draw_seed()?;
        *order.borrow_mut() = Tensor::from_slice(&lthost::engine::torch_ext::randperm_seeded(train_rows, seed)?);
        Ok((train_rows + 63) / 64)
    };
    train(epochs, &mut opt, start_epoch, |i| {
        let start = i * 64;
        let idx = order.borrow().narrow(0, start, 64.min(train_rows - start));
        let (xb, yb) = (x.index_select(0, &idx), y.index_select(0, &idx));
        let h = xb.conv2d(&w1, Some(&b1), [1, 1], [0, 0], [1, 1], 1).relu().max_pool2d(
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            false,
        );
        let h = h.conv2d(&w2, Some(&b2), [1, 1], [0, 0], [1, 1], 1).relu().max_pool2d(
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            false,
        );
        let bsz = h.size()[0];
        Ok(h.view([bsz, -1]).linear(&wf, Some(&bf)).cross_entropy_loss::<Tensor>(&yb, None, Reduction::Mean, -100, 0.0))
    })
}

/// plugins/tiny-transformer, on lthost's engine layers (torch.nn's initialisation and
/// forward, called directly — no WebAssembly, no trainer): Embedding(16, 32), one post-norm
/// encoder block (MultiheadAttention 4 heads, LayerNorm, a 32→64→32 feed-forward), mean
/// pooling, Linear(32→2); Adam 1e-3, batch 32, 512 random sequences of 24 tokens.
fn e<T>(r: Result<T, lthost::error::OpError>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e}"))
}

fn tiny_transformer(epochs: usize) -> Result<Run> {
    use lthost::engine::layers::{Embedding, LayerNorm, Linear, MultiheadAttention};
    use lthost::engine::params::ParamStore;
    let mut ps = ParamStore::default();
    let dev = Device::Cpu;
    let emb = e(Embedding::new(&mut ps, "emb", 16, 32, dev))?;
    let attn = e(MultiheadAttention::new(&mut ps, "attn", 32, 4, 0.0, true, true, dev))?;
    let ln1 = e(LayerNorm::new(&mut ps, "ln1", &[32], 1e-5, true, dev))?;
    let ff1 = e(Linear::new(&mut ps, "ff1", 32, 64, true, dev))?;
    let ff2 = e(Linear::new(&mut ps, "ff2", 64, 32, true, dev))?;
    let ln2 = e(LayerNorm::new(&mut ps, "ln2", &[32], 1e-5, true, dev))?;
    let head = e(Linear::new(&mut ps, "head", 32, 2, true, dev))?;
    let x = Tensor::randint_low(0, 16, [512, 24], (Kind::Int64, Device::Cpu));
    let y = x.sum_dim_intlist(1, false, None::<Kind>).remainder(2.0).to_kind(Kind::Int64);
    let mut opt = Adam::with_params(ps.parameters(), 0.001);
    train(
        epochs,
        &mut opt,
        || Ok(16),
        |i| {
            let (xb, yb) = (x.narrow(0, i * 32, 32), y.narrow(0, i * 32, 32));
            let h = e(emb.forward(&xb))?;
            let (a, _) = e(attn.forward(&h, &h, &h, None, true, true))?;
            let h = e(ln1.forward(&(&h + a)))?;
            let f = e(ff2.forward(&e(ff1.forward(&h))?.relu()))?;
            let h = e(ln2.forward(&(&h + f)))?;
            let logits = e(head.forward(&h.mean_dim(Some([1i64].as_slice()), false, None::<Kind>)))?;
            Ok(logits.cross_entropy_loss::<Tensor>(&yb, None, Reduction::Mean, -100, 0.0))
        },
    )
}

fn main() -> Result<()> {
    // The same heap settings as lthost (a baseline gets the same care).
    lthost::engine::heap::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let (workload, epochs, threads) = match args.as_slice() {
        [_, w, e, t, ..] => (w.as_str(), e.parse::<usize>()?, t.parse::<i32>()?),
        _ => bail!("usage: native_bench <parity-rnn|parity-mlp|mnist-cnn|tiny-transformer> <epochs> <threads> [seed]"),
    };
    let seed: i64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(42);
    tch::set_num_threads(threads);
    tch::manual_seed(seed);
    let run = match workload {
        "parity-rnn" => parity_rnn(epochs)?,
        "parity-mlp" => parity_mlp(epochs)?,
        "mnist-cnn" => mnist_cnn(epochs)?,
        "tiny-transformer" => tiny_transformer(epochs)?,
        other => bail!("unknown workload {other}"),
    };
    println!(
        "{}",
        serde_json::json!({"epoch_seconds": run.epoch_seconds, "last_loss": run.last_loss, "first_step": run.first_step})
    );
    Ok(())
}
