//! Optimizers with torch.optim's defaults; the host runs them.

use crate::bindings::exports::lt::plugin::lightning_module::{Adam, Optimizer as WitOptimizer, Sgd};

#[derive(Debug, Clone)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
    AdamW(Adam),
}

impl Optimizer {
    /// torch.optim.SGD(lr) with no momentum.
    pub fn sgd(lr: f64) -> Self {
        Optimizer::Sgd(Sgd { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false })
    }
    /// torch.optim.Adam(lr): betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam(lr: f64) -> Self {
        Optimizer::Adam(Adam { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false })
    }
    /// torch.optim.AdamW(lr): as Adam, with weight decay 0.01 (decoupled).
    pub fn adamw(lr: f64) -> Self {
        Optimizer::AdamW(Adam { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.01, amsgrad: false })
    }
    pub fn momentum(mut self, momentum: f64, nesterov: bool) -> Self {
        if let Optimizer::Sgd(s) = &mut self {
            s.momentum = momentum;
            s.nesterov = nesterov;
        }
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> Self {
        match &mut self {
            Optimizer::Sgd(s) => s.weight_decay = wd,
            Optimizer::Adam(a) | Optimizer::AdamW(a) => a.weight_decay = wd,
        }
        self
    }

    pub(crate) fn into_wit(self) -> WitOptimizer {
        match self {
            Optimizer::Sgd(s) => WitOptimizer::Sgd(s),
            Optimizer::Adam(a) => WitOptimizer::Adam(a),
            Optimizer::AdamW(a) => WitOptimizer::Adamw(a),
        }
    }
}
