//! Optimizers and LR schedulers with torch's defaults (the host runs them), and manual
//! optimization calls.

use crate::bindings::exports::lt::plugin::lightning_module as wit;

pub use wit::Interval;

/// A torch.optim optimizer, optionally with parameter groups.
#[derive(Debug, Clone)]
pub struct Optimizer(wit::Optimizer);

impl Optimizer {
    fn of(algorithm: wit::Algorithm) -> Self {
        Optimizer(wit::Optimizer { algorithm, groups: Vec::new() })
    }
    /// torch.optim.SGD(lr) with no momentum.
    pub fn sgd(lr: f64) -> Self {
        Self::of(wit::Algorithm::Sgd(wit::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }))
    }
    /// torch.optim.Adam(lr): betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam(lr: f64) -> Self {
        Self::of(wit::Algorithm::Adam(wit::Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }))
    }
    /// torch.optim.AdamW(lr): as Adam, with decoupled weight decay 0.01.
    pub fn adamw(lr: f64) -> Self {
        Self::of(wit::Algorithm::Adamw(wit::Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            amsgrad: false,
        }))
    }
    /// torch.optim.RMSprop(lr): alpha 0.99, eps 1e-8.
    pub fn rmsprop(lr: f64) -> Self {
        Self::of(wit::Algorithm::Rmsprop(wit::Rmsprop {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }))
    }
    /// torch.optim.Adagrad(lr): eps 1e-10.
    pub fn adagrad(lr: f64) -> Self {
        Self::of(wit::Algorithm::Adagrad(wit::Adagrad {
            lr,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }))
    }
    /// SGD/RMSprop momentum (SGD: with Nesterov if asked).
    pub fn momentum(mut self, momentum: f64, nesterov: bool) -> Self {
        match &mut self.0.algorithm {
            wit::Algorithm::Sgd(s) => {
                s.momentum = momentum;
                s.nesterov = nesterov;
            }
            wit::Algorithm::Rmsprop(r) => r.momentum = momentum,
            _ => {}
        }
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> Self {
        match &mut self.0.algorithm {
            wit::Algorithm::Sgd(s) => s.weight_decay = wd,
            wit::Algorithm::Adam(a) | wit::Algorithm::Adamw(a) => a.weight_decay = wd,
            wit::Algorithm::Rmsprop(r) => r.weight_decay = wd,
            wit::Algorithm::Adagrad(a) => a.weight_decay = wd,
            // An optimizer a plugin runs itself keeps its options itself.
            wit::Algorithm::Plugin(_) => {}
        }
        self
    }
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        if let wit::Algorithm::Adam(a) | wit::Algorithm::Adamw(a) = &mut self.0.algorithm {
            a.betas = (b1, b2);
        }
        self
    }
    /// A parameter group: paths or prefixes (`"encoder"`), with its own lr / weight decay.
    pub fn group(mut self, params: &[&str], lr: Option<f64>, weight_decay: Option<f64>) -> Self {
        self.0.groups.push(wit::ParamGroup {
            params: params.iter().map(|s| s.to_string()).collect(),
            lr,
            weight_decay,
        });
        self
    }
    /// With an LR scheduler stepped every `interval`.
    pub fn with_scheduler(self, scheduler: Scheduler, interval: Interval) -> Optimization {
        Optimization::from(self).scheduler(0, scheduler, interval)
    }
}

/// A torch.optim.lr_scheduler scheduler (torch's defaults where it has them).
#[derive(Debug, Clone)]
pub struct Scheduler(wit::Scheduler);

impl Scheduler {
    pub fn step_lr(step_size: u32, gamma: f64) -> Self {
        Scheduler(wit::Scheduler::StepLr(wit::StepLr { step_size, gamma }))
    }
    pub fn multi_step_lr(milestones: &[u32], gamma: f64) -> Self {
        Scheduler(wit::Scheduler::MultiStepLr(wit::MultiStepLr { milestones: milestones.to_vec(), gamma }))
    }
    pub fn exponential_lr(gamma: f64) -> Self {
        Scheduler(wit::Scheduler::ExponentialLr(gamma))
    }
    pub fn cosine_annealing_lr(t_max: u32, eta_min: f64) -> Self {
        Scheduler(wit::Scheduler::CosineAnnealingLr(wit::CosineAnnealingLr { t_max, eta_min }))
    }
    pub fn linear_lr(start_factor: f64, end_factor: f64, total_iters: u32) -> Self {
        Scheduler(wit::Scheduler::LinearLr(wit::LinearLr { start_factor, end_factor, total_iters }))
    }
    /// OneCycleLR(max_lr, total_steps) with torch's defaults.
    pub fn one_cycle_lr(max_lr: f64, total_steps: u32) -> Self {
        Scheduler(wit::Scheduler::OneCycleLr(wit::OneCycleLr {
            max_lr,
            total_steps,
            pct_start: 0.3,
            anneal_cos: true,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }))
    }
    /// ReduceLROnPlateau() with torch's defaults (mode min, factor 0.1, patience 10).
    pub fn reduce_lr_on_plateau(factor: f64, patience: u32) -> Self {
        Scheduler(wit::Scheduler::ReduceLrOnPlateau(wit::ReduceLrOnPlateau {
            mode_min: true,
            factor,
            patience,
            threshold: 1e-4,
            threshold_rel: true,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }))
    }
}

/// What `configure_optimizers` returns.
#[derive(Debug, Clone)]
pub struct Optimization(wit::Optimization);

impl From<Optimizer> for Optimization {
    fn from(o: Optimizer) -> Self {
        Optimization(wit::Optimization {
            optimizers: vec![o.0],
            lr_schedulers: Vec::new(),
            automatic_optimization: true,
        })
    }
}

impl Optimization {
    /// Several optimizers, for manual optimization.
    pub fn manual(optimizers: Vec<Optimizer>) -> Self {
        Optimization(wit::Optimization {
            optimizers: optimizers.into_iter().map(|o| o.0).collect(),
            lr_schedulers: Vec::new(),
            automatic_optimization: false,
        })
    }
    /// Adds a scheduler for optimizer `optimizer`, stepped every `interval` (frequency 1).
    pub fn scheduler(self, optimizer: u32, scheduler: Scheduler, interval: Interval) -> Self {
        self.scheduler_with(optimizer, scheduler, interval, 1, None, true)
    }
    /// Adds a scheduler with Lightning's full config (frequency, monitor, strict).
    pub fn scheduler_with(
        mut self,
        optimizer: u32,
        scheduler: Scheduler,
        interval: Interval,
        frequency: u32,
        monitor: Option<&str>,
        strict: bool,
    ) -> Self {
        self.0.lr_schedulers.push(wit::LrScheduler {
            scheduler: scheduler.0,
            optimizer,
            interval,
            frequency,
            monitor: monitor.map(String::from),
            strict,
        });
        self
    }

    pub(crate) fn into_wit(self) -> wit::Optimization {
        self.0
    }
}

/// Manual optimization (`Optimization::manual`): backward, step, zero_grad, toggle.
pub mod manual {
    pub use crate::bindings::lt::plugin::optimization::{
        lr, manual_backward, scheduler_step, step, toggle, untoggle, zero_grad,
    };
}
