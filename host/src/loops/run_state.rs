//! What a checkpoint holds of a run (dump) and how a run's training state is put back
//! (restore): the model's tensors, the optimizers and schedulers (the plugin's own too), the
//! generators, the loops' state dicts, the callbacks', the module's and the DataModule's own
//! state. Lightning's checkpoint connector, the part that reads and writes the loops.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Result};
use tch::{Kind, Tensor};

use crate::checkpoint::{self, Checkpoint, Meta};
use crate::connectors::checkpoint::STATE_DICT;
use crate::engine::torch_ext;
use crate::loops::checkpointing::LoopPosition;
use crate::loops::state::LoopState;
use crate::module::{OptimizerCall, SchedulerCall};

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
        hparams: serde_json::Value::Object(st.checkpoint_hparams.clone()),
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
            meta.precision_plugin = match &o.scaler {
                Some(s) => Some(s.state_dict()?),
                None => None,
            };
        }

        let rng = torch_ext::cpu_rng_state()?;
        tensors.insert("rng.cpu".into(), Tensor::from_slice(&rng));
        if let tch::Device::Cuda(i) = st.ctx.device {
            let rng = torch_ext::cuda_rng_state(i)?;
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
        if plugin_state && !st.module_hooks.callback_keys.is_empty() {
            for (key, text) in st.module.file_callback_states(&mut st.ctx)? {
                check_state_size(st.module.name(), "state_dict", text.len())?;
                // Under its Lightning key, unless one of lthost's own callbacks holds that key.
                let key = if meta.callbacks.contains_key(&key) { format!("{FILE_KEY_PREFIX}{key}") } else { key };
                let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    anyhow!("module `{}`: callback `{key}`'s state_dict is not JSON: {e}", st.module.name())
                })?;
                meta.callbacks.insert(key, value);
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
/// Where a module's own callback keeps its state when one of lthost's callbacks has its key
/// (a file's `class Timer(Callback)`).
const FILE_KEY_PREFIX: &str = "file:";

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
        opt.load_state_dict(&ts, meta).map_err(|e| anyhow!("checkpoint {shown}, optimizer {k}: {}", e.detail))?;
    }
    for (s, state) in o.schedulers.iter_mut().zip(&ckpt.meta.schedulers) {
        s.scheduler.load_state(state).map_err(|e| anyhow!("checkpoint {shown}: {}", e.detail))?;
    }
    // Lightning's `restore_precision_plugin_state`: the scaler's state where the checkpoint
    // has one (a checkpoint of another precision leaves this run's scaler as it starts).
    if let (Some(s), Some(state)) = (o.scaler.as_mut(), &ckpt.meta.precision_plugin) {
        s.load_state_dict(state).map_err(|e| anyhow!("checkpoint {shown}: {}", e.detail))?;
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
    torch_ext::set_cpu_rng_state(&bytes).map_err(|e| anyhow!("checkpoint {shown}: {}", e.detail))?;
    if let tch::Device::Cuda(i) = st.ctx.device {
        if let Some(rng) = ckpt.tensors.get(&format!("rng.cuda.{i}")) {
            let bytes =
                Vec::<u8>::try_from(rng).map_err(|e| anyhow!("checkpoint {shown}: cuda generator state: {e}"))?;
            torch_ext::set_cuda_rng_state(i, &bytes).map_err(|e| anyhow!("checkpoint {shown}: {}", e.detail))?;
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
    for key in st.module_hooks.callback_keys.clone() {
        let saved =
            ckpt.meta.callbacks.get(&format!("{FILE_KEY_PREFIX}{key}")).or_else(|| ckpt.meta.callbacks.get(&key));
        if let Some(s) = saved {
            st.module.load_file_callback_state(&mut st.ctx, &key, &s.to_string())?;
        }
    }
    Ok(p)
}
