//! Probes the generic ATen surface from inside a plugin and reports each check on stderr as
//! `probe <name>: <outcome>` (tests/e2e/aten_surface.rs reads them): op errors caught as
//! values, grad mode, `.grad` read and write, `backward` with a gradient and retain_graph,
//! every operator named in the `denied` hyper-parameter refused, and the tensor budget
//! (`plugin.tensor_memory_limit_mb`, 64 MiB in the test) holding for an op whose output
//! alone exceeds it, a long view chain, and an in-place resize, each caught and survived.
//! With `init_check`, torch.nn.init's draws; with `layer_check`, the SDK's layers (layers.rs).

use lthost_sdk::prelude::*;

mod layers;

fn report(name: &str, outcome: impl std::fmt::Display) {
    eprintln!("probe {name}: {outcome}");
}

fn err_text<T>(r: Result<T, TorchError>) -> String {
    match r {
        Ok(_) => "no error".to_string(),
        Err(e) => format!("error: {e}"),
    }
}

fn probe_errors() {
    let a = aten::ones(&[2, 3], None, None, None, None);
    report("mm-shapes", err_text(aten::f_mm(&a, &a)));
    report("after-error", aten::mm(&a, &aten::t(&a)).shape().iter().map(i64::to_string).collect::<Vec<_>>().join("x"));
    report("unknown-op", err_text(aten::op("aten::no_such_op")));
    // The flat call, misused as only a hand-written caller can: errors, not traps.
    use lthost_sdk::bindings::lt::plugin::aten::{self as wit, Arg};
    let flat = |name: &str, n: u8, args: [Arg<'_>; 4]| {
        let op = wit::index(name).map_err(TorchError)?;
        wit::call_flat(op, n, &args[0], &args[1], &args[2], &args[3]).map_err(TorchError)
    };
    let none = || [Arg::Tensor(&a), Arg::None, Arg::None, Arg::None];
    report("flat-too-many", err_text(flat("aten::neg", 9, none())));
    report(
        "flat-several-results",
        err_text(flat("aten::max.dim", 2, [Arg::Tensor(&a), Arg::Int(0), Arg::None, Arg::None])),
    );
    report(
        "flat-wrong-type",
        err_text(flat("aten::add.Tensor", 3, [Arg::Tensor(&a), Arg::Str("x".into()), Arg::None, Arg::None])),
    );
    report("flat-missing", err_text(flat("aten::mm", 1, none())));
    // Given only tensors, the host calls the kernel unboxed where the schema allows (addmm's
    // scalars at their defaults) and otherwise errs as any call; one name, one index.
    report("index-denied", err_text(wit::index("aten::from_file").map_err(TorchError)));
    report("index-same", wit::index("aten::neg") == wit::index("aten::neg"));
    let (c, b) = (aten::ones(&[2, 2], None, None, None, None), aten::ones(&[3, 2], None, None, None, None));
    let tensors = |name: &str, ts: &[&Tensor]| {
        let op = wit::index(name).map_err(TorchError)?;
        let at = |k: usize| ts.get(k).map_or(Arg::None, |t| Arg::Tensor(t));
        wit::call_flat(op, ts.len() as u8, &at(0), &at(1), &at(2), &at(3)).map_err(TorchError)
    };
    report("binary-wrong-type", err_text(tensors("aten::pow.Tensor_Scalar", &[&a, &a])));
    match tensors("aten::addmm", &[&c, &a, &b]) {
        Ok(t) => report("ternary-addmm", format!("{:?}", t.to_f32_list())),
        Err(e) => report("ternary-addmm", format!("error: {e}")),
    }
}

fn probe_grad() {
    let x = aten::ones(&[3], None, None, None, None);
    x.set_requires_grad(true).expect("a leaf");
    let y = aten::sum(&aten::mul(&x, &x), None);
    report("grad-before", x.grad().is_none());
    y.backward(None, true, false).expect("backward");
    report("grad-once", format!("{:?}", x.grad().expect("a grad").to_f32_list()));
    y.backward(None, false, false).expect("retained");
    report("grad-twice", format!("{:?}", x.grad().expect("a grad").to_f32_list()));
    report("graph-freed", err_text(y.backward(None, false, false).map_err(TorchError)));
    x.set_grad(None).expect("clear");
    report("grad-cleared", x.grad().is_none());
    let v = aten::mul_scalar(&x, 3.0);
    let g = Tensor::from_slice_f32(&[1.0, 0.5, 0.25], &[3]);
    v.backward(Some(&g), false, false).expect("backward with a gradient");
    report("grad-weighted", format!("{:?}", x.grad().expect("a grad").to_f32_list()));
    report(
        "grad-wrong-shape",
        err_text(x.set_grad(Some(&aten::ones(&[4], None, None, None, None))).map_err(TorchError)),
    );
    let tracked = aten::no_grad(|| aten::mul_scalar(&x, 2.0).requires_grad());
    report("no-grad", format!("tracked={tracked} enabled-after={}", aten::is_grad_enabled()));
    let (inference, grad_inside) = aten::inference_mode(|| {
        let y = aten::mul_scalar(&x, 2.0);
        (aten::is_inference(&y), y.requires_grad())
    });
    let after = aten::mul_scalar(&x, 2.0);
    report(
        "inference-mode",
        format!(
            "inference={inference} tracked={grad_inside} after: inference={} tracked={}",
            aten::is_inference(&after),
            after.requires_grad()
        ),
    );
    let nonleaf = aten::mul_scalar(&x, 2.0);
    report("requires-grad-nonleaf", err_text(nonleaf.set_requires_grad(false).map_err(TorchError)));
}

fn probe_denied(names: &[String]) {
    let refused = names
        .iter()
        .filter(|n| matches!(aten::op(&format!("aten::{n}")), Err(e) if e.0.contains("not allowed")))
        .count();
    report("denied", format!("{refused} of {} refused", names.len()));
    report("denied-example", err_text(aten::op("aten::from_file")));
}

fn probe_budget() {
    // 256 MiB of float32 in one output: over a 64 MiB budget by itself.
    report("budget-output", err_text(aten::f_zeros(&[64 << 20], None, None, None, None)));
    // 10 000 views of one 16 MiB tensor share its storage: no new memory.
    let base = aten::zeros(&[4 << 20], None, None, None, None);
    let mut v = aten::view(&base, &[1024, 4096]);
    for i in 0..10_000 {
        v = if i % 2 == 0 { aten::transpose(&v, 0, 1) } else { aten::slice(&v, 0, Some(0), None, 1) };
    }
    report("view-chain", format!("ok {}", v.numel()));
    // Materialising a broadcast of it is new memory: 64 times over.
    let wide = aten::expand(&aten::view(&base, &[1, 4 << 20]), &[64, 4 << 20], false);
    report("budget-materialise", err_text(aten::f_contiguous(&wide, 0)));
    // In-place growth: resize_ to 1 GiB.
    let grow = aten::zeros(&[16], None, None, None, None);
    report("budget-resize", err_text(aten::f_resize_(&grow, &[256 << 20], None)));
    report("after-budget", format!("{:?}", grow.shape()));
    // Autograd's saved tensors are charged too: a chain of products keeps every
    // intermediate (4 MiB each) for the backward pass until the budget refuses one.
    let x = aten::ones(&[1 << 20], None, None, None, None);
    x.set_requires_grad(true).expect("a leaf");
    let chained = (|| {
        let mut y = aten::f_mul_scalar(&x, 1.0)?;
        for _ in 0..64 {
            y = aten::f_mul(&y, &x)?;
        }
        Ok::<Tensor, TorchError>(y)
    })();
    report("budget-autograd", err_text(chained));
}

/// Host-call cost from a Rust guest, for `make bench`: `rounds` rounds, each `calls` calls of
/// a tiny op (neg of a one-element tensor) through the typed WIT method, then as many through
/// the generic operator call (resolved once), alternating; one line per round. `only`
/// ("typed" or "generic") times one path alone, for a profiler.
fn call_cost(rounds: u64, calls: u64, only: Option<&str>) {
    let x = aten::ones(&[1], None, None, None, None);
    let _ = aten::neg(&x); // resolve once, outside the timing
    for round in 0..rounds {
        let t = std::time::Instant::now();
        for _ in 0..calls * u64::from(only != Some("generic")) {
            drop(x.unary(lthost_sdk::UnaryOp::Neg));
        }
        let typed = t.elapsed().as_nanos() as f64 / calls as f64;
        let t = std::time::Instant::now();
        for _ in 0..calls * u64::from(only != Some("typed")) {
            drop(aten::neg(&x));
        }
        let generic = t.elapsed().as_nanos() as f64 / calls as f64;
        report("call-cost", format!("round {round} typed {typed:.1} ns generic {generic:.1} ns"));
    }
}

/// torch.nn.init from the SDK, in a fixed order from the run's seed, for
/// tests/reference/init_reference.py's values: one `probe init <name>: [..]` line each.
fn init_check() {
    use init::{Mode, Nonlinearity};
    let fresh = || aten::empty(&[16, 8], Some(Dtype::Float32), None, None, None, None);
    let steps: Vec<(&str, Box<dyn Fn(&Tensor)>)> = vec![
        ("uniform_", Box::new(|t| init::uniform_(t, -0.5, 0.5))),
        ("normal_", Box::new(|t| init::normal_(t, 0.1, 2.0))),
        ("trunc_normal_", Box::new(|t| init::trunc_normal_(t, 0.0, 1.0, -2.0, 2.0))),
        ("trunc_normal_tail", Box::new(|t| init::trunc_normal_(t, 0.0, 1.0, 1.5, 3.0))),
        ("xavier_uniform_", Box::new(|t| init::xavier_uniform_(t, 1.5))),
        ("xavier_normal_", Box::new(|t| init::xavier_normal_(t, 0.5))),
        ("kaiming_uniform_", Box::new(|t| init::kaiming_uniform_(t, 0.0, Mode::FanIn, Nonlinearity::Relu))),
        ("kaiming_normal_", Box::new(|t| init::kaiming_normal_(t, 0.0, Mode::FanOut, Nonlinearity::Relu))),
        (
            "kaiming_uniform_leaky",
            Box::new(|t| init::kaiming_uniform_(t, 0.1, Mode::FanIn, Nonlinearity::LeakyRelu(0.1))),
        ),
        ("orthogonal_", Box::new(|t| init::orthogonal_(t, 1.0))),
        ("constant_", Box::new(|t| init::constant_(t, 0.3))),
        ("ones_", Box::new(init::ones_)),
        ("zeros_", Box::new(init::zeros_)),
    ];
    for (name, f) in steps {
        let t = fresh();
        f(&t);
        report(&format!("init {name}"), format!("{:?}", t.to_f32_list()));
    }
}

struct Probe {
    w: Tensor,
    /// The SDK's layers, checked in the first training step (`layer_check`).
    layers: Option<layers::LayerCheck>,
}

impl LightningModule for Probe {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"denied": [], "init_check": false, "layer_check": false})
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        if hp.bool_or("init_check", false) {
            init_check();
        }
        let layers = hp.bool_or("layer_check", false).then(layers::LayerCheck::new);
        if let Some(c) = hp.get("call_cost") {
            call_cost(c["rounds"].as_u64().unwrap_or(10), c["calls"].as_u64().unwrap_or(20_000), c["only"].as_str());
        }
        probe_errors();
        probe_grad();
        let denied: Vec<String> = hp
            .get("denied")
            .and_then(|d| d.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        probe_denied(&denied);
        probe_budget();
        let w = nn::register_parameter("w", &aten::zeros(&[1], None, None, None, None));
        Ok(Probe { w, layers })
    }

    fn configure_optimizers(&self, _hp: &Hparams) -> Optimization {
        Optimizer::sgd(0.1).into()
    }

    fn training_step(&mut self, batch: Batch, batch_idx: u64) -> Option<Tensor> {
        if let (Some(check), 0) = (&self.layers, batch_idx) {
            check.run();
        }
        let loss = aten::mean(&aten::square(&aten::sub(&batch[0], &self.w, 1)), None);
        Some(loss)
    }
}

struct Data;

impl DataModule for Data {
    fn setup(_stage: Stage, _hp: &Hparams) -> Result<Self, String> {
        Ok(Data)
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        Some(dataset(vec![Tensor::from_slice_f32(&[1.0, 2.0, 3.0, 4.0], &[4, 1])], 2, false))
    }
}

export_plugin!(Probe, Data);
