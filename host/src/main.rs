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
    /// More output: -v info, -vv debug, -vvv trace (or RUST_LOG, e.g. `lthost=debug`).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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
    /// The learning-rate range test (Lightning's `Tuner.lr_find`): suggests a learning
    /// rate and writes `lr_find.png` and `lr_find.json`.
    LrFind(LrFindArgs),
    /// Make an Ed25519 key pair: `<out>.key` (secret) and `<out>.pub`.
    Keygen {
        /// Path without extension, e.g. `keys/me`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a plugin (embedded in the component, or a detached `.sig`); signing a signed
    /// plugin adds a signature.
    Sign {
        plugin: PathBuf,
        /// The secret key (`.key`).
        #[arg(long)]
        key: PathBuf,
        /// Where the signed component goes (default: in place).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write the signature to this file instead of into the component.
        #[arg(long)]
        detached: Option<PathBuf>,
    },
    /// Check a plugin's signatures against the trusted keys; exit 1 if it would be refused.
    Verify(TrustArgs),
    /// Show a plugin's manifest, worlds, imports, signatures and trust, without running it.
    Inspect(TrustArgs),
    /// A new plugin project from a template that builds and trains as is.
    Init {
        /// The project directory (its name becomes the plugin's).
        path: PathBuf,
        /// The plugin's language.
        #[arg(long, default_value = "rust", value_parser = ["rust", "python", "js", "c"])]
        lang: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Compile a Lightning file (`import torch`, `import lightning as L`) or a package
    /// directory into a plugin: finds its LightningModule and LightningDataModule, embeds
    /// the manifest, signs it with --key, and compiles it into the component cache.
    Build {
        /// `model.py`, or a package directory.
        source: PathBuf,
        /// The LightningModule class, when the file defines several.
        #[arg(long)]
        model: Option<String>,
        /// The LightningDataModule class, when the file defines several.
        #[arg(long)]
        data: Option<String>,
        /// Sign with this secret key (`.key`).
        #[arg(long)]
        key: Option<PathBuf>,
        /// The manifest (default: `lthost.toml` beside the source, else one named after it
        /// that requests no capabilities).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Where the plugin goes (default: `<name>.wasm`).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Push a plugin to an OCI registry as a Wasm artifact (`wkg oci pull` and ORAS read it):
    /// `lthost push model.wasm ghcr.io/me/model:1.0`.
    Push {
        plugin: PathBuf,
        /// REGISTRY/REPOSITORY:TAG (`oci://` optional).
        reference: String,
        /// A detached signature to carry in the manifest (default: `<plugin>.sig` when present).
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Plain HTTP for a registry other than localhost.
        #[arg(long)]
        plain_http: bool,
    },
    /// Pull a plugin from an OCI registry (by tag or `@sha256:…`), verify its digests and its
    /// signature against the trusted keys, and keep it in the pull cache (or write it to -o).
    Pull {
        /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:… (`oci://` optional).
        reference: String,
        /// Also write the plugin here (and its detached signature beside it as `.sig`).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Plain HTTP for a registry other than localhost.
        #[arg(long)]
        plain_http: bool,
        /// Trusted public keys: `.pub` files or directories of them (repeatable).
        #[arg(long)]
        trusted_keys: Vec<PathBuf>,
        /// Keep an unsigned or untrusted plugin anyway. A signed plugin that was changed is
        /// refused regardless.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Embed a manifest (a TOML file: name, version, authors, description, capabilities).
    Manifest {
        plugin: PathBuf,
        #[arg(long)]
        from: PathBuf,
        /// Where the component with its manifest goes (default: in place).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
struct TrustArgs {
    plugin: PathBuf,
    /// Trusted public keys: `.pub` files or directories of them (repeatable).
    #[arg(long)]
    trusted_keys: Vec<PathBuf>,
    /// A detached signature (default: `<plugin>.sig` when present).
    #[arg(long)]
    signature: Option<PathBuf>,
}

#[derive(Args)]
struct LrFindArgs {
    #[command(flatten)]
    run: RunArgs,
    #[arg(long)]
    min_lr: Option<f64>,
    #[arg(long)]
    max_lr: Option<f64>,
    /// Optimizer steps to test.
    #[arg(long)]
    num_training: Option<u64>,
    /// exponential or linear.
    #[arg(long)]
    mode: Option<String>,
    /// Stop once the smoothed loss passes this many times the best; "none" never stops.
    #[arg(long)]
    early_stop_threshold: Option<String>,
    /// Where lr_find.png and lr_find.json go (default: the run's default_root_dir).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// The plugin component (.wasm, or `oci://REGISTRY/REPO:TAG` / `@sha256:…`): a
    /// LightningModule, and a DataModule unless --data names one.
    plugin: PathBuf,
    /// A separate DataModule component.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A TOML run file with [trainer], [plugin] and [hparams] tables, or a LightningCLI
    /// config (`.yaml`: seed_everything, trainer, model, data, optimizer, lr_scheduler,
    /// ckpt_path).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the run's settings as a LightningCLI config (flags applied) and exit.
    #[arg(long = "print_config", alias = "print-config")]
    print_config: bool,
    /// Hyper-parameters as a JSON object, merged over the run file's [hparams].
    #[arg(long)]
    hparams: Option<String>,
    /// Directory the plugin may read (read-only).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// -1: no epoch limit (trains until max_steps, max_time or a stop).
    #[arg(long, allow_negative_numbers = true)]
    max_epochs: Option<i64>,
    #[arg(long)]
    max_steps: Option<i64>,
    /// auto, cpu or cuda.
    #[arg(long)]
    accelerator: Option<String>,
    /// Lightning's precision: 32-true, 64-true, bf16-true, 16-true, bf16-mixed, 16-mixed.
    #[arg(long)]
    precision: Option<String>,
    /// Lightning's strategy: auto (DDP for more than one process), ddp or single_device.
    #[arg(long)]
    strategy: Option<String>,
    /// Processes per node (DDP with more than one): a count or auto.
    #[arg(long)]
    devices: Option<String>,
    /// Nodes of the DDP world (each runs --devices processes).
    #[arg(long)]
    num_nodes: Option<usize>,
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
    /// Loggers, comma-separated: csv, tensorboard, or a logger plugin (.wasm).
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
    /// fit: run the learning-rate finder first and train with its suggestion (Lightning's
    /// `Tuner(trainer).lr_find(model)` then `trainer.fit(model)`; settings from `[lr_find]`).
    #[arg(long)]
    lr_find: bool,
    /// fit: then test on the same run (Lightning's `trainer.test(...)` after `trainer.fit(...)`
    /// on one Trainer: the test row in the fit's logs): with the weights as trained
    /// (`current`, the default), `best`, `last`, or a checkpoint's path.
    #[arg(long, value_name = "WEIGHTS", num_args = 0..=1, default_missing_value = "current")]
    test: Option<lthost::trainer::TestWeights>,
    /// Run the batch-size finder first, then the command at the size it finds (Lightning's
    /// `Tuner(trainer).scale_batch_size(model, method=…)` then `trainer.fit` / `validate` /
    /// `test` / `predict`; settings from `[scale_batch_size]`).
    #[arg(long)]
    scale_batch_size: bool,
    /// Override a run-file setting, e.g. `--set trainer.max_epochs=3` (repeatable).
    #[arg(long = "set", value_name = "TABLE.KEY=VALUE")]
    sets: Vec<String>,
    /// Trusted public keys: `.pub` files or directories of them (repeatable).
    #[arg(long)]
    trusted_keys: Vec<PathBuf>,
    /// Run unsigned or untrusted plugins anyway (with a warning). A signed plugin that was
    /// changed is refused regardless.
    #[arg(long)]
    allow_unsigned: bool,
    /// Leave the plugin's defaults (what its Lightning file's `__main__` block gives the
    /// Trainer) out: the run's settings start from lthost's own.
    #[arg(long)]
    no_plugin_defaults: bool,
}

impl RunArgs {
    /// The run's settings: the plugin's defaults (`defaults`, a run table), the run file,
    /// `--set`, then the flags.
    fn config(&self, defaults: Option<toml::Table>) -> Result<RunConfig> {
        let mut cfg = RunConfig::load_over(defaults, self.config.as_deref(), &self.sets)?;
        let t = &mut cfg.trainer;
        if let Some(v) = self.max_epochs {
            t.max_epochs = Some(v);
        }
        if let Some(v) = self.max_steps {
            t.max_steps = v;
        }
        if let Some(v) = &self.accelerator {
            t.accelerator = v.clone();
        }
        if let Some(v) = &self.precision {
            t.precision = match v.parse::<i64>() {
                Ok(n) => lthost::precision::PrecisionFlag::Int(n),
                Err(_) => lthost::precision::PrecisionFlag::Name(v.clone()),
            };
        }
        if let Some(v) = &self.strategy {
            t.strategy = v.clone();
        }
        if let Some(v) = &self.devices {
            t.devices = match v.parse::<i64>() {
                Ok(n) => lthost::config::Devices::Count(n),
                Err(_) => lthost::config::Devices::Named(v.clone()),
            };
        }
        if let Some(v) = self.num_nodes {
            t.num_nodes = v;
        }
        if let Some(v) = self.seed {
            t.seed = Some(v);
        }
        if let Some(v) = self.threads {
            t.threads = Some(v);
        }
        if let Some(v) = &self.default_root_dir {
            t.default_root_dir = v.clone();
        }
        // Lightning's `default_root_dir` expands `~` (the run file's or the flag's).
        t.default_root_dir = lthost::run_dir::expand_home(&t.default_root_dir);
        if let Some(v) = self.log_every_n_steps {
            t.log_every_n_steps = v;
        }
        if let Some(v) = self.num_sanity_val_steps {
            t.num_sanity_val_steps = v;
        }
        if self.no_progress_bar {
            t.enable_progress_bar = false;
        }
        if let Some(v) = &self.logger {
            t.loggers = v.clone();
        }
        let p = &mut cfg.plugin;
        if let Some(v) = &self.data_dir {
            p.data_dir = Some(v.clone());
        }
        if let Some(v) = self.hook_timeout_s {
            p.hook_timeout_s = v;
        }
        if let Some(v) = self.memory_limit_mb {
            p.memory_limit_mb = v;
        }
        if let Some(v) = &self.checkpoint_dir {
            cfg.checkpoint.dirpath = Some(v.clone());
        }
        cfg.plugin.trusted_keys.extend(self.trusted_keys.iter().cloned());
        if self.allow_unsigned {
            cfg.plugin.allow_unsigned = true;
        }
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
        Command::LrFind(a) => (&a.run, Stage::Fit),
        Command::Init { path, lang } => {
            let files = lthost::scaffold::init(path, lang)?;
            for f in &files {
                println!("  {}", f.display());
            }
            println!("created the plugin project {}; see its README.md to build, sign and train it", path.display());
            return Ok(None);
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(*shell, &mut Cli::command(), "lthost", &mut std::io::stdout());
            return Ok(None);
        }
        Command::Keygen { out } => {
            let (sk, pk) = lthost::artifact::signing::keygen(out)?;
            let id = lthost::artifact::signing::key_id(&lthost::artifact::signing::read_public_key(&pk)?);
            println!("wrote {} (secret: keep it) and {} (share it), key id {id}", sk.display(), pk.display());
            return Ok(None);
        }
        Command::Sign { plugin, key, output, detached } => {
            let (out, is_detached) = match detached {
                Some(d) => (d.clone(), true),
                None => (output.clone().unwrap_or_else(|| plugin.clone()), false),
            };
            lthost::artifact::signing::sign_file(plugin, key, &out, is_detached)?;
            let pk = lthost::artifact::signing::public_of(&lthost::artifact::signing::read_secret_key(key)?);
            println!(
                "signed {} with key {} → {}",
                plugin.display(),
                lthost::artifact::signing::key_id(&pk),
                out.display()
            );
            return Ok(None);
        }
        Command::Verify(t) | Command::Inspect(t) => {
            let mut keys = t.trusted_keys.clone();
            keys.extend(lthost::artifact::trust::TrustPolicy::env_paths());
            let trust = lthost::artifact::trust::TrustPolicy::load(&keys, false)?;
            let bytes = std::fs::read(&t.plugin).map_err(|e| anyhow::anyhow!("reading {}: {e}", t.plugin.display()))?;
            let detached = match &t.signature {
                Some(p) => Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?),
                None => lthost::artifact::trust::detached_for(&t.plugin),
            };
            let name = plugin_name(&t.plugin);
            if let Command::Inspect(_) = &cmd {
                print!("{}", lthost::artifact::inspect::report(&name, &bytes, detached.as_deref(), &trust)?);
                return Ok(None);
            }
            match trust.check(&name, &bytes, detached.as_deref())? {
                lthost::artifact::trust::Verdict::Trusted(keys) => {
                    println!("plugin `{name}`: trusted, signed by {}", keys.join(", "))
                }
                v => bail!("plugin `{name}`: {v:?}"),
            }
            return Ok(None);
        }
        Command::Build { source, model, data, key, manifest, output } => {
            let req = lthost::lightning_build::BuildRequest {
                source: source.clone(),
                model: model.clone(),
                data: data.clone(),
                key: key.clone(),
                manifest: manifest.clone(),
                output: output.clone(),
            };
            let (dest, m) = lthost::lightning_build::build(&req)?;
            let signed = if key.is_some() { ", signed" } else { "" };
            println!("built {} {} from {} → {}{signed}", m.name, m.version, source.display(), dest.display());
            return Ok(None);
        }
        Command::Push { plugin, reference, signature, plain_http } => {
            let to = lthost::oci::Reference::parse(reference)?;
            let bytes = std::fs::read(plugin).map_err(|e| anyhow::anyhow!("reading {}: {e}", plugin.display()))?;
            let sig = match signature {
                Some(p) => Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?),
                None => lthost::artifact::trust::detached_for(plugin),
            };
            let how = lthost::oci::Transport { plain_http: *plain_http };
            let p = lthost::oci::push(&bytes, sig.as_deref(), &to, how)?;
            let reused = if p.reused > 0 { format!(", {} blob(s) already there", p.reused) } else { String::new() };
            println!("pushed {} ({} bytes{reused}) → {to}", plugin.display(), p.size);
            println!("digest {}", p.manifest_digest);
            return Ok(None);
        }
        Command::Pull { reference, output, plain_http, trusted_keys, allow_unsigned } => {
            let from = lthost::oci::Reference::parse(reference)?;
            let mut keys = trusted_keys.clone();
            keys.extend(lthost::artifact::trust::TrustPolicy::env_paths());
            let trust = lthost::artifact::trust::TrustPolicy::load(&keys, *allow_unsigned)?;
            let verdict = std::cell::RefCell::new(None);
            let verify = |name: &str, bytes: &[u8], sig: Option<&[u8]>| -> Result<()> {
                *verdict.borrow_mut() = Some(trust.admit(name, bytes, sig)?);
                Ok(())
            };
            let how = lthost::oci::Transport { plain_http: *plain_http };
            let pulled = lthost::oci::pull(&from, how, &verify)?;
            if let Some((before, now)) = &pulled.moved {
                println!("note: {from} moved: it was {before} when last pulled, it is {now} now");
            }
            let how = if pulled.cached { "from the pull cache" } else { "pulled" };
            println!("{how} {from}: {}", pulled.manifest_digest);
            if let Some(lthost::artifact::trust::Verdict::Trusted(k)) = verdict.borrow().as_ref() {
                println!("trusted, signed by {}", k.join(", "));
            }
            let mut at = pulled.path.clone();
            if let Some(out) = output {
                let bytes = std::fs::read(&pulled.path)?;
                lthost::fs::write_atomic(out, &bytes)?;
                if let Some(sig) = lthost::artifact::trust::detached_for(&pulled.path) {
                    let mut sig_path = out.clone().into_os_string();
                    sig_path.push(".sig");
                    lthost::fs::write_atomic(Path::new(&sig_path), &sig)?;
                }
                at = out.clone();
            }
            println!("{}", at.display());
            return Ok(None);
        }
        Command::Manifest { plugin, from, output } => {
            let m = lthost::artifact::manifest::Manifest::from_toml_file(from)?;
            let bytes = std::fs::read(plugin).map_err(|e| anyhow::anyhow!("reading {}: {e}", plugin.display()))?;
            let out = lthost::artifact::manifest::embed(&bytes, &m)
                .map_err(|e| anyhow::anyhow!("{}: {e}", plugin.display()))?;
            let dest = output.clone().unwrap_or_else(|| plugin.clone());
            lthost::fs::write_atomic(&dest, &out)?;
            println!("embedded the manifest of {} {} into {}", m.name, m.version, dest.display());
            return Ok(None);
        }
    };
    if args.lr_find && !matches!(cmd, Command::Run(_) | Command::Fit(_)) {
        anyhow::bail!(
            "--lr-find tunes a fit: `lthost fit` (and `run`) take it; `lthost lr-find` searches without fitting"
        );
    }
    if args.scale_batch_size && matches!(cmd, Command::LrFind(_)) {
        anyhow::bail!("--scale-batch-size tunes a fit, validate, test or predict run, not `lthost lr-find`");
    }
    if args.test.is_some() && !matches!(cmd, Command::Run(_) | Command::Fit(_)) {
        anyhow::bail!("--test follows a fit: `lthost fit --test` (`lthost test` tests on its own)");
    }
    if args.scale_batch_size && args.lr_find {
        anyhow::bail!("--scale-batch-size and --lr-find: one search per fit (run the batch-size search, set the size it prints, then --lr-find)");
    }
    let mut cfg = args.config(None)?;
    cfg.check_loggers()?;
    let mut opts = cfg.plugin.options()?;
    // `oci://REGISTRY/REPO:TAG`: pulled, checked and verified first (the run's trust policy).
    let trust = Arc::clone(&opts.trust);
    let verify = |name: &str, bytes: &[u8], sig: Option<&[u8]>| trust.check(name, bytes, sig).map(|_| ());
    let plugin_path = lthost::oci::resolve_plugin(&args.plugin, &verify)?;
    let data_path = args.data.as_deref().map(|d| lthost::oci::resolve_plugin(d, &verify)).transpose()?;
    let name = plugin_name(&plugin_path);
    // A Lightning file's `__main__` block, kept by `lthost build`: the run starts from it
    // (what it may set is checked again: `main_block::run_table`; the sandbox's settings,
    // read above, are never among them).
    let admitted = |bytes: &[u8], sig: Option<&[u8]>| opts.trust.check(&name, bytes, sig).is_ok();
    let defaults = if args.no_plugin_defaults { None } else { lthost::main_block::defaults_of(&plugin_path, admitted) };
    if let Some(d) = defaults {
        let load = || -> Result<(RunConfig, Value)> {
            let (table, kept) = lthost::main_block::run_table(&d, &name)?;
            let mut cfg = args.config(Some(table))?;
            cfg.check_loggers()?;
            Ok((cfg, kept))
        };
        let (over, kept) = load().map_err(|e| {
            anyhow::anyhow!("{e:#} (over plugin `{name}`'s defaults; --no-plugin-defaults runs without them)")
        })?;
        cfg = over;
        eprintln!(
            "note: plugin `{name}`'s defaults (its file's __main__ block; --no-plugin-defaults leaves them out): {}",
            lthost::main_block::describe(&kept)
        );
    }
    if let Some(h) = &args.hparams {
        cfg.merge_hparams_json(h).map_err(|e| anyhow::anyhow!("plugin `{name}`, hook `configure`: {e}"))?;
    }
    cfg.trainer.validate()?;
    if args.print_config {
        print!(
            "{}",
            lthost::lightning_cli::print::print_config(
                &cfg,
                &cfg.cli,
                args.ckpt_path.as_deref().or(cfg.cli.ckpt_path.as_deref())
            )?
        );
        return Ok(None);
    }
    if cfg.trainer.optimizer_override.is_some() {
        let shown = args.config.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
        eprintln!(
            "note: {shown}'s optimizer (and lr_scheduler) replace what `configure_optimizers` returns (LightningCLI's `configure_optimizers` override)"
        );
    }
    // DDP: this process's rank; lthost's launcher starts the other local ranks now, each
    // running this command line (Lightning's `_SubprocessScriptLauncher`).
    let mut cluster = lthost::distributed::plan(&cfg.trainer, &lthost::distributed::cluster::ProcessEnv)?;
    if cluster.is_some() && stage != Stage::Fit {
        bail!("a distributed run (strategy ddp, devices or num_nodes above 1) is built for `fit`; validate, test and predict run in one process for now");
    }
    if cluster.is_some() && args.test.is_some() {
        bail!("--test after a distributed fit is not built yet: run `lthost test` in one process with the checkpoint");
    }
    if cluster.is_some() && (args.lr_find || args.scale_batch_size || matches!(cmd, Command::LrFind(_))) {
        bail!(
            "the learning-rate and batch-size finders run in one process: tune without --devices, then fit distributed"
        );
    }
    // sync_batchnorm: the plugins' BatchNorm resolves to the synced operator from the start.
    lthost::engine::sync_batch_norm::enable(cluster.is_some() && cfg.trainer.sync_batchnorm);
    let children = match cluster.as_mut() {
        Some(c) if c.launches_children() => Some(lthost::distributed::launcher::launch(c)?),
        Some(c) if c.main_port.is_none() => {
            c.main_port = Some(lthost::distributed::launcher::free_port()?);
            None
        }
        _ => None,
    };
    opts.output_root = Some(cfg.trainer.default_root_dir.join("plugin_output"));
    let runtime = Runtime::new()?;
    let model = plugin::load(&runtime, &plugin_path, &opts)?;
    if !model.has_module() {
        bail!(
            "plugin `{name}`: exports no `{}`, so it cannot be trained; pass the model first and the data with --data",
            plugin::adapter::MODULE_EXPORT
        );
    }
    let mut data: WasmPlugin = match &data_path {
        Some(p) => plugin::load(&runtime, p, &opts)?,
        None => model.clone(),
    };
    if !data.has_datamodule() {
        bail!(
            "plugin `{}`: exports no `{}`; name a DataModule component with --data",
            DataModule::name(&data),
            plugin::adapter::DATAMODULE_EXPORT
        );
    }
    let mut module = model;
    let hparams = Value::Object(cfg.hparams.clone());
    let mut trainer = Trainer::new(cfg.trainer.clone(), cfg.plugin.data_dir.clone());
    trainer.checkpoint = cfg.checkpoint.clone();
    trainer.early_stopping = cfg.early_stopping.clone();
    trainer.builtins = cfg.callbacks.clone();
    trainer.then_test = args.test.clone();
    trainer.progress_bar = cfg.progress_bar.clone();
    trainer.loggers = cfg.loggers.clone();
    trainer.slurm_job_id = lthost::loggers::options::slurm_job_id(
        std::env::var("SLURM_JOB_ID").ok().as_deref(),
        std::env::var("SLURM_JOB_NAME").ok().as_deref(),
    );
    for p in cfg.callbacks.plugins.iter().chain(&args.callback) {
        trainer.callbacks.push(Box::new(plugin::callback_plugin::load_callback(&runtime, p, &opts)?));
    }
    let wasm_loggers: Vec<PathBuf> =
        cfg.trainer.loggers.iter().filter(|l| l.ends_with(".wasm")).map(PathBuf::from).collect();
    for p in wasm_loggers.iter().chain(&args.logger_plugin) {
        let (rt, p, o) = (runtime.clone(), p.clone(), opts.clone());
        trainer.logger_plugins.push(Box::new(move |dir: &Path, version: &lthost::loggers::Version| {
            Ok(Box::new(plugin::logger_plugin::load_logger(&rt, &p, &o, dir, version)?)
                as Box<dyn lthost::loggers::Logger>)
        }));
    }
    trainer.ckpt_path = args.ckpt_path.clone().or_else(|| cfg.cli.ckpt_path.clone());
    trainer.cluster = cluster;
    trainer.plugin_sha256 = module.sha256().to_string();
    trainer.signal = Some(signal);
    if let Command::LrFind(a) = &cmd {
        let mut lf = cfg.lr_find.clone();
        if let Some(v) = a.min_lr {
            lf.min_lr = v;
        }
        if let Some(v) = a.max_lr {
            lf.max_lr = v;
        }
        if let Some(v) = a.num_training {
            lf.num_training = v;
        }
        if let Some(v) = &a.mode {
            lf.mode = v.clone();
        }
        match a.early_stop_threshold.as_deref() {
            Some(v) if v.eq_ignore_ascii_case("none") => lf.early_stop_threshold = None,
            Some(v) => {
                let t = v
                    .parse::<f64>()
                    .map_err(|_| anyhow::anyhow!("--early-stop-threshold {v:?}: expected a number or \"none\""))?;
                lf.early_stop_threshold = Some(t);
            }
            None => {}
        }
        let out = a.output.clone().unwrap_or_else(|| cfg.trainer.default_root_dir.clone());
        return lr_find(&mut trainer, &mut module, &mut data, &hparams, &lf, &out).map(|()| None);
    }
    match stage {
        Stage::Fit => {
            let report = if args.lr_find {
                trainer.fit_after_lr_find(&mut module, &mut data, &hparams, &cfg.lr_find)?.1
            } else if args.scale_batch_size {
                trainer.fit_after_scale_batch_size(&mut module, &mut data, &hparams, &cfg.scale_batch_size)?.1
            } else {
                trainer.fit(&mut module, &mut data, &hparams)?
            };
            println!("\n{}", report.render(&name));
            if let Some(m) = &report.test {
                print!("{}", lthost::loops::evaluation::results_table("Test metric", &m.per_dataloader));
            }
            let (hits, compiled) = (
                runtime.hits.load(std::sync::atomic::Ordering::Relaxed),
                runtime.compiled.load(std::sync::atomic::Ordering::Relaxed),
            );
            let cache = runtime.cache.as_ref().map(|c| c.dir.display().to_string()).unwrap_or_else(|| "off".into());
            println!("  components    {hits} from the cache, {compiled} compiled (cache: {cache})");
            if let Some(children) = children {
                children.wait()?;
            }
            if let Some(sig) = report.interrupted {
                return Ok(Some(128 + sig));
            }
        }
        Stage::Validate | Stage::Test => {
            let m = if args.scale_batch_size {
                trainer
                    .evaluate_after_scale_batch_size(&mut module, &mut data, &hparams, stage, &cfg.scale_batch_size)?
                    .1
            } else {
                trainer.evaluate(&mut module, &mut data, &hparams, stage)?
            };
            let title = if stage == Stage::Test { "Test metric" } else { "Validate metric" };
            print!("{}", lthost::loops::evaluation::results_table(title, &m.per_dataloader));
        }
        Stage::Predict | Stage::SanityCheck => {
            // Each prediction goes to disk as it comes: memory holds one batch.
            let dir = cfg.trainer.default_root_dir.clone();
            let mut writer = lthost::loops::prediction_writer::PredictionWriter::new(&dir)?;
            let mut sink = |p: lthost::loops::prediction::Prediction| writer.push_prediction(&p);
            if args.scale_batch_size {
                let cfg = &cfg.scale_batch_size;
                trainer.predict_into_after_scale_batch_size(&mut module, &mut data, &hparams, cfg, &mut sink)?;
            } else {
                trainer.predict_into(&mut module, &mut data, &hparams, &mut sink)?;
            }
            let n = writer.finish("predictions.safetensors")?;
            let path = dir.join("predictions.safetensors");
            println!("wrote {n} batches of predictions to {}", path.display());
        }
    }
    Ok(None)
}

/// Runs the range test, prints the suggestion, writes the plot and the numbers.
fn lr_find(
    trainer: &mut Trainer<'_>,
    module: &mut WasmPlugin,
    data: &mut WasmPlugin,
    hparams: &Value,
    cfg: &lthost::callbacks::lr_finder::LrFindConfig,
    out: &Path,
) -> Result<()> {
    let Some(report) = trainer.lr_find(module, data, hparams, cfg)? else { return Ok(()) };
    let r = &report.results;
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
    let png = lthost::plot::lr_plot(
        &r.lr,
        &r.loss,
        cfg.mode.eq_ignore_ascii_case("exponential"),
        report.suggestion.map(|s| s.0),
    )?;
    let png_path = out.join("lr_find.png");
    lthost::fs::write_atomic(&png_path, &png)?;
    let json = serde_json::json!({
        "lr": r.lr, "loss": r.loss,
        "suggestion": report.suggestion.map(|s| s.1), "suggestion_index": report.suggestion.map(|s| s.0),
        "steps": report.steps, "total_batch_idx": report.total_batch_idx, "seed": report.seed, "config": cfg,
    });
    let json_path = out.join("lr_find.json");
    lthost::fs::write_atomic(&json_path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    report.print(cfg);
    if trainer.cfg.seed.is_none() {
        println!("The search ran with seed {0}; `lthost fit --seed {0}` starts from the same weights.", report.seed);
    }
    println!("wrote {} and {}", png_path.display(), json_path.display());
    Ok(())
}

/// `-v`/`RUST_LOG` → tracing to stderr.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_target("lthost", level).with_default(LevelFilter::WARN));
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(true))
        .with(filter)
        .try_init();
}

fn main() -> ExitCode {
    lthost::engine::heap::keep_freed_memory();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // Before anything else: a run that may use CUDA restarts with libtorch's CUDA library.
    lthost::connectors::cuda_loader::preload_if_needed();
    lthost::connectors::accelerator::init_interop_threads();
    // Before libtorch allocates anything that later allocator calls could be handed back.
    lthost::engine::memory_budget::install();
    // SIGTERM, SIGINT, SIGUSR1: the loops finish the current step, save, and stop.
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGUSR1] {
        let flag = signal.clone();
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let registered =
            unsafe { signal_hook::low_level::register(sig, move || flag.store(sig as usize, Ordering::SeqCst)) };
        if let Err(e) = registered {
            eprintln!("warning: cannot handle signal {sig}: {e}");
        }
    }
    lthost::plugin::interrupt::watch_signals(signal.clone());
    match run(cli.command, signal) {
        Ok(Some(code)) => ExitCode::from(code.clamp(0, 255) as u8),
        // A signal that arrived while no loop was there to act on it still ends the process
        // as a signal does.
        Ok(None) => match lthost::plugin::interrupt::signalled() {
            0 => ExitCode::SUCCESS,
            sig => ExitCode::from((128 + sig).min(255) as u8),
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            // A run a signal stopped exits as the signal says, whatever stage it was in.
            match lthost::plugin::interrupt::signalled() {
                0 => ExitCode::FAILURE,
                sig => ExitCode::from((128 + sig).min(255) as u8),
            }
        }
    }
}
