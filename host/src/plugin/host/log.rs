//! `lt:plugin/log`: Lightning's `self.log`, kept as tensors (no host sync here).

use tch::Tensor;
use wasmtime::component::Resource;

use crate::context::{LogOptions, ReduceFx};
use crate::error::OpError;
use crate::plugin::bindings::log::{self, LogOptions as WitLogOptions, ReduceFx as WitReduceFx};
use crate::plugin::handles::tensor_in;
use crate::plugin::views::LogView;

type R<T> = wasmtime::Result<T>;

fn options(o: &WitLogOptions) -> LogOptions {
    LogOptions {
        prog_bar: o.prog_bar,
        logger: o.logger,
        on_step: o.on_step,
        on_epoch: o.on_epoch,
        reduce_fx: match o.reduce_fx {
            WitReduceFx::Mean => ReduceFx::Mean,
            WitReduceFx::Sum => ReduceFx::Sum,
            WitReduceFx::Max => ReduceFx::Max,
            WitReduceFx::Min => ReduceFx::Min,
        },
        batch_size: o.batch_size,
        add_dataloader_idx: o.add_dataloader_idx,
        sync_dist: false,
    }
}

fn check_name(name: &str, o: &WitLogOptions) -> Result<(), OpError> {
    crate::context::check_metric_name(name)?;
    if o.batch_size == Some(0) {
        return Err(OpError::new("log", format!("`{name}`: batch_size must be positive")));
    }
    Ok(())
}

impl LogView<'_> {
    fn log_tensor(&mut self, name: String, value: Resource<Tensor>, o: WitLogOptions, sync_dist: bool) -> R<()> {
        check_name(&name, &o)?;
        crate::plugin::panic_guard::set_op("log");
        let t = tensor_in(self.table, &value, "log")?;
        if t.numel() != 1 {
            return Err(OpError::new(
                "log",
                format!("`{name}` must be a one-element tensor, got shape {:?}", t.size()),
            )
            .into());
        }
        // Detached, as Lightning's self.log keeps values: a logged loss must not keep its
        // step's autograd graph alive until the epoch's mean is taken.
        let v = t.f_detach().map_err(|e| OpError::torch("log", e))?;
        self.target.log(&name, v, LogOptions { sync_dist, ..options(&o) })?;
        Ok(())
    }

    fn log_number(&mut self, name: String, value: f64, o: WitLogOptions, sync_dist: bool) -> R<()> {
        check_name(&name, &o)?;
        let v = Tensor::f_from_slice(&[value as f32])
            .and_then(|t| t.f_reshape([]))
            .map_err(|e| OpError::torch("log", e))?;
        self.target.log(&name, v, LogOptions { sync_dist, ..options(&o) })?;
        Ok(())
    }
}

impl log::Host for LogView<'_> {
    fn log(&mut self, name: String, value: Resource<Tensor>, o: WitLogOptions) -> R<()> {
        self.log_tensor(name, value, o, false)
    }

    fn log_scalar(&mut self, name: String, value: f64, o: WitLogOptions) -> R<()> {
        self.log_number(name, value, o, false)
    }

    fn log_synced(&mut self, name: String, value: Resource<Tensor>, o: WitLogOptions) -> R<()> {
        self.log_tensor(name, value, o, true)
    }

    fn log_scalar_synced(&mut self, name: String, value: f64, o: WitLogOptions) -> R<()> {
        self.log_number(name, value, o, true)
    }
}
