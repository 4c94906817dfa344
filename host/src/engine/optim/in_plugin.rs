//! An optimizer the plugin runs (a `torch.optim.Optimizer` subclass with its own `step`,
//! such as Lion): the host keeps its parameters, its groups' learning rates (for the LR
//! monitor and schedulers, as the plugin sets them) and the state the plugin last reported
//! for checkpoints; the loops step it through the module.

use std::collections::HashMap;

use tch::Tensor;

use crate::engine::optim::{GroupSpec, Optimizer};
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub struct PluginOptimizerConfig {
    /// Its class name.
    pub name: String,
    pub lr: f64,
    pub momentum: Option<f64>,
}

pub struct InPlugin {
    cfg: PluginOptimizerConfig,
    groups: Vec<(Vec<Tensor>, f64, Option<f64>)>,
    /// Its latest `state_dict()`: tensors by name and the rest as JSON text.
    state: Option<(Vec<(String, Tensor)>, String)>,
}

impl InPlugin {
    pub fn new(cfg: PluginOptimizerConfig, groups: Vec<(Vec<Tensor>, GroupSpec)>) -> Self {
        let groups =
            groups.into_iter().map(|(params, spec)| (params, spec.lr.unwrap_or(cfg.lr), cfg.momentum)).collect();
        InPlugin { cfg, groups, state: None }
    }
}

impl Optimizer for InPlugin {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn in_plugin(&self) -> bool {
        true
    }

    fn params(&self) -> Vec<Tensor> {
        self.groups.iter().flat_map(|g| g.0.iter().map(Tensor::shallow_clone)).collect()
    }

    fn step(&mut self, _grads: &[Tensor]) -> OpResult<()> {
        Err(OpError::new("optimizer.step", format!("{} runs in the plugin", self.cfg.name)))
    }

    fn num_groups(&self) -> usize {
        self.groups.len()
    }

    fn lr(&self, group: usize) -> f64 {
        self.groups.get(group).map(|g| g.1).unwrap_or(0.0)
    }

    fn set_lr(&mut self, group: usize, lr: f64) {
        if let Some(g) = self.groups.get_mut(group) {
            g.1 = lr;
        }
    }

    fn momentum(&self, group: usize) -> Option<f64> {
        self.groups.get(group).and_then(|g| g.2)
    }

    fn set_momentum(&mut self, group: usize, m: f64) {
        if let Some(g) = self.groups.get_mut(group) {
            if g.2.is_some() {
                g.2 = Some(m);
            }
        }
    }

    fn keep_state(&mut self, tensors: Vec<(String, Tensor)>, rest: String) {
        self.state = Some((tensors, rest));
    }

    fn plugin_state(&self) -> Option<(Vec<(String, Tensor)>, String)> {
        self.state.as_ref().map(|(t, r)| (t.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), r.clone()))
    }

    fn state_dict(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let groups: Vec<serde_json::Value> =
            self.groups.iter().map(|g| serde_json::json!({"lr": g.1, "momentum": g.2})).collect();
        let (tensors, rest) = match &self.state {
            Some((t, r)) => (t.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), Some(r.clone())),
            None => (Vec::new(), None),
        };
        (tensors, serde_json::json!({"name": self.cfg.name, "groups": groups, "plugin_state": rest}))
    }

    fn load_state_dict(&mut self, tensors: &HashMap<String, Tensor>, meta: &serde_json::Value) -> OpResult<()> {
        let groups = crate::engine::optim::saved_groups(meta, &self.cfg.name, self.groups.len())?;
        for (g, saved) in self.groups.iter_mut().zip(groups) {
            if let Some(lr) = saved["lr"].as_f64() {
                g.1 = lr;
            }
            if g.2.is_some() {
                g.2 = saved["momentum"].as_f64().or(g.2);
            }
        }
        let rest = meta["plugin_state"].as_str().ok_or_else(|| {
            OpError::new(
                "optimizer.load_state_dict",
                format!("the checkpoint holds no state of the plugin's for its {}", self.cfg.name),
            )
        })?;
        let mut named: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        self.state = Some((named, rest.to_string()));
        Ok(())
    }
}
