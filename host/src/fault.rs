//! Fault injection for the crash tests: `LTHOST_FAULT=<event>:<n>` kills the process with
//! SIGKILL the n-th time `<event>` happens (`step`, `val-batch`, `write`). Unset, every
//! call is a cheap no-op. Documented in the README; never set it outside tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

fn target() -> &'static Option<(String, u64)> {
    TARGET.get_or_init(|| {
        let v = std::env::var("LTHOST_FAULT").ok()?;
        let (event, n) = v.split_once(':')?;
        Some((event.to_string(), n.parse().ok()?))
    })
}

/// Marks one occurrence of `event`; `detail` (only for the message) is built only when the
/// fault fires, so an unarmed point costs no formatting.
pub fn point(event: &str, detail: impl FnOnce() -> String) {
    let Some((want, n)) = target() else { return };
    if want != event {
        return;
    }
    if COUNT.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        eprintln!("LTHOST_FAULT: killing the process at {event} #{n} ({})", detail());
        // SAFETY: raise(2) with a valid signal number; SIGKILL cannot be caught.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
