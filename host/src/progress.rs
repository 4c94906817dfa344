//! Lightning's progress trackers: each unit of work (a batch, an epoch) moves through
//! ready → started → processed → completed, counted over the whole run (`total`) and over
//! the current run of the loop (`current`). Exact resume reads these counters.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub ready: u64,
    pub started: u64,
    pub processed: u64,
    pub completed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: Counter,
    pub current: Counter,
}

impl Progress {
    pub fn increment_ready(&mut self) {
        self.total.ready += 1;
        self.current.ready += 1;
    }
    pub fn increment_started(&mut self) {
        self.total.started += 1;
        self.current.started += 1;
    }
    pub fn increment_processed(&mut self) {
        self.total.processed += 1;
        self.current.processed += 1;
    }
    pub fn increment_completed(&mut self) {
        self.total.completed += 1;
        self.current.completed += 1;
    }
    /// Rolls every counter of the current unit back to `done` units of this run (the rest
    /// were under way, not done), `total` by the same amounts: what a save made mid-unit
    /// records.
    pub fn settled_at(mut self, done: u64) -> Progress {
        for (cur, tot) in [
            (&mut self.current.ready, &mut self.total.ready),
            (&mut self.current.started, &mut self.total.started),
            (&mut self.current.processed, &mut self.total.processed),
            (&mut self.current.completed, &mut self.total.completed),
        ] {
            *tot = tot.saturating_sub(cur.saturating_sub(done)) + done.saturating_sub(*cur);
            *cur = done;
        }
        self
    }

    /// A new run of the loop (a new epoch for batch progress): `current` starts over.
    pub fn reset_current(&mut self) {
        self.current = Counter::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_under_way_settles_back() {
        let mut p = Progress::default();
        for _ in 0..3 {
            p.increment_ready();
            p.increment_started();
            p.increment_processed();
            p.increment_completed();
        }
        p.reset_current();
        p.increment_ready();
        p.increment_started();
        // Stopped inside the batch before its update: it did not happen.
        let s = p.settled_at(0);
        assert_eq!(s.current, Counter::default());
        assert_eq!(s.total, Counter { ready: 3, started: 3, processed: 3, completed: 3 });
        // After its update: it counts as done all through.
        let s = p.settled_at(1);
        assert_eq!(s.current, Counter { ready: 1, started: 1, processed: 1, completed: 1 });
        assert_eq!(s.total, Counter { ready: 4, started: 4, processed: 4, completed: 4 });
    }

    #[test]
    fn counts_total_and_current() {
        let mut p = Progress::default();
        for _ in 0..3 {
            p.increment_ready();
            p.increment_started();
            p.increment_processed();
            p.increment_completed();
        }
        p.reset_current();
        p.increment_ready();
        assert_eq!(p.total, Counter { ready: 4, started: 3, processed: 3, completed: 3 });
        assert_eq!(p.current, Counter { ready: 1, started: 0, processed: 0, completed: 0 });
    }
}
