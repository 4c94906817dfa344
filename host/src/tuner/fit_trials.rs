//! The batch-size finder's trials on lthost's fit loop (the `Trials` that
//! `callbacks/batch_size_finder.rs` drives), shared by the Tuner's search
//! (`scale_batch_size.rs`) and the callback's (`batch_size_in_fit.rs`): each trial the fit loop
//! from the search's starting position, the loaders asked for again after each change of
//! size (a loader no trial used drops its iterator's draws), out of memory told from other
//! failures.

use anyhow::{anyhow, bail, Result};

use crate::callbacks::batch_size_finder::Trials;
use crate::data::fetchers::DataLoader;
use crate::engine::optim::OptimizationProgress;
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::loops::state_dict::Loops;
use crate::loops::{fit, reload};
use crate::module::{AttrValue, Split};
use crate::trainer::fit_numbers;

/// Lightning's `lightning_hasattr`: the module or the DataModule holds the field.
pub(super) fn holds(st: &mut LoopState<'_>, name: &str) -> Result<bool> {
    if st.module.has_attr(&mut st.ctx, name)? {
        return Ok(true);
    }
    match st.data.as_deref_mut() {
        Some(d) => d.has_attr(&mut st.ctx, name),
        None => Ok(false),
    }
}

/// Where every trial starts (Lightning's dumped `loop_state_dict`, with the optimizer
/// progress and epoch progress `_reset_progress` zeroes).
pub(super) struct Start {
    pub(super) loops: Loops,
    pub(super) progress: OptimizationProgress,
    pub(super) epoch: u64,
    pub(super) step: u64,
}

/// The trials on the fit loop.
pub(super) struct FitTrials<'s, 'a> {
    pub(super) st: &'s mut LoopState<'a>,
    pub(super) train: DataLoader,
    /// A trial ran on `train`. Lightning's `setup_data` makes a new loader's iterator at
    /// once (its base seed drawn) and the next trial's first epoch uses it; a loader no trial
    /// used is dropped with its draws made ([`DataLoader::discard_iterator`]).
    pub(super) used: bool,
    /// Asked for when the first trial starts (Lightning's fit loop `on_run_start`).
    pub(super) val: Option<Vec<DataLoader>>,
    pub(super) start: Start,
    pub(super) name: String,
    /// The user's `overfit_batches` is set: the loaders keep a sequential sampler (Lightning's
    /// `_resolve_overfit_batches`), while the search's limits are its own.
    pub(super) overfit: bool,
}

impl FitTrials<'_, '_> {
    /// The loop numbers for the loaders held now.
    fn refresh_limits(&mut self) -> Result<()> {
        let st = &mut *self.st;
        let lens: Vec<usize> = self.val.iter().flatten().map(DataLoader::num_batches).collect();
        st.limits = LoopLimits::for_fit(&st.cfg, self.train.num_batches(), &lens)?;
        st.ctx.fit_numbers = fit_numbers(&st.cfg, &st.limits);
        st.ctx.max_epochs = st.limits.max_epochs;
        Ok(())
    }

    fn ask_val(&mut self) -> Result<()> {
        let st = &mut *self.st;
        let Some(d) = st.data.as_deref_mut() else { return Ok(()) };
        let mut val = DataLoader::all_from_plugin(d, &mut st.ctx, Split::Val, st.cfg.prefetch())?;
        if self.overfit {
            val.iter_mut().for_each(|v| v.set_shuffle(false));
        }
        st.eval_log_steps.clear();
        self.val = Some(val);
        self.refresh_limits()
    }
}

impl Trials for FitTrials<'_, '_> {
    fn batch_size(&mut self) -> Result<i64> {
        let st = &mut *self.st;
        // Lightning reads the last holder: the DataModule's before the module's.
        let held = match st.data.as_deref_mut() {
            Some(d) => d.get_attr(&mut st.ctx, &self.name)?,
            None => None,
        };
        let held = match held {
            Some(v) => Some(v),
            None => st.module.get_attr(&mut st.ctx, &self.name)?,
        };
        integer_batch_size(held, &self.name)
    }

    fn set_batch_size(&mut self, size: i64) -> Result<()> {
        let st = &mut *self.st;
        st.module.set_attr(&mut st.ctx, &self.name, AttrValue::Int(size))?;
        if let Some(d) = st.data.as_deref_mut() {
            d.set_attr(&mut st.ctx, &self.name, AttrValue::Int(size))?;
        }
        Ok(())
    }

    fn dataset_len(&mut self) -> Result<Option<u64>> {
        Ok(self.train.dataset_len())
    }

    fn run(&mut self) -> Result<bool> {
        if self.val.is_none() {
            self.ask_val()?;
        }
        self.used = true;
        let st = &mut *self.st;
        // What a failed step logged does not reach the next trial.
        st.ctx.logs.clear();
        st.loops = self.start.loops.clone();
        if let Some(o) = st.ctx.optim.as_mut() {
            o.progress = self.start.progress;
        }
        st.ctx.current_epoch = self.start.epoch;
        st.ctx.global_step = self.start.step;
        st.epoch_order = None;
        st.ctx.batch.clear();
        (st.in_batch, st.step_pending, st.val_due_pending) = (false, false, false);
        let val = self.val.get_or_insert_with(Vec::new);
        reload::start(st, &mut self.train, val)?;
        let out = fit::run(st, &mut self.train, val).map(|_| ());
        trial_outcome(st, out, &self.name, "; nothing was trained or saved")
    }

    fn reset_dataloaders(&mut self) -> Result<()> {
        if !self.used {
            self.train.discard_iterator()?;
        }
        let st = &mut *self.st;
        let Some(d) = st.data.as_deref_mut() else { return Ok(()) };
        let name = d.name().to_string();
        let mut train = DataLoader::from_plugin(d, &mut st.ctx, Split::Train, 0, st.cfg.prefetch())?
            .ok_or_else(|| anyhow!("plugin `{name}` provides no train dataset when asked again"))?;
        if self.overfit {
            train.set_shuffle(false);
        }
        self.train = train;
        self.used = false;
        self.ask_val()
    }

    fn info(&mut self, line: String) {
        println!("{line}");
    }
}

/// The field's value as a batch size (Lightning's `lightning_getattr`, read from the last
/// holder).
pub(super) fn integer_batch_size(held: Option<AttrValue>, name: &str) -> Result<i64> {
    match held {
        Some(AttrValue::Int(n)) => Ok(n),
        Some(AttrValue::Float(f)) => bail!("`{name}` holds {f}, not an integer batch size"),
        None => bail!("`{name}` holds no number: the batch size finder reads the batch size there"),
    }
}

/// How a trial ended: true when it ran, false when it ran out of memory and the plugin can go
/// on; a signal (its message followed by `after_signal`) and any other failure end the search.
pub(super) fn trial_outcome(st: &mut LoopState<'_>, out: Result<()>, name: &str, after_signal: &str) -> Result<bool> {
    let signal = st.interrupter.interrupted().or(match crate::plugin::interrupt::signalled() {
        0 => None,
        s => Some(s as i32),
    });
    if let Some(sig) = signal {
        bail!("signal {sig} stopped the batch size search{after_signal}");
    }
    match out {
        Ok(()) => Ok(true),
        Err(e) if out_of_memory(&e) => {
            // Only a plugin that is still usable can go on (a step's error result); one that
            // stopped (an out-of-memory trap) ends the search with its error.
            if let Err(gone) = st.module.has_attr(&mut st.ctx, name) {
                return Err(e.context(format!("the batch size finder cannot go on: {gone}")));
            }
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Lightning's `is_oom_error`, and a refusal of the plugin's tensor budget: the trial ran
/// out of memory.
pub(super) fn out_of_memory(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    (text.contains("CUDA") && text.contains("out of memory"))
        || text.contains("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED.")
        || text.contains("DefaultCPUAllocator: can't allocate memory")
        || text.contains("(plugin.tensor_memory_limit_mb)")
}
