//! Optimization: the optimizers and schedulers of a run ([`optimizer_set`]), and the two ways
//! of driving them: automatic (the host runs backward and steps) and manual (the plugin does,
//! through the `optimization` interface).

pub mod automatic;
pub mod optimizer_set;

pub use optimizer_set::{Interval, OptimizerSet, SchedulerSpec};
