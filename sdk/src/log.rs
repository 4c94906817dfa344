//! `self.log` for plugins. Values stay tensors in the host.

use crate::bindings::lt::plugin::log::{self as raw, LogOptions, ReduceFx};
use crate::Tensor;

pub use raw::{LogOptions as Options, ReduceFx as Reduce};

/// Lightning's defaults: to the logger, not the progress bar, on_step/on_epoch by hook.
pub fn options() -> LogOptions {
    LogOptions {
        prog_bar: false,
        logger: true,
        on_step: None,
        on_epoch: None,
        reduce_fx: ReduceFx::Mean,
        batch_size: None,
        add_dataloader_idx: true,
    }
}

/// `self.log(name, value)`.
pub fn log(name: &str, value: &Tensor) {
    raw::log(name, value, options());
}

/// `self.log(name, value, prog_bar=True)`.
pub fn log_prog_bar(name: &str, value: &Tensor) {
    raw::log(name, value, LogOptions { prog_bar: true, ..options() });
}

/// `self.log(name, value, **options)`.
pub fn log_with(name: &str, value: &Tensor, opts: LogOptions) {
    raw::log(name, value, opts);
}

/// `self.log(name, float)`.
pub fn log_scalar(name: &str, value: f64, opts: LogOptions) {
    raw::log_scalar(name, value, opts);
}
