//! Logger plugins (world `logger-plugin`): implement [`Logger`] and call
//! [`crate::export_logger!`]. A logger may write only in its own directory, `/logs`.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "logger-plugin",
        pub_export_macro: true,
        export_macro_name: "export_logger_raw",
        default_bindings_module: "lthost_sdk::logger::bindings",
    });
}

/// ModelCheckpoint's state after it wrote a file ([`Logger::after_save_checkpoint`]).
pub use bindings::exports::lt::plugin::logger::CheckpointCallback;

/// Lightning's Logger. Every method but `new`, `name` and `log_metrics` has a default.
pub trait Logger: Sized + 'static {
    fn new() -> Self;
    fn name(&self) -> String;
    fn log_hyperparams(&mut self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
    fn log_metrics(&mut self, step: u64, metrics: &[(String, f64)]) -> Result<(), String>;
    fn save(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// "success" or "failed" (a failure or a signal, as Lightning's `finalize`).
    fn finalize(&mut self, _status: &str) -> Result<(), String> {
        Ok(())
    }
    /// Lightning's `after_save_checkpoint`: ModelCheckpoint wrote `checkpoint.saved`.
    fn after_save_checkpoint(&mut self, _checkpoint: &CheckpointCallback) -> Result<(), String> {
        Ok(())
    }
}

/// Exports a [`Logger`] as the component's `lt:plugin/logger`.
#[macro_export]
macro_rules! export_logger {
    ($ty:ty) => {
        struct __LtLogger;
        ::std::thread_local! {
            static __LT_LOGGER: ::std::cell::RefCell<Option<$ty>> = const { ::std::cell::RefCell::new(None) };
        }
        fn __with_logger<R>(f: impl FnOnce(&mut $ty) -> R) -> R {
            __LT_LOGGER.with(|slot| {
                let mut slot = slot.borrow_mut();
                let l = slot.get_or_insert_with(<$ty as $crate::logger::Logger>::new);
                f(l)
            })
        }
        impl $crate::logger::bindings::exports::lt::plugin::logger::Guest for __LtLogger {
            fn name() -> String {
                __with_logger(|l| $crate::logger::Logger::name(l))
            }
            fn log_hyperparams(params: String) -> Result<(), String> {
                let v: $crate::serde_json::Value = $crate::serde_json::from_str(&params).map_err(|e| e.to_string())?;
                __with_logger(|l| $crate::logger::Logger::log_hyperparams(l, &v))
            }
            fn log_metrics(step: u64, metrics: Vec<(String, f64)>) -> Result<(), String> {
                __with_logger(|l| $crate::logger::Logger::log_metrics(l, step, &metrics))
            }
            fn save() -> Result<(), String> {
                __with_logger(|l| $crate::logger::Logger::save(l))
            }
            fn finalize(status: String) -> Result<(), String> {
                __with_logger(|l| $crate::logger::Logger::finalize(l, &status))
            }
            fn after_save_checkpoint(checkpoint: $crate::logger::CheckpointCallback) -> Result<(), String> {
                __with_logger(|l| $crate::logger::Logger::after_save_checkpoint(l, &checkpoint))
            }
        }
        $crate::logger::bindings::export_logger_raw!(__LtLogger with_types_in $crate::logger::bindings);
    };
}
