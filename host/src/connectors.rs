//! Trainer connectors: the accelerator (device and threads) and the logger connector
//! (what `self.log` recorded, reduced lazily, routed to loggers and the progress bar).

pub mod accelerator;
pub mod checkpoint;
pub mod cuda_loader;
pub mod logger;
