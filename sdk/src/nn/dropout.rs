//! torch.nn.Dropout.

use crate::{aten, Tensor};

/// torch.nn.Dropout(p): active while the trainer trains.
pub struct Dropout {
    pub p: f64,
}

impl Dropout {
    pub fn new(p: f64) -> Dropout {
        if !(0.0..=1.0).contains(&p) {
            crate::aten::raise("dropout", &format!("probability must be in [0, 1], got {p}"));
        }
        Dropout { p }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        aten::dropout(x, self.p, super::training())
    }
}
