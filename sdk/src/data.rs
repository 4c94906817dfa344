//! torch.utils.data's dataset helpers for host datasets (columns of equal length along
//! dim 0): `random_split` and `Subset`, as index selections done in the host.

use crate::Tensor;

/// How `random_split` divides the rows: counts that sum to the row count, or fractions
/// that sum to 1 (torch's rule: floor of each, the remainder one by one to the first parts).
pub enum Lengths<'a> {
    Counts(&'a [i64]),
    Fractions(&'a [f64]),
}

impl Lengths<'_> {
    /// The row count of each part, as torch.utils.data.random_split computes them.
    pub fn resolve(&self, n: i64) -> Result<Vec<i64>, String> {
        let counts = match self {
            Lengths::Counts(c) => c.to_vec(),
            Lengths::Fractions(f) => {
                let total: f64 = f.iter().sum();
                if (total - 1.0).abs() > 1e-9 || f.iter().any(|x| !(0.0..=1.0).contains(x)) {
                    return Err(format!("random_split: fractions {f:?} must each be in [0, 1] and sum to 1"));
                }
                let mut c: Vec<i64> = f.iter().map(|x| (n as f64 * x).floor() as i64).collect();
                let remainder = n - c.iter().sum::<i64>();
                let parts = c.len().max(1);
                for i in 0..remainder.max(0) as usize {
                    c[i % parts] += 1;
                }
                c
            }
        };
        if counts.iter().any(|c| *c < 0) || counts.iter().sum::<i64>() != n {
            return Err(format!("random_split: lengths {counts:?} do not sum to the {n} rows of the dataset"));
        }
        Ok(counts)
    }
}

/// torch.utils.data.Subset: the rows `indices` (an int64 tensor) of every column.
pub fn subset(columns: &[Tensor], indices: &Tensor) -> Vec<Tensor> {
    columns.iter().map(|c| c.index_select(0, indices)).collect()
}

/// torch.utils.data.random_split: the rows of `columns` in a random order, cut into parts
/// of `lengths`. `seed`: `generator=torch.Generator().manual_seed(seed)`, the same split
/// whatever the run's seed; None: the run's generator (torch's default).
pub fn random_split(columns: &[Tensor], lengths: Lengths<'_>, seed: Option<u64>) -> Result<Vec<Vec<Tensor>>, String> {
    let n = columns.first().map(|c| c.shape().first().copied().unwrap_or(0)).ok_or("random_split: no columns")?;
    let counts = lengths.resolve(n)?;
    let order = match seed {
        Some(s) => Tensor::randperm_seeded(n, s),
        None => Tensor::randperm(n),
    };
    let mut parts = Vec::with_capacity(counts.len());
    let mut start = 0;
    for c in counts {
        parts.push(subset(columns, &order.narrow(0, start, c)));
        start += c;
    }
    Ok(parts)
}
