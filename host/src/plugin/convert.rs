//! WIT records from `configure-optimizers` → the engine's optimizer and scheduler configs.

use crate::engine::optim::{
    AdagradConfig, AdamConfig, Algorithm, GroupSpec, OptimizerConfig, RmspropConfig, SgdConfig,
};
use crate::engine::optim::{Interval, SchedulerSpec};
use crate::engine::schedulers::{ChainableKind, OneCycleConfig, PlateauConfig, SchedulerKind};
use crate::hooks::Hook;
use crate::module::Optimization;
use crate::plugin::bindings::lightning_module as wit;

fn adam(c: &wit::Adam) -> AdamConfig {
    AdamConfig { lr: c.lr, betas: c.betas, eps: c.eps, weight_decay: c.weight_decay, amsgrad: c.amsgrad }
}

fn optimizer(o: &wit::Optimizer) -> OptimizerConfig {
    let algorithm = match &o.algorithm {
        wit::Algorithm::Sgd(c) => Algorithm::Sgd(SgdConfig {
            lr: c.lr,
            momentum: c.momentum,
            dampening: c.dampening,
            weight_decay: c.weight_decay,
            nesterov: c.nesterov,
        }),
        wit::Algorithm::Adam(c) => Algorithm::Adam(adam(c)),
        wit::Algorithm::Adamw(c) => Algorithm::AdamW(adam(c)),
        wit::Algorithm::Rmsprop(c) => Algorithm::Rmsprop(RmspropConfig {
            lr: c.lr,
            alpha: c.alpha,
            eps: c.eps,
            weight_decay: c.weight_decay,
            momentum: c.momentum,
            centered: c.centered,
        }),
        wit::Algorithm::Adagrad(c) => Algorithm::Adagrad(AdagradConfig {
            lr: c.lr,
            lr_decay: c.lr_decay,
            weight_decay: c.weight_decay,
            initial_accumulator_value: c.initial_accumulator_value,
            eps: c.eps,
        }),
        wit::Algorithm::Plugin(c) => Algorithm::Plugin(crate::engine::optim::PluginOptimizerConfig {
            name: c.name.clone(),
            lr: c.lr,
            momentum: c.momentum,
        }),
    };
    let groups = o
        .groups
        .iter()
        .map(|g| GroupSpec { params: g.params.clone(), lr: g.lr, weight_decay: g.weight_decay })
        .collect();
    OptimizerConfig { algorithm, groups }
}

fn scheduler(s: &wit::Scheduler) -> SchedulerKind {
    match s {
        wit::Scheduler::StepLr(c) => {
            SchedulerKind::Chainable(ChainableKind::Step { step_size: c.step_size as i64, gamma: c.gamma })
        }
        wit::Scheduler::MultiStepLr(c) => SchedulerKind::Chainable(ChainableKind::MultiStep {
            milestones: c.milestones.iter().map(|&m| m as i64).collect(),
            gamma: c.gamma,
        }),
        wit::Scheduler::ExponentialLr(gamma) => SchedulerKind::Chainable(ChainableKind::Exponential { gamma: *gamma }),
        wit::Scheduler::CosineAnnealingLr(c) => {
            SchedulerKind::Chainable(ChainableKind::CosineAnnealing { t_max: c.t_max as i64, eta_min: c.eta_min })
        }
        wit::Scheduler::LinearLr(c) => SchedulerKind::Chainable(ChainableKind::Linear {
            start_factor: c.start_factor,
            end_factor: c.end_factor,
            total_iters: c.total_iters as i64,
        }),
        wit::Scheduler::OneCycleLr(c) => SchedulerKind::OneCycle(OneCycleConfig {
            max_lr: c.max_lr,
            total_steps: c.total_steps as i64,
            pct_start: c.pct_start,
            anneal_cos: c.anneal_cos,
            cycle_momentum: c.cycle_momentum,
            base_momentum: c.base_momentum,
            max_momentum: c.max_momentum,
            div_factor: c.div_factor,
            final_div_factor: c.final_div_factor,
            three_phase: c.three_phase,
        }),
        wit::Scheduler::ReduceLrOnPlateau(c) => SchedulerKind::ReduceOnPlateau(PlateauConfig {
            mode_min: c.mode_min,
            factor: c.factor,
            patience: c.patience as i64,
            threshold: c.threshold,
            threshold_rel: c.threshold_rel,
            cooldown: c.cooldown as i64,
            min_lr: c.min_lr,
            eps: c.eps,
        }),
        wit::Scheduler::Plugin(p) => SchedulerKind::Plugin { name: p.name.clone(), monitors: p.monitors },
    }
}

pub fn optimization(o: &wit::Optimization) -> Result<Optimization, String> {
    let optimizers: Vec<OptimizerConfig> = o.optimizers.iter().map(optimizer).collect();
    for c in &optimizers {
        c.validate().map_err(|e| e.detail)?;
    }
    let schedulers = o
        .lr_schedulers
        .iter()
        .map(|s| SchedulerSpec {
            kind: scheduler(&s.scheduler),
            optimizer: s.optimizer as usize,
            interval: match s.interval {
                wit::Interval::Step => Interval::Step,
                wit::Interval::Epoch => Interval::Epoch,
            },
            frequency: s.frequency as u64,
            monitor: s.monitor.clone(),
            strict: s.strict,
        })
        .collect();
    Ok(Optimization { optimizers, schedulers, automatic: o.automatic_optimization })
}

/// The WIT `hook` a module implements `h` through (the hook table's `wit` rows: a variant of
/// the same name); None for the hooks the host runs another way.
macro_rules! wit_mapping {
    ($($hook:ident $name:literal $owner:ident $log:ident $wit:ident;)*) => {
        pub fn hook_out(h: Hook) -> Option<wit::Hook> {
            match h {
                $(Hook::$hook => wit_mapping!(@one $hook $wit),)*
            }
        }
    };
    (@one $hook:ident wit) => { Some(wit::Hook::$hook) };
    (@one $hook:ident host) => { None };
}
crate::hooks::hook_table!(wit_mapping);

/// A dataset's sampler as the host's.
pub fn sampler(s: &crate::plugin::bindings::data_module::Sampler) -> crate::data::sampler::Sampler {
    use crate::data::sampler::Sampler;
    use crate::plugin::bindings::data_module::Sampler as W;
    match s {
        W::Sequential => Sampler::Sequential,
        W::Random => Sampler::Random,
        W::Weighted(w) => Sampler::Weighted {
            weights: w.weights.clone(),
            num_samples: w.num_samples.min(i64::MAX as u64) as i64,
            replacement: w.replacement,
        },
        W::Distributed(d) => Sampler::Distributed {
            num_replicas: i64::from(d.num_replicas),
            rank: i64::from(d.rank),
            shuffle: d.shuffle,
            seed: d.seed.min(i64::MAX as u64) as i64,
            drop_last: d.drop_last,
        },
        W::Plugin(batches) => Sampler::Plugin { batches: *batches },
    }
}

/// The host's [`AttrValue`](crate::module::AttrValue) as the WIT's `attr-value`.
pub fn attr_to_wit(v: crate::module::AttrValue) -> crate::plugin::bindings::types::AttrValue {
    use crate::plugin::bindings::types::AttrValue as W;
    match v {
        crate::module::AttrValue::Int(i) => W::Int(i),
        crate::module::AttrValue::Float(f) => W::Float(f),
    }
}

/// The WIT's `attr-value` as the host's.
pub fn attr_from_wit(v: crate::plugin::bindings::types::AttrValue) -> crate::module::AttrValue {
    use crate::plugin::bindings::types::AttrValue as W;
    match v {
        W::Int(i) => crate::module::AttrValue::Int(i),
        W::Float(f) => crate::module::AttrValue::Float(f),
    }
}
