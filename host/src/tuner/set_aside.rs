//! What a finder callback's search sets aside in a fit and puts back after it (Lightning's
//! `__*_dump_params` / `__*_reset_params` / `__*_restore_params` and its checkpoint round
//! trip): the run's snapshot, the fit's settings, callbacks, loggers, checkpointing, early
//! stopping, progress bar, loop limits and numbers, the Timer and the loops.

use anyhow::Result;

use crate::callbacks::early_stopping::EarlyStopping;
use crate::callbacks::model_checkpoint::ModelCheckpoint;
use crate::callbacks::timer::Timer;
use crate::callbacks::{Callback, ProgressBar};
use crate::checkpoint::Checkpoint;
use crate::config::TrainerConfig;
use crate::context::FitNumbers;
use crate::loggers::Logger;
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::loops::state_dict::Loops;

pub(super) struct SetAside<'a> {
    /// Lightning's checkpoint before the search, on the CPU.
    snapshot: Checkpoint,
    /// Which finder (its messages name it).
    what: &'static str,
    loops: Loops,
    timer: Timer,
    cfg: TrainerConfig,
    callbacks: Vec<Box<dyn Callback + 'a>>,
    logger: Option<Box<dyn Logger>>,
    checkpoint: Option<ModelCheckpoint>,
    early_stopping: Option<EarlyStopping>,
    bar: ProgressBar,
    limits: LoopLimits,
    numbers: FitNumbers,
}

impl<'a> SetAside<'a> {
    /// Snapshots the run and starts the search: `during` are its settings, `callbacks` its
    /// callbacks (the Timer is not among them: the search's time is not the fit's).
    pub(super) fn start(
        st: &mut LoopState<'a>,
        what: &'static str,
        during: TrainerConfig,
        callbacks: Vec<Box<dyn Callback + 'a>>,
    ) -> Result<SetAside<'a>> {
        let position = crate::loops::checkpointing::position(st, 0, false);
        let mut snapshot = crate::loops::run_state::dump(st, position, false, true)?;
        // The dump shares the live tensors; the snapshot must not move with the search. It is
        // kept on the CPU, as Lightning's is on disk (a device copy would take device memory
        // from the search).
        tch::no_grad(|| -> Result<()> {
            for t in snapshot.tensors.values_mut() {
                *t = super::cpu_copy(t)?;
            }
            Ok(())
        })?;
        let set = SetAside {
            snapshot,
            what,
            loops: st.loops.clone(),
            timer: st.timer.clone(),
            cfg: std::mem::replace(&mut st.cfg, during),
            callbacks: std::mem::replace(&mut st.callbacks, callbacks),
            logger: st.logger.take(),
            checkpoint: st.checkpoint.take(),
            early_stopping: st.early_stopping.take(),
            bar: std::mem::replace(&mut st.bar, ProgressBar::new(false)),
            limits: st.limits.clone(),
            numbers: st.ctx.fit_numbers.clone(),
        };
        st.searching = true;
        Ok(set)
    }

    /// The search is over: the fit's settings, callbacks, loggers, bar, limits, numbers and
    /// Timer back. `failed`: the search did not finish, its weights go back too (Lightning
    /// restores them in a `finally`), and the run ends with the search's error.
    pub(super) fn end_search(&mut self, st: &mut LoopState<'a>, failed: bool) -> Result<()> {
        st.searching = false;
        st.cfg = self.cfg.clone();
        st.callbacks = std::mem::take(&mut self.callbacks);
        st.logger = self.logger.take();
        st.bar = std::mem::replace(&mut self.bar, ProgressBar::new(false));
        st.limits = self.limits.clone();
        st.ctx.fit_numbers = self.numbers.clone();
        st.timer = self.timer.clone();
        if failed {
            crate::connectors::checkpoint::restore_model(&mut st.ctx, &self.snapshot, &self.shown())?;
        }
        Ok(())
    }

    /// Lightning's checkpoint restore (weights, optimizers, schedulers, the module's and
    /// DataModule's states, the Timer; not the generators), the loops as they were (no
    /// restart: the fit starts), ModelCheckpoint and EarlyStopping back; `should_stop` and
    /// the validation's "has run" cleared, and the gradients gone (`_run_stage`'s
    /// `zero_grad(set_to_none=True)`).
    pub(super) fn put_back(&mut self, st: &mut LoopState<'a>) -> Result<()> {
        let shown = self.shown();
        let rng = crate::engine::torch_ext::RngState::now(st.ctx.device)?;
        crate::connectors::checkpoint::restore_model(&mut st.ctx, &self.snapshot, &shown)?;
        crate::loops::run_state::restore_training(st, &self.snapshot, &shown)?;
        rng.restore()?;
        st.loops = std::mem::take(&mut self.loops);
        st.checkpoint = self.checkpoint.take();
        st.early_stopping = self.early_stopping.take();
        (st.epoch_order, st.resume_order) = (None, None);
        st.interrupter.withdraw_request();
        st.val_has_run = false;
        if let Some(o) = st.ctx.optim.as_mut() {
            o.clear_grads();
        }
        Ok(())
    }

    /// The plugin-run schedulers' states as the snapshot holds them.
    pub(super) fn scheduler_state(&self, i: usize) -> Option<&str> {
        self.snapshot.meta.schedulers.get(i).and_then(serde_json::Value::as_str)
    }

    fn shown(&self) -> String {
        format!("the {}'s snapshot", self.what)
    }
}
