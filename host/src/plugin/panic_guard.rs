//! Panics inside a plugin's call become that plugin's error, never the host's crash.
//!
//! One source is known and outside lthost: `tch` checks libtorch's error slot again when it
//! frees an op's scalar argument, so an op taking a scalar (`arange`, `full`, `add` with a
//! scalar, …) that libtorch refuses — a shape error, or an allocation the tensor budget
//! refuses — panics in `tch` instead of returning its error. wasmtime carries a host
//! function's panic out to where the host entered the plugin; [`guarded`] catches it there,
//! and the panic hook stays quiet for panics caught so. The op is the last one the plugin's
//! call looked a tensor up for or sized ([`set_op`]).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
    static OP: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records the op the plugin's call is running (for a panic's error message).
pub fn set_op(op: &str) {
    OP.with(|o| {
        let mut o = o.borrow_mut();
        o.clear();
        o.push_str(op);
    });
}

/// A caught panic: the op it happened in (if known) and its message.
pub struct Caught {
    pub op: Option<String>,
    pub message: String,
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                CAUGHT.with(|c| *c.borrow_mut() = Some(msg));
            } else {
                default(info);
            }
        }));
    });
}

/// The useful part of a panic message: libtorch's text (without its C++ stack and the
/// `Result::unwrap` wrapping) when there is one.
fn clean(msg: &str) -> String {
    let text = msg.split_once("Torch(\"").map(|(_, rest)| rest).unwrap_or(msg);
    let cut =
        text.find("\\nException raised from").or_else(|| text.find("Exception raised from")).unwrap_or(text.len());
    text[..cut].trim_end_matches("\")").trim().replace("\\n", " ")
}

/// Runs `f` (a call into a plugin); a panic in it is returned as [`Caught`].
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    install_hook();
    set_op("");
    let was = GUARDED.with(|g| g.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    r.map_err(|_| {
        let message = CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_else(|| "a panic".into());
        let op = OP.with(|o| o.borrow().clone());
        Caught { op: (!op.is_empty()).then_some(op), message: clean(&message) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tch_scalar_panic_is_caught_quietly_with_its_op() {
        // A failing op with a scalar argument: tch panics freeing the scalar.
        let caught = guarded(|| {
            set_op("full");
            let _ = tch::Tensor::f_full([-1], 1.5, (tch::Kind::Float, tch::Device::Cpu));
        });
        let c = caught.err().expect("tch panics on a failed op with a scalar argument");
        assert_eq!(c.op.as_deref(), Some("full"));
        assert!(!c.message.contains("Exception raised from") && !c.message.is_empty(), "{}", c.message);
        assert_eq!(guarded(|| 3).ok(), Some(3));
    }
}
