//! The Trainer: sets up a run (seed, device, threads, the module's layers and optimizer,
//! the data, the logger) and hands it to the loops: `fit`, `validate`, `test`, `predict`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use tch::{Device, Tensor};

use crate::callbacks::{model_summary, ProgressBar};
use crate::config::TrainerConfig;
use crate::connectors::accelerator;
use crate::context::{device_name, RunContext, Stage};
use crate::loggers::{CsvLogger, Logger};
use crate::loops::evaluation::{self, EvalMetrics};
use crate::loops::fetchers::DataLoader;
use crate::loops::progress::Progress;
use crate::loops::state::LoopState;
use crate::loops::{fit, prediction};
use crate::module::{DataModule, Module, Split};

pub struct Trainer {
    pub cfg: TrainerConfig,
    /// The directory the plugins were granted (reads through `tensor.load`).
    pub data_dir: Option<PathBuf>,
}

/// What `fit` reports.
#[derive(Debug)]
pub struct FitReport {
    pub epochs: u64,
    pub global_step: u64,
    pub stop_reason: String,
    /// Every metric's last value.
    pub metrics: BTreeMap<String, f64>,
    pub elapsed: Duration,
    pub log_dir: Option<PathBuf>,
    pub device: Device,
    pub threads: usize,
    pub seed: u64,
    pub trainable_params: i64,
}

/// A run's set-up, shared by every entry point.
struct Prepared {
    ctx: RunContext,
    hparams: Value,
    seed: u64,
    threads: usize,
}

impl Trainer {
    pub fn new(cfg: TrainerConfig, data_dir: Option<PathBuf>) -> Self {
        Trainer { cfg, data_dir }
    }

    fn prepare(&self, module: &mut dyn Module, data: &mut dyn DataModule, hparams: &Value, stage: Stage) -> Result<Prepared> {
        let acc = self.cfg.validate()?;
        let device = accelerator::resolve(acc)?;
        let threads = accelerator::set_threads(self.cfg.threads);
        let seed = self.cfg.seed.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0)
        });
        tch::manual_seed(seed as i64);
        if let Device::Cuda(_) = device {
            tch::Cuda::manual_seed_all(seed);
        }
        println!("Seed set to {seed}");
        println!(
            "GPU available: {} (cuda), used: {}",
            tch::Cuda::is_available(),
            matches!(device, Device::Cuda(_))
        );
        println!("libtorch threads: {threads} intra-op, 1 inter-op");
        let mut ctx = RunContext { device, creation_device: device, data_dir: self.data_dir.clone(), ..RunContext::default() };
        ctx.stage = stage;
        let effective = module.configure(&mut ctx, hparams)?;
        data.setup(&mut ctx, stage, hparams)?;
        Ok(Prepared { ctx, hparams: effective, seed, threads })
    }

    fn loader(data: &mut dyn DataModule, ctx: &mut RunContext, split: Split) -> Result<Option<DataLoader>> {
        let name = data.name().to_string();
        match data.dataset(ctx, split)? {
            Some(spec) => Ok(Some(DataLoader::new(spec, split, &format!("plugin `{name}`"))?)),
            None => Ok(None),
        }
    }

    fn state<'a>(&'a self, module: &'a mut dyn Module, ctx: RunContext, logger: Option<Box<dyn Logger>>) -> LoopState<'a> {
        let mut bar = ProgressBar::new(self.cfg.enable_progress_bar);
        bar.version = logger.as_ref().map(|l| l.version()).unwrap_or(0);
        LoopState {
            cfg: &self.cfg,
            module,
            ctx,
            logger,
            bar,
            epoch_progress: Progress::default(),
            batch_progress: Progress::default(),
            callback_metrics: BTreeMap::new(),
            should_stop: false,
        }
    }

    /// Lightning's `trainer.fit(model, datamodule)`.
    pub fn fit(&self, module: &mut dyn Module, data: &mut dyn DataModule, hparams: &Value) -> Result<FitReport> {
        let started = Instant::now();
        let Prepared { mut ctx, hparams, seed, threads } = self.prepare(module, data, hparams, Stage::Fit)?;
        let train = Self::loader(data, &mut ctx, Split::Train)?
            .ok_or_else(|| anyhow!("plugin `{}` provides no train dataset: `fit` needs one", data.name()))?;
        if train.is_empty() {
            bail!("plugin `{}`: the train dataset is empty", data.name());
        }
        let val = Self::loader(data, &mut ctx, Split::Val)?;
        let opt_cfg = module.configure_optimizers(&mut ctx)?;
        let params = ctx.params.parameters();
        if params.is_empty() {
            bail!("plugin `{}` registered no trainable parameters: nothing to optimize", module.name());
        }
        let mut optimizer = opt_cfg.build(params.len());
        let logger: Option<Box<dyn Logger>> = if self.cfg.logger {
            let mut l = CsvLogger::new(&self.cfg.default_root_dir)?;
            l.log_hyperparams(&hparams)?;
            Some(Box::new(l))
        } else {
            None
        };
        if self.cfg.enable_model_summary {
            println!("\n{}", model_summary::render(&ctx.params));
        }
        println!("Optimizer: {} (lr={})", opt_cfg.name(), opt_cfg.lr());
        let trainable_params = ctx.params.num_parameters();
        let device = ctx.device;
        let mut st = self.state(module, ctx, logger);
        let outcome = fit::run(&mut st, &train, val.as_ref(), optimizer.as_mut())?;
        if let Some(l) = st.logger.as_mut() {
            l.save()?;
        }
        let stop_reason = if st.should_stop {
            format!("`max_steps={}` reached", self.cfg.max_steps)
        } else {
            match self.cfg.effective_max_epochs() {
                Some(m) => format!("`max_epochs={m}` reached"),
                None => "the data ran out".to_string(),
            }
        };
        let mut metrics = st.callback_metrics.clone();
        metrics.extend(outcome.last_epoch);
        Ok(FitReport {
            epochs: outcome.epochs,
            global_step: st.ctx.global_step,
            stop_reason,
            metrics,
            elapsed: started.elapsed(),
            log_dir: st.logger.as_ref().map(|l| l.log_dir().to_path_buf()),
            device,
            threads,
            seed,
            trainable_params,
        })
    }

    /// Lightning's `trainer.validate` / `trainer.test` on the model as configured.
    pub fn evaluate(&self, module: &mut dyn Module, data: &mut dyn DataModule, hparams: &Value, stage: Stage) -> Result<EvalMetrics> {
        let split = if stage == Stage::Test { Split::Test } else { Split::Val };
        let Prepared { mut ctx, .. } = self.prepare(module, data, hparams, stage)?;
        let loader = Self::loader(data, &mut ctx, split)?
            .ok_or_else(|| anyhow!("plugin `{}` provides no {} dataset", data.name(), split.name()))?;
        let mut st = self.state(module, ctx, None);
        evaluation::run(&mut st, &loader, stage, None)
    }

    /// Lightning's `trainer.predict`: one output tensor per batch.
    pub fn predict(&self, module: &mut dyn Module, data: &mut dyn DataModule, hparams: &Value) -> Result<Vec<Tensor>> {
        let Prepared { mut ctx, .. } = self.prepare(module, data, hparams, Stage::Predict)?;
        let loader = Self::loader(data, &mut ctx, Split::Predict)?
            .ok_or_else(|| anyhow!("plugin `{}` provides no predict dataset", data.name()))?;
        let mut st = self.state(module, ctx, None);
        prediction::run(&mut st, &loader)
    }
}

impl FitReport {
    /// The closing summary printed after `fit`.
    pub fn render(&self, plugin: &str) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mut out = format!("`Trainer.fit` stopped: {}.\n\nSummary\n", self.stop_reason);
        out.push_str(&format!("  plugin        {plugin}\n"));
        out.push_str(&format!("  device        {} (libtorch threads: {})\n", device_name(self.device), self.threads));
        out.push_str(&format!("  seed          {}\n", self.seed));
        out.push_str(&format!("  parameters    {}\n", self.trainable_params));
        out.push_str(&format!("  epochs        {}  (global steps {})\n", self.epochs, self.global_step));
        out.push_str(&format!("  time          {:.2} s  ({:.1} steps/s)\n", secs, self.global_step as f64 / secs.max(1e-9)));
        if let Some(d) = &self.log_dir {
            out.push_str(&format!("  logs          {}\n", d.display()));
        }
        if !self.metrics.is_empty() {
            out.push_str("  final metrics\n");
            for (k, v) in &self.metrics {
                out.push_str(&format!("    {k:<20} {}\n", crate::callbacks::progress_bar::fmt_value(*v)));
            }
        }
        out
    }
}
