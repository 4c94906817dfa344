//! Why a run stops before its limits, in one place: Lightning's `trainer.should_stop` and the
//! reason behind it. max_time, a callback's request and EarlyStopping ask for a stop, which
//! the loops honour once min_epochs/min_steps are met; a signal interrupts (the run is saved
//! and stops after the step it finished, or where a plugin was stopped mid-hook). The first
//! request is the one reported (EarlyStopping's latest message, when it asks again); a
//! signal overrides any request.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// `max_time` elapsed on the Timer's training clock.
    MaxTime,
    /// A callback plugin asked to stop.
    Callback { name: String, reason: String },
    /// EarlyStopping's message (Lightning's wording).
    EarlyStopping(String),
    /// A signal (SIGTERM, SIGINT, SIGUSR1); `saved` is the checkpoint written for it, None
    /// when it arrived outside a training batch and none was.
    Signal { signal: i32, saved: Option<PathBuf> },
    /// DDP: another rank asked to stop (its EarlyStopping, `max_time`, a callback): every
    /// rank stops where it did (Lightning's `reduce_boolean_decision(all=False)`).
    OtherRank,
    /// The plugin set `trainer.should_stop = True` (the module or one of its own callbacks).
    Plugin { name: String },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::MaxTime => write!(f, "`max_time` reached"),
            StopReason::Callback { name, reason } => write!(f, "callback `{name}`: {reason}"),
            StopReason::EarlyStopping(r) => write!(f, "EarlyStopping: {r}"),
            StopReason::Signal { signal, saved: Some(path) } => {
                write!(f, "signal {signal} received; the state was saved to {}", path.display())
            }
            StopReason::Signal { signal, saved: None } => {
                write!(f, "signal {signal} received outside a training batch; no checkpoint was written for it")
            }
            StopReason::OtherRank => write!(f, "another rank asked to stop"),
            StopReason::Plugin { name } => write!(f, "plugin `{name}` set trainer.should_stop"),
        }
    }
}

/// The run's stop state: the request or interruption, and the flag signal handlers set.
#[derive(Debug, Default)]
pub struct Interrupter {
    reason: Option<StopReason>,
    signal: Option<Arc<AtomicUsize>>,
}

impl Interrupter {
    /// `signal`: set to a signal's number by the process's handler (none in library use).
    pub fn new(signal: Option<Arc<AtomicUsize>>) -> Interrupter {
        Interrupter { reason: None, signal }
    }

    /// Asks the loops to stop (kept if a stop was already asked for: the first one counts;
    /// EarlyStopping asking again, while min_epochs/min_steps hold the run, brings its
    /// newer message, as Lightning's `stopping_reason_message` is the last check's).
    pub fn request(&mut self, reason: StopReason) {
        match (&self.reason, &reason) {
            (None, _) | (Some(StopReason::EarlyStopping(_)), StopReason::EarlyStopping(_)) => {
                self.reason = Some(reason)
            }
            _ => {}
        }
    }

    /// Forgets a stop request (a tuner's search ended it: Lightning's restore sets
    /// `should_stop = False`); a signal stays.
    pub fn withdraw_request(&mut self) {
        if self.interrupted().is_none() {
            self.reason = None;
        }
    }

    /// A signal stopped the run; `saved` is the checkpoint written for it.
    pub fn interrupt(&mut self, signal: i32, saved: Option<PathBuf>) {
        self.reason = Some(StopReason::Signal { signal, saved });
    }

    /// Lightning's `trainer.should_stop`.
    pub fn should_stop(&self) -> bool {
        self.reason.is_some()
    }

    pub fn reason(&self) -> Option<&StopReason> {
        self.reason.as_ref()
    }

    /// The signal that interrupted the run, if one did.
    pub fn interrupted(&self) -> Option<i32> {
        match self.reason {
            Some(StopReason::Signal { signal, .. }) => Some(signal),
            _ => None,
        }
    }

    /// A signal that arrived and has not been acted on yet (checked after each batch).
    pub fn pending_signal(&self) -> Option<i32> {
        if self.interrupted().is_some() {
            return None;
        }
        self.signal.as_ref().map(|s| s.load(Ordering::SeqCst)).filter(|&s| s != 0).map(|s| s as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_counts_and_a_signal_overrides_it() {
        let mut i = Interrupter::default();
        assert!(!i.should_stop());
        i.request(StopReason::EarlyStopping("Monitored metric val_loss did not improve".into()));
        i.request(StopReason::MaxTime);
        assert!(i.should_stop());
        assert_eq!(i.reason(), Some(&StopReason::EarlyStopping("Monitored metric val_loss did not improve".into())));
        assert_eq!(i.interrupted(), None);
        i.interrupt(15, Some(PathBuf::from("x.ckpt")));
        assert_eq!(i.interrupted(), Some(15));
        assert_eq!(
            i.reason().map(|r| r.to_string()).as_deref(),
            Some("signal 15 received; the state was saved to x.ckpt")
        );
    }

    #[test]
    fn a_signal_is_pending_until_acted_on() {
        let flag = Arc::new(AtomicUsize::new(0));
        let mut i = Interrupter::new(Some(flag.clone()));
        assert_eq!(i.pending_signal(), None);
        flag.store(2, Ordering::SeqCst);
        assert_eq!(i.pending_signal(), Some(2));
        i.interrupt(2, None);
        assert_eq!(i.pending_signal(), None);
        assert!(i.reason().map(|r| r.to_string()).is_some_and(|s| s.contains("outside a training batch")));
    }
}
