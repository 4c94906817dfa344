//! End-to-end tests: run the built `lthost` binary on the example and test plugins
//! (built by `make plugins` into target/plugins) and check what it prints and writes.

mod adversarial;
mod bad_input;
mod checkpoints;
mod common;
mod data;
mod digits;
mod engine;
mod formats;
mod loops;
mod parity;
mod schedulers;
mod signatures;
mod streams;
mod languages;
mod startup;
mod builtin_callbacks;
mod cache;
mod containment;
mod budget;
mod loggers_and_callbacks;
