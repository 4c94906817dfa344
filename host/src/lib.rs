//! lthost: a Lightning-style trainer whose user code (LightningModule, DataModule) runs as
//! sandboxed WebAssembly components, while the host owns libtorch, the loops, the data
//! path, logging and progress tracking.
//!
//! The loops drive the host-side traits in [`module`]; a WASM component is one
//! implementation of them ([`plugin`]), a native Rust type is another.

pub mod artifact;
pub mod callbacks;
pub mod checkpoint;
pub mod config;
pub mod connectors;
pub mod context;
pub mod data;
pub mod datasets;
pub mod distributed;
pub mod engine;
pub mod error;
pub mod fault;
pub mod fs;
pub mod hooks;
pub mod hparams;
pub mod lightning_build;
pub mod lightning_cli;
pub mod loggers;
pub mod loops;
pub mod main_block;
pub mod module;
pub mod oci;
pub mod plot;
pub mod plugin;
pub mod precision;
pub mod progress;
pub mod run_dir;
pub mod scaffold;
pub mod startup;
#[cfg(test)]
pub(crate) mod testing;
pub mod trainer;
pub mod tuner;
pub mod warnings;
