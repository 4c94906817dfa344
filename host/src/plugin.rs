//! WASM plugins: the wasmtime component host. A component that exports
//! `lt:plugin/lightning-module` and/or `lt:plugin/data-module` becomes a [`Module`] and/or
//! [`DataModule`] through the [`adapter`]; the host implements the imported interfaces
//! (`tensor`, `nn`, `log`, `trainer`) in [`host`].
//!
//! [`Module`]: crate::module::Module
//! [`DataModule`]: crate::module::DataModule

pub mod adapter;
pub mod bindings;
pub mod cache;
pub mod callback_plugin;
pub mod convert;
pub mod data_source;
pub mod disk_quota;
pub mod failure;
pub mod handles;
pub mod host;
pub mod instance;
pub mod interrupt;
pub mod logger_plugin;
pub mod op_index;
pub mod panic_guard;
pub mod runtime;
pub mod sandbox;
pub mod state;
pub mod stdio;
pub mod views;

pub use adapter::{load, WasmPlugin};
pub use sandbox::PluginOptions;
