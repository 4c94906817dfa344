//! Dataset files a plugin reads from its granted data directory (`tensor.load`,
//! `tensor.load-csv`): safetensors (through tch), `.npy` and `.npz` (NumPy; `.npz` stored or
//! deflated), IDX (the MNIST format, optionally gzipped) and CSV with a schema. Every
//! format is validated before a tensor is made; a malformed file is refused with an error
//! naming the file and the byte offset (or line and column) that is wrong.

pub mod csv;
pub mod idx;
pub mod npy;
pub mod npz;

use tch::Kind;

/// A parse failure: the position and what is wrong there.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Parsed<T> = Result<T, FormatError>;

pub fn err<T>(msg: impl Into<String>) -> Parsed<T> {
    Err(FormatError(msg.into()))
}

/// Elements of `shape`, refusing overflow and anything over `max`.
pub fn numel(shape: &[i64], max: i64) -> Parsed<i64> {
    let mut n: i64 = 1;
    for &d in shape {
        if d < 0 {
            return err(format!("negative dimension in shape {shape:?}"));
        }
        n = n
            .checked_mul(d)
            .filter(|&n| n <= max)
            .ok_or_else(|| FormatError(format!("shape {shape:?} has more than {max} elements")))?;
    }
    Ok(n)
}

pub fn elt_size(k: Kind) -> usize {
    k.elt_size_in_bytes()
}
