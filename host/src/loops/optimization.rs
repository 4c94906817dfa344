//! Optimization loops: automatic (the host runs backward and the optimizer step).
//! Manual optimization comes with the Trainer contract.

pub mod automatic;
