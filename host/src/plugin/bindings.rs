//! Host bindings for the `lt:plugin` WIT package (world `plugin`: all imports, both
//! exports). WIT resources map onto the host's own types: a guest `tensor` handle is a
//! `tch::Tensor` in the store's resource table, a `linear` handle an
//! [`engine::layers::Linear`](crate::engine::layers::Linear), and so on.
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
        "lt:plugin/nn.linear": crate::engine::layers::Linear,
        "lt:plugin/nn.conv2d": crate::engine::layers::Conv2d,
        "lt:plugin/nn.batch-norm": crate::engine::layers::BatchNorm,
        "lt:plugin/nn.layer-norm": crate::engine::layers::LayerNorm,
        "lt:plugin/nn.embedding": crate::engine::layers::Embedding,
        "lt:plugin/nn.lstm": crate::engine::layers::Lstm,
        "lt:plugin/nn.dropout": crate::plugin::host::nn::Dropout,
        "lt:plugin/nn.multihead-attention": crate::engine::layers::MultiheadAttention,
    },
});

pub use exports::lt::plugin::callback;
pub use exports::lt::plugin::data_module;
pub use exports::lt::plugin::lightning_module;
pub use exports::lt::plugin::logger;
pub use lt::plugin::{aten, log, nn, optimization, parameters, tensor, trainer, types};
