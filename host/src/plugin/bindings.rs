//! Host bindings for the `lt:plugin` WIT package (world `plugin`: all imports, both
//! exports). WIT resources map onto the host's own types: a guest `tensor` handle is a
//! `tch::Tensor` in the store's resource table, an `op` handle a resolved ATen operator
//! ([`engine::aten::Op`](crate::engine::aten::Op)).
//!
//! ```ignore
//! let mut linker = Linker::new(&engine);
//! bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
//! ```

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
pub use exports::lt::plugin::lightning_module;
pub use exports::lt::plugin::logger;
pub use exports::lt::plugin::lr_schedulers;
pub use exports::lt::plugin::plugin_optimizers;
pub use lt::plugin::{aten, log, optimization, parameters, tensor, trainer, types};
