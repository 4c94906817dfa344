//! End-to-end tests: run the built `lthost` binary on the example and test plugins
//! (built by `make plugins` into target/plugins) and check what it prints and writes.

mod adversarial;
mod aten_surface;
mod bad_input;
mod budget;
mod builtin_callbacks;
mod cache;
mod checkpoint_callback;
mod checkpoints;
mod common;
mod containment;
mod data;
mod ddp;
mod digits;
mod docs;
mod engine;
mod formats;
mod languages;
mod lightning_cli;
mod lightning_files;
mod loggers_and_callbacks;
mod loops;
mod main_block;
mod mlflow;
mod oci;
mod opinfo;
mod parity;
mod ports;
mod precision;
mod schedulers;
mod signatures;
mod stage_batch_size;
mod startup;
mod streams;
mod training_options;
