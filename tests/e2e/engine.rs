//! The engine against PyTorch: every layer's initial weights (same seed, same construction
//! order), forward passes, and several steps of each optimizer, as torch computes them
//! (tests/reference/engine_reference.py, run by `make test`).

use lthost::engine::layers::{
    self, BatchNorm, Conv2d, Conv2dSpec, Embedding, LayerNorm, Linear, Lstm, LstmSpec, MultiheadAttention,
};
use lthost::engine::optim::{
    AdagradConfig, AdamConfig, Algorithm, GroupSpec, OptimizerConfig, RmspropConfig, SgdConfig,
};
use lthost::engine::params::ParamStore;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::common::repo_root;

const TOLERANCE: f64 = 1e-6;

fn reference() -> Value {
    let path = repo_root().join("tests/reference/engine.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn tensor(v: &Value, kind: Kind) -> Tensor {
    let shape: Vec<i64> = v["shape"].as_array().expect("shape").iter().map(|d| d.as_i64().expect("dim")).collect();
    let values: Vec<f64> = v["values"].as_array().expect("values").iter().map(|x| x.as_f64().expect("value")).collect();
    Tensor::from_slice(&values).reshape(&shape).to_kind(kind)
}

fn assert_close(name: &str, got: &Tensor, want: &Value) {
    let want = tensor(want, Kind::Double);
    assert_eq!(got.size(), want.size(), "{name}: shape");
    let diff = (got.to_kind(Kind::Double) - &want).abs().max().double_value(&[]);
    assert!(diff <= TOLERANCE, "{name}: max abs difference {diff} from torch");
}

#[test]
fn layers_initialise_and_run_like_torch_nn() {
    let _rng = crate::common::global_rng();
    let r = reference();
    let _threads = tch::set_num_threads(1);
    let (ps, l) = build_layers();
    let (conv, ln, emb, lstm, mha) = (&l.conv, &l.ln, &l.emb, &l.lstm, &l.mha);
    let init = r["init"].as_object().expect("init");
    assert_eq!(ps.entries().len(), init.len(), "same state dict entries");
    for e in ps.entries() {
        assert_close(&format!("init {}", e.name), &e.tensor, &init[&e.name]);
    }

    let inputs = &r["inputs"];
    let fwd = &r["forward"];
    let _no_grad = tch::no_grad_guard();
    assert_close("conv forward", &conv.forward(&tensor(&inputs["conv"], Kind::Float)).expect("conv"), &fwd["conv"]);
    assert_close("layer_norm forward", &ln.forward(&tensor(&inputs["ln"], Kind::Float)).expect("ln"), &fwd["ln"]);
    assert_close("embedding forward", &emb.forward(&tensor(&inputs["emb"], Kind::Int64)).expect("emb"), &fwd["emb"]);
    let (out, h, _c) = lstm.forward(&tensor(&inputs["lstm"], Kind::Float), None, false).expect("lstm");
    assert_close("lstm output", &out, &fwd["lstm"]);
    assert_close("lstm h_n", &h, &fwd["lstm_h"]);
    let q = tensor(&inputs["mha"], Kind::Float);
    let (o, w) = mha.forward(&q, &q, &q, None, true, false).expect("mha");
    assert_close("mha output", &o, &fwd["mha"]);
    assert_close("mha weights", &w.expect("weights"), &fwd["mha_weights"]);
    let (o_fast, none) = mha.forward(&q, &q, &q, None, false, false).expect("mha");
    assert!(none.is_none());
    assert_close("mha output (fused path)", &o_fast, &fwd["mha_fast"]);
}

/// The layers engine_reference.py makes, in its order and with its seed.
struct Layers {
    linear: Linear,
    linear_nobias: Linear,
    conv: Conv2d,
    bn: BatchNorm,
    ln: LayerNorm,
    emb: Embedding,
    lstm: Lstm,
    mha: MultiheadAttention,
}

fn build_layers() -> (ParamStore, Layers) {
    tch::manual_seed(0);
    let dev = Device::Cpu;
    let mut ps = ParamStore::default();
    let linear = Linear::new(&mut ps, "linear", 5, 3, true, dev).expect("linear");
    let linear_nobias = Linear::new(&mut ps, "linear_nobias", 4, 2, false, dev).expect("linear");
    let spec = Conv2dSpec {
        in_channels: 2,
        out_channels: 4,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: true,
    };
    let conv = Conv2d::new(&mut ps, "conv", &spec, dev).expect("conv");
    let bn = BatchNorm::new(&mut ps, "bn", 3, 1e-5, 0.1, true, dev).expect("bn");
    let ln = LayerNorm::new(&mut ps, "ln", &[4], 1e-5, true, dev).expect("ln");
    let emb = Embedding::new(&mut ps, "emb", 6, 3, dev).expect("emb");
    let lspec =
        LstmSpec { input: 3, hidden: 4, layers: 2, bias: true, batch_first: true, dropout: 0.0, bidirectional: true };
    let lstm = Lstm::new(&mut ps, "lstm", &lspec, dev).expect("lstm");
    let mha = MultiheadAttention::new(&mut ps, "mha", 8, 2, 0.0, true, true, dev).expect("mha");
    (ps, Layers { linear, linear_nobias, conv, bn, ln, emb, lstm, mha })
}

/// Input and parameter gradients through every layer equal torch's (engine_reference.py's
/// `layer_grads`): Linear with and without bias, Conv2d, LayerNorm, BatchNorm in training
/// (and its running statistics after it) and in eval, Embedding, a two-layer bidirectional
/// LSTM from an initial state, multi-head attention under a causal mask, BatchNorm2d in
/// training (and its running statistics), max- and average-pooling with stride and padding,
/// and dropout: its mask, drawn from the same generator state, is torch's exactly.
#[test]
fn layers_backpropagate_like_torch_nn() {
    let _rng = crate::common::global_rng();
    let r = reference();
    let _threads = tch::set_num_threads(1);
    let (ps, l) = build_layers();
    let g = &r["grads"];
    let mut ps2d = ParamStore::default();
    let bn2d = BatchNorm::new(&mut ps2d, "bn2d", 3, 1e-5, 0.1, true, Device::Cpu).expect("bn2d");
    // `prefix`: where the case's parameters live ("" for a function, which has none).
    let check = |case: &str, prefix: &str, xs: &[Tensor], ys: &[Tensor]| {
        let c = &g[case];
        let ps = if prefix == "bn2d" { &ps2d } else { &ps };
        for p in ps.parameters() {
            let mut p = p.shallow_clone();
            p.zero_grad();
        }
        for (i, y) in ys.iter().enumerate() {
            assert_close(&format!("{case} output {i}"), y, &c["out"][i]);
        }
        let loss = ys
            .iter()
            .enumerate()
            .map(|(i, y)| (y * tensor(&c["g"][i], Kind::Float)).sum(Kind::Float))
            .reduce(|a, b| a + b)
            .expect("outputs");
        loss.backward();
        for (i, x) in xs.iter().enumerate() {
            if !c["input_grads"][i].is_null() {
                assert_close(&format!("{case} input {i} grad"), &x.grad(), &c["input_grads"][i]);
            }
        }
        let want = c["param_grads"].as_object().expect("param grads");
        assert_eq!(want.is_empty(), prefix.is_empty(), "{case}: parameters");
        for (name, grad) in want {
            let p = ps.get(&format!("{prefix}.{name}")).unwrap_or_else(|| panic!("{case}: no parameter {name}"));
            assert_close(&format!("{case} {name} grad"), &p.grad(), grad);
        }
    };
    let input = |case: &str, i: usize| tensor(&g[case]["inputs"][i], Kind::Float).set_requires_grad(true);
    for (case, layer) in [("linear", &l.linear), ("linear_nobias", &l.linear_nobias)] {
        let x = input(case, 0);
        let y = layer.forward(&x).expect("linear");
        check(case, case, std::slice::from_ref(&x), &[y]);
    }
    let x = input("conv", 0);
    let y = l.conv.forward(&x).expect("conv");
    check("conv", "conv", std::slice::from_ref(&x), &[y]);
    let x = input("ln", 0);
    let y = l.ln.forward(&x).expect("ln");
    check("ln", "ln", std::slice::from_ref(&x), &[y]);
    let x = input("bn_train", 0);
    let y = l.bn.forward(&x, true).expect("bn");
    check("bn_train", "bn", std::slice::from_ref(&x), &[y]);
    assert_close("bn running_mean", ps.get("bn.running_mean").expect("buffer"), &g["bn_train"]["running"]["mean"]);
    assert_close("bn running_var", ps.get("bn.running_var").expect("buffer"), &g["bn_train"]["running"]["var"]);
    let x = input("bn_eval", 0);
    let y = l.bn.forward(&x, false).expect("bn");
    check("bn_eval", "bn", std::slice::from_ref(&x), &[y]);
    let idx = tensor(&g["emb"]["inputs"][0], Kind::Int64);
    let y = l.emb.forward(&idx).expect("emb");
    check("emb", "emb", &[idx], &[y]);
    let (x, h0, c0) = (input("lstm", 0), input("lstm", 1), input("lstm", 2));
    let (y, h, c) = l.lstm.forward(&x, Some((&h0, &c0)), true).expect("lstm");
    check("lstm", "lstm", &[x, h0, c0], &[y, h, c]);
    let q = input("mha", 0);
    let mask = tensor(&g["mha"]["mask"], Kind::Bool);
    let (y, _) = l.mha.forward(&q, &q, &q, Some(&mask), true, true).expect("mha");
    check("mha", "mha", &[q], &[y]);
    let x = input("bn2d_train", 0);
    let y = bn2d.forward(&x, true).expect("bn2d");
    check("bn2d_train", "bn2d", std::slice::from_ref(&x), &[y]);
    assert_close("bn2d running_mean", &bn2d.running_mean, &g["bn2d_train"]["running"]["mean"]);
    assert_close("bn2d running_var", &bn2d.running_var, &g["bn2d_train"]["running"]["var"]);
    let x = input("max_pool2d", 0);
    let y = layers::max_pool2d(&x, [3, 2], [2, 2], [1, 1]).expect("max_pool2d");
    check("max_pool2d", "", std::slice::from_ref(&x), &[y]);
    let x = input("avg_pool2d", 0);
    let y = layers::avg_pool2d(&x, [3, 3], [2, 1], [1, 0]).expect("avg_pool2d");
    check("avg_pool2d", "", std::slice::from_ref(&x), &[y]);
    let x = input("dropout", 0);
    tch::manual_seed(7);
    let y = layers::dropout(&x, 0.3, true).expect("dropout");
    let want = tensor(&g["dropout"]["out"][0], Kind::Float);
    assert!(y.equal(&want), "dropout: the mask is not torch's");
    check("dropout", "", std::slice::from_ref(&x), &[y]);
}

#[test]
fn optimizers_follow_torch_optim() {
    let r = reference();
    let o = &r["optim"];
    let grads = grads_of(o);
    for (name, algorithm) in optimizer_cases() {
        assert_close(name, &stepped(algorithm, &o["init"], &grads), &o["result"][name]);
    }
    optimizer_groups_and_clipping(o, &grads);
}

/// Every optimizer configuration over 100 steps of small gradients (where the placement of
/// eps shows), equal to torch.optim bit for bit: the same f32 operations in the same order.
/// Each option alone and in combination, and every optimizer with two parameter groups of
/// their own lr and weight decay.
#[test]
fn optimizers_equal_torch_bit_for_bit_over_100_small_steps() {
    let r = reference();
    let o = &r["optim_long"];
    let grads = grads_of(o);
    assert_eq!(grads.len(), 100);
    let cases = optimizer_cases();
    let names: std::collections::BTreeSet<&str> = cases.iter().map(|(n, _)| *n).collect();
    let want_names: std::collections::BTreeSet<&str> =
        o["result"].as_object().expect("results").keys().map(String::as_str).collect();
    assert_eq!(names, want_names, "every reference configuration is checked");
    let mut unequal = Vec::new();
    let mut compare = |name: String, got: &Tensor, want: &Value| {
        let want = tensor(want, Kind::Float);
        let diff = (got.to_kind(Kind::Double) - want.to_kind(Kind::Double)).abs().max().double_value(&[]);
        if diff != 0.0 {
            unequal.push(format!("{name}: max abs difference {diff:e}"));
        }
    };
    for (name, algorithm) in cases {
        compare(name.to_string(), &stepped(algorithm, &o["init"], &grads), &o["result"][name]);
    }
    let groups = grouped_cases();
    assert_eq!(groups.len(), o["groups"].as_object().expect("groups").len(), "every grouped optimizer is checked");
    for (name, algorithm) in groups {
        let (a, b) = stepped_groups(algorithm, &o["init"], &grads);
        compare(format!("{name}, group a"), &a, &o["groups"][name]["a"]);
        compare(format!("{name}, group b"), &b, &o["groups"][name]["b"]);
    }
    assert!(unequal.is_empty(), "not bit-for-bit torch.optim after 100 steps: {unequal:?}");
}

/// The same configurations with bfloat16 and float16 parameters and gradients over 100 steps,
/// equal to torch.optim bit for bit: torch's calls (`mul_` by a Python number, read in float by
/// the kernel; `addcmul_`/`addcdiv_` with `value=`, one rounding), which pre-multiplying or
/// `mul_.Scalar` (the number rounded to the dtype: bfloat16 0.95 is 0.94921875) do not give.
#[test]
fn optimizers_equal_torch_bit_for_bit_in_bfloat16_and_float16() {
    let r = reference();
    let o = &r["optim_reduced"];
    let grads = grads_of(o);
    let mut unequal = Vec::new();
    for (dtype, kind) in [("bfloat16", Kind::BFloat16), ("float16", Kind::Half)] {
        let want = o["result"][dtype].as_object().expect("results");
        assert_eq!(want.len(), optimizer_cases().len(), "every configuration in {dtype}");
        for (name, algorithm) in optimizer_cases() {
            let p = stepped_in(kind, algorithm, &o["init"], &grads);
            let want = tensor(&want[name], Kind::Float).to_kind(Kind::Double);
            let diff = (p.to_kind(Kind::Double) - want).abs().max().double_value(&[]);
            if diff != 0.0 {
                unequal.push(format!("{name} in {dtype}: max abs difference {diff:e}"));
            }
        }
    }
    assert!(unequal.is_empty(), "not bit-for-bit torch.optim in reduced precision: {unequal:?}");
}

fn grads_of(o: &Value) -> Vec<Tensor> {
    o["grads"].as_array().expect("grads").iter().map(|g| tensor(g, Kind::Float)).collect()
}

/// One parameter from `init`, stepped by `algorithm` over `grads`.
fn stepped(algorithm: Algorithm, init: &Value, grads: &[Tensor]) -> Tensor {
    stepped_in(Kind::Float, algorithm, init, grads)
}

/// [`stepped`] with the parameter and the gradients in `kind`.
fn stepped_in(kind: Kind, algorithm: Algorithm, init: &Value, grads: &[Tensor]) -> Tensor {
    let mut ps = ParamStore::default();
    let p = ps.add_parameter("p", tensor(init, Kind::Float).to_kind(kind)).expect("param");
    let mut opt = OptimizerConfig::from(algorithm).build(&ps).expect("optimizer");
    for g in grads {
        opt.step(&[g.to_kind(kind)]).expect("step");
    }
    p
}

fn optimizer_cases() -> Vec<(&'static str, Algorithm)> {
    let sgd = |lr, momentum, dampening, weight_decay, nesterov| {
        Algorithm::Sgd(SgdConfig { lr, momentum, dampening, weight_decay, nesterov })
    };
    let adam = |lr, betas, eps, weight_decay, amsgrad| AdamConfig { lr, betas, eps, weight_decay, amsgrad };
    let cases = [
        ("sgd", sgd(0.1, 0.0, 0.0, 0.0, false)),
        ("sgd_momentum", sgd(0.1, 0.9, 0.1, 0.01, false)),
        ("sgd_nesterov", sgd(0.05, 0.9, 0.0, 0.001, true)),
        ("adam", Algorithm::Adam(adam(0.01, (0.9, 0.999), 1e-8, 0.0, false))),
        ("adam_amsgrad_wd", Algorithm::Adam(adam(0.01, (0.8, 0.99), 1e-6, 0.01, true))),
        ("adamw", Algorithm::AdamW(adam(0.01, (0.9, 0.999), 1e-8, 0.1, false))),
        (
            "rmsprop",
            Algorithm::Rmsprop(RmspropConfig {
                lr: 0.01,
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: 0.0,
                momentum: 0.0,
                centered: false,
            }),
        ),
        (
            "rmsprop_centered_momentum_wd",
            Algorithm::Rmsprop(RmspropConfig {
                lr: 0.01,
                alpha: 0.9,
                eps: 1e-6,
                weight_decay: 0.01,
                momentum: 0.5,
                centered: true,
            }),
        ),
        (
            "adagrad",
            Algorithm::Adagrad(AdagradConfig {
                lr: 0.1,
                lr_decay: 0.01,
                weight_decay: 0.01,
                initial_accumulator_value: 0.1,
                eps: 1e-10,
            }),
        ),
        ("sgd_weight_decay", sgd(0.1, 0.0, 0.0, 0.1, false)),
        ("sgd_momentum_dampening", sgd(0.1, 0.9, 0.5, 0.0, false)),
        ("adam_betas_eps", Algorithm::Adam(adam(0.001, (0.5, 0.9), 1e-5, 0.0, false))),
        ("adam_amsgrad", Algorithm::Adam(adam(0.01, (0.9, 0.999), 1e-8, 0.0, true))),
        ("adamw_amsgrad", Algorithm::AdamW(adam(0.01, (0.9, 0.999), 1e-8, 0.05, true))),
        ("rmsprop_centered", rmsprop(0.0, true)),
        ("rmsprop_momentum", rmsprop(0.9, false)),
        ("adagrad_lr_decay", adagrad(0.05, 0.0, 1e-10)),
        ("adagrad_initial_accumulator", adagrad(0.0, 0.5, 1e-6)),
    ];
    cases.into()
}

/// RMSprop(lr=0.01, momentum, centered) with torch's other defaults.
fn rmsprop(momentum: f64, centered: bool) -> Algorithm {
    Algorithm::Rmsprop(RmspropConfig { lr: 0.01, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum, centered })
}

/// Adagrad(lr=0.1, lr_decay, initial_accumulator_value, eps), no weight decay.
fn adagrad(lr_decay: f64, initial_accumulator_value: f64, eps: f64) -> Algorithm {
    Algorithm::Adagrad(AdagradConfig { lr: 0.1, lr_decay, weight_decay: 0.0, initial_accumulator_value, eps })
}

/// engine_reference.py's GROUPED: every optimizer with group a at lr 0.02 and group b at
/// lr 0.005 with weight decay 0.1 (the optimizer's own lr 0.5).
fn grouped_cases() -> Vec<(&'static str, Algorithm)> {
    let adam = |weight_decay| AdamConfig { lr: 0.5, betas: (0.9, 0.999), eps: 1e-8, weight_decay, amsgrad: false };
    vec![
        (
            "sgd",
            Algorithm::Sgd(SgdConfig { lr: 0.5, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false }),
        ),
        ("adam", Algorithm::Adam(adam(0.0))),
        ("adamw", Algorithm::AdamW(adam(0.01))),
        (
            "rmsprop",
            Algorithm::Rmsprop(RmspropConfig {
                lr: 0.5,
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: 0.0,
                momentum: 0.0,
                centered: false,
            }),
        ),
        (
            "adagrad",
            Algorithm::Adagrad(AdagradConfig {
                lr: 0.5,
                lr_decay: 0.0,
                weight_decay: 0.0,
                initial_accumulator_value: 0.0,
                eps: 1e-10,
            }),
        ),
    ]
}

/// Parameters a and b (2 × init) in two groups, stepped by `algorithm` over `grads`.
fn stepped_groups(algorithm: Algorithm, init: &Value, grads: &[Tensor]) -> (Tensor, Tensor) {
    let mut ps = ParamStore::default();
    let a = ps.add_parameter("a", tensor(init, Kind::Float)).expect("a");
    let b = ps.add_parameter("b", tensor(init, Kind::Float) * 2.0).expect("b");
    let cfg = OptimizerConfig {
        algorithm,
        groups: vec![
            GroupSpec { params: vec!["a".into()], lr: Some(0.02), weight_decay: None },
            GroupSpec { params: vec!["b".into()], lr: Some(0.005), weight_decay: Some(0.1) },
        ],
    };
    let mut opt = cfg.build(&ps).expect("optimizer");
    for g in grads {
        opt.step(&[g.shallow_clone(), g.shallow_clone()]).expect("step");
    }
    (a, b)
}

fn optimizer_groups_and_clipping(o: &Value, grads: &[Tensor]) {
    let sgd = |lr, momentum, dampening, weight_decay, nesterov| {
        Algorithm::Sgd(SgdConfig { lr, momentum, dampening, weight_decay, nesterov })
    };
    // Parameter groups with their own lr and weight decay.
    let mut ps = ParamStore::default();
    let a = ps.add_parameter("a", tensor(&o["init"], Kind::Float)).expect("a");
    let b = ps.add_parameter("b", tensor(&o["init"], Kind::Float) * 2.0).expect("b");
    let cfg = OptimizerConfig {
        algorithm: sgd(0.5, 0.9, 0.0, 0.0, false),
        groups: vec![
            GroupSpec { params: vec!["a".into()], lr: Some(0.1), weight_decay: None },
            GroupSpec { params: vec!["b".into()], lr: Some(0.01), weight_decay: Some(0.1) },
        ],
    };
    let mut opt = cfg.build(&ps).expect("optimizer");
    assert_eq!(opt.num_groups(), 2);
    for g in grads {
        opt.step(&[g.shallow_clone(), g.shallow_clone()]).expect("step");
    }
    assert_close("group a", &a, &o["groups"]["a"]);
    assert_close("group b", &b, &o["groups"]["b"]);
    // Gradient clipping.
    let clipped: Vec<Tensor> = grads[..2].iter().map(|g| g.copy()).collect();
    lthost::engine::clip::clip_grad_norm(&clipped, 0.5).expect("clip");
    for (i, g) in clipped.iter().enumerate() {
        assert_close("clip_grad_norm_", g, &o["clip_norm"][i]);
    }
    let clipped: Vec<Tensor> = grads[..2].iter().map(|g| g.copy()).collect();
    lthost::engine::clip::clip_grad_value(&clipped, 0.1).expect("clip");
    for (i, g) in clipped.iter().enumerate() {
        assert_close("clip_grad_value_", g, &o["clip_value"][i]);
    }
    let dup = OptimizerConfig {
        algorithm: sgd(0.1, 0.0, 0.0, 0.0, false),
        groups: vec![
            GroupSpec { params: vec!["a".into()], ..GroupSpec::default() },
            GroupSpec { params: vec!["a".into()], ..GroupSpec::default() },
        ],
    };
    assert!(dup.build(&ps).err().expect("refused").detail.contains("appears in groups"));
}
