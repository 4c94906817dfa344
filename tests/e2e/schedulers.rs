//! LR schedulers against torch.optim.lr_scheduler: 100 steps of each, learning rate (and
//! OneCycleLR's momentum) after every step (tests/reference/scheduler_reference.py).

use lthost::engine::optim::{AdamConfig, Algorithm, OptimizerConfig, SgdConfig};
use lthost::engine::params::ParamStore;
use lthost::engine::schedulers::{ChainableKind, OneCycleConfig, PlateauConfig, SchedulerKind};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::common::repo_root;

fn sgd() -> OptimizerConfig {
    Algorithm::Sgd(SgdConfig { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false }).into()
}

fn one_cycle(max_lr: f64, cos: bool, three_phase: bool) -> OneCycleConfig {
    OneCycleConfig {
        max_lr,
        total_steps: 100,
        pct_start: 0.3,
        anneal_cos: cos,
        cycle_momentum: true,
        base_momentum: 0.85,
        max_momentum: 0.95,
        div_factor: 25.0,
        final_div_factor: 1e4,
        three_phase,
    }
}

#[test]
fn schedulers_match_torch_for_100_steps() {
    let path = repo_root().join("tests/reference/schedulers.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    let reference: Value = serde_json::from_str(&text).expect("JSON");
    let adam: OptimizerConfig =
        Algorithm::Adam(AdamConfig { lr: 0.01, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false })
            .into();
    let cases: Vec<(&str, OptimizerConfig, SchedulerKind)> = vec![
        ("step", sgd(), SchedulerKind::Chainable(ChainableKind::Step { step_size: 7, gamma: 0.5 })),
        (
            "multi_step",
            sgd(),
            SchedulerKind::Chainable(ChainableKind::MultiStep { milestones: vec![10, 25, 25, 60], gamma: 0.3 }),
        ),
        ("exponential", sgd(), SchedulerKind::Chainable(ChainableKind::Exponential { gamma: 0.97 })),
        ("cosine", sgd(), SchedulerKind::Chainable(ChainableKind::CosineAnnealing { t_max: 30, eta_min: 0.001 })),
        (
            "linear",
            sgd(),
            SchedulerKind::Chainable(ChainableKind::Linear { start_factor: 0.25, end_factor: 1.0, total_iters: 40 }),
        ),
        ("one_cycle_sgd", sgd(), SchedulerKind::OneCycle(one_cycle(0.5, true, false))),
        ("one_cycle_adam_linear_3phase", adam, SchedulerKind::OneCycle(one_cycle(0.05, false, true))),
        (
            "plateau",
            sgd(),
            SchedulerKind::ReduceOnPlateau(PlateauConfig {
                mode_min: true,
                factor: 0.5,
                patience: 3,
                threshold: 0.01,
                threshold_rel: true,
                cooldown: 2,
                min_lr: 0.001,
                eps: 1e-8,
            }),
        ),
    ];
    for (name, opt_cfg, kind) in cases {
        let case = &reference["cases"][name];
        let want_lr: Vec<f64> = case["lr"].as_array().expect("lr").iter().map(|v| v.as_f64().expect("f64")).collect();
        let want_m: Vec<f64> =
            case["momentum"].as_array().expect("momentum").iter().map(|v| v.as_f64().expect("f64")).collect();
        let metrics: Vec<f64> =
            case["plateau_metrics"].as_array().expect("metrics").iter().map(|v| v.as_f64().expect("f64")).collect();
        let mut ps = ParamStore::default();
        let _ = ps.add_parameter("w", Tensor::zeros([1], (Kind::Float, Device::Cpu))).expect("param");
        let mut opt = opt_cfg.build(&ps).expect("optimizer");
        let mut sched = kind.build(opt.as_mut()).expect("scheduler");
        let mut got_lr = vec![opt.lr(0)];
        let mut got_m = vec![opt.momentum(0).expect("momentum")];
        for m in metrics {
            sched.step(opt.as_mut(), Some(m)).expect("step");
            got_lr.push(opt.lr(0));
            got_m.push(opt.momentum(0).expect("momentum"));
        }
        assert_eq!(got_lr.len(), want_lr.len(), "{name}");
        for (i, (g, w)) in got_lr.iter().zip(&want_lr).enumerate() {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{name} step {i}: lr {g} vs torch {w}");
        }
        for (i, (g, w)) in got_m.iter().zip(&want_m).enumerate() {
            assert!((g - w).abs() <= 1e-12, "{name} step {i}: momentum {g} vs torch {w}");
        }
    }
}
