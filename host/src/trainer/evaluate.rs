//! `trainer.validate`, `trainer.test` and `trainer.predict`, and the batch-size search they
//! can start with: Lightning's `BatchSizeFinder` callback (`[callbacks.batch_size_finder]`,
//! at the run's `on_{stage}_start`) or its `Tuner.scale_batch_size(method=…)` run before them
//! (`--scale-batch-size`), tuner/eval_trials.rs.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::{failed, Trainer};
use crate::callbacks::batch_size_finder::BatchSizeConfig;
use crate::checkpoint;
use crate::connectors::checkpoint as ckpt;
use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::hooks::Hook;
use crate::loops::evaluation::{self, EvalMetrics};
use crate::loops::limits::LoopLimits;
use crate::loops::prediction;
use crate::loops::state::LoopState;
use crate::module::{DataModule, Module, Split};
use crate::tuner::eval_trials::{check_setup, search_in_evaluation};

/// The weights `lthost fit --test` tests with (Lightning's `trainer.test(model)` after the
/// fit: the weights as trained; `trainer.test(ckpt_path="best" | "last" | path)`).
#[derive(Debug, Clone, PartialEq)]
pub enum TestWeights {
    Current,
    Best,
    Last,
    Path(std::path::PathBuf),
}

impl std::str::FromStr for TestWeights {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "" | "current" => TestWeights::Current,
            "best" => TestWeights::Best,
            "last" => TestWeights::Last,
            path => TestWeights::Path(path.into()),
        })
    }
}

/// Lightning's `trainer.test(...)` after `trainer.fit(...)` on the same Trainer, on the fit's
/// run: the DataModule's and the module's set-up hooks for the test, the weights chosen (after
/// them, as Lightning restores a checkpoint), the test loop, teardown, and the loggers the fit
/// left open, whose test row is at the fit's last step and epoch (one version directory).
pub(super) fn test_after_fit(st: &mut LoopState<'_>, hparams: &Value, weights: &TestWeights) -> Result<EvalMetrics> {
    let Some(data) = st.data.take() else { bail!("internal: a fit without its DataModule") };
    st.fitting = false;
    st.ctx.stage = Stage::Test;
    // The test loop's per-step rows count from 0 (its own loop's batches).
    st.eval_log_steps.clear();
    let out = (|| -> Result<EvalMetrics> {
        data.setup(&mut st.ctx, Stage::Test, hparams)?;
        st.hook(Hook::Setup, None)?;
        st.configure_model()?;
        let chosen = match weights {
            TestWeights::Current => None,
            TestWeights::Best => {
                Some(st.checkpoint.as_ref().and_then(|c| c.best_model_path.clone()).ok_or_else(|| {
                    anyhow!("--test best: the fit saved no best checkpoint (ModelCheckpoint is off or saved nothing)")
                })?)
            }
            TestWeights::Last => {
                Some(st.checkpoint.as_ref().and_then(|c| c.last_model_path.clone()).ok_or_else(|| {
                    anyhow!("--test last: the fit saved no last checkpoint (set checkpoint.save_last)")
                })?)
            }
            TestWeights::Path(p) => Some(p.clone()),
        };
        if let Some(path) = chosen {
            load_weights(st, &path)?;
        }
        st.log_hyperparams()?;
        let (loaders, n) = stage_loaders(st, data, Stage::Test)?;
        let step = st.ctx.global_step;
        let metrics = evaluation::run(st, &loaders, Stage::Test, &n, evaluation::During::Own, Some(step))?;
        st.hook(Hook::Teardown, None)?;
        if let Some(mut l) = st.logger.take() {
            l.finalize("success")?;
        }
        Ok(metrics)
    })();
    st.data = Some(data);
    out
}

/// The batch-size search a validate, test or predict run starts with.
#[derive(Clone, Copy)]
enum Search<'s> {
    None,
    /// `[callbacks.batch_size_finder]`: in the run, which goes on at the size found.
    Callback(&'s BatchSizeConfig),
    /// `Tuner.scale_batch_size(method=…)`: a run of its own, then the stage's run.
    Tuner(&'s BatchSizeConfig),
    /// The callback under fast_dev_run: no search, but its `setup` checks still run.
    Skipped(&'s BatchSizeConfig),
}

impl<'s> Search<'s> {
    /// The search to run.
    fn cfg(self) -> Option<&'s BatchSizeConfig> {
        match self {
            Search::None | Search::Skipped(_) => None,
            Search::Callback(c) | Search::Tuner(c) => Some(c),
        }
    }

    /// The finder whose `setup` checks the run (the field, a single DataLoader).
    fn checks(self) -> Option<&'s BatchSizeConfig> {
        match self {
            Search::None => None,
            Search::Callback(c) | Search::Tuner(c) | Search::Skipped(c) => Some(c),
        }
    }
}

impl<'c> Trainer<'c> {
    /// Lightning's `trainer.validate` / `trainer.test` on the model as configured: prints
    /// and returns the metrics, and logs them (step 0) like Lightning. With
    /// `[callbacks.batch_size_finder]`, the search runs first, at `on_{stage}_start`.
    pub fn evaluate(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        stage: Stage,
    ) -> Result<EvalMetrics> {
        let callback = self.builtins.batch_size_finder.clone();
        let search = self.search(callback.as_ref().map_or(Search::None, Search::Callback))?;
        Ok(self.evaluate_with(module, data, hparams, stage, search)?.1)
    }

    /// Lightning's `Tuner(trainer).scale_batch_size(model, datamodule, method="validate" |
    /// "test")` and then `trainer.validate` / `trainer.test` on the same objects: the size
    /// found (None when fast_dev_run skips the search) and the run's metrics.
    pub fn evaluate_after_scale_batch_size(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        stage: Stage,
        cfg: &BatchSizeConfig,
    ) -> Result<(Option<i64>, EvalMetrics)> {
        let search = self.tuner_search(cfg)?;
        self.evaluate_with(module, data, hparams, stage, search)
    }

    fn evaluate_with(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        stage: Stage,
        search: Search<'_>,
    ) -> Result<(Option<i64>, EvalMetrics)> {
        let p = self.prepare(module, data, hparams, stage)?;
        let limits = LoopLimits::for_evaluation(&self.cfg)?;
        let logger = self.logger(limits.logger)?;
        let limit = if stage == Stage::Test { self.cfg.limit_test_batches } else { self.cfg.limit_val_batches };
        let disabled = limit.is_zero() && self.cfg.fast_dev_run.batches().is_none();
        // A stage limited to 0 batches sets up no data: nothing to search (Lightning's finder
        // fails on an assertion there).
        let search = if disabled { Search::None } else { search };
        let ckpt_spec = self.ckpt_path.clone();
        let dirpath = self.checkpoint.resolved_dirpath();
        let mut st = self.state(module, None, p, limits, logger)?;
        let run = (|| -> Result<(Option<i64>, EvalMetrics)> {
            restore_weights(&mut st, ckpt_spec.as_deref(), dirpath.as_deref())?;
            if let Some(cfg) = search.checks() {
                check_setup(&mut st, data, stage, cfg)?;
            }
            st.hook(Hook::Setup, None)?;
            st.configure_model()?;
            st.log_hyperparams()?;
            let mut metrics = EvalMetrics::default();
            let mut found = None;
            if !disabled {
                let (loaders, n, size) = searched_loaders(&mut st, data, hparams, stage, search)?;
                found = size;
                if stage == Stage::Validate {
                    // Lightning's `trainer.num_val_batches` in validate: the validate loop's own.
                    st.ctx.fit_numbers.num_val_batches = n.iter().map(|&b| crate::module::sized(b)).collect();
                }
                metrics = evaluation::run(&mut st, &loaders, stage, &n, evaluation::During::Own, Some(0))?;
            }
            st.hook(Hook::Teardown, None)?;
            if let Some(mut l) = st.logger.take() {
                l.finalize("success")?;
            }
            Ok((found, metrics))
        })();
        run.map_err(|e| failed(&mut st, e))
    }

    /// Lightning's `trainer.predict`, collecting the predictions in memory: one list per
    /// DataLoader, its batches' in order (see [`Trainer::predict_into`] to stream them instead).
    pub fn predict(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
    ) -> Result<Vec<Vec<tch::Tensor>>> {
        let mut out: Vec<Vec<tch::Tensor>> = Vec::new();
        let loaders = self.predict_into(module, data, hparams, &mut |p| {
            let dl = p.dataloader_idx.unwrap_or(0) as usize;
            if out.len() <= dl {
                out.resize_with(dl + 1, Vec::new);
            }
            out[dl].push(p.tensor);
            Ok(())
        })?;
        // A DataLoader without batches has its (empty) list too.
        out.resize_with(loaders.max(out.len()), Vec::new);
        Ok(out)
    }

    /// `trainer.predict`, handing each batch's prediction to `sink` as it comes; returns the
    /// number of DataLoaders. With `[callbacks.batch_size_finder]`, the search runs first, at
    /// `on_predict_start`.
    pub fn predict_into(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        sink: &mut dyn FnMut(prediction::Prediction) -> Result<()>,
    ) -> Result<usize> {
        let callback = self.builtins.batch_size_finder.clone();
        let search = self.search(callback.as_ref().map_or(Search::None, Search::Callback))?;
        Ok(self.predict_with(module, data, hparams, search, sink)?.1)
    }

    /// Lightning's `Tuner(trainer).scale_batch_size(model, datamodule, method="predict")` and
    /// then `trainer.predict`: the size found (None when fast_dev_run skips the search) and the
    /// number of DataLoaders.
    pub fn predict_into_after_scale_batch_size(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        cfg: &BatchSizeConfig,
        sink: &mut dyn FnMut(prediction::Prediction) -> Result<()>,
    ) -> Result<(Option<i64>, usize)> {
        let search = self.tuner_search(cfg)?;
        self.predict_with(module, data, hparams, search, sink)
    }

    fn predict_with(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        search: Search<'_>,
        sink: &mut dyn FnMut(prediction::Prediction) -> Result<()>,
    ) -> Result<(Option<i64>, usize)> {
        let p = self.prepare(module, data, hparams, Stage::Predict)?;
        let limits = LoopLimits::for_evaluation(&self.cfg)?;
        // No batches to predict: nothing to search (Lightning's finder fails on an assertion).
        let disabled = self.cfg.limit_predict_batches.is_zero() && self.cfg.fast_dev_run.batches().is_none();
        let search = if disabled { Search::None } else { search };
        let ckpt_spec = self.ckpt_path.clone();
        let dirpath = self.checkpoint.resolved_dirpath();
        // Lightning keeps the loggers in predict: the hyper-parameters are logged, and what
        // callbacks write to the loggers lands there; nothing `self.log`s (refused in predict).
        let logger = self.logger(limits.logger)?;
        let mut st = self.state(module, None, p, limits, logger)?;
        let run = (|| -> Result<(Option<i64>, usize)> {
            restore_weights(&mut st, ckpt_spec.as_deref(), dirpath.as_deref())?;
            if let Some(cfg) = search.checks() {
                check_setup(&mut st, data, Stage::Predict, cfg)?;
            }
            st.hook(Hook::Setup, None)?;
            st.configure_model()?;
            st.log_hyperparams()?;
            let (loaders, n, found) = searched_loaders(&mut st, data, hparams, Stage::Predict, search)?;
            prediction::run(&mut st, &loaders, &n, sink)?;
            st.hook(Hook::Teardown, None)?;
            if let Some(mut l) = st.logger.take() {
                l.finalize("success")?;
            }
            Ok((found, loaders.len()))
        })();
        run.map_err(|e| failed(&mut st, e))
    }

    /// The search the run does: none under fast_dev_run (Lightning's warning; the callback's
    /// `setup` checks still run).
    fn search<'s>(&self, search: Search<'s>) -> Result<Search<'s>> {
        let Some(cfg) = search.cfg() else { return Ok(search) };
        cfg.validate()?;
        if self.cfg.fast_dev_run.batches().is_some() {
            eprintln!("warning: Skipping batch size scaler since `fast_dev_run` is enabled.");
            return Ok(match search {
                Search::Callback(c) => Search::Skipped(c),
                _ => Search::None,
            });
        }
        Ok(search)
    }

    /// The Tuner's search, refused beside the callback as Lightning refuses it.
    fn tuner_search<'s>(&self, cfg: &'s BatchSizeConfig) -> Result<Search<'s>> {
        if self.builtins.batch_size_finder.is_some() {
            bail!("Trainer is already configured with a `BatchSizeFinder` callback.Please remove it if you want to use the Tuner. (lthost: `[callbacks.batch_size_finder]` with `--scale-batch-size`)");
        }
        self.search(Search::Tuner(cfg))
    }
}

/// The stage's DataLoaders and the batches each runs, after the batch-size search when there
/// is one, and the size it found. The search runs where Lightning's callback runs it, at
/// `on_{stage}_start`, after the loop has set up its data and made its iterator; Lightning's
/// restore then asks for the loaders again and makes their iterator, which the run goes on
/// with. After the Tuner's search its run ends (`teardown`) and the stage's own run follows:
/// the DataModule set up again, the module's set-up hooks, the loaders asked for again.
fn searched_loaders(
    st: &mut LoopState<'_>,
    data: &mut dyn DataModule,
    hparams: &Value,
    stage: Stage,
    search: Search<'_>,
) -> Result<(Vec<DataLoader>, Vec<usize>, Option<i64>)> {
    let (loaders, n) = stage_loaders(st, data, stage)?;
    let Some(cfg) = search.cfg() else { return Ok((loaders, n, None)) };
    loaders.iter().try_for_each(DataLoader::discard_iterator)?;
    let tuner = matches!(search, Search::Tuner(_));
    let (size, loaders) = search_in_evaluation(st, data, stage, cfg, !tuner)?;
    if tuner {
        st.hook(Hook::Teardown, None)?;
        data.setup(&mut st.ctx, stage, hparams)?;
        st.hook(Hook::Setup, None)?;
        st.configure_model()?;
        let (loaders, n) = stage_loaders(st, data, stage)?;
        return Ok((loaders, n, Some(size)));
    }
    let n = batches(st, stage, &loaders)?;
    Ok((loaders, n, Some(size)))
}

/// A validate, test or predict run's DataLoaders (the split must have one) and the batches
/// each runs, after the stage's limits.
fn stage_loaders(
    st: &mut LoopState<'_>,
    data: &mut dyn DataModule,
    stage: Stage,
) -> Result<(Vec<DataLoader>, Vec<usize>)> {
    let split = match stage {
        Stage::Test => Split::Test,
        Stage::Predict => Split::Predict,
        _ => Split::Val,
    };
    let loaders = DataLoader::all_from_plugin(data, &mut st.ctx, split, st.cfg.prefetch())?;
    if loaders.is_empty() {
        bail!("plugin `{}` provides no {} dataset", data.name(), split.name());
    }
    let n = batches(st, stage, &loaders)?;
    Ok((loaders, n))
}

/// The batches each of `loaders` runs, after the stage's limits.
fn batches(st: &LoopState<'_>, stage: Stage, loaders: &[DataLoader]) -> Result<Vec<usize>> {
    loaders.iter().map(|l| LoopLimits::for_stage(&st.cfg, stage, l.num_batches())).collect()
}

/// `--ckpt-path` for validate/test/predict: the model's weights only.
fn restore_weights(st: &mut LoopState<'_>, spec: Option<&str>, dirpath: Option<&std::path::Path>) -> Result<()> {
    let Some(spec) = spec else { return Ok(()) };
    let path = ckpt::resolve(spec, dirpath, &st.root_dir)?;
    load_weights(st, &path)
}

/// The model's weights from the checkpoint at `path`.
fn load_weights(st: &mut LoopState<'_>, path: &std::path::Path) -> Result<()> {
    let shown = path.display().to_string();
    let c = checkpoint::load(path)?;
    ckpt::restore_model(&mut st.ctx, &c, &shown)?;
    println!("Loaded the model weights from {shown}");
    Ok(())
}
