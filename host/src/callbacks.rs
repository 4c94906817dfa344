//! Built-in callbacks: the progress bar and the model summary.

pub mod model_summary;
pub mod progress_bar;

pub use progress_bar::ProgressBar;
