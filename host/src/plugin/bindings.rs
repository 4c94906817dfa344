//! Host bindings for the `lt:plugin` WIT package (world `plugin`: all imports, both
//! exports). WIT resources map onto the host's own types: a guest `tensor` handle is a
//! `tch::Tensor` in the store's resource table, an `op` handle a resolved ATen operator
//! ([`engine::aten::Op`](crate::engine::aten::Op)).
//!
//! Each import interface is registered on its own view of the store: see
//! [`views::add_to_linker`](crate::plugin::views::add_to_linker).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "host",
    imports: { default: trappable },
    with: {
        "lt:plugin/tensor.tensor": tch::Tensor,
        "lt:plugin/aten.op": crate::engine::aten::SharedOp,
    },
});

pub use exports::lt::plugin::callback;
pub use exports::lt::plugin::data_module;
pub use exports::lt::plugin::file_callbacks;
pub use exports::lt::plugin::lightning_module;
pub use exports::lt::plugin::logger;
pub use exports::lt::plugin::lr_schedulers;
pub use exports::lt::plugin::plugin_optimizers;
pub use lt::plugin::{aten, log, optimization, parameters, tensor, trainer, types};
