//! The Trainer: sets up a run (seed, device, threads, the module's layers and optimizers,
//! the data, the logger, the callbacks) and hands it to the loops, calling the set-up and
//! tear-down hooks in Lightning's order: `fit`, `validate`, `test`, `predict`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use tch::Device;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::callbacks::model_checkpoint::{CheckpointConfig, ModelCheckpoint};
use crate::callbacks::{model_summary, Callback, ProgressBar};
use crate::checkpoint;
use crate::config::{Limit, TrainerConfig};
use crate::connectors::accelerator;
use crate::connectors::checkpoint as ckpt;
use crate::connectors::logger::ResultCollection;
use crate::context::{device_name, RunContext, Stage};
use crate::data::fetchers::DataLoader;
use crate::engine::optim::OptimizerSet;
use crate::hooks::Hook;
use crate::hparams::SavedHparams;
use crate::loggers::options::{locate, next_free};
use crate::loggers::{CsvLogger, Logger, LoggerGroup, LoggerOptions, LoggersConfig, TensorBoardLogger, Version};
use crate::loops::evaluation::{self, EvalMetrics};
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::loops::{checkpointing, fit};
use crate::module::{DataModule, Module, Split};

mod evaluate;

pub use evaluate::TestWeights;

/// Makes a logger for a run's log directory and version (logger plugins).
pub type LoggerFactory<'c> = Box<dyn Fn(&std::path::Path, &Version) -> Result<Box<dyn Logger>> + 'c>;

pub struct Trainer<'c> {
    pub cfg: TrainerConfig,
    pub checkpoint: CheckpointConfig,
    /// `--ckpt-path`: last, best or a path.
    pub ckpt_path: Option<String>,
    /// sha256 of the plugin component, recorded in checkpoints.
    pub plugin_sha256: String,
    pub early_stopping: Option<crate::callbacks::early_stopping::EarlyStoppingConfig>,
    /// Logger plugins, built for the run's log directory and version.
    pub logger_plugins: Vec<LoggerFactory<'c>>,
    /// The built-in loggers' arguments (`[loggers.csv]`, `[loggers.tensorboard]`).
    pub loggers: LoggersConfig,
    /// The SLURM job's id (`loggers::options::slurm_job_id`), set by the binary: the version
    /// of a built-in logger given no table, as Lightning's default logger takes it.
    pub slurm_job_id: Option<u64>,
    /// Set by the binary's signal handlers (SIGTERM, SIGINT, SIGUSR1).
    pub signal: Option<Arc<AtomicUsize>>,
    /// The directory the plugins were granted (reads through `tensor.load`).
    pub data_dir: Option<PathBuf>,
    /// User callbacks, called before the module at every hook.
    pub callbacks: Vec<Box<dyn Callback + 'c>>,
    /// Lightning's `trainer.test(...)` after `trainer.fit(...)` on the same Trainer: `fit`
    /// goes on to test with these weights, in the fit's logger version at its last step.
    pub then_test: Option<TestWeights>,
    /// Built-in callbacks turned on by the run file (`[callbacks.*]`).
    pub builtins: crate::callbacks::BuiltinCallbacks,
    pub progress_bar: crate::callbacks::progress_bar::ProgressBarConfig,
    /// This process's place in a DDP world (set by the binary; None: one process).
    pub cluster: Option<crate::distributed::Cluster>,
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
    /// The signal that stopped the run, if one did.
    pub interrupted: Option<i32>,
    pub best_model_path: Option<PathBuf>,
    /// ModelCheckpoint's `best_model_score` and `best_k_models` (each kept checkpoint and its
    /// score), when checkpointing.
    pub best_model_score: Option<f64>,
    pub best_k_models: Vec<(PathBuf, f64)>,
    /// EarlyStopping's `stopped_epoch` (0 when it did not stop the run) and its reason (the
    /// name of Lightning's `EarlyStoppingReason`), when configured.
    pub stopped_epoch: Option<u64>,
    pub stopping_reason: Option<&'static str>,
    pub last_model_path: Option<PathBuf>,
    /// The checkpoint the run resumed from.
    pub resumed_from: Option<PathBuf>,
    /// The Timer's seconds per stage (train includes its validation runs).
    pub stage_times: Vec<(&'static str, f64)>,
    /// From process start to the first training step.
    pub first_step: Option<Duration>,
    /// Time the training loop waited for its batches.
    pub data_wait: Duration,
    /// Wall time of each epoch.
    pub epoch_seconds: Vec<f64>,
    /// The test after the fit ([`Trainer::then_test`]).
    pub test: Option<EvalMetrics>,
    /// A DDP run: the world size and whether every rank ended with the same weights.
    /// DDP: (processes, the CUDA tensors' backend, every rank's weights the same).
    pub ddp: Option<(usize, &'static str, bool)>,
}

/// A run's set-up, shared by every entry point.
pub(crate) struct Prepared {
    pub(crate) ctx: RunContext,
    pub(crate) hparams: SavedHparams,
    pub(crate) data_hparams: SavedHparams,
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    pub(crate) module_hooks: crate::module::ModuleHooks,
    /// The module's hyper-parameters for checkpoints when they differ from what it saved
    /// (the learning-rate finder's suggestion set in them).
    pub(crate) checkpoint_hparams: Option<serde_json::Map<String, Value>>,
    /// The run's hyper-parameters as given (the DataModule's `setup` takes them again).
    pub(crate) run_hparams: Value,
    /// The DDP strategy, in a distributed run.
    pub(crate) ddp: Option<crate::distributed::Ddp>,
}

impl<'c> Trainer<'c> {
    pub fn new(mut cfg: TrainerConfig, data_dir: Option<PathBuf>) -> Self {
        cfg.default_root_dir = crate::run_dir::expand_home(&cfg.default_root_dir);
        Trainer {
            cfg,
            data_dir,
            callbacks: Vec::new(),
            checkpoint: CheckpointConfig::default(),
            ckpt_path: None,
            cluster: None,
            plugin_sha256: String::new(),
            signal: None,
            early_stopping: None,
            logger_plugins: Vec::new(),
            loggers: LoggersConfig::default(),
            slurm_job_id: None,
            builtins: Default::default(),
            progress_bar: Default::default(),
            then_test: None,
        }
    }

    pub fn with_callback(mut self, cb: Box<dyn Callback + 'c>) -> Self {
        self.callbacks.push(cb);
        self
    }

    /// Seed, device, threads; the module's `configure` (its `__init__`) and the DataModule's
    /// `setup`.
    pub(crate) fn prepare(
        &self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        stage: Stage,
    ) -> Result<Prepared> {
        let acc = self.cfg.validate()?;
        let mut device = accelerator::resolve(acc)?;
        // DDP on CUDA: one GPU per local rank (Lightning's `parallel_devices[local_rank]`).
        if let (Some(c), Device::Cuda(_)) = (&self.cluster, device) {
            let visible = tch::Cuda::device_count().max(0) as usize;
            device = Device::Cuda(crate::distributed::cuda_device(c.local_rank, c.local_world_size, visible)?);
        }
        let (precision, said) =
            crate::precision::Precision::resolve(&self.cfg.precision, self.cfg.mixed_precision.as_ref(), device)?;
        let threads = accelerator::set_threads(self.cfg.threads);
        crate::engine::torch_ext::set_deterministic(self.cfg.deterministic);
        if self.cfg.deterministic {
            tch::Cuda::cudnn_set_benchmark(false);
        }
        let seed = self.cfg.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0)
        });
        // DDP: join the world (Lightning's `setup_environment`); every rank takes rank 0's seed.
        let ddp = match &self.cluster {
            Some(c) => {
                let timeout = Duration::try_from_secs_f64(self.cfg.ddp_timeout_s)
                    .map_err(|_| anyhow!("trainer.ddp_timeout_s = {} is not a duration", self.cfg.ddp_timeout_s))?;
                let opts = crate::distributed::DdpOptions {
                    timeout,
                    device,
                    backend: crate::distributed::backend(&self.cfg, matches!(device, Device::Cuda(_))),
                    sync_batchnorm: self.cfg.sync_batchnorm,
                    find_unused_parameters: crate::distributed::find_unused_parameters(&self.cfg),
                };
                Some(crate::distributed::Ddp::init(c.clone(), &opts)?)
            }
            None => None,
        };
        let seed = match &ddp {
            Some(d) => d.broadcast_seed(seed)?,
            None => seed,
        };
        tch::manual_seed(seed as i64);
        if let Device::Cuda(_) = device {
            tch::Cuda::manual_seed_all(seed);
        }
        println!("Seed set to {seed}");
        for line in said {
            match line.strip_prefix("warning: ") {
                Some(_) => eprintln!("{line}"),
                None => println!("{line}"),
            }
        }
        println!("GPU available: {} (cuda), used: {}", tch::Cuda::is_available(), matches!(device, Device::Cuda(_)));
        println!("libtorch threads: {threads} intra-op, {} inter-op", tch::get_num_interop_threads());
        let mut ctx = RunContext {
            device,
            precision,
            creation_device: device,
            data_dir: self.data_dir.clone(),
            ..RunContext::default()
        };
        ctx.stage = stage;
        let saved = module.configure(&mut ctx, hparams)?;
        let module_hooks = crate::module::ModuleHooks::of(module, &mut ctx)?;
        if let Some(d) = &ddp {
            // Lightning's `DDPStrategy.setup_distributed` reseeds every rank (`reset_seed`)
            // after the model is made, before the DataModule's setup.
            tch::manual_seed(seed as i64);
            let c = &d.cluster;
            ctx.world = Some(crate::distributed::World {
                world_size: c.world_size,
                global_rank: c.global_rank,
                local_rank: c.local_rank,
                node_rank: c.node_rank,
                local_world_size: c.local_world_size,
                seed,
            });
        }
        let data_hparams = data.setup(&mut ctx, stage, hparams)?;
        Ok(Prepared {
            ctx,
            hparams: saved,
            data_hparams,
            seed,
            threads,
            module_hooks,
            checkpoint_hparams: None,
            run_hparams: hparams.clone(),
            ddp,
        })
    }

    pub(crate) fn state<'a>(
        &'a mut self,
        module: &'a mut dyn Module,
        data: Option<&'a mut dyn DataModule>,
        p: Prepared,
        limits: LoopLimits,
        logger: Option<Box<dyn Logger>>,
    ) -> Result<LoopState<'a>> {
        let zero = p.ddp.as_ref().is_none_or(crate::distributed::Ddp::is_global_zero);
        let mut bar = ProgressBar::with_config(self.cfg.enable_progress_bar && zero, &self.progress_bar);
        // Lightning's bar shows the last 4 characters of a string version.
        bar.version = logger.as_ref().map(|l| match l.version() {
            Version::Number(n) => n.to_string(),
            Version::Name(s) => s.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect(),
        });
        let mut callbacks: Vec<Box<dyn Callback + 'c>> =
            self.builtins.build()?.into_iter().map(|c| c as Box<dyn Callback + 'c>).collect();
        callbacks.append(&mut self.callbacks);
        Ok(LoopState {
            cfg: self.cfg.clone(),
            limits,
            module,
            data,
            ctx: p.ctx,
            callbacks,
            module_hooks: p.module_hooks,
            logger,
            bar,
            loops: Default::default(),
            fitting: false,
            interrupter: crate::loops::interrupter::Interrupter::new(self.signal.clone()),
            val_has_run: false,
            eval_log_steps: Vec::new(),
            last_val_time: std::time::Instant::now(),
            reloads: Default::default(),
            train_results: ResultCollection::synced(p.ddp.as_ref().map(crate::distributed::Ddp::syncer)),
            checkpoint_hparams: p.checkpoint_hparams.unwrap_or_else(|| p.hparams.hparams.clone()),
            searching: false,
            hparams: p.hparams,
            data_hparams: p.data_hparams,
            plugin_sha256: self.plugin_sha256.clone(),
            checkpoint: None,
            early_stopping: None,
            epoch_order: None,
            resume_order: None,
            root_dir: self.cfg.default_root_dir.clone(),
            timer: Default::default(),
            batch_size: None,
            batch_loss: None,
            stepping: false,
            first_step: None,
            steps_at_batch_start: 0,
            step_pending: false,
            in_batch: false,
            val_due_pending: false,
            on_exception_called: false,
            on_exception_dir: (self.checkpoint.on_exception && zero)
                .then(|| self.checkpoint.resolved_dirpath().unwrap_or_else(|| self.cfg.default_root_dir.clone())),
            data_wait: Duration::ZERO,
            ddp: p.ddp,
            logger_elsewhere: false,
        })
    }

    fn logger(&self, enabled: bool) -> Result<Option<Box<dyn Logger>>> {
        if !enabled
            || (!self.cfg.loggers.iter().any(|l| matches!(l.as_str(), "csv" | "tensorboard" | "mlflow"))
                && self.logger_plugins.is_empty())
        {
            return Ok(None);
        }
        // Loggers numbering versions in one directory share one version (lthost's choice:
        // Lightning's number theirs one after the other, version_0 and version_1).
        let mut shared: HashMap<PathBuf, Version> = HashMap::new();
        let mut auto =
            |root: &std::path::Path| shared.entry(root.to_path_buf()).or_insert_with(|| next_free(root)).clone();
        // A built-in logger given no `[loggers.<kind>]` table takes a SLURM job's id as its
        // version, as Lightning's default logger does, so a requeued job logs on where it was.
        let slurm = self.slurm_job_id;
        let root = &self.cfg.default_root_dir;
        let mut group: Vec<Box<dyn Logger>> = Vec::new();
        for kind in &self.cfg.loggers {
            // MLflow's run lives on its tracking server; checkpoints under
            // `<default_root_dir>/<experiment id>/<run id>/` as Lightning puts them.
            if kind == "mlflow" {
                let opts = self.loggers.mlflow.clone().unwrap_or_default();
                group.push(Box::new(crate::loggers::MlflowLogger::open(&opts, root)?));
                continue;
            }
            // Logger plugins (.wasm) come in through `logger_plugins`.
            let given = match kind.as_str() {
                "csv" => &self.loggers.csv,
                "tensorboard" => &self.loggers.tensorboard,
                _ => continue,
            };
            let mut opts = given.clone().unwrap_or_default();
            if given.is_none() {
                opts.version = slurm.map(Version::Number);
            }
            let at = locate(&opts, root, &mut auto)?;
            match kind.as_str() {
                "csv" => group.push(Box::new(CsvLogger::open(at, &opts)?)),
                _ => group.push(Box::new(TensorBoardLogger::new(at, &opts)?)),
            }
        }
        // Logger plugins live in the first logger's directory, or in the default one's.
        let (dir, version) = match group.first() {
            Some(l) => (l.version_dir().to_path_buf(), l.version()),
            None => {
                let at = locate(&LoggerOptions::default(), root, &mut auto)?;
                (at.dir, at.version)
            }
        };
        for make in &self.logger_plugins {
            group.push(make(&dir, &version)?);
        }
        Ok(Some(Box::new(LoggerGroup(group))))
    }

    /// A fit's dataloaders (train is required: `why` says what for) and the loop limits their
    /// sizes resolve; train is unshuffled where the limits say so (overfit_batches).
    ///
    /// `sanity_first`: a sanity check will run. Lightning asks for the validation dataloader
    /// inside the sanity check's `isolate_rng`, before the train dataloader, so both draw
    /// from the same generator state and training continues from the train dataloader's;
    /// lthost asks for train first, then for val from the state train started from.
    pub(crate) fn fit_data(
        &self,
        data: &mut dyn DataModule,
        ctx: &mut RunContext,
        why: &str,
        sanity_first: bool,
    ) -> Result<(DataLoader, Vec<DataLoader>, LoopLimits)> {
        let data_name = data.name().to_string();
        let start = if sanity_first { Some(crate::engine::torch_ext::cpu_rng_state()?) } else { None };
        let mut train = DataLoader::from_plugin(data, ctx, Split::Train, 0, self.cfg.prefetch())?
            .ok_or_else(|| anyhow!("plugin `{data_name}` provides no train dataset: {why}"))?;
        if train.is_empty() {
            bail!("plugin `{data_name}`: the train dataset is empty");
        }
        let mut val = match start {
            Some(start) => {
                let after_train = crate::engine::torch_ext::cpu_rng_state()?;
                crate::engine::torch_ext::set_cpu_rng_state(&start)?;
                let val = DataLoader::all_from_plugin(data, ctx, Split::Val, self.cfg.prefetch());
                crate::engine::torch_ext::set_cpu_rng_state(&after_train)?;
                val?
            }
            None => DataLoader::all_from_plugin(data, ctx, Split::Val, self.cfg.prefetch())?,
        };
        // overfit_batches: the same batches every epoch, validation's too (Lightning's
        // `_resolve_overfit_batches` for both loaders), counted with the sequential sampler.
        if !self.cfg.overfit_batches.is_zero() {
            train.set_shuffle(false);
            for v in &mut val {
                v.set_shuffle(false);
            }
        }
        let val_lens: Vec<usize> = val.iter().map(DataLoader::num_batches).collect();
        let limits = LoopLimits::for_fit(&self.cfg, train.num_batches(), &val_lens)?;
        Ok((train, val, limits))
    }

    /// Lightning's `trainer.fit(model, datamodule)`.
    pub fn fit(&mut self, module: &mut dyn Module, data: &mut dyn DataModule, hparams: &Value) -> Result<FitReport> {
        let started = Instant::now();
        let p = self.prepare(module, data, hparams, Stage::Fit)?;
        self.fit_prepared(module, data, p, started)
    }

    /// The fit of a module and DataModule configured already (`p`), from the generator's
    /// state as it is: after [`Trainer::prepare`], or after a learning-rate search.
    pub(crate) fn fit_prepared(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        mut p: Prepared,
        started: Instant,
    ) -> Result<FitReport> {
        let (seed, threads) = (p.seed, p.threads);
        // Whether a sanity check will run (as `LoopLimits` and the resume below decide it).
        let sanity_first = self.cfg.num_sanity_val_steps != 0
            && self.cfg.fast_dev_run.batches().is_none()
            && self.ckpt_path.is_none()
            && ![Limit::Batches(0), Limit::Fraction(0.0)].contains(&self.cfg.limit_val_batches);
        let (train, val, limits) = self.fit_data(data, &mut p.ctx, "`fit` needs one", sanity_first)?;
        // `trainer.max_epochs` and the loop numbers as plugins read them from `setup` and
        // `configure_optimizers` on.
        p.ctx.max_epochs = limits.max_epochs;
        p.ctx.fit_numbers = fit_numbers(&self.cfg, &limits);
        // Only global rank 0 logs (Lightning's `rank_zero_experiment`).
        let zero = p.ddp.as_ref().is_none_or(crate::distributed::Ddp::is_global_zero);
        let logger = self.logger(limits.logger && zero)?;
        let summary = self.cfg.enable_model_summary && zero;
        let device = p.ctx.device;
        let self_checkpoint = self.checkpoint.clone();
        let self_early_stopping = self.early_stopping.clone();
        let ckpt_spec = self.ckpt_path.clone();
        let then_test = self.then_test.clone();
        let run_hparams = p.run_hparams.clone();
        let batch_size_finder = self.builtins.batch_size_finder.clone();
        let lr_finder = self.builtins.learning_rate_finder.clone();
        let dev_run = self.cfg.fast_dev_run.batches().is_some();
        let logger_wanted = limits.logger;
        let mut st = self.state(module, Some(data), p, limits, logger)?;
        st.fitting = true;
        st.logger_elsewhere = !zero && logger_wanted && !st.cfg.loggers.is_empty();
        // Whatever fails from here on (set-up, the sanity check, the loops, the end hooks) calls
        // on_exception and finalizes the loggers with "failed", as Lightning's `_interrupt`.
        let run = (|| -> Result<FitReport> {
            st.hook(Hook::Setup, None)?;
            st.configure_model()?;
            // DDP: `DistributedDataParallel(model)` (rank 0's states broadcast, the Reducer),
            // after configure_model and the precision's conversion, before the optimizers.
            if let Some(d) = st.ddp.as_mut() {
                d.wrap(&st.ctx.params)?;
            }
            let (opt, name) = configure_optimizers(&mut st)?;
            if !opt.automatic
                && (st.cfg.accumulate_grad_batches > 1 || st.cfg.gradient_clip_val.is_some_and(|v| v > 0.0))
            {
                bail!("plugin `{name}` uses manual optimization: accumulate_grad_batches and gradient_clip_val are automatic-optimization settings (Lightning refuses them too); accumulate or clip in the plugin");
            }
            install_optimizers(&mut st, &name, &opt)?;
            let opt_names: Vec<String> = match &st.ctx.optim {
                Some(set) => set
                    .optimizers
                    .iter()
                    .map(|o| format!("{} (lr={})", o.name(), crate::callbacks::py_format::repr_float(o.lr(0))))
                    .collect(),
                None => Vec::new(),
            };
            // Only global rank 0 writes checkpoints (Lightning's `strategy.save_checkpoint`).
            if st.cfg.enable_checkpointing && st.cfg.fast_dev_run.batches().is_none() && st.is_global_zero() {
                let dir =
                    st.logger.as_ref().map(|l| l.version_dir().to_path_buf()).unwrap_or_else(|| st.root_dir.clone());
                st.checkpoint = Some(ModelCheckpoint::new(self_checkpoint.clone(), &dir)?);
            }
            if let Some(es) = &self_early_stopping {
                st.early_stopping = Some(crate::callbacks::early_stopping::EarlyStopping::new(es.clone())?);
            }
            // DDP: rank 0 finds the file (or the error) and every rank takes it
            // (`strategy.broadcast`): the others may not see rank 0's directories.
            let found = match (&ckpt_spec, st.is_global_zero()) {
                (_, false) => Ok(None),
                (Some(spec), true) => {
                    ckpt::resolve(spec, self_checkpoint.resolved_dirpath().as_deref(), &st.root_dir).map(Some)
                }
                (None, true) => {
                    let found = ckpt::latest_hpc(&st.root_dir, &st.plugin_sha256);
                    if let Some(p) = &found {
                        println!("Auto-resuming from the HPC checkpoint {} (written by this plugin; pass --ckpt-path to choose another)", p.display());
                    }
                    Ok(found)
                }
            };
            let resume_path = match &st.ddp {
                Some(d) => {
                    // "ok:<path>" ("ok:" for none) or "error:<message>", from rank 0.
                    let mine = match &found {
                        Ok(p) => {
                            format!("ok:{}", p.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default())
                        }
                        Err(e) => format!("error:{e:#}"),
                    };
                    let chosen = d.broadcast_string(&mine)?;
                    match (chosen.split_once(':'), found) {
                        (_, Err(e)) => return Err(e),
                        (Some(("ok", p)), _) => (!p.is_empty()).then(|| PathBuf::from(p)),
                        (_, _) => bail!(
                            "rank 0 could not find the checkpoint to resume from: {}",
                            chosen.trim_start_matches("error:")
                        ),
                    }
                }
                None => found?,
            };
            if let Some(path) = &resume_path {
                let shown = path.display().to_string();
                let c = checkpoint::load(path)?;
                ckpt::restore_model(&mut st.ctx, &c, &shown)?;
                let pos = crate::loops::run_state::restore_training(&mut st, &c, &shown)?;
                // Lightning's `restore_loops`: its current epoch (the finished one, for a save at an
                // epoch's end) past max_epochs is refused.
                let epoch = pos.current_epoch - u64::from(pos.restart().at_epoch_end).min(pos.current_epoch);
                if let Some(max) = st.limits.max_epochs.filter(|m| epoch > *m) {
                    bail!(
                    "You restored a checkpoint with current_epoch={epoch}, but you have set Trainer(max_epochs={max})."
                );
                }
                println!(
                    "Restored the training state from {shown} (epoch {}, global step {})",
                    pos.current_epoch, pos.global_step
                );
                if let Some(mc) = st.checkpoint.as_mut() {
                    mc.resumed_from = Some(path.clone());
                }
            }
            if summary {
                println!("\n{}", model_summary::render(&st.ctx.params));
            }
            println!("Optimizer: {}", opt_names.join(", "));
            let trainable_params = st.ctx.params.num_parameters();
            let (mut train, mut val) = (train, val);
            if st.ddp.is_some() && (batch_size_finder.is_some() || lr_finder.is_some()) {
                bail!("a finder callback ([callbacks.batch_size_finder], [callbacks.learning_rate_finder]) searches in one process: tune without --devices, then fit distributed (Lightning refuses the BatchSizeFinder with DDP too)");
            }
            if resume_path.is_some() && (batch_size_finder.is_some() || lr_finder.is_some()) {
                bail!("a finder callback ([callbacks.batch_size_finder], [callbacks.learning_rate_finder]) searches from the run's start: it is not taken with a resumed run (--ckpt-path or an HPC checkpoint); Lightning drops the checkpoint's training state there");
            }
            // `[callbacks.batch_size_finder]`: Lightning's BatchSizeFinder searches at
            // on_fit_start, first of the callbacks; the fit goes on with its loaders.
            if let Some(finder) = &batch_size_finder {
                if dev_run {
                    eprintln!("warning: Skipping batch size scaler since `fast_dev_run` is enabled.");
                } else {
                    (train, val) = crate::tuner::batch_size_in_fit::search_in_fit(&mut st, train, finder)?;
                }
            }
            // `[callbacks.learning_rate_finder]`: Lightning's LearningRateFinder, likewise.
            if let Some(finder) = &lr_finder {
                if dev_run {
                    eprintln!("warning: Skipping learning rate finder since `fast_dev_run` is enabled.");
                } else {
                    (train, val) =
                        crate::tuner::lr_find_in_fit::search_in_fit(&mut st, train, val, &opt, &name, finder)?;
                }
            }
            st.hook(Hook::OnFitStart, None)?;
            // Lightning's `_log_hyperparams`, after on_fit_start.
            st.log_hyperparams()?;
            st.check_time();
            if let (false, None) = (val.is_empty(), &resume_path) {
                // Lightning runs the sanity check under `isolate_rng()`: whatever it draws (the
                // validation iterator's seed, a plugin's randomness) leaves training's stream alone.
                let saved = crate::engine::torch_ext::RngState::now(device)?;
                evaluation::sanity_check(&mut st, &val)?;
                saved.restore()?;
            }
            crate::loops::reload::start(&mut st, &mut train, &mut val)?;
            let mut stopped_in_hook = false;
            let outcome = match fit::run(&mut st, &mut train, &mut val) {
                Ok(o) => o,
                Err(e) if crate::plugin::interrupt::signalled() != 0 => {
                    // A signal stopped a plugin mid-hook. Inside a training batch the run is saved
                    // where its weights are; elsewhere (epoch ends, set-up, a save already under
                    // way) no checkpoint is written rather than one whose position might be off.
                    let sig = crate::plugin::interrupt::signalled() as i32;
                    let what = match e.downcast_ref::<crate::error::PluginError>() {
                        Some(pe) => format!("plugin `{}` in hook `{}`", pe.plugin, pe.hook),
                        None => format!("the run ({e:#})"),
                    };
                    if st.interrupter.interrupted().is_none() {
                        match checkpointing::interrupt_in_hook(&mut st, sig).map_err(|se| se.context(format!("signal {sig} stopped {what}, and saving the run failed")))? {
                        Some(path) => println!("signal {sig} stopped {what}; the run was saved to {} (where its weights are, without the plugin's own state)", path.display()),
                        None => {
                            println!("signal {sig} stopped {what}, outside a training batch; no new checkpoint was written");
                            st.interrupter.interrupt(sig, None);
                        }
                    }
                    }
                    stopped_in_hook = true;
                    fit::FitOutcome::default()
                }
                Err(e) => {
                    // on_exception: callbacks, OnExceptionCheckpoint, loggers keep what they have.
                    // No batch is being processed any more (a failed one is not handed out).
                    st.ctx.batch.clear();
                    let _ = st.hook(Hook::OnException, None);
                    // Batches of the epoch under way; none between epochs (the last one's count
                    // stays in the tracker until the next epoch starts).
                    let epochs = st.loops.fit_loop.epoch_progress.current;
                    let in_epoch = epochs.started > epochs.completed;
                    let bp = st.loops.fit_loop.epoch_loop.batch_progress.current;
                    let done = if in_epoch { bp.completed as usize } else { 0 };
                    // A validation the failure cut is due again (Lightning finishes it).
                    let completed = bp.completed == bp.started;
                    let mut pos = checkpointing::position(&st, done, in_epoch && completed && st.val_due_pending);
                    // A batch that completed and stepped but failed after (in its validation):
                    // its step counts, as in the saves after it.
                    if in_epoch && st.step_pending && completed {
                        pos.loops.fit_loop.epoch_loop.batches_that_stepped += 1;
                    }
                    // ModelCheckpoint's `save_on_exception` (not during the sanity check) and
                    // OnExceptionCheckpoint: the run as it stood.
                    checkpointing::exception_saves(&mut st, pos, false);
                    return Err(e);
                }
            };
            // After a signal, on_exception was the last hook (Lightning's `_interrupt`).
            if !stopped_in_hook && st.interrupter.interrupted().is_none() {
                st.hook(Hook::OnFitEnd, None)?;
                st.hook(Hook::Teardown, None)?;
            }
            // A signal ends as Lightning's `_interrupt` does (SIGTERMException, KeyboardInterrupt):
            // the loggers finalized with "failed".
            let status = if st.interrupter.interrupted().is_some() { "failed" } else { "success" };
            let log_dir = st.logger.as_ref().map(|l| l.log_dir().to_path_buf());
            // `trainer.test(...)` after a fit that ended normally: the same loggers go on.
            let then_test = then_test.filter(|_| !stopped_in_hook && st.interrupter.interrupted().is_none());
            if let Some(mut l) = st.logger.take() {
                l.finalize(status)?;
                if then_test.is_some() {
                    st.logger = Some(l);
                }
            }
            let test = match &then_test {
                Some(weights) => Some(evaluate::test_after_fit(&mut st, &run_hparams, weights)?),
                None => None,
            };
            let stop_reason =
                if let Some(r) = st.interrupter.reason().filter(|_| st.interrupter.interrupted().is_some()) {
                    r.to_string()
                } else if st.max_steps_reached() {
                    format!("`max_steps={}` reached", st.limits.max_steps.unwrap_or(0))
                } else if let Some(r) = st.interrupter.reason() {
                    r.to_string()
                } else {
                    match st.limits.max_epochs {
                        Some(m) => format!("`max_epochs={m}` reached"),
                        None => "the data ran out".to_string(),
                    }
                };
            // DDP: every rank checks its weights against the others', then waits for them
            // (Lightning's teardown barrier) and drops the Reducer's hooks.
            let ddp = match st.ddp.as_mut() {
                Some(d) => {
                    let same = d.weights_in_sync(&st.ctx.params)?;
                    d.barrier("Trainer.fit end")?;
                    d.unwrap_module();
                    Some((d.world_size(), d.backend_name(), same))
                }
                None => None,
            };
            let mut metrics = st.ctx.callback_metrics.clone();
            metrics.extend(outcome.last_epoch);
            Ok(FitReport {
                epochs: outcome.epochs,
                global_step: st.ctx.global_step,
                stop_reason,
                metrics,
                elapsed: started.elapsed(),
                log_dir,
                device,
                threads,
                seed,
                trainable_params,
                interrupted: st.interrupter.interrupted(),
                best_model_path: st.checkpoint.as_ref().and_then(|c| c.best_model_path.clone()),
                best_model_score: st.checkpoint.as_ref().and_then(|c| c.best_model_score),
                best_k_models: st.checkpoint.as_ref().map(|c| c.best_k.clone()).unwrap_or_default(),
                stopped_epoch: st.early_stopping.as_ref().map(|es| es.stopped_epoch),
                stopping_reason: st.early_stopping.as_ref().map(|es| es.stopping_reason.name()),
                last_model_path: st.checkpoint.as_ref().and_then(|c| c.last_model_path.clone()),
                resumed_from: resume_path,
                stage_times: st.timer.report(),
                first_step: st.first_step,
                data_wait: st.data_wait,
                epoch_seconds: outcome.epoch_seconds,
                test,
                ddp,
            })
        })();
        run.map_err(|e| failed(&mut st, e))
    }
}

/// The optimizers and schedulers `configure_optimizers` returned, made and put in the run;
/// the schedulers the plugin runs started.
pub(crate) fn install_optimizers(st: &mut LoopState<'_>, name: &str, opt: &crate::module::Optimization) -> Result<()> {
    let mut set = optimizer_set(st, name, &opt.optimizers, &opt.schedulers, opt.automatic)?;
    // Lightning's closure runs each training_step through DDP's forward; an optimizer the
    // plugin runs calls it from inside its own step, which lthost does not route yet.
    if st.ddp.is_some() && opt.automatic && set.optimizers.iter().any(|o| o.in_plugin()) {
        bail!("plugin `{name}`: an optimizer the plugin runs itself (LBFGS, a torch.optim.Optimizer subclass) in automatic optimization is not supported with DDP yet; use one of torch's optimizers the host runs, or manual optimization");
    }
    if !opt.automatic {
        set.manual_ddp = st.ddp.as_ref().and_then(crate::distributed::Ddp::reducer);
    }
    let in_plugin = set.plugin_schedulers();
    st.ctx.optim = Some(set);
    for i in in_plugin {
        crate::loops::optimization::run_plugin_scheduler(
            st.module,
            &mut st.ctx,
            i,
            crate::module::SchedulerCall::Start,
        )?;
    }
    Ok(())
}

/// The loop numbers plugins read (`trainer.num_training_batches`, ...) for `limits`.
pub(crate) fn fit_numbers(cfg: &TrainerConfig, limits: &LoopLimits) -> crate::context::FitNumbers {
    crate::context::FitNumbers {
        max_steps: limits.max_steps,
        num_training_batches: crate::module::sized(limits.train_batches),
        num_val_batches: limits.val_batches.iter().map(|&b| crate::module::sized(b)).collect(),
        accumulate_grad_batches: limits.accumulate,
        log_every_n_steps: cfg.log_every_n_steps,
        check_val_every_n_epoch: limits.check_val_every_n_epoch,
    }
}

/// Lightning's `_interrupt` for a run that failed: the callbacks' `on_exception` (unless it ran
/// already: the fit loop's failure handling, a signal's save), then every logger finalized with
/// "failed". Gives the error back.
fn failed(st: &mut LoopState<'_>, e: anyhow::Error) -> anyhow::Error {
    if !st.on_exception_called {
        st.ctx.batch.clear();
        let _ = st.hook(Hook::OnException, None);
        // OnExceptionCheckpoint's save (a file of its own), at the position the loops hold (a
        // resume not yet taken up keeps its restart point): for validate, test and predict as
        // in Lightning (the weights and the loops, no optimizer), and for a fit that failed
        // outside its loop (the sanity check, on_fit_start, the end hooks) once its
        // optimizers exist.
        // ModelCheckpoint's `save_on_exception` is left out here: Lightning skips it when the
        // step is saved already, which before the loop (step 0, or the step resumed from)
        // and after it (the last epoch's save) it is, and it would replace the `last.ckpt`
        // a run resumed from.
        if st.on_exception_dir.is_some() && (!st.fitting || st.ctx.optim.is_some()) {
            let pos = match st.loops.fit_loop.epoch_loop.restart.clone() {
                Some(r) => {
                    let mut pos = checkpointing::position(st, r.batches_done as usize, r.val_pending);
                    *pos.restart_mut() = r;
                    pos
                }
                None => checkpointing::position(st, 0, false),
            };
            checkpointing::on_exception_checkpoint(st, pos, false);
        }
    }
    if let Some(mut l) = st.logger.take() {
        let _ = l.finalize("failed");
    }
    // DDP: which rank failed, and what a failed collective usually means.
    match &st.ddp {
        Some(d) => {
            let (rank, n, t) = (d.global_rank(), d.world_size(), st.cfg.ddp_timeout_s);
            if format!("{e:#}").contains("Expected to have finished reduction in the prior iteration") {
                // Lightning's DDPStrategy.on_exception.
                e.context(format!("rank {rank} of {n}: It looks like your LightningModule has parameters that were not used in producing the loss returned by training_step. If this is intentional, you must enable the detection of unused parameters in DDP, either by setting the string value `strategy='ddp_find_unused_parameters_true'` or by setting the flag in the strategy with `strategy=DDPStrategy(find_unused_parameters=True)`."))
            } else if crate::distributed::c10d::is_collective_failure(&e) {
                // Which rank: those that do not say within a while that their collective
                // failed too (torch's monitoredBarrier would need the failed group).
                let wait = Duration::from_secs_f64(t.min(10.0));
                let who = match d.unanswered_ranks(wait) {
                    Ok(missing) if missing.is_empty() => "every rank answered afterwards".to_string(),
                    Ok(missing) => {
                        let ranks: Vec<String> = missing.iter().map(usize::to_string).collect();
                        let s = if missing.len() == 1 { "" } else { "s" };
                        format!("rank{s} {} did not answer within {} s (hung or dead)", ranks.join(", "), wait.as_secs_f64())
                    }
                    Err(_) => "the rendezvous store did not answer either (the rank that serves it, rank 0 unless torchrun's agent does, hung or died)".to_string(),
                };
                e.context(format!("rank {rank} of {n}: a collective with the other ranks failed ({who}): one died, or did not answer within ddp_timeout_s = {t} s"))
            } else {
                e.context(format!("rank {rank} of {n}"))
            }
        }
        None => e,
    }
}

/// The module's `configure_optimizers` (logging allowed as in that hook), and its name.
pub(crate) fn configure_optimizers(st: &mut LoopState<'_>) -> Result<(crate::module::Optimization, String)> {
    st.ctx.current_hook = Some(Hook::ConfigureOptimizers);
    let opt = st.module.configure_optimizers(&mut st.ctx);
    st.ctx.current_hook = None;
    let mut opt = opt?;
    // LightningCLI's `optimizer:`/`lr_scheduler:` replace what the module returned.
    if let Some(o) = &st.cfg.optimizer_override {
        opt.optimizers = o.optimizers.clone();
        opt.schedulers = o.schedulers.clone();
    }
    Ok((opt, st.module.name().to_string()))
}

/// The optimizers (and schedulers) over the module's parameters; a module without
/// trainable parameters is refused.
pub(crate) fn optimizer_set(
    st: &LoopState<'_>,
    name: &str,
    optimizers: &[crate::engine::optim::OptimizerConfig],
    schedulers: &[crate::engine::optim::SchedulerSpec],
    automatic: bool,
) -> Result<OptimizerSet> {
    let mut set = OptimizerSet::new(optimizers, schedulers, automatic, &st.ctx.params)
        .map_err(|e| anyhow!("plugin `{name}`, hook `configure_optimizers`: {}", e.detail))?;
    if st.ctx.params.parameters().is_empty() {
        bail!("plugin `{name}` registered no trainable parameters: nothing to optimize");
    }
    if st.ctx.precision.scales_loss() {
        // Lightning's MixedPrecision scaler (`torch.amp.GradScaler(device)`, or the plugin's), for
        // the fit and the learning-rate finder's search alike.
        if set.optimizers.iter().any(|o| o.name() == "LBFGS") {
            bail!("AMP and the LBFGS optimizer are not compatible.");
        }
        let cfg = st.cfg.mixed_precision.as_ref().and_then(|m| m.scaler.clone()).unwrap_or_default();
        set.scaler = Some(crate::engine::grad_scaler::GradScaler::new(cfg));
    }
    Ok(set)
}

impl FitReport {
    /// The closing summary printed after `fit`.
    pub fn render(&self, plugin: &str) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mut out = format!("`Trainer.fit` stopped: {}.\n\nSummary\n", self.stop_reason);
        out.push_str(&format!("  plugin        {plugin}\n"));
        out.push_str(&format!("  device        {} (libtorch threads: {})\n", device_name(self.device), self.threads));
        out.push_str(&format!("  seed          {}\n", self.seed));
        if let Some((n, backend, same)) = self.ddp {
            let weights = if same { "the same weights on every rank" } else { "WEIGHTS DIFFER between ranks" };
            out.push_str(&format!("  processes     {n} (DDP, {backend}): {weights}\n"));
        }
        out.push_str(&format!("  parameters    {}\n", self.trainable_params));
        out.push_str(&format!("  epochs        {}  (global steps {})\n", self.epochs, self.global_step));
        out.push_str(&format!(
            "  time          {:.2} s  ({:.1} steps/s)\n",
            secs,
            self.global_step as f64 / secs.max(1e-9)
        ));
        if let Some(t) = self.first_step {
            out.push_str(&format!(
                "  start-up      {:.3} s from process start to the first training step\n",
                t.as_secs_f64()
            ));
        }
        if let Some(first) = self.epoch_seconds.first() {
            let mut rest = self.epoch_seconds[1..].to_vec();
            rest.sort_by(f64::total_cmp);
            let median = rest.get(rest.len() / 2).copied().unwrap_or(*first);
            let total: f64 = self.epoch_seconds.iter().sum();
            out.push_str(&format!(
                "  epoch time    {median:.4} s median after the first ({first:.4} s); {total:.4} s in all\n"
            ));
        }
        if !self.stage_times.is_empty() {
            let t: Vec<String> = self.stage_times.iter().map(|(s, t)| format!("{s} {t:.3} s")).collect();
            out.push_str(&format!("  timer         {}\n", t.join(", ")));
        }
        if let Some(&(_, train)) = self.stage_times.iter().find(|(s, _)| *s == "train") {
            let w = self.data_wait.as_secs_f64();
            out.push_str(&format!("  data wait     {w:.3} s ({:.1}% of training)\n", 100.0 * w / train.max(1e-9)));
        }
        if let Some(d) = &self.log_dir {
            out.push_str(&format!("  logs          {}\n", d.display()));
        }
        if let Some(p) = &self.resumed_from {
            out.push_str(&format!("  resumed from  {}\n", p.display()));
        }
        if let Some(p) = &self.best_model_path {
            out.push_str(&format!("  best ckpt     {}\n", p.display()));
        }
        if let Some(p) = &self.last_model_path {
            out.push_str(&format!("  last ckpt     {}\n", p.display()));
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
