//! Lightning's lifecycle loops, layered fit → training epoch → optimization step, with
//! evaluation and prediction beside them. The loops drive the [`crate::module`] traits and
//! never see wasmtime.

pub mod checkpointing;
pub mod evaluation;
pub mod fit;
pub mod interrupter;
pub mod limits;
pub mod optimization;
pub mod prediction;
pub mod prediction_writer;
pub mod reload;
pub mod run_state;
pub mod sequential;
pub mod state;
pub mod state_dict;
pub mod training_epoch;
