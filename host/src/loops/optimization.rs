//! Optimization in the loops: the run's optimizers and schedulers
//! ([`crate::engine::optim::optimizer_set`]) and the two ways of driving them: automatic
//! (the host runs backward and steps) and manual (the plugin does, through the
//! `optimization` interface).

pub mod automatic;

pub use crate::engine::optim::{Interval, OptimizerSet, SchedulerSpec};

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};

use crate::context::RunContext;
use crate::module::{Module, OptimizerCall, SchedulerCall};

/// Steps the schedulers due at `interval`/`index` ([`OptimizerSet::step_schedulers`]): the
/// host's own, then those the plugin runs, through the module.
pub fn step_schedulers(
    module: &mut dyn Module,
    ctx: &mut RunContext,
    interval: Interval,
    index: u64,
    plateau: bool,
    metrics: Option<&BTreeMap<String, f64>>,
) -> Result<()> {
    let optim = ctx.optim.as_mut().ok_or_else(|| anyhow!("internal: no optimizers configured"))?;
    let metrics = metrics.unwrap_or(&ctx.callback_metrics);
    let due = optim.step_schedulers(interval, index, plateau, metrics).map_err(|e| anyhow!(e.detail))?;
    for (i, metric) in due {
        run_plugin_scheduler(module, ctx, i, SchedulerCall::Step(metric))?;
    }
    Ok(())
}

/// Starts or steps scheduler `i`, which the plugin runs, and keeps the state it then has.
pub fn run_plugin_scheduler(
    module: &mut dyn Module,
    ctx: &mut RunContext,
    i: usize,
    call: SchedulerCall,
) -> Result<()> {
    let state = module.plugin_scheduler(ctx, i, call)?.unwrap_or_default();
    if let Some(e) = ctx.optim.as_mut().and_then(|o| o.schedulers.get_mut(i)) {
        e.scheduler.keep_state(state);
    }
    Ok(())
}

/// One step of optimizer `i` (automatic optimization): the host's own, or the plugin's
/// through the module, counted either way.
pub fn step_optimizer(module: &mut dyn Module, ctx: &mut RunContext, i: usize) -> Result<()> {
    let optim = ctx.optim.as_mut().ok_or_else(|| anyhow!("internal: no optimizers configured"))?;
    // 16-mixed: `scaler.step` skips a step whose gradients hold an inf or a NaN (for the host's
    // own optimizers `OptimizerSet::step` decides it).
    let in_plugin = optim.optimizers.get(i).is_some_and(|o| o.in_plugin());
    if in_plugin && optim.scaler_allows_step(i).map_err(|e| anyhow!(e.detail))? {
        // Its step may call Lightning's closure, which runs training_step again (LBFGS): what
        // that logs is training_step's, as in Lightning.
        let hook = ctx.current_hook.replace(crate::hooks::Hook::TrainingStep);
        ctx.closure_of = Some(i);
        let stepped = module.plugin_optimizer(ctx, i, OptimizerCall::Step);
        ctx.current_hook = hook;
        ctx.closure_of = None;
        stepped?;
    }
    let optim = ctx.optim.as_mut().ok_or_else(|| anyhow!("internal: no optimizers configured"))?;
    optim.step(i)?;
    Ok(())
}
