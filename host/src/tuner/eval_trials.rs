//! The batch-size finder on the validate, test and predict loops (Lightning's
//! `Tuner.scale_batch_size(method="validate" | "test" | "predict")` and its `BatchSizeFinder`
//! callback in those runs): the search of `callbacks/batch_size_finder.rs` over trials of the
//! evaluation (or prediction) loop.
//!
//! As Lightning's: the search starts where its callback's `on_{stage}_start` runs, with no
//! callbacks, loggers or progress bar; a validate or test trial runs the loop over at most
//! `steps_per_trial` batches (a predict trial over the user's `limit_predict_batches`:
//! Lightning's limits are set for its evaluation loops only, which the prediction loop is
//! not), the module's stage hooks
//! around it, and the loop's progress put back after it. The evaluation loops ask for their
//! DataLoaders whenever they set up their data, so the loaders are asked for again for the
//! dataset-length check, at every trial and after every change of size. After the search
//! the settings and the loops are put back, the loaders asked for once more, and then the
//! module's weights, its `on_save_checkpoint` state and the DataModule's `state_dict` (Lightning's
//! checkpoint round trip). What a trial that ran out of memory logged is dropped (Lightning's
//! results keep it until the next evaluation ends, so it reaches the run's results there).

use anyhow::{bail, Result};

use super::fit_trials::{integer_batch_size, trial_outcome};
use super::{put_back, weights};
use crate::callbacks::batch_size_finder::{search, BatchSizeConfig, Trials};
use crate::callbacks::ProgressBar;
use crate::config::Limit;
use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::loops::{evaluation, prediction};
use crate::module::{AttrValue, DataModule, Split};

/// The split a stage reads.
fn split_of(stage: Stage) -> Split {
    match stage {
        Stage::Test => Split::Test,
        Stage::Predict => Split::Predict,
        _ => Split::Val,
    }
}

/// `BatchSizeFinder.setup` for validate, test and predict (after the DataModule's `setup`,
/// before the module's): the loop sets up its data once (one more request of the loaders,
/// no iterator), a single DataLoader is required, and the field must exist; Lightning's
/// messages.
pub(crate) fn check_setup(
    st: &mut LoopState<'_>,
    data: &mut dyn DataModule,
    stage: Stage,
    cfg: &BatchSizeConfig,
) -> Result<()> {
    cfg.validate()?;
    let split = split_of(stage);
    let loaders = DataLoader::all_from_plugin(data, &mut st.ctx, split, st.cfg.prefetch())?;
    if loaders.len() > 1 {
        bail!("The Batch size finder cannot be used with multiple {} dataloaders.", split.name());
    }
    if !holds(st, data, &cfg.batch_arg_name)? {
        bail!(
            "Field {} not found in `model`, `datamodule`, nor their `hparams` attributes. (lthost: `batch_arg_name`)",
            cfg.batch_arg_name
        );
    }
    Ok(())
}

/// Lightning's `lightning_hasattr`: the module or the DataModule holds the field.
fn holds(st: &mut LoopState<'_>, data: &mut dyn DataModule, name: &str) -> Result<bool> {
    Ok(st.module.has_attr(&mut st.ctx, name)? || data.has_attr(&mut st.ctx, name)?)
}

/// The search in a validate, test or predict run, at its `on_{stage}_start`: returns the size
/// found, set on every holder of the field, and the stage's loaders at that size, with the run
/// as it was before the search. As Lightning's `finally`: the settings go back, the loop asks
/// for its loaders and makes their iterator (`keep_iterator`: the run goes on with it; else it
/// is dropped, as the Tuner's run ends), and then the checkpoint is restored.
pub(crate) fn search_in_evaluation(
    st: &mut LoopState<'_>,
    data: &mut dyn DataModule,
    stage: Stage,
    cfg: &BatchSizeConfig,
    keep_iterator: bool,
) -> Result<(i64, Vec<DataLoader>)> {
    // Lightning's checkpoint before the search.
    let snapshot = weights(&st.ctx)?;
    let module_state = st.module.save_state(&mut st.ctx)?;
    let data_state = data.save_state(&mut st.ctx)?;
    // `__scale_batch_dump_params` / `__scale_batch_reset_params`: no callbacks, loggers or bar;
    // validate and test trials limited to `steps_per_trial` batches.
    let mut during = st.cfg.clone();
    during.enable_progress_bar = false;
    match stage {
        Stage::Test => during.limit_test_batches = Limit::Batches(cfg.steps_per_trial),
        Stage::Predict => {}
        _ => {
            during.limit_val_batches = Limit::Batches(cfg.steps_per_trial);
            during.overfit_batches = Limit::Batches(0);
        }
    }
    let user = std::mem::replace(&mut st.cfg, during);
    let callbacks = std::mem::take(&mut st.callbacks);
    let logger = st.logger.take();
    let bar = std::mem::replace(&mut st.bar, ProgressBar::new(false));
    let loops = st.loops.clone();
    let was_searching = std::mem::replace(&mut st.searching, true);
    let found = (|| -> Result<i64> {
        let name = cfg.batch_arg_name.clone();
        let mut trials = EvalTrials { st: &mut *st, data: &mut *data, stage, name, loaders: Vec::new() };
        let size = search(&mut trials, cfg)?;
        println!("Finished batch size finder, will continue with full run using batch size {size}");
        Ok(size)
    })();
    // `__scale_batch_restore_params` (also after a failure, as Lightning's `finally`): the
    // settings back, the loaders asked for again and their iterator made.
    st.cfg = user;
    st.callbacks = callbacks;
    st.logger = logger;
    st.bar = bar;
    st.loops = loops;
    st.searching = was_searching;
    st.eval_log_steps.clear();
    st.ctx.logs.clear();
    let asked = found.and_then(|size| {
        let loaders = DataLoader::all_from_plugin(data, &mut st.ctx, split_of(stage), st.cfg.prefetch())?;
        for l in &loaders {
            if keep_iterator {
                l.make_iterator_now()?;
            } else {
                l.discard_iterator()?;
            }
        }
        Ok((size, loaders))
    });
    // Then the checkpoint restore: the DataModule's state, the module's `on_load_checkpoint`,
    // then the weights; each is tried, and the search's own error comes first.
    let mut restored = Ok(());
    if let Some(state) = &data_state {
        restored = data.load_state(&mut st.ctx, state);
    }
    if let Some(state) = &module_state {
        let r = st.module.load_state(&mut st.ctx, state);
        restored = restored.and(r);
    }
    let r = put_back(&st.ctx, &snapshot);
    let asked = asked?;
    restored.and(r)?;
    Ok(asked)
}

/// The trials on the validate, test or predict loop.
struct EvalTrials<'s, 'a> {
    st: &'s mut LoopState<'a>,
    data: &'s mut dyn DataModule,
    stage: Stage,
    name: String,
    /// The loaders the loop set up last.
    loaders: Vec<DataLoader>,
}

impl EvalTrials<'_, '_> {
    /// The loop's `setup_data`: the stage's loaders asked for again.
    fn setup_data(&mut self) -> Result<()> {
        let split = split_of(self.stage);
        self.loaders = DataLoader::all_from_plugin(self.data, &mut self.st.ctx, split, self.st.cfg.prefetch())?;
        if self.loaders.is_empty() {
            bail!("plugin `{}` provides no {} dataset", self.data.name(), split.name());
        }
        Ok(())
    }
}

impl Trials for EvalTrials<'_, '_> {
    fn batch_size(&mut self) -> Result<i64> {
        // Lightning reads the last holder: the DataModule's before the module's.
        let held = match self.data.get_attr(&mut self.st.ctx, &self.name)? {
            Some(v) => Some(v),
            None => self.st.module.get_attr(&mut self.st.ctx, &self.name)?,
        };
        integer_batch_size(held, &self.name)
    }

    fn set_batch_size(&mut self, size: i64) -> Result<()> {
        self.st.module.set_attr(&mut self.st.ctx, &self.name, AttrValue::Int(size))?;
        self.data.set_attr(&mut self.st.ctx, &self.name, AttrValue::Int(size))
    }

    fn dataset_len(&mut self) -> Result<Option<u64>> {
        self.setup_data()?;
        Ok(self.loaders.first().and_then(DataLoader::dataset_len))
    }

    fn run(&mut self) -> Result<bool> {
        self.setup_data()?;
        let st = &mut *self.st;
        // What a failed step logged does not reach the next trial.
        st.ctx.logs.clear();
        st.ctx.batch.clear();
        let batches = self
            .loaders
            .iter()
            .map(|l| LoopLimits::for_stage(&st.cfg, self.stage, l.num_batches()))
            .collect::<Result<Vec<_>>>()?;
        let out = match self.stage {
            Stage::Predict => prediction::run(st, &self.loaders, &batches, &mut |_| Ok(())),
            stage => evaluation::run(st, &self.loaders, stage, &batches, evaluation::During::Own, Some(0)).map(|_| ()),
        };
        trial_outcome(st, out, &self.name, "")
    }

    fn reset_dataloaders(&mut self) -> Result<()> {
        self.setup_data()
    }

    fn info(&mut self, line: String) {
        println!("{line}");
    }
}
