//! Fault injection for the crash tests: `LTHOST_FAULT=<event>:<n>` kills the process with
//! SIGKILL the n-th time `<event>` happens (`step`, `val-batch`, `write`). In a DDP run
//! `LTHOST_FAULT=<event>:<n>:rank<r>` arms only local rank `r`, and a fourth field `stop`
//! stops the process (SIGSTOP, a rank that hangs) instead of killing it. Unset, every call is
//! a cheap no-op. Documented in the README; never set it outside tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

struct Fault {
    event: String,
    n: u64,
    signal: i32,
}

static TARGET: OnceLock<Option<Fault>> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

fn target() -> &'static Option<Fault> {
    TARGET.get_or_init(|| parse(&std::env::var("LTHOST_FAULT").ok()?, std::env::var("LOCAL_RANK").ok()))
}

/// The fault `spec` arms in the process of local rank `local_rank` (unset: 0).
fn parse(spec: &str, local_rank: Option<String>) -> Option<Fault> {
    let mut parts = spec.split(':');
    let event = parts.next()?.to_string();
    let n = parts.next()?.parse().ok()?;
    if let Some(rank) = parts.next() {
        let mine = local_rank.unwrap_or_else(|| "0".into());
        if rank.strip_prefix("rank")? != mine {
            return None;
        }
    }
    let signal = match parts.next() {
        None | Some("kill") => libc::SIGKILL,
        Some("stop") => libc::SIGSTOP,
        Some(_) => return None,
    };
    Some(Fault { event, n, signal })
}

/// Marks one occurrence of `event`; `detail` (only for the message) is built only when the
/// fault fires, so an unarmed point costs no formatting.
pub fn point(event: &str, detail: impl FnOnce() -> String) {
    let Some(f) = target() else { return };
    if f.event != event {
        return;
    }
    if COUNT.fetch_add(1, Ordering::SeqCst) + 1 == f.n {
        let what = if f.signal == libc::SIGSTOP { "stopping" } else { "killing" };
        eprintln!("LTHOST_FAULT: {what} the process at {event} #{} ({})", f.n, detail());
        // SAFETY: raise(2) with a valid signal number; SIGKILL and SIGSTOP cannot be caught.
        unsafe {
            libc::raise(f.signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_arms_the_rank_it_names() {
        let f = parse("step:5", None).expect("armed");
        assert_eq!((f.event.as_str(), f.n, f.signal), ("step", 5, libc::SIGKILL));
        assert!(parse("step:5:rank1", None).is_none());
        assert!(parse("step:5:rank1", Some("1".into())).is_some());
        let f = parse("step:3:rank0:stop", None).expect("armed");
        assert_eq!(f.signal, libc::SIGSTOP);
        assert!(parse("step:3:rank0:pause", None).is_none());
    }
}
