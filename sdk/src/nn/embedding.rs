//! torch.nn.Embedding.

use super::{empty, join, register_module, register_parameter};
use crate::{aten, init, Tensor};

/// torch.nn.Embedding(num, dim): `weight` drawn from N(0, 1).
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(path: &str, num_embeddings: u32, embedding_dim: u32) -> Embedding {
        let w = empty(&[i64::from(num_embeddings), i64::from(embedding_dim)]);
        init::normal_(&w, 0.0, 1.0);
        let weight = register_parameter(&join(path, "weight"), &w);
        register_module(path, "Embedding");
        Embedding { weight }
    }

    pub fn forward(&self, indices: &Tensor) -> Tensor {
        aten::embedding(&self.weight, indices, -1, false, false)
    }
}
