//! Where the loops save checkpoints: ModelCheckpoint's triggers, and the position a
//! checkpoint records (so that a resumed run continues at the same batch).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::callbacks::model_checkpoint::{Moment, ValidationSchedule};
use crate::checkpoint;
use crate::connectors::logger::read;
use crate::engine::optim::OptimizationProgress;
use crate::loops::run_state::dump;
use crate::loops::state::LoopState;
use crate::loops::state_dict::{Loops, StateDict};
use crate::loops::training_epoch::Restart;

/// What a checkpoint records of the loops: their state (the training epoch loop's `restart`
/// saying where a resumed run continues), the optimizer set's progress, the epoch and step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopPosition {
    pub current_epoch: u64,
    pub global_step: u64,
    pub loops: Loops,
    pub optimization: OptimizationProgress,
}

/// Where the optimizer set's progress goes in the fit loop's state dict.
const OPTIM_PROGRESS: &str = "epoch_loop.optim_progress";

impl LoopPosition {
    pub fn restart(&self) -> Restart {
        self.loops.fit_loop.epoch_loop.restart.unwrap_or_default()
    }

    pub fn restart_mut(&mut self) -> &mut Restart {
        self.loops.fit_loop.epoch_loop.restart.get_or_insert_with(Restart::default)
    }

    /// The loops' state dicts (the optimizer set's progress in the fit loop's, beside the
    /// training epoch loop's own), as checkpoints keep them.
    pub fn state_dict(&self) -> StateDict {
        let mut sd = self.loops.state_dict();
        if let Some(serde_json::Value::Object(fit)) = sd.get_mut("fit_loop") {
            fit.insert(OPTIM_PROGRESS.into(), serde_json::to_value(self.optimization).unwrap_or_default());
        }
        sd
    }

    /// The position a checkpoint's metadata records (format 1: the flat `position`).
    pub fn from_meta(meta: &checkpoint::Meta) -> Result<LoopPosition> {
        if let Some(p) = &meta.position {
            return Ok(LoopPosition::from_format_1(p));
        }
        let mut loops = Loops::default();
        loops.load_state_dict(&meta.loops)?;
        let optim = meta.loops.get("fit_loop").and_then(|f| f.get(OPTIM_PROGRESS));
        let optim = optim.ok_or_else(|| anyhow::anyhow!("the loops' state has no `fit_loop.{OPTIM_PROGRESS}`"))?;
        let optimization = serde_json::from_value(optim.clone())
            .map_err(|e| anyhow::anyhow!("the loops' `fit_loop.{OPTIM_PROGRESS}`: {e}"))?;
        Ok(LoopPosition { current_epoch: meta.current_epoch, global_step: meta.global_step, loops, optimization })
    }

    fn from_format_1(p: &checkpoint::FlatPosition) -> LoopPosition {
        let mut pos = LoopPosition {
            current_epoch: p.current_epoch,
            global_step: p.global_step,
            optimization: OptimizationProgress {
                step: p.step_progress,
                zero_grad: p.zero_grad_progress,
                scheduler_steps: p.scheduler_steps,
            },
            ..LoopPosition::default()
        };
        let fit = &mut pos.loops.fit_loop;
        fit.epoch_progress = p.epoch_progress;
        fit.epoch_loop.batch_progress = p.batch_progress;
        fit.epoch_loop.batches_that_stepped = p.batches_that_stepped;
        fit.epoch_loop.restart = Some(Restart {
            batches_done: p.batches_done_in_epoch,
            val_pending: p.val_pending,
            at_epoch_end: p.at_epoch_end,
        });
        pos
    }
}

/// The loops' position now. `batches_done`: training batches of the current epoch done
/// (0 at an epoch boundary); `val_pending`: a validation run is due and has not run.
pub fn position(st: &LoopState<'_>, batches_done: usize, val_pending: bool) -> LoopPosition {
    let mut loops = st.loops.clone();
    loops.fit_loop.epoch_loop.restart =
        Some(Restart { batches_done: batches_done as u64, val_pending, at_epoch_end: false });
    LoopPosition {
        current_epoch: st.ctx.current_epoch,
        global_step: st.ctx.global_step,
        loops,
        optimization: st.ctx.optim.as_ref().map(|o| o.progress).unwrap_or_default(),
    }
}

/// Which ModelCheckpoint hook a save point is (Lightning calls the callback there).
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    /// After a training batch; `val_follows`: a validation run comes right after it at the
    /// epoch's end.
    TrainBatchEnd {
        val_follows: bool,
    },
    TrainEpochEnd,
    /// The end of a validation run inside fit.
    ValidationEnd,
    TrainEnd,
    /// The run failed or a signal ended it (ModelCheckpoint's `on_exception`); `plugin_state`:
    /// the plugin can still be asked for its own state (a signal between steps), which after a
    /// failure it cannot (a trap poisons its instance).
    Exception {
        plugin_state: bool,
    },
}

/// Runs ModelCheckpoint at `trigger`: it decides the files, they are written atomically,
/// then the ones that fell out of the top k are removed. `epoch` is the epoch the save
/// belongs to.
pub fn save(st: &mut LoopState<'_>, trigger: Trigger, epoch: u64, pos: LoopPosition) -> Result<()> {
    let automatic = st.ctx.optim.as_ref().is_none_or(|o| o.automatic);
    let Some(mut mc) = st.checkpoint.take() else { return Ok(()) };
    let last_before = mc.last_model_path.clone();
    if matches!(trigger, Trigger::TrainBatchEnd { .. }) && !mc.batch_trigger_fires(st.ctx.global_step, automatic) {
        st.checkpoint = Some(mc);
        return Ok(());
    }
    // Lightning's monitor candidates: callback_metrics with `epoch` and `step` (a logged
    // `epoch` or `step` is kept, as an int). Inside the training epoch they hold the current
    // training step's values (Lightning computes callback_metrics when read).
    let mut metrics: BTreeMap<String, f64> = st.ctx.callback_metrics.clone();
    if matches!(trigger, Trigger::TrainBatchEnd { .. }) {
        metrics.extend(read(&st.train_results.step_callback_metrics(), |_| true));
    }
    for (k, v) in [("epoch", epoch), ("step", st.ctx.global_step)] {
        metrics.entry(k.to_string()).and_modify(|x| *x = x.trunc()).or_insert(v as f64);
    }
    let at = Moment { metrics: &metrics, global_step: st.ctx.global_step, val_has_run: st.val_has_run };
    let on_epoch_end = mc.saves_on_train_epoch_end(ValidationSchedule {
        val_batches: st.limits.val_batches.iter().fold(0usize, |a, &b| a.saturating_add(b)),
        check_val_every_n_epoch: st.limits.check_val_every_n_epoch,
        by_time: st.limits.val_check_seconds.is_some(),
        val_check_interval: st.cfg.val_check_interval().limit(),
    });
    let plan = match trigger {
        Trigger::TrainBatchEnd { val_follows } => mc.on_train_batch_end(&at, automatic, on_epoch_end, val_follows),
        Trigger::TrainEpochEnd => mc.on_train_epoch_end(&at, epoch, on_epoch_end),
        Trigger::ValidationEnd => mc.on_validation_end(&at, epoch, on_epoch_end),
        Trigger::TrainEnd => mc.on_train_end(&at),
        Trigger::Exception { .. } => mc.on_exception(&at, st.ctx.stage == crate::context::Stage::SanityCheck),
    };
    let weights_only = mc.cfg.save_weights_only;
    st.checkpoint = Some(mc);
    let plan = plan?;
    if plan.paths.is_empty() && plan.links.is_empty() && plan.remove.is_empty() {
        return Ok(());
    }
    let plugin_state = match trigger {
        Trigger::Exception { plugin_state } => plugin_state,
        _ => true,
    };
    let ckpt = if plan.paths.is_empty() { None } else { Some(dump(st, pos, weights_only, plugin_state)?) };
    let Some(mc) = st.checkpoint.as_mut() else { return Ok(()) };
    mc.run_dir()?;
    if let Some(ckpt) = ckpt {
        // Serialised and checked once for every path; a save that fails, or whose bytes would
        // not load, ends the run before any older checkpoint is removed.
        let bytes = checkpoint::to_checked_vec(&ckpt).context("ModelCheckpoint could not save")?;
        for p in &plan.paths {
            checkpoint::write(p, &bytes).with_context(|| format!("ModelCheckpoint could not save {}", p.display()))?;
            mc.wrote(p);
            // Lightning's `_save_checkpoint` tells the loggers after each file.
            let last = if mc.last_model_path.as_ref() == Some(p) { Some(p.as_path()) } else { last_before.as_deref() };
            let saved = mc.saved_state(p, last);
            if let Some(l) = st.logger.as_mut() {
                l.after_save_checkpoint(&saved)?;
            }
        }
    }
    for (link, target) in &plan.links {
        mc.link(link, target)?;
    }
    let kept = |p: &&std::path::PathBuf| !plan.paths.contains(p) && !plan.links.iter().any(|(l, t)| l == *p || t == *p);
    for p in plan.remove.iter().filter(kept) {
        mc.remove(p);
    }
    Ok(())
}

/// Writes a checkpoint to `path` outside ModelCheckpoint's bookkeeping (signals, HPC).
pub fn save_to(st: &mut LoopState<'_>, path: &Path, pos: LoopPosition, plugin_state: bool) -> Result<()> {
    let ckpt = dump(st, pos, false, plugin_state)?;
    // Only global rank 0 writes (Lightning's `strategy.save_checkpoint`).
    if !st.is_global_zero() {
        return Ok(());
    }
    checkpoint::save(path, &ckpt)?;
    tracing::info!(path = %path.display(), step = st.ctx.global_step, "checkpoint saved");
    Ok(())
}

/// Where a signal's checkpoint goes: SIGUSR1 an HPC checkpoint (`<root>/hpc_ckpt_<n>.ckpt`,
/// picked up by the next run of this plugin); SIGTERM and SIGINT `last.ckpt` in the
/// checkpoint directory (or `<root>/interrupted.ckpt`).
fn signal_path(st: &mut LoopState<'_>, signal: i32) -> Result<std::path::PathBuf> {
    if signal == libc::SIGUSR1 {
        let n = crate::connectors::checkpoint::highest_hpc(&st.root_dir).map_or(1, |n| n + 1);
        return Ok(st.root_dir.join(format!("hpc_ckpt_{n}.ckpt")));
    }
    side_path(st, "last", "interrupted")
}

/// Where a save outside ModelCheckpoint's triggers goes: `<stem>.ckpt` in the checkpoint
/// directory (`<root_stem>.ckpt` in the root without checkpointing), versioned `-v1`, ... so
/// that no file this run did not write is replaced.
fn side_path(st: &mut LoopState<'_>, stem: &str, root_stem: &str) -> Result<std::path::PathBuf> {
    if let Some(mc) = st.checkpoint.as_mut() {
        return mc.side_path(stem);
    }
    Ok(free_name(&st.root_dir, root_stem))
}

/// `<stem>.ckpt` in `dir`, or the first of `<stem>-v1.ckpt`, ... that does not exist.
fn free_name(dir: &Path, stem: &str) -> std::path::PathBuf {
    let mut path = dir.join(format!("{stem}.ckpt"));
    let mut v = 1;
    while path.symlink_metadata().is_ok() {
        path = dir.join(format!("{stem}-v{v}.ckpt"));
        v += 1;
    }
    path
}

/// A signal arrived between steps: the checkpoint is saved (see [`signal_path`]) and the run
/// stops after the step it finished.
pub fn interrupt(st: &mut LoopState<'_>, signal: i32, batches_done: usize) -> Result<()> {
    if st.searching {
        st.interrupter.interrupt(signal, None);
        return Ok(());
    }
    let pos = position(st, batches_done, false);
    let path = signal_path(st, signal)?;
    save_to(st, &path, pos.clone(), true)?;
    // DDP: every rank stops here after the same batch; none exits before rank 0's file is
    // written (a launcher such as torchrun would stop rank 0 when another exits).
    if let Some(d) = &st.ddp {
        d.barrier("signal checkpoint")?;
    }
    // Recorded before the hook: should a plugin be stopped in it, the save above stands.
    if let Some(mc) = st.checkpoint.as_mut() {
        mc.wrote(&path);
    }
    st.interrupter.interrupt(signal, Some(path));
    // Lightning calls the user's callbacks first, the checkpoint callbacks last.
    let hooked = st.hook(crate::hooks::Hook::OnException, None);
    if reaches_on_exception(signal) {
        exception_saves(st, pos, true);
    }
    hooked.map(|_| ())
}

/// SIGTERM and SIGINT reach the on_exception saves, as Lightning's SIGTERMException and
/// KeyboardInterrupt do; SIGUSR1 (lthost's requeue save) does not: Lightning's requeue handler
/// raises nothing.
fn reaches_on_exception(signal: i32) -> bool {
    signal != libc::SIGUSR1
}

/// Lightning's on_exception saves: ModelCheckpoint's (`save_on_exception`) and
/// OnExceptionCheckpoint's (`[checkpoint] on_exception`), at `pos`. A save that fails is
/// reported; the run's own outcome stands.
pub fn exception_saves(st: &mut LoopState<'_>, pos: LoopPosition, plugin_state: bool) {
    let epoch = st.ctx.current_epoch;
    if let Err(se) = save(st, Trigger::Exception { plugin_state }, epoch, pos.clone()) {
        eprintln!("ModelCheckpoint could not save on the exception: {se:#}");
    }
    if st.on_exception_dir.is_some() {
        on_exception_checkpoint(st, pos, plugin_state);
    }
}

/// OnExceptionCheckpoint's save: `on_exception.ckpt` (`-vN` beside one that exists).
pub fn on_exception_checkpoint(st: &mut LoopState<'_>, pos: LoopPosition, plugin_state: bool) {
    let path = match (st.checkpoint.as_mut(), &st.on_exception_dir) {
        (Some(mc), _) => mc.side_path("on_exception"),
        (None, Some(dir)) => Ok(free_name(dir, "on_exception")),
        (None, None) => return,
    };
    let saved = path.and_then(|path| save_to(st, &path, pos, plugin_state).map(|()| path));
    match saved {
        Ok(path) => {
            if let Some(mc) = st.checkpoint.as_mut() {
                mc.wrote(&path);
            }
            eprintln!("saved the state at the exception to {}", path.display())
        }
        Err(se) => eprintln!("could not save on_exception.ckpt: {se:#}"),
    }
}

/// A signal stopped a plugin inside a hook (the epoch jump). Inside a training batch the run
/// is saved where its weights are: the batch counts as done if its update was applied (the
/// automatic step ran, or a manual one since it started), with every counter of the batch
/// settled at that count, and a validation it cut is due again; the plugin's own state is
/// not saved (its instance cannot be entered again). Elsewhere nothing is saved (None): the
/// last checkpoint stands.
pub fn interrupt_in_hook(st: &mut LoopState<'_>, signal: i32) -> Result<Option<std::path::PathBuf>> {
    if !st.in_batch {
        return Ok(None);
    }
    let bp = st.loops.fit_loop.epoch_loop.batch_progress.current;
    let steps_now = st.ctx.optim.as_ref().map(|o| o.progress.step.total.completed).unwrap_or(0);
    let stepped = steps_now > st.steps_at_batch_start;
    let applied = bp.processed >= bp.started || stepped;
    let done = if applied { bp.started } else { bp.completed };
    let val_pending = applied && st.val_due_pending;
    let mut pos = position(st, done as usize, val_pending);
    let epoch_loop = &mut pos.loops.fit_loop.epoch_loop;
    epoch_loop.batch_progress = epoch_loop.batch_progress.settled_at(done);
    if applied && (st.step_pending || stepped) {
        epoch_loop.batches_that_stepped += 1;
    }
    pos.global_step = steps_now;
    let path = signal_path(st, signal)?;
    save_to(st, &path, pos.clone(), false)?;
    if let Some(mc) = st.checkpoint.as_mut() {
        mc.wrote(&path);
    }
    st.interrupter.interrupt(signal, Some(path.clone()));
    if reaches_on_exception(signal) {
        exception_saves(st, pos, false);
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Progress;

    fn counted(n: u64) -> Progress {
        let mut p = Progress::default();
        for _ in 0..n {
            p.increment_ready();
            p.increment_started();
            p.increment_processed();
            p.increment_completed();
        }
        p
    }

    fn saved_mid_epoch() -> LoopPosition {
        let mut pos = LoopPosition { current_epoch: 2, global_step: 9, ..LoopPosition::default() };
        let fit = &mut pos.loops.fit_loop;
        fit.epoch_progress = counted(3);
        fit.epoch_loop.batch_progress = counted(9);
        fit.epoch_loop.batches_that_stepped = 9;
        fit.epoch_loop.val_loop.batch_progress = counted(4);
        fit.epoch_loop.restart = Some(Restart { batches_done: 1, val_pending: true, at_epoch_end: false });
        pos.loops.test_loop.batch_progress = counted(2);
        pos.optimization = OptimizationProgress { step: counted(9), zero_grad: counted(9), scheduler_steps: 2 };
        pos
    }

    #[test]
    fn the_loops_state_dict_has_lightnings_layout_and_loads_back() {
        let pos = saved_mid_epoch();
        let sd = pos.state_dict();
        let loops: Vec<&str> = sd.keys().map(String::as_str).collect();
        assert_eq!(loops, ["fit_loop", "predict_loop", "test_loop", "validate_loop"]);
        let fit = sd["fit_loop"].as_object().expect("fit_loop");
        let mut keys: Vec<&str> = fit.keys().map(String::as_str).collect();
        keys.sort();
        // Lightning's keys where the concept is Lightning's; the optimizer set's progress in one.
        assert_eq!(
            keys,
            [
                "epoch_loop.batch_progress",
                "epoch_loop.optim_progress",
                "epoch_loop.state_dict",
                "epoch_loop.val_loop.batch_progress",
                "epoch_loop.val_loop.state_dict",
                "epoch_progress",
                "state_dict",
            ]
        );
        assert_eq!(fit["epoch_loop.state_dict"]["_batches_that_stepped"], 9);
        assert_eq!(fit["epoch_loop.batch_progress"]["total"]["completed"], 9);
        assert_eq!(sd["test_loop"]["batch_progress"]["current"]["ready"], 2);
        let meta = checkpoint::Meta { current_epoch: 2, global_step: 9, loops: sd, ..Default::default() };
        assert_eq!(LoopPosition::from_meta(&meta).expect("loads"), pos);
        // A key missing is an error naming it, not a default.
        let mut broken = meta.clone();
        if let Some(serde_json::Value::Object(fit)) = broken.loops.get_mut("fit_loop") {
            fit.remove("epoch_loop.batch_progress");
        }
        let err = LoopPosition::from_meta(&broken).expect_err("refused").to_string();
        assert!(err.contains("epoch_loop.batch_progress"), "{err}");
    }

    #[test]
    fn a_format_1_position_resumes_at_the_same_place() {
        let want = saved_mid_epoch();
        let fit = &want.loops.fit_loop;
        let flat = checkpoint::FlatPosition {
            current_epoch: 2,
            global_step: 9,
            epoch_progress: fit.epoch_progress,
            batch_progress: fit.epoch_loop.batch_progress,
            step_progress: want.optimization.step,
            zero_grad_progress: want.optimization.zero_grad,
            batches_that_stepped: 9,
            scheduler_steps: 2,
            batches_done_in_epoch: 1,
            val_pending: true,
            at_epoch_end: false,
        };
        let meta = checkpoint::Meta { format: 1, position: Some(flat), ..Default::default() };
        let got = LoopPosition::from_meta(&meta).expect("format 1");
        assert_eq!(got.optimization, want.optimization);
        assert_eq!(got.loops.fit_loop.epoch_progress, fit.epoch_progress);
        assert_eq!(got.loops.fit_loop.epoch_loop.batch_progress, fit.epoch_loop.batch_progress);
        assert_eq!(got.restart(), want.restart());
        assert_eq!((got.current_epoch, got.global_step), (2, 9));
    }
}
