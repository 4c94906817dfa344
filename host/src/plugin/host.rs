//! Host implementations of the imported interfaces, one file per interface. Every failure
//! becomes an [`OpError`](crate::error::OpError) naming the op, which traps the guest and is
//! reported with the plugin's name and hook by the adapter.

pub mod aten;
pub mod log;
pub mod optimization;
pub mod parameters;
pub mod tensor;
pub mod trainer;
