//! The errors lthost reports: an op that could not run ([`OpError`], the engine's one error
//! type: a libtorch call, an optimizer or scheduler step, a state restored) and a plugin hook
//! that failed ([`PluginError`]), which names the plugin, the hook and the op.

use std::fmt;

/// A tensor operation that could not run: the op's name and why (shapes, dtypes).
#[derive(Debug, Clone, thiserror::Error)]
#[error("op `{op}`: {detail}")]
pub struct OpError {
    pub op: String,
    pub detail: String,
}

pub type OpResult<T> = Result<T, OpError>;

/// The plugin ended its hook with an error of its own (an uncaught exception), through
/// `trainer.fail`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct GuestFailure(pub String);

impl OpError {
    pub fn new(op: impl Into<String>, detail: impl Into<String>) -> Self {
        OpError { op: op.into(), detail: detail.into() }
    }

    /// The error as a plugin receives it in a value (`aten`'s `result<_, string>`): `op: detail`,
    /// which the SDKs split to raise torch's exception with torch's text.
    /// An error of no op (a call the guest made wrong) is its detail alone.
    pub fn message(&self) -> String {
        if self.op.is_empty() {
            return self.detail.clone();
        }
        format!("{}: {}", self.op, self.detail)
    }

    /// Wraps a libtorch error, keeping its message and dropping the C++ stack dump.
    pub fn torch(op: impl Into<String>, err: tch::TchError) -> Self {
        OpError::new(op, torch_message(&err))
    }
}

/// The useful part of a libtorch error: the text before "Exception raised from".
pub fn torch_message(err: &tch::TchError) -> String {
    let text = match err {
        tch::TchError::Torch(s) => s.clone(),
        other => other.to_string(),
    };
    without_cpp_stack(&text).replace('\n', " ")
}

/// A libtorch message without the C++ stack it ends with ("Exception raised from …").
pub fn without_cpp_stack(text: &str) -> String {
    let cut = text.find("Exception raised from").unwrap_or(text.len());
    text[..cut].trim().to_string()
}

/// Formats shapes for error messages: `[4, 3]`.
pub fn shape_of(t: &tch::Tensor) -> String {
    format!("{:?}", t.size())
}

/// A failure inside a plugin hook: a trap, a failed op, a limit hit, bad output.
#[derive(Debug, Clone)]
pub struct PluginError {
    pub plugin: String,
    pub hook: String,
    pub op: Option<String>,
    pub detail: String,
    /// The guest's wasm backtrace, when there is one (innermost frame first).
    pub backtrace: Option<String>,
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin `{}` failed in hook `{}`", self.plugin, self.hook)?;
        if let Some(op) = &self.op {
            write!(f, " at op `{op}`")?;
        }
        write!(f, ": {}", self.detail)?;
        if let Some(bt) = &self.backtrace {
            write!(f, "\nwasm backtrace:\n{bt}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}
