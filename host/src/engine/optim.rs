//! torch.optim optimizers with torch's exact single-tensor update rules (the CPU default),
//! run in the host under `no_grad`. Parameters whose gradient is `None` (not reached by the
//! loss) are skipped, as torch does after `zero_grad(set_to_none=True)`.

pub mod adam;
pub mod sgd;

use tch::Tensor;

use crate::error::OpResult;
pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

/// What `configure_optimizers` returns.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    Sgd(SgdConfig),
    Adam(AdamConfig),
    AdamW(AdamConfig),
}

impl OptimizerConfig {
    pub fn build(&self, num_params: usize) -> Box<dyn Optimizer> {
        match self {
            OptimizerConfig::Sgd(c) => Box::new(Sgd::new(c.clone(), num_params)),
            OptimizerConfig::Adam(c) => Box::new(Adam::new(c.clone(), false, num_params)),
            OptimizerConfig::AdamW(c) => Box::new(Adam::new(c.clone(), true, num_params)),
        }
    }

    /// The class name Lightning users know (`Adam`, `AdamW`, `SGD`).
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "SGD",
            OptimizerConfig::Adam(_) => "Adam",
            OptimizerConfig::AdamW(_) => "AdamW",
        }
    }

    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => c.lr,
        }
    }
}

pub trait Optimizer {
    /// One update. `grads[i]` belongs to `params[i]`; an undefined gradient skips it.
    fn step(&mut self, params: &[Tensor], grads: &[Tensor]) -> OpResult<()>;
}
