//! Lightning's checkpoint connector: what goes into a checkpoint (dump) and how a run is
//! put back (restore), and which file `--ckpt-path last|best|PATH` means.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use tch::{Kind, Tensor};

use crate::checkpoint::{self, Checkpoint, Meta};
use crate::context::RunContext;
use crate::engine::torch_ext;
use crate::loops::checkpointing::LoopPosition;
use crate::loops::state::LoopState;
use crate::module::{OptimizerCall, SchedulerCall};
use crate::run_dir::RunDir;

const STATE_DICT: &str = "state_dict.";

/// The run as a checkpoint at `position`. `plugin_state`: ask the module for its own state
/// (not after it failed: a trapped instance cannot be entered again).
pub fn dump(
    st: &mut LoopState<'_>,
    position: LoopPosition,
    weights_only: bool,
    plugin_state: bool,
) -> Result<Checkpoint> {
    let mut tensors = BTreeMap::new();
    let mut tied = BTreeMap::new();
    for e in st.ctx.params.entries().iter().filter(|e| e.persistent) {
        match st.ctx.params.tied_to(e) {
            // A tied parameter is stored once, under its first path.
            Some(first) => _ = tied.insert(e.name.clone(), first.to_string()),
            None => _ = tensors.insert(format!("{STATE_DICT}{}", e.name), e.tensor.shallow_clone()),
        }
    }
    let mut meta = Meta {
        tied,
        format: checkpoint::FORMAT,
        lthost_version: env!("CARGO_PKG_VERSION").into(),
        wit_version: checkpoint::WIT_VERSION.into(),
        plugin: st.module.name().into(),
        plugin_sha256: st.plugin_sha256.clone(),
        weights_only,
        current_epoch: position.current_epoch,
        global_step: position.global_step,
        loops: position.state_dict(),
        hparams: st.hparams.clone(),
        ..Meta::default()
    };
    if !weights_only {
        // The plugin's schedulers, as they are now (a manual-optimization module steps them
        // itself); after a failure, the state kept at their last step.
        let in_plugin = st.ctx.optim.as_ref().map(|o| o.plugin_schedulers()).unwrap_or_default();
        for i in in_plugin.into_iter().filter(|_| plugin_state) {
            let state = st.module.plugin_scheduler(&mut st.ctx, i, SchedulerCall::State)?.unwrap_or_default();
            if let Some(e) = st.ctx.optim.as_mut().and_then(|o| o.schedulers.get_mut(i)) {
                e.scheduler.keep_state(state);
            }
        }
        let in_plugin = st.ctx.optim.as_ref().map(|o| o.plugin_optimizers()).unwrap_or_default();
        for i in in_plugin.into_iter().filter(|_| plugin_state) {
            if let Some((tensors, rest)) = st.module.plugin_optimizer(&mut st.ctx, i, OptimizerCall::State)? {
                if let Some(opt) = st.ctx.optim.as_mut().and_then(|o| o.optimizers.get_mut(i)) {
                    opt.keep_state(tensors, rest);
                }
            }
        }
        if let Some(o) = &st.ctx.optim {
            for (k, opt) in o.optimizers.iter().enumerate() {
                let (ts, m) = opt.state_dict();
                tensors.extend(ts.into_iter().map(|(n, t)| (format!("optimizer.{k}.{n}"), t)));
                meta.optimizers.push(m);
            }
            meta.schedulers = o.schedulers.iter().map(|s| s.scheduler.state()).collect();
        }

        let rng = torch_ext::cpu_rng_state().map_err(|e| anyhow!(e))?;
        tensors.insert("rng.cpu".into(), Tensor::from_slice(&rng));
        if let tch::Device::Cuda(i) = st.ctx.device {
            let rng = torch_ext::cuda_rng_state(i).map_err(|e| anyhow!(e))?;
            tensors.insert(format!("rng.cuda.{i}"), Tensor::from_slice(&rng));
        }
        if position.restart().batches_done > 0 {
            if let Some(order) = &st.epoch_order {
                tensors.insert("loops.train_order".into(), order.shallow_clone());
            }
        }
        if let Some(mc) = &st.checkpoint {
            meta.callbacks.insert(mc.state_key(), mc.state());
        }
        if let Some(es) = &st.early_stopping {
            meta.callbacks.insert(es.state_key(), es.state());
        }
        meta.callbacks.insert("Timer".into(), st.timer.state());
        for cb in &mut st.callbacks {
            if let Some(s) = cb.state()? {
                meta.callbacks.insert(cb.state_key(), s);
            }
        }
        let state = if plugin_state { st.module.save_state(&mut st.ctx)? } else { None };
        if let Some(bytes) = state {
            check_state_size(st.module.name(), "save_state", bytes.len())?;
            tensors.insert("plugin.state".into(), Tensor::from_slice(&bytes));
        }
        let data_state = match st.data.as_mut() {
            Some(d) if plugin_state => d.save_state(&mut st.ctx)?,
            _ => None,
        };
        if let Some(bytes) = data_state {
            check_state_size(st.module.name(), "datamodule save_state", bytes.len())?;
            tensors.insert("datamodule.state".into(), Tensor::from_slice(&bytes));
        }
    }
    Ok(Checkpoint { meta, tensors })
}

/// A plugin's own state may take at most [`checkpoint::MAX_STATE_BYTES`].
fn check_state_size(plugin: &str, hook: &str, len: usize) -> Result<()> {
    if len > checkpoint::MAX_STATE_BYTES {
        bail!(
            "plugin `{plugin}`, hook `{hook}`: its state is {} MiB, over the {} MiB a plugin's state may take",
            len >> 20,
            checkpoint::MAX_STATE_BYTES >> 20
        );
    }
    Ok(())
}

/// Loads the model's parameters and buffers; every missing, unexpected or mis-shaped key is
/// reported in one error, and nothing is changed unless all fit.
pub fn restore_model(ctx: &mut RunContext, ckpt: &Checkpoint, shown: &str) -> Result<()> {
    let saved: HashMap<&str, &Tensor> =
        ckpt.tensors.iter().filter_map(|(k, t)| k.strip_prefix(STATE_DICT).map(|n| (n, t))).collect();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let stored = |e: &&crate::engine::params::Entry| e.persistent && ctx.params.tied_to(e).is_none();
    for e in ctx.params.entries().iter().filter(stored) {
        match saved.get(e.name.as_str()) {
            None => missing.push(e.name.clone()),
            Some(t) if t.size() != e.tensor.size() => {
                mismatched.push(format!("{} (checkpoint {:?}, model {:?})", e.name, t.size(), e.tensor.size()))
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<&str> = saved.keys().copied().filter(|k| ctx.params.get(k).is_none()).collect();
    let untied: Vec<String> = ctx
        .params
        .entries()
        .iter()
        .filter_map(|e| Some((e.name.as_str(), ctx.params.tied_to(e)?)))
        .filter(|(name, first)| ckpt.meta.tied.get(*name).map(String::as_str) != Some(*first))
        .map(|(name, first)| format!("{name} (tied to {first} in the model, not in the checkpoint)"))
        .collect();
    mismatched.extend(untied);
    if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
        bail!(
            "checkpoint {shown} does not fit the model of plugin `{}`: missing keys {missing:?}, unexpected keys {unexpected:?}, shape mismatches {mismatched:?}",
            ckpt.meta.plugin
        );
    }
    tch::no_grad(|| -> Result<()> {
        for e in ctx.params.entries().iter().filter(stored) {
            if let Some(src) = saved.get(e.name.as_str()) {
                let src = src.f_to_kind(e.tensor.kind())?.f_to_device(e.tensor.device())?;
                e.tensor.shallow_clone().f_copy_(&src)?;
            }
        }
        Ok(())
    })
}

/// Puts back the training state: optimizers, schedulers, counters, the generator, callback
/// states; returns where the loops resume.
pub fn restore_training(st: &mut LoopState<'_>, ckpt: &Checkpoint, shown: &str) -> Result<LoopPosition> {
    if ckpt.meta.weights_only {
        bail!("checkpoint {shown} holds weights only (save_weights_only); it cannot resume training");
    }
    let o = st.ctx.optim.as_mut().ok_or_else(|| anyhow!("internal: no optimizers to restore"))?;
    if ckpt.meta.optimizers.len() != o.optimizers.len() || ckpt.meta.schedulers.len() != o.schedulers.len() {
        bail!(
            "checkpoint {shown} has {} optimizers and {} schedulers, this run configures {} and {}",
            ckpt.meta.optimizers.len(),
            ckpt.meta.schedulers.len(),
            o.optimizers.len(),
            o.schedulers.len()
        );
    }
    for (k, (opt, meta)) in o.optimizers.iter_mut().zip(&ckpt.meta.optimizers).enumerate() {
        let prefix = format!("optimizer.{k}.");
        let ts: HashMap<String, Tensor> = ckpt
            .tensors
            .iter()
            .filter_map(|(n, t)| n.strip_prefix(&prefix).map(|s| (s.to_string(), t.shallow_clone())))
            .collect();
        opt.load_state_dict(&ts, meta).map_err(|e| anyhow!("checkpoint {shown}, optimizer {k}: {e}"))?;
    }
    for (s, state) in o.schedulers.iter_mut().zip(&ckpt.meta.schedulers) {
        s.scheduler.load_state(state).map_err(|e| anyhow!("checkpoint {shown}: {e}"))?;
    }
    let in_plugin = o.plugin_schedulers();
    let optimizer_states: Vec<(usize, crate::module::PluginOptimizerState)> =
        o.plugin_optimizers().into_iter().filter_map(|i| Some((i, o.optimizers[i].plugin_state()?))).collect();
    let p = LoopPosition::from_meta(&ckpt.meta).map_err(|e| anyhow!("checkpoint {shown}: {e}"))?;
    o.progress = p.optimization;
    // The fit loop resumes from its state (its `restart` says where); a validation loop's
    // counts start afresh in the new process, as the evaluation loops' do.
    let mut fit_loop = p.loops.fit_loop.clone();
    fit_loop.epoch_loop.val_loop = std::mem::take(&mut st.loops.fit_loop.epoch_loop.val_loop);
    st.loops.fit_loop = fit_loop;
    st.ctx.current_epoch = p.current_epoch;
    st.ctx.global_step = p.global_step;
    for (i, (tensors, rest)) in &optimizer_states {
        st.module.plugin_optimizer(&mut st.ctx, *i, OptimizerCall::Load(tensors, rest))?;
    }
    for i in in_plugin {
        if let Some(serde_json::Value::String(state)) = ckpt.meta.schedulers.get(i) {
            st.module.plugin_scheduler(&mut st.ctx, i, SchedulerCall::Load(state))?;
        }
    }
    let rng = ckpt.tensors.get("rng.cpu").ok_or_else(|| anyhow!("checkpoint {shown} has no generator state"))?;
    let bytes = Vec::<u8>::try_from(&rng.f_to_kind(Kind::Uint8)?)
        .map_err(|e| anyhow!("checkpoint {shown}: generator state: {e}"))?;
    torch_ext::set_cpu_rng_state(&bytes).map_err(|e| anyhow!("checkpoint {shown}: {e}"))?;
    if let tch::Device::Cuda(i) = st.ctx.device {
        if let Some(rng) = ckpt.tensors.get(&format!("rng.cuda.{i}")) {
            let bytes =
                Vec::<u8>::try_from(rng).map_err(|e| anyhow!("checkpoint {shown}: cuda generator state: {e}"))?;
            torch_ext::set_cuda_rng_state(i, &bytes).map_err(|e| anyhow!("checkpoint {shown}: {e}"))?;
        }
    }
    st.resume_order = ckpt.tensors.get("loops.train_order").map(Tensor::shallow_clone);
    if let Some(state) = ckpt.tensors.get("plugin.state") {
        let bytes = Vec::<u8>::try_from(state).map_err(|e| anyhow!("checkpoint {shown}: plugin state: {e}"))?;
        st.module.load_state(&mut st.ctx, &bytes)?;
    }
    if let (Some(state), Some(d)) = (ckpt.tensors.get("datamodule.state"), st.data.as_mut()) {
        let bytes = Vec::<u8>::try_from(state).map_err(|e| anyhow!("checkpoint {shown}: datamodule state: {e}"))?;
        d.load_state(&mut st.ctx, &bytes)?;
    }
    // A built-in callback's state is restored only into one configured the same way (its
    // Lightning state key); checkpoints of older lthost versions kept it under their own key.
    let saved =
        |key: String, legacy: String| ckpt.meta.callbacks.get(&key).or_else(|| ckpt.meta.callbacks.get(&legacy));
    if let Some(mc) = st.checkpoint.as_mut() {
        if let Some(s) = saved(mc.state_key(), mc.legacy_state_key()) {
            mc.load_state(s, &st.plugin_sha256);
        }
    }
    if let Some(es) = st.early_stopping.as_mut() {
        if let Some(s) = saved(es.state_key(), es.legacy_state_key()) {
            es.load_state(s);
        }
    }
    if let Some(s) = ckpt.meta.callbacks.get("Timer") {
        st.timer.load_state(s);
    }
    for cb in &mut st.callbacks {
        if let Some(s) = ckpt.meta.callbacks.get(&cb.state_key()) {
            cb.load_state(s)?;
        }
    }
    Ok(p)
}

/// `--ckpt-path`: `last` (the checkpoint directory's last.ckpt, else the newest
/// lightning_logs/version_*/checkpoints/last.ckpt), `best` (the best path ModelCheckpoint
/// recorded in that last checkpoint, if it lies in the same directory), or a path.
/// The newest of `last.ckpt` and its versions (`last-v1.ckpt`, ...) in `dir`, by
/// modification time (Lightning's `_find_last_checkpoints` and `max(..., key=mtime)`).
fn newest_last(dir: &Path) -> Option<PathBuf> {
    let is_last = |n: &str| {
        n.strip_suffix(".ckpt").is_some_and(|s| {
            s == "last"
                || s.strip_prefix("last-v").is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let run_dir = RunDir::open_existing(dir)?;
    run_dir
        .entries()
        .into_iter()
        .filter(|(name, _)| is_last(name))
        .filter_map(|(name, link)| {
            // A `save_last="link"` link stands for the checkpoint it names beside it (that
            // file is what resumes, and what ModelCheckpoint then never removes).
            let file = match link {
                true => run_dir.link_target(&name)?,
                false => Some(name).filter(|n| run_dir.is_file(n))?,
            };
            let path = dir.join(file);
            Some((std::fs::symlink_metadata(&path).ok()?.modified().ok()?, path))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        .map(|(_, p)| p)
}

pub fn resolve(spec: &str, dirpath: Option<&Path>, root: &Path) -> Result<PathBuf> {
    let last = || -> Option<PathBuf> {
        if let Some(p) = dirpath.and_then(newest_last) {
            return Some(p);
        }
        let logs = root.join("lightning_logs");
        let mut versions: Vec<(u64, PathBuf)> = std::fs::read_dir(&logs)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("version_")?.parse().ok().map(|v: u64| (v, e.path())))
            .collect();
        versions.sort();
        versions.into_iter().rev().find_map(|(_, p)| newest_last(&p.join("checkpoints")))
    };
    match spec {
        "last" => last().ok_or_else(|| anyhow!("--ckpt-path last: no last.ckpt found (is `save_last` on?)")),
        "best" => {
            let l =
                last().ok_or_else(|| anyhow!("--ckpt-path best: no checkpoint found to read the best path from"))?;
            let ck = checkpoint::load(&l)?;
            // Only ModelCheckpoint's own state, never a callback plugin's (whose keys are
            // namespaced apart), and only a file beside last.ckpt.
            let best = ck
                .meta
                .callbacks
                .iter()
                .filter(|(k, _)| k.starts_with(crate::callbacks::model_checkpoint::STATE_KEY_PREFIX))
                .find_map(|(_, s)| s["best_model_path"].as_str().map(PathBuf::from))
                .ok_or_else(|| anyhow!("--ckpt-path best: {} records no best model", l.display()))?;
            let dir = l
                .parent()
                .and_then(RunDir::open_existing)
                .ok_or_else(|| anyhow!("--ckpt-path best: cannot open the directory of {}", l.display()))?;
            match dir.name_of(&best) {
                Some(name) if dir.is_file(&name) => Ok(dir.path().join(name)),
                _ => bail!(
                    "--ckpt-path best: {} names {} as the best model, which is not a checkpoint file in {}; refused",
                    l.display(),
                    best.display(),
                    dir.path().display()
                ),
            }
        }
        path => {
            let p = PathBuf::from(path);
            if !p.exists() {
                bail!("--ckpt-path {path}: no such file");
            }
            Ok(p)
        }
    }
}

/// Lightning's HPC checkpoints: `<root>/hpc_ckpt_<n>.ckpt`, the highest n resumed first —
/// but only a regular file written by this same plugin (`plugin_sha256`); others are passed
/// over with a warning.
pub fn latest_hpc(root: &Path, plugin_sha256: &str) -> Option<PathBuf> {
    let dir = RunDir::open_existing(root)?;
    let mut found: Vec<(u64, String)> = dir
        .entries()
        .into_iter()
        .filter_map(|(name, _)| {
            let n: u64 = name.strip_prefix("hpc_ckpt_")?.strip_suffix(".ckpt")?.parse().ok()?;
            Some((n, name))
        })
        .collect();
    found.sort();
    for (_, name) in found.into_iter().rev() {
        match checkpoint::read_meta(&dir, &name) {
            Ok(m) if m.plugin_sha256 == plugin_sha256 => return Some(root.join(name)),
            Ok(m) => eprintln!(
                "warning: not resuming from {}: it was written by plugin `{}` (sha256 {}), not this one",
                root.join(&name).display(),
                m.plugin,
                short(&m.plugin_sha256)
            ),
            Err(e) => eprintln!("warning: not resuming from {}: {e}", root.join(&name).display()),
        }
    }
    None
}

/// The highest HPC checkpoint number in `root` (whoever wrote it), for naming the next.
pub fn highest_hpc(root: &Path) -> Option<u64> {
    RunDir::open_existing(root)?
        .entries()
        .into_iter()
        .filter_map(|(name, _)| name.strip_prefix("hpc_ckpt_")?.strip_suffix(".ckpt")?.parse().ok())
        .max()
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
