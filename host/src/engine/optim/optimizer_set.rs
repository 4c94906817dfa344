//! The run's optimizers and LR schedulers, with the gradient accumulators that stand in for
//! torch's `.grad`: backward accumulates into them (gradient accumulation, manual
//! optimization), a step reads them, `zero_grad` drops them (torch's `set_to_none=True`).

use tch::Tensor;

use crate::engine::clip;
use crate::engine::grad_scaler::GradScaler;
use crate::engine::optim::{Optimizer, OptimizerConfig};
use crate::engine::params::ParamStore;
use crate::engine::schedulers::{LrScheduler, SchedulerKind};
use crate::error::{torch_message, OpError, OpResult};
use crate::progress::Progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Step,
    Epoch,
}

/// Lightning's lr_scheduler config.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSpec {
    pub kind: SchedulerKind,
    pub optimizer: usize,
    pub interval: Interval,
    pub frequency: u64,
    pub monitor: Option<String>,
    pub strict: bool,
}

pub struct SchedulerEntry {
    pub spec: SchedulerSpec,
    pub scheduler: Box<dyn LrScheduler>,
}

pub struct OptimizerSet {
    pub optimizers: Vec<Box<dyn Optimizer>>,
    pub schedulers: Vec<SchedulerEntry>,
    pub automatic: bool,
    /// Every parameter of every optimizer, once.
    params: Vec<Tensor>,
    /// For each optimizer, the indices of its parameters in `params`.
    members: Vec<Vec<usize>>,
    toggled: Option<usize>,
    pub progress: OptimizationProgress,
    /// `16-mixed`'s loss scaler (Lightning's MixedPrecision `scaler`).
    pub scaler: Option<GradScaler>,
    /// DDP in manual optimization: the Reducer told before each backward that its gradients
    /// are to be reduced (Lightning's `DDPStrategy.pre_backward`).
    pub manual_ddp: Option<std::sync::Arc<crate::distributed::c10d::Reducer>>,
}

/// Optimizer steps, zero_grad calls and scheduler steps (Lightning's `optim_progress` and
/// `scheduler_progress`). The optimizer set keeps them, not the training epoch loop whose
/// state they are part of, because a plugin's own `optimizer.step()` (manual optimization)
/// reaches the set and not the loop; the loops' state dict takes them from here.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizationProgress {
    pub step: Progress,
    pub zero_grad: Progress,
    pub scheduler_steps: u64,
}

fn op<T>(name: &str, r: Result<T, tch::TchError>) -> OpResult<T> {
    r.map_err(|e| OpError::new(name, torch_message(&e)))
}

impl OptimizerSet {
    pub fn new(cfgs: &[OptimizerConfig], specs: &[SchedulerSpec], automatic: bool, ps: &ParamStore) -> OpResult<Self> {
        if cfgs.is_empty() {
            return Err(OpError::new("configure_optimizers", "configure_optimizers returned no optimizer"));
        }
        if automatic && cfgs.len() > 1 {
            return Err(OpError::new(
                "configure_optimizers",
                format!(
                    "{} optimizers need manual optimization (automatic-optimization = false), as in Lightning",
                    cfgs.len()
                ),
            ));
        }
        let mut optimizers: Vec<Box<dyn Optimizer>> = Vec::new();
        let mut params: Vec<Tensor> = Vec::new();
        let mut members = Vec::new();
        for cfg in cfgs {
            cfg.validate()?;
            let opt = cfg.build(ps)?;
            let mut idx = Vec::new();
            for p in opt.params() {
                // The same tensor in two optimizers is one parameter; empty tensors (null
                // data pointers) are always distinct.
                let ptr = p.data_ptr();
                let shared =
                    if p.numel() > 0 { params.iter().position(|q| q.numel() > 0 && q.data_ptr() == ptr) } else { None };
                let i = match shared {
                    Some(i) => i,
                    None => {
                        params.push(p);
                        params.len() - 1
                    }
                };
                idx.push(i);
            }
            members.push(idx);
            optimizers.push(opt);
        }
        let mut schedulers = Vec::new();
        for spec in specs {
            let Some(opt) = optimizers.get_mut(spec.optimizer) else {
                return Err(OpError::new(
                    "configure_optimizers",
                    format!("lr scheduler for optimizer {} of {}", spec.optimizer, cfgs.len()),
                ));
            };
            if spec.frequency == 0 {
                return Err(OpError::new("configure_optimizers", "lr scheduler frequency must be at least 1"));
            }
            let is_plateau = matches!(spec.kind, SchedulerKind::ReduceOnPlateau(_))
                || matches!(spec.kind, SchedulerKind::Plugin { monitors: true, .. });
            if is_plateau && spec.monitor.is_none() {
                return Err(OpError::new(
                    "configure_optimizers",
                    "ReduceLROnPlateau needs a `monitor` metric, as in Lightning",
                ));
            }
            let scheduler = spec.kind.build(opt.as_mut())?;
            schedulers.push(SchedulerEntry { spec: spec.clone(), scheduler });
        }
        Ok(OptimizerSet {
            optimizers,
            schedulers,
            automatic,
            params,
            members,
            toggled: None,
            progress: OptimizationProgress::default(),
            scaler: None,
            manual_ddp: None,
        })
    }

    pub fn len(&self) -> usize {
        self.optimizers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.optimizers.is_empty()
    }

    fn check(&self, i: usize, name: &str) -> OpResult<()> {
        if i >= self.optimizers.len() {
            return Err(OpError::new(
                name,
                format!("optimizer {i} does not exist ({} configured)", self.optimizers.len()),
            ));
        }
        Ok(())
    }

    /// Back-propagates `loss` (divided by `divisor`: Lightning's `loss / accumulate_grad_batches`)
    /// into the accumulators of every parameter, or only the toggled optimizer's.
    pub fn backward(&mut self, loss: &Tensor, divisor: f64) -> OpResult<()> {
        let name = "backward";
        if loss.numel() != 1 {
            return Err(OpError::new(name, format!("the loss must be a scalar, got shape {:?}", loss.size())));
        }
        if !loss.requires_grad() {
            return Err(OpError::new(
                name,
                "the loss does not require grad: it was not computed from any trainable parameter (or was detached)",
            ));
        }
        let targets: Vec<usize> = match self.toggled {
            Some(t) => self.members[t].clone(),
            None => (0..self.params.len()).collect(),
        };
        let root = op(name, crate::engine::scalar::zero_dim(loss.shallow_clone()))?;
        let root = if divisor != 1.0 { op(name, root.f_div_scalar(divisor))? } else { root };
        // 16-mixed: Lightning's `pre_backward`, `scaler.scale(loss)`.
        let root = match self.scaler.as_mut() {
            Some(s) => s.scale(&root)?,
            None => root,
        };
        if let Some(r) = self.manual_ddp.as_ref().filter(|_| !self.automatic) {
            r.prepare_manual_backward(loss).map_err(|e| OpError::new(name, format!("{e:#}")))?;
        }
        // A toggled optimizer's backward leaves the other parameters' gradients as they were
        // (Lightning's toggle_optimizer turns their requires_grad off): copies, as the backward
        // adds into an existing `.grad` in place.
        let mut others: Vec<(usize, Option<Tensor>)> = Vec::new();
        if self.toggled.is_some() {
            for i in (0..self.params.len()).filter(|i| !targets.contains(i)) {
                let kept = self.grad(i).map(|g| op(name, g.f_detach_copy())).transpose()?;
                others.push((i, kept));
            }
        }
        // torch's `loss.backward()`: every gradient accumulates in its parameter's `.grad`, where
        // the file's hooks read it (`on_after_backward`, `grad_norm` in `on_before_optimizer_step`)
        // and DDP's Reducer hooks average it; frozen parameters get none.
        crate::engine::torch_ext::backward(&root, None, false, false)?;
        for (i, g) in &others {
            crate::engine::torch_ext::set_grad(&self.params[*i], g.as_ref())?;
        }
        Ok(())
    }

    /// Parameter `p`'s gradient (None before a backward, after `zero_grad`, or frozen).
    fn grad(&self, p: usize) -> Option<Tensor> {
        let g = self.params[p].grad();
        g.defined().then_some(g)
    }

    /// The optimizers the plugin runs, by index.
    pub fn plugin_optimizers(&self) -> Vec<usize> {
        (0..self.optimizers.len()).filter(|&i| self.optimizers[i].in_plugin()).collect()
    }

    /// The accumulated gradients of optimizer `i`'s parameters, for the plugin.
    pub fn checked_grads_of(&self, i: usize) -> OpResult<Vec<Tensor>> {
        self.check(i, "optimizer.grads")?;
        Ok(self.grads_of(i))
    }

    /// The accumulated gradients of optimizer `i`'s parameters (undefined where none).
    pub fn grads_of(&self, i: usize) -> Vec<Tensor> {
        self.members[i].iter().map(|&p| self.grad(p).unwrap_or_default()).collect()
    }

    /// The 2-norm of every accumulated gradient together (None before any backward).
    pub fn grad_norm(&self) -> Option<f64> {
        let mut sq = 0.0;
        let mut any = false;
        for g in (0..self.params.len()).filter_map(|p| self.grad(p)) {
            let n = g.f_norm().ok()?.f_double_value(&[]).ok()?;
            sq += n * n;
            any = true;
        }
        any.then(|| sq.sqrt())
    }

    /// One step of optimizer `i`; one the plugin runs has just stepped itself, and is only
    /// counted here.
    pub fn step(&mut self, i: usize) -> OpResult<()> {
        self.check(i, "optimizer.step")?;
        self.progress.step.increment_ready();
        self.progress.step.increment_started();
        let allowed = self.scaler_allows_step(i)?;
        if allowed && !self.optimizers[i].in_plugin() {
            let grads = self.grads_of(i);
            self.optimizers[i].step(&grads)?;
        }
        // `scaler.update()` after `scaler.step(optimizer)`, once gradients were checked.
        if let Some(s) = self.scaler.as_mut() {
            if s.unscaled(i) {
                s.update()?;
            }
        }
        self.progress.step.increment_processed();
        self.progress.step.increment_completed();
        Ok(())
    }

    /// 16-mixed: `scaler.unscale_(optimizer i)` (once per step; Lightning's MixedPrecision
    /// does it before `on_before_optimizer_step` and clipping). Nothing without a scaler.
    pub fn unscale(&mut self, i: usize) -> OpResult<()> {
        self.check(i, "scaler.unscale_")?;
        if self.scaler.as_ref().is_none_or(|s| s.unscaled(i)) {
            return Ok(());
        }
        // In place: the parameters' `.grad` are unscaled.
        let mut grads: Vec<Tensor> = self.members[i].iter().filter_map(|&p| self.grad(p)).collect();
        let Some(scaler) = self.scaler.as_mut() else { return Ok(()) };
        scaler.unscale(i, &mut grads)
    }

    /// Whether optimizer `i`'s step runs: always without a scaler; with one (`scaler.step`),
    /// not when its unscaled gradients hold an inf or a NaN; torch's error when none of its
    /// parameters has a gradient.
    pub fn scaler_allows_step(&mut self, i: usize) -> OpResult<bool> {
        if self.scaler.is_none() {
            return Ok(true);
        }
        self.unscale(i)?;
        let Some(scaler) = self.scaler.as_ref() else { return Ok(true) };
        match scaler.allows_step(i)? {
            Some(allowed) => Ok(allowed),
            None => Err(OpError::new("scaler.step", "No inf checks were recorded for this optimizer.")),
        }
    }

    /// An optimizer step counted but not taken: 16-mixed in automatic optimization when the
    /// stepping batch's training_step returned None (Lightning's MixedPrecision skips
    /// `scaler.step` and `scaler.update` there; the LightningOptimizer still counts the step).
    pub fn count_step(&mut self, i: usize) -> OpResult<()> {
        self.check(i, "optimizer.step")?;
        self.progress.step.increment_ready();
        self.progress.step.increment_started();
        self.progress.step.increment_processed();
        self.progress.step.increment_completed();
        Ok(())
    }

    pub fn zero_grad(&mut self, i: usize) -> OpResult<()> {
        self.check(i, "optimizer.zero_grad")?;
        self.progress.zero_grad.increment_ready();
        self.progress.zero_grad.increment_started();
        for &p in &self.members[i] {
            crate::engine::torch_ext::set_grad(&self.params[p], None)?;
        }
        self.progress.zero_grad.increment_processed();
        self.progress.zero_grad.increment_completed();
        Ok(())
    }

    /// Every parameter's gradient gone (Lightning's `zero_grad(set_to_none=True)` as a stage
    /// starts), without counting a `zero_grad` call.
    pub fn clear_grads(&mut self) {
        for p in &self.params {
            // Clearing a leaf's grad slot cannot fail.
            let _ = crate::engine::torch_ext::set_grad(p, None);
        }
    }

    pub fn toggle(&mut self, i: usize) -> OpResult<()> {
        self.check(i, "optimizer.toggle")?;
        self.toggled = Some(i);
        Ok(())
    }

    pub fn untoggle(&mut self, i: usize) -> OpResult<()> {
        self.check(i, "optimizer.untoggle")?;
        if self.toggled == Some(i) {
            self.toggled = None;
        }
        Ok(())
    }

    /// Clips optimizer `i`'s accumulated gradients by 2-norm or by value (torch.nn.utils).
    /// Gradients are copied first (a file may hold a gradient it read), then put back.
    pub fn clip(&mut self, i: usize, value: f64, by_norm: bool) -> OpResult<()> {
        let mut idx = Vec::new();
        let mut grads = Vec::new();
        for &p in &self.members[i] {
            if let Some(g) = self.grad(p) {
                idx.push(p);
                grads.push(op("gradient_clip", g.f_to_dtype(g.kind(), false, true))?);
            }
        }
        if by_norm {
            clip::clip_grad_norm(&grads, value)?;
        } else {
            clip::clip_grad_value(&grads, value)?;
        }
        for (p, g) in idx.into_iter().zip(grads) {
            crate::engine::torch_ext::set_grad(&self.params[p], Some(&g))?;
        }
        Ok(())
    }

    pub fn lr(&self, i: usize, group: usize) -> OpResult<f64> {
        self.check(i, "optimizer.lr")?;
        Ok(self.optimizers[i].lr(group))
    }

    fn group(&self, i: usize, group: usize, name: &str) -> OpResult<()> {
        self.check(i, name)?;
        let n = self.optimizers[i].num_groups();
        if group >= n {
            return Err(OpError::new(name, format!("optimizer {i} has {n} parameter groups, not {}", group + 1)));
        }
        Ok(())
    }

    /// Sets a group's learning rate (a scheduler the plugin runs).
    pub fn set_lr(&mut self, i: usize, group: usize, lr: f64) -> OpResult<()> {
        self.group(i, group, "optimizer.set_lr")?;
        if !lr.is_finite() || lr < 0.0 {
            return Err(OpError::new("optimizer.set_lr", format!("invalid learning rate {lr}")));
        }
        self.optimizers[i].set_lr(group, lr);
        Ok(())
    }

    pub fn momentum(&self, i: usize, group: usize) -> OpResult<Option<f64>> {
        self.group(i, group, "optimizer.momentum")?;
        Ok(self.optimizers[i].momentum(group))
    }

    pub fn set_momentum(&mut self, i: usize, group: usize, m: f64) -> OpResult<()> {
        let name = "optimizer.set_momentum";
        self.group(i, group, name)?;
        if !m.is_finite() {
            return Err(OpError::new(name, format!("invalid momentum {m}")));
        }
        if self.optimizers[i].momentum(group).is_none() {
            return Err(OpError::new(name, format!("{} has no momentum to set", self.optimizers[i].name())));
        }
        self.optimizers[i].set_momentum(group, m);
        Ok(())
    }

    /// Steps scheduler `i` now (manual optimization).
    pub fn step_scheduler(&mut self, i: usize, metric: Option<f64>) -> OpResult<()> {
        let name = "lr_scheduler.step";
        let Some(e) = self.schedulers.get_mut(i) else {
            return Err(OpError::new(
                name,
                format!("scheduler {i} does not exist ({} configured)", self.schedulers.len()),
            ));
        };
        let opt = &mut self.optimizers[e.spec.optimizer];
        e.scheduler.step(opt.as_mut(), metric)?;
        self.progress.scheduler_steps += 1;
        Ok(())
    }

    /// The schedulers the plugin runs, by index.
    pub fn plugin_schedulers(&self) -> Vec<usize> {
        (0..self.schedulers.len()).filter(|&i| self.schedulers[i].scheduler.in_plugin()).collect()
    }

    /// Whether a ReduceLROnPlateau is stepped every `interval`.
    pub fn has_plateau(&self, interval: Interval) -> bool {
        self.schedulers.iter().any(|e| e.spec.interval == interval && e.scheduler.is_plateau())
    }

    /// Steps the schedulers of `interval` whose frequency divides `index` (Lightning's
    /// `_update_learning_rates`). Plateau schedulers read their monitor from `metrics`.
    /// Returns the plugin's schedulers that are due, with their metric, for the caller to
    /// step through the module (the loops' `step_schedulers`).
    pub fn step_schedulers(
        &mut self,
        interval: Interval,
        index: u64,
        plateau: bool,
        metrics: &std::collections::BTreeMap<String, f64>,
    ) -> OpResult<Vec<(usize, Option<f64>)>> {
        let mut in_plugin = Vec::new();
        for (i, e) in self.schedulers.iter_mut().enumerate() {
            if e.spec.interval != interval || e.scheduler.is_plateau() != plateau || index % e.spec.frequency != 0 {
                continue;
            }
            let metric = match &e.spec.monitor {
                Some(m) if plateau => match metrics.get(m) {
                    Some(v) => Some(*v),
                    None if e.spec.strict => {
                        let known: Vec<&String> = metrics.keys().collect();
                        return Err(OpError::new("lr_scheduler.step", format!("ReduceLROnPlateau conditioned on metric `{m}` which is not available; available metrics are: {known:?}. Set `strict` to false to skip the step instead")));
                    }
                    None => {
                        eprintln!("warning: ReduceLROnPlateau conditioned on metric `{m}`, which is not available: skipping this step");
                        continue;
                    }
                },
                _ => None,
            };
            self.progress.scheduler_steps += 1;
            if e.scheduler.in_plugin() {
                in_plugin.push((i, metric));
                continue;
            }
            let opt = &mut self.optimizers[e.spec.optimizer];
            e.scheduler.step(opt.as_mut(), metric)?;
        }
        Ok(in_plugin)
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;
    use crate::engine::optim::{Algorithm, GroupSpec, SgdConfig};

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t).unwrap()
    }

    /// Lightning's toggle_optimizer: a backward while optimizer 0 is toggled adds to its
    /// parameters' gradients only; optimizer 1's stay as the backward before left them (the
    /// backward adds into an existing `.grad` in place, so they are kept as copies).
    #[test]
    fn a_toggled_backward_leaves_the_other_optimizers_gradients_as_they_were() {
        let mut ps = ParamStore::default();
        let a = ps.add_parameter("a", Tensor::from_slice(&[1.0f32, 2.0])).unwrap();
        let b = ps.add_parameter("b", Tensor::from_slice(&[3.0f32, 4.0])).unwrap();
        let sgd = |path: &str| OptimizerConfig {
            algorithm: Algorithm::Sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.0,
                dampening: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            }),
            groups: vec![GroupSpec { params: vec![path.into()], lr: None, weight_decay: None }],
        };
        let mut set = OptimizerSet::new(&[sgd("a"), sgd("b")], &[], false, &ps).unwrap();
        let loss = || (&a * &b).sum(Kind::Float);
        set.backward(&loss(), 1.0).unwrap();
        assert_eq!(values(&b.grad()), [1.0, 2.0]);
        set.toggle(0).unwrap();
        set.backward(&loss(), 1.0).unwrap();
        assert_eq!(values(&a.grad()), [6.0, 8.0]);
        assert_eq!(values(&b.grad()), [1.0, 2.0]);
        // What the optimizers step on is what the parameters hold.
        assert_eq!(values(&set.grads_of(1)[0]), [1.0, 2.0]);
        set.zero_grad(0).unwrap();
        assert!(!a.grad().defined() && b.grad().defined());
    }
}
