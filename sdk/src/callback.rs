//! Callback plugins (world `callback-plugin`): implement [`Callback`] and call
//! [`crate::export_callback!`]. A callback sees the trainer's state and metrics, may ask
//! the run to stop, log values, and keep JSON state in checkpoints.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "callback-plugin",
        pub_export_macro: true,
        export_macro_name: "export_callback_raw",
        default_bindings_module: "lthost_sdk::callback::bindings",
    });
}

pub use bindings::exports::lt::plugin::callback::{HookInfo, HookResult};

/// Lightning's Callback. `hooks` lists the Lightning hook names it wants.
pub trait Callback: Sized + 'static {
    fn new() -> Self;
    fn name(&self) -> String;
    fn hooks() -> Vec<&'static str>;
    fn on_hook(&mut self, hook: &str, info: &HookInfo) -> Result<HookResult, String>;
    fn state_dict(&self) -> Option<serde_json::Value> {
        None
    }
    fn load_state_dict(&mut self, _state: serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// A hook result that asks for nothing.
pub fn nothing() -> HookResult {
    HookResult { stop: None, logs: Vec::new() }
}

/// A metric from `info.metrics`.
pub fn metric(info: &HookInfo, name: &str) -> Option<f64> {
    info.metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// Exports a [`Callback`] as the component's `lt:plugin/callback`.
#[macro_export]
macro_rules! export_callback {
    ($ty:ty) => {
        struct __LtCallback;
        ::std::thread_local! {
            static __LT_CALLBACK: ::std::cell::RefCell<Option<$ty>> = const { ::std::cell::RefCell::new(None) };
        }
        fn __with_callback<R>(f: impl FnOnce(&mut $ty) -> R) -> R {
            __LT_CALLBACK.with(|slot| {
                let mut slot = slot.borrow_mut();
                let c = slot.get_or_insert_with(<$ty as $crate::callback::Callback>::new);
                f(c)
            })
        }
        impl $crate::callback::bindings::exports::lt::plugin::callback::Guest for __LtCallback {
            fn name() -> String {
                __with_callback(|c| $crate::callback::Callback::name(c))
            }
            fn hooks() -> Vec<String> {
                <$ty as $crate::callback::Callback>::hooks().into_iter().map(String::from).collect()
            }
            fn on_hook(hook: String, info: $crate::callback::HookInfo) -> Result<$crate::callback::HookResult, String> {
                __with_callback(|c| $crate::callback::Callback::on_hook(c, &hook, &info))
            }
            fn save_state() -> Option<String> {
                __with_callback(|c| $crate::callback::Callback::state_dict(c).map(|v| v.to_string()))
            }
            fn load_state(state: String) -> Result<(), String> {
                let v: $crate::serde_json::Value = $crate::serde_json::from_str(&state).map_err(|e| e.to_string())?;
                __with_callback(|c| $crate::callback::Callback::load_state_dict(c, v))
            }
        }
        $crate::callback::bindings::export_callback_raw!(__LtCallback with_types_in $crate::callback::bindings);
    };
}
