//! The `lthost` command: `lthost run plugin.wasm` trains with defaults that just work;
//! `fit`, `validate`, `test` and `predict` take a run file and flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use lthost::config::RunConfig;
use lthost::context::Stage;
use lthost::module::DataModule;
use lthost::plugin::{self, runtime::Runtime, WasmPlugin};
use lthost::trainer::Trainer;
use serde_json::Value;

#[derive(Parser)]
#[command(name = "lthost", version, about = "A Lightning-style trainer for models written as WebAssembly components")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a plugin (same as `fit`).
    Run(RunArgs),
    /// Train: `trainer.fit(model, datamodule)`.
    Fit(RunArgs),
    /// One pass over the validation data.
    Validate(RunArgs),
    /// One pass over the test data.
    Test(RunArgs),
    /// Predict over the predict data; writes `predictions.safetensors`.
    Predict(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The plugin component (.wasm): a LightningModule, and a DataModule unless --data names one.
    plugin: PathBuf,
    /// A separate DataModule component.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A TOML run file with [trainer], [plugin] and [hparams] tables.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Hyper-parameters as a JSON object, merged over the run file's [hparams].
    #[arg(long)]
    hparams: Option<String>,
    /// Directory the plugin may read (read-only).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    max_epochs: Option<u64>,
    #[arg(long)]
    max_steps: Option<i64>,
    /// auto, cpu or cuda.
    #[arg(long)]
    accelerator: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// libtorch intra-op threads.
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    default_root_dir: Option<PathBuf>,
    #[arg(long)]
    log_every_n_steps: Option<u64>,
    #[arg(long)]
    num_sanity_val_steps: Option<i64>,
    /// Loggers, comma-separated: csv, tensorboard.
    #[arg(long, value_delimiter = ',')]
    logger: Option<Vec<String>>,
    /// A callback plugin (.wasm), repeatable; called before the module at its hooks.
    #[arg(long)]
    callback: Vec<PathBuf>,
    /// A logger plugin (.wasm), repeatable; it writes in `<log dir>/<plugin name>/`.
    #[arg(long)]
    logger_plugin: Vec<PathBuf>,
    /// Plain output: no progress bar.
    #[arg(long)]
    no_progress_bar: bool,
    /// Longest a single plugin hook may run, in seconds.
    #[arg(long)]
    hook_timeout_s: Option<f64>,
    /// Most memory the plugin may use, in MiB.
    #[arg(long)]
    memory_limit_mb: Option<u64>,
    /// Resume (fit) or load weights (validate/test/predict) from a checkpoint: last, best or
    /// a path.
    #[arg(long)]
    ckpt_path: Option<String>,
    /// Where ModelCheckpoint writes (overrides `[checkpoint] dirpath`).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
}

impl RunArgs {
    fn config(&self) -> Result<RunConfig> {
        let mut cfg = match &self.config {
            Some(p) => RunConfig::from_file(p)?,
            None => RunConfig::default(),
        };
        let t = &mut cfg.trainer;
        if let Some(v) = self.max_epochs { t.max_epochs = Some(v); }
        if let Some(v) = self.max_steps { t.max_steps = v; }
        if let Some(v) = &self.accelerator { t.accelerator = v.clone(); }
        if let Some(v) = self.seed { t.seed = Some(v); }
        if let Some(v) = self.threads { t.threads = Some(v); }
        if let Some(v) = &self.default_root_dir { t.default_root_dir = v.clone(); }
        if let Some(v) = self.log_every_n_steps { t.log_every_n_steps = v; }
        if let Some(v) = self.num_sanity_val_steps { t.num_sanity_val_steps = v; }
        if self.no_progress_bar { t.enable_progress_bar = false; }
        if let Some(v) = &self.logger { t.loggers = v.clone(); }
        let p = &mut cfg.plugin;
        if let Some(v) = &self.data_dir { p.data_dir = Some(v.clone()); }
        if let Some(v) = self.hook_timeout_s { p.hook_timeout_s = v; }
        if let Some(v) = self.memory_limit_mb { p.memory_limit_mb = v; }
        if let Some(v) = &self.checkpoint_dir { cfg.checkpoint.dirpath = Some(v.clone()); }
        Ok(cfg)
    }
}

fn plugin_name(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_string()
}

/// Exit codes: 0 done, 1 an error, 128 + signal when a signal stopped the run after saving
/// a checkpoint (130 SIGINT, 143 SIGTERM, 138 SIGUSR1), as shells report signals.
fn run(cmd: Command, signal: Arc<AtomicUsize>) -> Result<Option<i32>> {
    let (args, stage) = match &cmd {
        Command::Run(a) | Command::Fit(a) => (a, Stage::Fit),
        Command::Validate(a) => (a, Stage::Validate),
        Command::Test(a) => (a, Stage::Test),
        Command::Predict(a) => (a, Stage::Predict),
    };
    let mut cfg = args.config()?;
    let name = plugin_name(&args.plugin);
    if let Some(h) = &args.hparams {
        cfg.merge_hparams_json(h).map_err(|e| anyhow::anyhow!("plugin `{name}`, hook `configure`: {e}"))?;
    }
    cfg.trainer.validate()?;
    let opts = cfg.plugin.options()?;
    let runtime = Runtime::new()?;
    let model = plugin::load(&runtime, &args.plugin, &opts)?;
    if !model.has_module() {
        bail!("plugin `{name}`: exports no `{}`, so it cannot be trained; pass the model first and the data with --data", plugin::adapter::MODULE_EXPORT);
    }
    let mut data: WasmPlugin = match &args.data {
        Some(p) => plugin::load(&runtime, p, &opts)?,
        None => model.clone(),
    };
    if !data.has_datamodule() {
        bail!("plugin `{}`: exports no `{}`; name a DataModule component with --data", DataModule::name(&data), plugin::adapter::DATAMODULE_EXPORT);
    }
    let mut module = model;
    let hparams = Value::Object(cfg.hparams.clone());
    let mut trainer = Trainer::new(cfg.trainer.clone(), cfg.plugin.data_dir.clone());
    trainer.checkpoint = cfg.checkpoint.clone();
    trainer.early_stopping = cfg.early_stopping.clone();
    for p in &args.callback {
        trainer.callbacks.push(Box::new(plugin::callback_plugin::load_callback(&runtime, p, &opts)?));
    }
    for p in &args.logger_plugin {
        let (rt, p, o) = (runtime.clone(), p.clone(), opts.clone());
        trainer.logger_plugins.push(Box::new(move |dir: &Path, version: u64| {
            Ok(Box::new(plugin::logger_plugin::load_logger(&rt, &p, &o, dir, version)?) as Box<dyn lthost::loggers::Logger>)
        }));
    }
    trainer.ckpt_path = args.ckpt_path.clone();
    trainer.plugin_sha256 = sha256_file(&args.plugin)?;
    trainer.signal = Some(signal);
    match stage {
        Stage::Fit => {
            let report = trainer.fit(&mut module, &mut data, &hparams)?;
            println!("\n{}", report.render(&name));
            if let Some((sig, _)) = report.interrupted {
                return Ok(Some(128 + sig));
            }
        }
        Stage::Validate | Stage::Test => {
            let m = trainer.evaluate(&mut module, &mut data, &hparams, stage)?;
            let title = if stage == Stage::Test { "Test metric" } else { "Validate metric" };
            println!("\n{title:<24} DataLoader 0");
            for (k, v) in &m.all {
                println!("{k:<24} {v}");
            }
        }
        Stage::Predict | Stage::SanityCheck => {
            let outs = trainer.predict(&mut module, &mut data, &hparams)?;
            let mut named: Vec<(String, tch::Tensor)> = Vec::with_capacity(outs.len());
            for (i, t) in outs.into_iter().enumerate() {
                let t = t.f_to_device(tch::Device::Cpu).and_then(|t| t.f_contiguous()).map_err(|e| anyhow::anyhow!("prediction {i}: {e}"))?;
                named.push((format!("batch_{i}"), t));
            }
            let dir = cfg.trainer.default_root_dir.clone();
            let path = dir.join("predictions.safetensors");
            let tmp = dir.join(".predictions.safetensors.tmp");
            tch::Tensor::write_safetensors(&named, &tmp).map_err(|e| anyhow::anyhow!("writing predictions: {e}"))?;
            std::fs::rename(&tmp, &path)?;
            println!("wrote {} batches of predictions to {}", named.len(), path.display());
        }
    }
    Ok(None)
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest as _;
    let bytes = std::fs::read(path)?;
    Ok(format!("{:x}", sha2::Sha256::digest(&bytes)))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lthost::connectors::accelerator::init_interop_threads();
    // SIGTERM, SIGINT, SIGUSR1: the loops finish the current step, save, and stop.
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGUSR1] {
        let flag = signal.clone();
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let registered = unsafe { signal_hook::low_level::register(sig, move || flag.store(sig as usize, Ordering::SeqCst)) };
        if let Err(e) = registered {
            eprintln!("warning: cannot handle signal {sig}: {e}");
        }
    }
    match run(cli.command, signal) {
        Ok(Some(code)) => ExitCode::from(code.clamp(0, 255) as u8),
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
