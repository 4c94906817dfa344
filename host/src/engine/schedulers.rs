//! torch.optim.lr_scheduler, with torch's own recursive formulas (what `scheduler.step()`
//! computes, not the closed forms), so learning rates match torch's step for step.
//! A scheduler changes its optimizer's group learning rates (and, for OneCycleLR, momentum).

pub mod chainable;
pub mod in_plugin;
pub mod one_cycle;
pub mod plateau;
pub mod range_test;

use crate::engine::optim::Optimizer;
use crate::error::OpResult;
pub use chainable::{Chainable, ChainableKind};
pub use in_plugin::InPlugin;
pub use one_cycle::{OneCycle, OneCycleConfig};
pub use plateau::{Plateau, PlateauConfig};
pub use range_test::{RangeTest, RangeTestConfig};

/// The ops a scheduler's errors name: building it (from `configure_optimizers`), stepping it,
/// restoring its checkpointed state.
pub(crate) const BUILD: &str = "configure_optimizers";
pub(crate) const STEP: &str = "lr_scheduler.step";
pub(crate) const LOAD: &str = "lr_scheduler.load_state_dict";

/// What `configure_optimizers` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerKind {
    Chainable(ChainableKind),
    OneCycle(OneCycleConfig),
    ReduceOnPlateau(PlateauConfig),
    /// The learning-rate finder's schedule (host only; plugins cannot ask for it).
    RangeTest(RangeTestConfig),
    /// One the plugin runs (its `lr-schedulers` export); `monitors`: steps on a metric.
    Plugin {
        name: String,
        monitors: bool,
    },
}

pub trait LrScheduler: Send {
    fn name(&self) -> &'static str;
    /// torch's `scheduler.step()`; `metric` is the monitored value (ReduceLROnPlateau only).
    fn step(&mut self, opt: &mut dyn Optimizer, metric: Option<f64>) -> OpResult<()>;
    fn is_plateau(&self) -> bool {
        false
    }
    /// Whether the plugin runs it: the loops step it, and checkpoints hold its state,
    /// through the module ([`crate::module::Module::plugin_scheduler`]).
    fn in_plugin(&self) -> bool {
        false
    }
    /// The state a plugin-run scheduler reported (others ignore it).
    fn keep_state(&mut self, _state: String) {}
    /// The scheduler's state for checkpoints (torch's `scheduler.state_dict()`).
    fn state(&self) -> serde_json::Value;
    fn load_state(&mut self, state: &serde_json::Value) -> OpResult<()>;
}

impl SchedulerKind {
    /// Creates the scheduler; like torch, this performs the initial step.
    pub fn build(&self, opt: &mut dyn Optimizer) -> OpResult<Box<dyn LrScheduler>> {
        Ok(match self {
            SchedulerKind::Chainable(k) => Box::new(Chainable::new(k.clone(), opt)?),
            SchedulerKind::OneCycle(c) => Box::new(OneCycle::new(c.clone(), opt)?),
            SchedulerKind::ReduceOnPlateau(c) => Box::new(Plateau::new(c.clone(), opt)?),
            SchedulerKind::RangeTest(c) => Box::new(RangeTest::new(c.clone(), opt)?),
            SchedulerKind::Plugin { name, monitors } => {
                Box::new(InPlugin { name: name.clone(), monitors: *monitors, state: None })
            }
        })
    }
}
