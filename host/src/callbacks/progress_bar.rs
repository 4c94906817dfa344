//! The progress bar (Lightning's TQDMProgressBar): a redrawn line per epoch on a terminal,
//! one plain line per epoch otherwise. Metrics shown are read only when the bar redraws.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Shortest time between two redraws on a terminal.
const REFRESH: Duration = Duration::from_millis(100);

pub struct ProgressBar {
    enabled: bool,
    tty: bool,
    epoch: u64,
    total: usize,
    done: usize,
    started: Instant,
    last_draw: Option<Instant>,
    pub version: u64,
}

fn fmt_metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter().map(|(k, v)| format!("{k}={}", fmt_value(*v))).collect::<Vec<_>>().join(", ")
}

pub fn fmt_value(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) { format!("{v:.3e}") } else { format!("{v:.4}") }
}

fn fmt_time(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

impl ProgressBar {
    pub fn new(enabled: bool) -> Self {
        ProgressBar { enabled, tty: std::io::stdout().is_terminal(), epoch: 0, total: 0, done: 0, started: Instant::now(), last_draw: None, version: 0 }
    }

    pub fn on_train_epoch_start(&mut self, epoch: u64, total_batches: usize) {
        self.epoch = epoch;
        self.total = total_batches;
        self.done = 0;
        self.started = Instant::now();
        self.last_draw = None;
    }

    /// Whether a redraw is due: callers read metrics (a host sync) only then.
    pub fn wants_refresh(&self) -> bool {
        self.enabled && self.tty && self.last_draw.is_none_or(|t| t.elapsed() >= REFRESH)
    }

    pub fn on_train_batch_end(&mut self, metrics: Option<&BTreeMap<String, f64>>) {
        self.done += 1;
        if let Some(m) = metrics {
            if self.wants_refresh() {
                self.draw(m, false);
            }
        }
    }

    /// Closes the epoch's line with the epoch's final metrics.
    pub fn on_train_epoch_end(&mut self, metrics: &BTreeMap<String, f64>) {
        if self.enabled {
            self.draw(metrics, true);
        }
    }

    fn draw(&mut self, metrics: &BTreeMap<String, f64>, last: bool) {
        let elapsed = self.started.elapsed();
        let rate = self.done as f64 / elapsed.as_secs_f64().max(1e-9);
        let mut shown = format!("v_num={}", self.version);
        if !metrics.is_empty() {
            shown.push_str(", ");
            shown.push_str(&fmt_metrics(metrics));
        }
        let line = if self.tty {
            let frac = if self.total == 0 { 1.0 } else { self.done as f64 / self.total as f64 };
            let width = 20;
            let filled = ((frac * width as f64).round() as usize).min(width);
            format!(
                "\rEpoch {}: {:>3.0}%|{}{}| {}/{} [{}, {:.2}it/s, {}]\x1b[K",
                self.epoch,
                frac * 100.0,
                "█".repeat(filled),
                " ".repeat(width - filled),
                self.done,
                self.total,
                fmt_time(elapsed),
                rate,
                shown
            )
        } else {
            format!("Epoch {}: {}/{} [{}, {:.2}it/s, {}]", self.epoch, self.done, self.total, fmt_time(elapsed), rate, shown)
        };
        let mut out = std::io::stdout().lock();
        let _ = if self.tty && !last { write!(out, "{line}") } else { writeln!(out, "{line}") };
        let _ = out.flush();
        self.last_draw = Some(Instant::now());
    }
}
