//! Samplers: which rows a pass over a dataset visits, in what order — torch.utils.data's,
//! drawing from the run's generator exactly as torch does, so that a shuffled run sees
//! Lightning's order and the random stream after it stays Lightning's too.
//!
//! - Sequential: 0..n.
//! - Random (`shuffle = true`): RandomSampler — a seed drawn from the run's generator
//!   (`torch.empty((), dtype=torch.int64).random_()`), then `randperm(n)` with a generator
//!   seeded with it.
//! - Weighted: WeightedRandomSampler — `multinomial(weights, num_samples, replacement)` on
//!   the run's generator.
//! - Plugin: the DataModule's own sampler, asked for each pass's batches of indices.
//! - Distributed: DistributedSampler — `randperm(n)` seeded `seed + epoch` (or 0..n),
//!   padded by repeating the start (or cut, `drop_last`) to a multiple of `num_replicas`,
//!   then every `num_replicas`-th index from `rank`.
//!
//! Every pass also draws the DataLoader iterator's base seed first, as torch does when a
//! DataLoader is iterated (a seed for workers, drawn even without workers).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::engine::torch_ext;

#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    Sequential,
    Random,
    Weighted {
        weights: Vec<f64>,
        num_samples: i64,
        replacement: bool,
    },
    Distributed {
        num_replicas: i64,
        rank: i64,
        shuffle: bool,
        seed: i64,
        drop_last: bool,
    },
    /// The DataModule's own (a Sampler or batch_sampler of a Lightning file): it gives each
    /// pass's `batches` batches of indices itself ([`crate::data::items`]).
    Plugin {
        batches: u64,
    },
}

impl Sampler {
    pub fn validate(&self, n: i64) -> Result<()> {
        match self {
            Sampler::Weighted { weights, num_samples, replacement } => {
                if weights.len() as i64 != n {
                    bail!("WeightedRandomSampler: {} weights for {n} rows", weights.len());
                }
                if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || !weights.iter().any(|w| *w > 0.0) {
                    bail!("WeightedRandomSampler: weights must be finite, non-negative and not all zero");
                }
                if *num_samples <= 0 {
                    bail!("WeightedRandomSampler: num_samples must be positive");
                }
                if !replacement && *num_samples > weights.iter().filter(|w| **w > 0.0).count() as i64 {
                    bail!(
                        "WeightedRandomSampler: {num_samples} samples without replacement from {} non-zero weights",
                        weights.iter().filter(|w| **w > 0.0).count()
                    );
                }
            }
            Sampler::Distributed { num_replicas, rank, .. } => {
                if *num_replicas < 1 || *rank < 0 || rank >= num_replicas {
                    bail!("DistributedSampler: rank {rank} of num_replicas {num_replicas} (need 0 <= rank < num_replicas)");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Samples per pass.
    pub fn len(&self, n: i64) -> i64 {
        match self {
            Sampler::Sequential | Sampler::Random | Sampler::Plugin { .. } => n,
            Sampler::Weighted { num_samples, .. } => *num_samples,
            Sampler::Distributed { num_replicas, drop_last, .. } => {
                if *drop_last && n % num_replicas != 0 {
                    (n - num_replicas) / num_replicas + 1
                } else {
                    (n + num_replicas - 1) / num_replicas
                }
            }
        }
    }

    pub fn is_random(&self) -> bool {
        !matches!(self, Sampler::Sequential | Sampler::Distributed { shuffle: false, .. })
    }

    /// One pass: the DataLoader iterator's base seed (drawn first, as torch does) and the
    /// pass's indices (None: 0..n in order).
    pub fn pass(&self, n: i64, epoch: u64) -> Result<(i64, Option<Tensor>)> {
        let base = torch_ext::draw_seed()?;
        Ok((base, self.order(n, epoch)?))
    }

    /// One pass's indices without the base-seed draw (a DataLoader whose persistent
    /// workers drew it on their first pass).
    pub fn order(&self, n: i64, epoch: u64) -> Result<Option<Tensor>> {
        Ok(match self {
            Sampler::Sequential | Sampler::Plugin { .. } => None,
            Sampler::Random => {
                let seed = torch_ext::draw_seed()?;
                Some(Tensor::f_from_slice(&torch_ext::randperm_seeded(n, seed)?)?)
            }
            Sampler::Weighted { weights, num_samples, replacement } => {
                let w = Tensor::f_from_slice(weights)?;
                Some(w.f_multinomial(*num_samples, *replacement)?.f_to_kind(Kind::Int64)?)
            }
            Sampler::Distributed { num_replicas, rank, shuffle, seed, drop_last } => {
                let mut idx: Vec<i64> =
                    if *shuffle { torch_ext::randperm_seeded(n, seed + epoch as i64)? } else { (0..n).collect() };
                let per = self.len(n);
                let total = per * num_replicas;
                if !drop_last {
                    let base = idx.clone();
                    while (idx.len() as i64) < total && !base.is_empty() {
                        let need = (total - idx.len() as i64) as usize;
                        idx.extend(base.iter().take(need));
                    }
                } else {
                    idx.truncate(total as usize);
                }
                let mine: Vec<i64> = idx.iter().skip(*rank as usize).step_by(*num_replicas as usize).copied().collect();
                Some(Tensor::f_from_slice(&mine)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributed_pads_and_strides_like_torch() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // a pass draws from the global generator
                                                                // n = 10, 4 replicas: 3 per rank; padded with 0, 1.
        let s = Sampler::Distributed { num_replicas: 4, rank: 1, shuffle: false, seed: 0, drop_last: false };
        assert_eq!(s.len(10), 3);
        let got = Vec::<i64>::try_from(s.pass(10, 0).unwrap().1.unwrap()).unwrap();
        assert_eq!(got, vec![1, 5, 9]);
        let s = Sampler::Distributed { num_replicas: 4, rank: 3, shuffle: false, seed: 0, drop_last: false };
        assert_eq!(Vec::<i64>::try_from(s.pass(10, 0).unwrap().1.unwrap()).unwrap(), vec![3, 7, 1]);
        let s = Sampler::Distributed { num_replicas: 4, rank: 3, shuffle: false, seed: 0, drop_last: true };
        assert_eq!(s.len(10), 2);
        assert_eq!(Vec::<i64>::try_from(s.pass(10, 0).unwrap().1.unwrap()).unwrap(), vec![3, 7]);
        assert!(Sampler::Distributed { num_replicas: 2, rank: 2, shuffle: false, seed: 0, drop_last: false }
            .validate(4)
            .is_err());
    }
}
