//! torch.optim optimizers with torch's exact single-tensor update rules (the CPU default),
//! run in the host under `no_grad`, with parameter groups. Parameters whose gradient is
//! `None` (not reached by the loss) are skipped, as torch does after
//! `zero_grad(set_to_none=True)`.
//!
//! Each algorithm is an [`UpdateRule`] (one parameter's update); [`Grouped`] applies a rule
//! over parameter groups and exposes the group hyper-parameters schedulers change.

pub mod adagrad;
pub mod adam;
pub mod in_plugin;
pub mod optimizer_set;
pub mod rmsprop;
pub mod sgd;

use tch::Tensor;

use crate::engine::params::ParamStore;
use crate::error::{OpError, OpResult};
pub use adagrad::AdagradConfig;
pub use adam::AdamConfig;
pub use in_plugin::{InPlugin, PluginOptimizerConfig};
pub use optimizer_set::{Interval, OptimizationProgress, OptimizerSet, SchedulerSpec};
pub use rmsprop::RmspropConfig;
pub use sgd::SgdConfig;

/// One algorithm's update of one parameter.
pub trait UpdateRule {
    type Hyper: Clone + std::fmt::Debug + Send;
    type State: Send;
    fn update(h: &Self::Hyper, param: &Tensor, grad: &Tensor, state: &mut Option<Self::State>) -> OpResult<()>;
    fn lr(h: &Self::Hyper) -> f64;
    fn set_lr(h: &mut Self::Hyper, lr: f64);
    fn set_weight_decay(h: &mut Self::Hyper, wd: f64);
    /// The momentum a scheduler may cycle (SGD/RMSprop momentum, Adam's beta1).
    fn momentum(_h: &Self::Hyper) -> Option<f64> {
        None
    }
    fn set_momentum(_h: &mut Self::Hyper, _m: f64) {}
    /// A parameter's state as (step count, named tensors), for checkpoints.
    fn save(state: &Self::State) -> (f64, Vec<(&'static str, Tensor)>);
    /// The state back from [`UpdateRule::save`]'s output; None if a tensor is missing.
    fn load(step: f64, get: &dyn Fn(&str) -> Option<Tensor>) -> Option<Self::State>;
}

/// Which parameters form a group, and what it overrides (torch's param-group dict).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSpec {
    /// Parameter paths or path prefixes (`encoder` takes `encoder.0.weight`).
    pub params: Vec<String>,
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
}

/// What `configure_optimizers` asks for: an algorithm, its defaults, and the groups (none:
/// every parameter in one group).
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    Sgd(SgdConfig),
    Adam(AdamConfig),
    AdamW(AdamConfig),
    Rmsprop(RmspropConfig),
    Adagrad(AdagradConfig),
    /// One the plugin runs (a `torch.optim.Optimizer` subclass with its own `step`).
    Plugin(PluginOptimizerConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerConfig {
    pub algorithm: Algorithm,
    pub groups: Vec<GroupSpec>,
}

impl From<Algorithm> for OptimizerConfig {
    fn from(algorithm: Algorithm) -> Self {
        OptimizerConfig { algorithm, groups: Vec::new() }
    }
}

pub trait Optimizer: Send {
    /// The class name Lightning users know.
    fn name(&self) -> &str;
    /// Whether the plugin runs it: the loops step it, and checkpoints hold its state, through
    /// the module ([`crate::module::Module::plugin_optimizer`]).
    fn in_plugin(&self) -> bool {
        false
    }
    /// The state a plugin-run optimizer reported (others ignore it).
    fn keep_state(&mut self, _tensors: Vec<(String, Tensor)>, _rest: String) {}
    /// A plugin-run optimizer's kept state (tensors by name, the rest as JSON text).
    fn plugin_state(&self) -> Option<(Vec<(String, Tensor)>, String)> {
        None
    }
    /// Every parameter this optimizer updates, group by group (the order of `step`'s grads).
    fn params(&self) -> Vec<Tensor>;
    /// One update; `grads[i]` belongs to `params()[i]`, an undefined gradient skips it.
    fn step(&mut self, grads: &[Tensor]) -> OpResult<()>;
    fn num_groups(&self) -> usize;
    fn lr(&self, group: usize) -> f64;
    fn set_lr(&mut self, group: usize, lr: f64);
    fn momentum(&self, group: usize) -> Option<f64>;
    fn set_momentum(&mut self, group: usize, m: f64);
    /// Per-parameter state tensors (`{group}.{index}.{name}`) and JSON metadata (group
    /// learning rates and momenta, step counts), torch's `optimizer.state_dict()`.
    fn state_dict(&self) -> (Vec<(String, Tensor)>, serde_json::Value);
    fn load_state_dict(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> OpResult<()>;
}

struct Group<R: UpdateRule> {
    params: Vec<Tensor>,
    hyper: R::Hyper,
    state: Vec<Option<R::State>>,
}

pub struct Grouped<R: UpdateRule> {
    name: &'static str,
    groups: Vec<Group<R>>,
}

impl<R: UpdateRule> Grouped<R> {
    pub fn new(name: &'static str, defaults: R::Hyper, groups: Vec<(Vec<Tensor>, GroupSpec)>) -> Self {
        let groups = groups
            .into_iter()
            .map(|(params, spec)| {
                let mut hyper = defaults.clone();
                if let Some(lr) = spec.lr {
                    R::set_lr(&mut hyper, lr);
                }
                if let Some(wd) = spec.weight_decay {
                    R::set_weight_decay(&mut hyper, wd);
                }
                let state = params.iter().map(|_| None).collect();
                Group { params, hyper, state }
            })
            .collect();
        Grouped { name, groups }
    }
}

impl<R: UpdateRule> Optimizer for Grouped<R> {
    fn name(&self) -> &str {
        self.name
    }

    fn params(&self) -> Vec<Tensor> {
        self.groups.iter().flat_map(|g| g.params.iter().map(Tensor::shallow_clone)).collect()
    }

    fn step(&mut self, grads: &[Tensor]) -> OpResult<()> {
        let total: usize = self.groups.iter().map(|g| g.params.len()).sum();
        if grads.len() != total {
            return Err(OpError::new("optimizer.step", format!("{} gradients for {total} parameters", grads.len())));
        }
        let mut i = 0;
        tch::no_grad(|| {
            for g in &mut self.groups {
                for (p, st) in g.params.iter().zip(g.state.iter_mut()) {
                    let grad = &grads[i];
                    i += 1;
                    if grad.defined() {
                        R::update(&g.hyper, p, grad, st)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn num_groups(&self) -> usize {
        self.groups.len()
    }
    fn lr(&self, group: usize) -> f64 {
        self.groups.get(group).map(|g| R::lr(&g.hyper)).unwrap_or(0.0)
    }
    fn set_lr(&mut self, group: usize, lr: f64) {
        if let Some(g) = self.groups.get_mut(group) {
            R::set_lr(&mut g.hyper, lr);
        }
    }
    fn momentum(&self, group: usize) -> Option<f64> {
        self.groups.get(group).and_then(|g| R::momentum(&g.hyper))
    }
    fn set_momentum(&mut self, group: usize, m: f64) {
        if let Some(g) = self.groups.get_mut(group) {
            R::set_momentum(&mut g.hyper, m);
        }
    }

    fn state_dict(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let mut tensors = Vec::new();
        let mut steps = serde_json::Map::new();
        let mut groups = Vec::new();
        for (gi, g) in self.groups.iter().enumerate() {
            groups.push(serde_json::json!({"lr": R::lr(&g.hyper), "momentum": R::momentum(&g.hyper)}));
            for (pi, st) in g.state.iter().enumerate() {
                if let Some(st) = st {
                    let (step, named) = R::save(st);
                    steps.insert(format!("{gi}.{pi}"), serde_json::json!(step));
                    tensors.extend(named.into_iter().map(|(n, t)| (format!("{gi}.{pi}.{n}"), t)));
                }
            }
        }
        (tensors, serde_json::json!({"name": self.name, "groups": groups, "steps": steps}))
    }

    fn load_state_dict(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> OpResult<()> {
        let groups = saved_groups(meta, self.name, self.groups.len())?;
        for (gi, (g, saved)) in self.groups.iter_mut().zip(groups).enumerate() {
            if let Some(lr) = saved["lr"].as_f64() {
                R::set_lr(&mut g.hyper, lr);
            }
            if let Some(m) = saved["momentum"].as_f64() {
                R::set_momentum(&mut g.hyper, m);
            }
            for (pi, (p, st)) in g.params.iter().zip(g.state.iter_mut()).enumerate() {
                let key = format!("{gi}.{pi}");
                let Some(step) = meta["steps"][&key].as_f64() else {
                    *st = None;
                    continue;
                };
                // torch's `_process_value_according_to_param_policy`: floating state in the
                // parameter's dtype and on its device (a checkpoint of another precision).
                let get = |n: &str| {
                    let t = tensors.get(&format!("{key}.{n}"))?;
                    if t.is_floating_point() && (t.kind() != p.kind() || t.device() != p.device()) {
                        t.f_to_device(p.device()).and_then(|t| t.f_to_kind(p.kind())).ok()
                    } else {
                        Some(t.shallow_clone())
                    }
                };
                let loaded = R::load(step, &get).ok_or_else(|| {
                    OpError::new("optimizer.load_state_dict", format!("optimizer state `{key}` is incomplete"))
                })?;
                for (n, t) in R::save(&loaded).1 {
                    if t.size() != p.size() {
                        return Err(OpError::new(
                            "optimizer.load_state_dict",
                            format!(
                                "optimizer state `{key}.{n}` has shape {:?}, the parameter {:?}",
                                t.size(),
                                p.size()
                            ),
                        ));
                    }
                }
                *st = Some(loaded);
            }
        }
        Ok(())
    }
}

/// The per-group metadata of a checkpointed optimizer, checked against this run's: the same
/// class and as many groups.
pub(crate) fn saved_groups<'m>(
    meta: &'m serde_json::Value,
    name: &str,
    groups: usize,
) -> OpResult<&'m Vec<serde_json::Value>> {
    if meta["name"].as_str() != Some(name) {
        return Err(OpError::new(
            "optimizer.load_state_dict",
            format!("the checkpoint holds {} state, this run uses {name}", meta["name"]),
        ));
    }
    let saved = meta["groups"]
        .as_array()
        .ok_or_else(|| OpError::new("optimizer.load_state_dict", "optimizer metadata without groups"))?;
    if saved.len() != groups {
        return Err(OpError::new(
            "optimizer.load_state_dict",
            format!("the checkpoint's optimizer has {} parameter groups, this run's {groups}", saved.len()),
        ));
    }
    Ok(saved)
}

/// Resolves group specs against the state dict: every named parameter must exist and sit in
/// one group only (torch refuses duplicates). No groups: all trainable parameters.
pub fn resolve_groups(ps: &ParamStore, specs: &[GroupSpec]) -> OpResult<Vec<(Vec<Tensor>, GroupSpec)>> {
    let names: Vec<(String, Tensor)> = ps.named_parameters().into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    if specs.is_empty() {
        return Ok(vec![(names.into_iter().map(|(_, t)| t).collect(), GroupSpec::default())]);
    }
    let mut taken: Vec<Option<usize>> = vec![None; names.len()];
    let mut out = Vec::with_capacity(specs.len());
    for (gi, spec) in specs.iter().enumerate() {
        let mut params = Vec::new();
        for pat in &spec.params {
            let mut hit = false;
            for (i, (name, t)) in names.iter().enumerate() {
                if name == pat || name.starts_with(&format!("{pat}.")) {
                    hit = true;
                    if let Some(other) = taken[i] {
                        return Err(OpError::new(
                            "configure_optimizers",
                            format!("parameter `{name}` appears in groups {other} and {gi}"),
                        ));
                    }
                    taken[i] = Some(gi);
                    params.push(t.shallow_clone());
                }
            }
            if !hit {
                return Err(OpError::new(
                    "configure_optimizers",
                    format!("group {gi}: no parameter is named or prefixed `{pat}`"),
                ));
            }
        }
        out.push((params, spec.clone()));
    }
    Ok(out)
}

impl OptimizerConfig {
    pub fn build(&self, ps: &ParamStore) -> OpResult<Box<dyn Optimizer>> {
        let groups = resolve_groups(ps, &self.groups)?;
        Ok(match &self.algorithm {
            Algorithm::Sgd(c) => Box::new(Grouped::<sgd::Sgd>::new("SGD", c.clone(), groups)),
            Algorithm::Adam(c) => {
                Box::new(Grouped::<adam::Adam>::new("Adam", adam::Hyper { cfg: c.clone(), decoupled: false }, groups))
            }
            Algorithm::AdamW(c) => {
                Box::new(Grouped::<adam::Adam>::new("AdamW", adam::Hyper { cfg: c.clone(), decoupled: true }, groups))
            }
            Algorithm::Rmsprop(c) => Box::new(Grouped::<rmsprop::Rmsprop>::new("RMSprop", c.clone(), groups)),
            Algorithm::Adagrad(c) => Box::new(Grouped::<adagrad::Adagrad>::new("Adagrad", c.clone(), groups)),
            Algorithm::Plugin(c) => Box::new(InPlugin::new(c.clone(), groups)),
        })
    }

    /// Checks the settings torch.optim would refuse.
    pub fn validate(&self) -> OpResult<()> {
        let bad = |what: &str| {
            Err(OpError::new(
                "configure_optimizers",
                format!("invalid {what} in {:?} (torch.optim refuses it)", self.algorithm),
            ))
        };
        let ok_lr = |lr: f64| lr.is_finite() && lr >= 0.0;
        let nonneg = |x: f64| x.is_finite() && x >= 0.0;
        match &self.algorithm {
            Algorithm::Sgd(c) => {
                if !ok_lr(c.lr) || !nonneg(c.momentum) || !nonneg(c.weight_decay) || !nonneg(c.dampening) {
                    return bad("lr, momentum or weight decay");
                }
                if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
                    return bad("nesterov (needs momentum > 0 and dampening 0)");
                }
            }
            Algorithm::Adam(c) | Algorithm::AdamW(c) => {
                if !ok_lr(c.lr)
                    || !(0.0..1.0).contains(&c.betas.0)
                    || !(0.0..1.0).contains(&c.betas.1)
                    || !nonneg(c.eps)
                    || !nonneg(c.weight_decay)
                {
                    return bad("lr, betas, eps or weight decay");
                }
            }
            Algorithm::Rmsprop(c) => {
                if !ok_lr(c.lr) || !nonneg(c.alpha) || !nonneg(c.eps) || !nonneg(c.momentum) || !nonneg(c.weight_decay)
                {
                    return bad("lr, alpha, eps, momentum or weight decay");
                }
            }
            Algorithm::Adagrad(c) => {
                if !ok_lr(c.lr)
                    || !nonneg(c.lr_decay)
                    || !nonneg(c.eps)
                    || !nonneg(c.weight_decay)
                    || !nonneg(c.initial_accumulator_value)
                {
                    return bad("lr, lr decay, eps, weight decay or initial accumulator");
                }
            }
            Algorithm::Plugin(c) => {
                if !ok_lr(c.lr) {
                    return bad("lr");
                }
            }
        }
        for g in &self.groups {
            if g.params.is_empty() {
                return Err(OpError::new("configure_optimizers", "a parameter group names no parameters"));
            }
            if g.lr.is_some_and(|lr| !ok_lr(lr)) || g.weight_decay.is_some_and(|w| !nonneg(w)) {
                return bad("group lr or weight decay");
            }
        }
        Ok(())
    }
}

/// Shared helper: a libtorch result as an optimizer error.
pub(crate) fn t(name: &str, r: Result<Tensor, tch::TchError>) -> OpResult<Tensor> {
    r.map_err(|e| OpError::torch(format!("optimizer.step({name})"), e))
}

/// torch's `a.add(b, alpha=alpha)` (fused, rounded once), as torch.optim's updates use it.
pub(crate) fn add_alpha(name: &str, a: &Tensor, b: &Tensor, alpha: f64) -> OpResult<Tensor> {
    crate::engine::torch_ext::add_alpha(a, b, alpha)
        .map_err(|e| OpError::new(format!("optimizer.step({name})"), e.detail))
}

/// torch's `t.mul_(s)` with a Python number (see [`crate::engine::torch_ext::mul_number_`]).
pub(crate) fn mul_(name: &str, t: &Tensor, s: f64) -> OpResult<()> {
    crate::engine::torch_ext::mul_number_(t, s).map_err(|e| OpError::new(format!("optimizer.step({name})"), e.detail))
}

/// torch's `s.addcmul_(t1, t2, value=value)`, in place.
pub(crate) fn addcmul_(name: &str, s: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> OpResult<()> {
    addc(name, s, t1, t2, value, false, true).map(drop)
}

/// torch's `s.addcdiv_(t1, t2, value=value)`, in place.
pub(crate) fn addcdiv_(name: &str, s: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> OpResult<()> {
    addc(name, s, t1, t2, value, true, true).map(drop)
}

/// torch's `s.addcmul(t1, t2, value=value)` (`div`: addcdiv), in place when `inplace`.
pub(crate) fn addc(
    name: &str,
    s: &Tensor,
    t1: &Tensor,
    t2: &Tensor,
    value: f64,
    div: bool,
    inplace: bool,
) -> OpResult<Tensor> {
    crate::engine::torch_ext::addc(s, t1, t2, value, div, inplace)
        .map_err(|e| OpError::new(format!("optimizer.step({name})"), e.detail))
}

/// torch's in-place `a.add_(b, alpha=alpha)` (a parameter or a state buffer keeps its
/// storage).
pub(crate) fn add_alpha_(name: &str, a: &Tensor, b: &Tensor, alpha: f64) -> OpResult<()> {
    crate::engine::torch_ext::add_alpha_(a, b, alpha)
        .map_err(|e| OpError::new(format!("optimizer.step({name})"), e.detail))
}
