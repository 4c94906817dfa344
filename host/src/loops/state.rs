//! What the loops share while a run lasts: the module, the run context, the logger, the
//! progress bar, the progress counters and the latest metrics.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::callbacks::ProgressBar;
use crate::config::TrainerConfig;
use crate::context::RunContext;
use crate::loggers::Logger;
use crate::loops::progress::Progress;
use crate::module::Module;

pub struct LoopState<'a> {
    pub cfg: &'a TrainerConfig,
    pub module: &'a mut dyn Module,
    pub ctx: RunContext,
    pub logger: Option<Box<dyn Logger>>,
    pub bar: ProgressBar,
    pub epoch_progress: Progress,
    pub batch_progress: Progress,
    /// Every metric's latest value (Lightning's `callback_metrics`).
    pub callback_metrics: BTreeMap<String, f64>,
    /// Set when a stopping condition is met (max_steps).
    pub should_stop: bool,
}

impl LoopState<'_> {
    /// Sends metrics to the logger, adding `epoch` as Lightning does.
    pub fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        if let Some(l) = self.logger.as_mut() {
            let mut m = metrics.clone();
            m.insert("epoch".into(), self.ctx.current_epoch as f64);
            l.log_metrics(&m, step)?;
        }
        Ok(())
    }
}
