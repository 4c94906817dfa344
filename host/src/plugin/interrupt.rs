//! Stopping a plugin whatever it is doing: a hook's deadline and a signal (SIGTERM, SIGINT,
//! SIGUSR1) reach a plugin that is computing, sleeping or polling.
//!
//! - Computing: epoch interruption. The ticker advances the epoch every 100 ms; a hook past
//!   its deadline traps at its next epoch check. On a signal the loops save between steps;
//!   a plugin still inside a hook [`SIGNAL_GRACE`] later is stopped: the ticker jumps the
//!   epoch past every deadline ([`SIGNAL_JUMP`]), the plugin traps within a tick, and the
//!   trainer saves the run where its weights are (`checkpointing::interrupt_in_hook`).
//! - Sleeping or polling (WASI `monotonic-clock.subscribe-*` + `poll`/`block`, which block
//!   on the host's side where no epoch is counted): those subscriptions are lthost's own
//!   pollables, which wake at the hook's deadline and within 100 ms of a signal, whatever
//!   the guest asked for. The guest then resumes (and usually returns, so the loops save).
//! - In a libtorch kernel: not interruptible; the op that ends past the deadline fails
//!   naming itself (`PluginState::push`), and a signal is honoured when it returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};
use wasmtime_wasi::HostMonotonicClock;

use crate::plugin::state::PluginState;

/// How long after a signal a plugin still inside a hook is stopped: long enough for an
/// ordinary hook to return (the loops then save between steps), short enough to honour the
/// signal within a second.
pub const SIGNAL_GRACE: Duration = Duration::from_millis(500);

/// How far the epoch jumps on a signal: past any hook's deadline (at most 10^6 s of 100 ms
/// ticks, 10^7).
pub const SIGNAL_JUMP: u64 = 1 << 24;

/// The most a host-side sleep waits before looking at the deadline and the signal again.
const GRAIN: Duration = Duration::from_millis(100);

/// The WASI interface whose subscriptions lthost provides (the version wasmtime-wasi
/// links; guests importing any 0.2.x resolve to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

static SIGNAL: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Whether a signal stops a plugin inside a hook after [`SIGNAL_GRACE`] (off in a DDP run:
/// every rank stops after the same batch, as the ranks agree there, which a rank stopped
/// inside a hook would not reach).
static STOPS_INSIDE_HOOKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns stopping a plugin inside a hook on a signal on or off (DDP: off).
pub fn set_stops_inside_hooks(on: bool) {
    STOPS_INSIDE_HOOKS.store(on, Ordering::SeqCst);
}

pub fn stops_inside_hooks() -> bool {
    STOPS_INSIDE_HOOKS.load(Ordering::SeqCst)
}

/// Where the process records a signal (main's handler); the ticker and sleeps watch it.
pub fn watch_signals(flag: Arc<AtomicUsize>) {
    let _ = SIGNAL.set(flag);
}

/// The signal received, or 0.
pub fn signalled() -> usize {
    SIGNAL.get().map_or(0, |f| f.load(Ordering::SeqCst))
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// The plugins' monotonic clock (nanoseconds since lthost started): lthost's own, so that
/// `subscribe-instant` can be turned into a wait lthost controls.
pub struct MonotonicClock;

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        u64::try_from(start().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A guest's sleep: ready at `until`, at the hook's `deadline`, or on a signal.
struct Sleep {
    until: Option<Instant>,
    deadline: Option<Instant>,
}

impl Sleep {
    fn due(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now >= u) || self.deadline.is_some_and(|d| now >= d) || signalled() != 0
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        loop {
            let now = Instant::now();
            if self.due(now) {
                return;
            }
            let mut next = now + GRAIN;
            for t in [self.until, self.deadline].into_iter().flatten() {
                next = next.min(t);
            }
            tokio::time::sleep(next.saturating_duration_since(now)).await;
        }
    }
}

fn subscribe_sleep(
    mut store: StoreContextMut<'_, PluginState>,
    wait: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let state = store.data_mut();
    let sleep = Sleep { until: Instant::now().checked_add(wait), deadline: state.deadline };
    let r = state.table.push(sleep)?;
    subscribe(&mut state.table, r)
}

/// Replaces WASI's clock subscriptions in `linker` (after WASI was added) with lthost's.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |store: StoreContextMut<'_, PluginState>, (nanos,): (u64,)| {
        Ok((subscribe_sleep(store, Duration::from_nanos(nanos))?,))
    })?;
    clock.func_wrap("subscribe-instant", |store: StoreContextMut<'_, PluginState>, (when,): (u64,)| {
        let now = MonotonicClock.now();
        Ok((subscribe_sleep(store, Duration::from_nanos(when.saturating_sub(now)))?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_is_due_at_its_end_or_the_hooks_deadline() {
        let now = Instant::now();
        let s = Sleep { until: Some(now + Duration::from_secs(60)), deadline: Some(now + Duration::from_millis(10)) };
        assert!(!s.due(now));
        assert!(s.due(now + Duration::from_millis(10)), "the deadline cuts a long sleep short");
        let forever = Sleep { until: None, deadline: None };
        assert!(!forever.due(now + Duration::from_secs(3600)));
    }
}
