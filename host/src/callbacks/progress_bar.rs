//! The progress bar (Lightning's TQDMProgressBar). On a terminal: the epoch's bar, redrawn in
//! place at most every 100 ms, with a validation bar on the line below while validation
//! runs (removed when it ends), and test/validate/predict bars for those entry points. On a
//! pipe or file: one plain line every `every_n_steps` batches and one at the end of each
//! epoch and evaluation run, never a line per update and no control characters. Metrics
//! are read (a host sync) only when a line is drawn.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Shortest time between two redraws on a terminal.
const REFRESH: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgressBarConfig {
    /// On a non-terminal, a plain line every this many training batches (0: epoch ends only).
    pub every_n_steps: u64,
    /// Force terminal drawing on or off (unset: whether stdout is a terminal).
    pub terminal: Option<bool>,
}

impl Default for ProgressBarConfig {
    fn default() -> Self {
        ProgressBarConfig { every_n_steps: 50, terminal: None }
    }
}

/// One bar's counters.
#[derive(Debug)]
struct Bar {
    title: String,
    total: usize,
    done: usize,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Bar {
    fn new(title: String, total: usize) -> Self {
        Bar { title, total, done: 0, started: Instant::now(), last_draw: None }
    }
}

pub struct ProgressBar {
    enabled: bool,
    tty: bool,
    every: u64,
    train: Bar,
    eval: Option<Bar>,
    /// The eval bar sits under a training bar (validation inside fit).
    nested: bool,
    /// The eval bar disappears when done (the sanity check).
    transient: bool,
    /// The logger's version (`v_num`); None without a logger (Lightning shows no v_num then).
    pub version: Option<String>,
}

fn fmt_metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter().map(|(k, v)| format!("{k}={}", fmt_value(*v))).collect::<Vec<_>>().join(", ")
}

pub fn fmt_value(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_time(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

impl ProgressBar {
    pub fn new(enabled: bool) -> Self {
        Self::with_config(enabled, &ProgressBarConfig::default())
    }

    pub fn with_config(enabled: bool, cfg: &ProgressBarConfig) -> Self {
        let tty = cfg.terminal.unwrap_or_else(|| std::io::stdout().is_terminal());
        ProgressBar {
            enabled,
            tty,
            every: cfg.every_n_steps,
            train: Bar::new(String::new(), 0),
            eval: None,
            nested: false,
            transient: false,
            version: None,
        }
    }

    pub fn on_train_epoch_start(&mut self, epoch: u64, total_batches: usize) {
        self.train = Bar::new(format!("Epoch {epoch}"), total_batches);
    }

    /// Whether the next training batch end draws a line: callers read metrics only then.
    pub fn wants_refresh(&self) -> bool {
        if !self.enabled {
            return false;
        }
        if self.tty {
            self.train.last_draw.is_none_or(|t| t.elapsed() >= REFRESH)
        } else {
            self.every > 0
                && (self.train.done as u64 + 1).is_multiple_of(self.every)
                && self.train.done + 1 < self.train.total
        }
    }

    pub fn on_train_batch_end(&mut self, metrics: Option<&BTreeMap<String, f64>>) {
        let due = self.wants_refresh();
        self.train.done += 1;
        if let (Some(m), true) = (metrics, due) {
            let line = self.line(&self.train, Some(m));
            self.emit(&line, !self.tty);
            self.train.last_draw = Some(Instant::now());
        }
    }

    /// Closes the epoch's line with the epoch's final metrics.
    pub fn on_train_epoch_end(&mut self, metrics: &BTreeMap<String, f64>) {
        if self.enabled {
            let line = self.line(&self.train, Some(metrics));
            self.emit(&line, true);
        }
    }

    /// A validation, test, predict or sanity-check run starts; `in_fit`: under the epoch
    /// bar; `transient`: removed when done, and not shown on a pipe (the sanity check).
    pub fn on_eval_start(&mut self, title: &str, total: usize, in_fit: bool, transient: bool) {
        self.nested = in_fit;
        self.transient = transient;
        self.eval = Some(Bar::new(title.to_string(), total));
        if self.enabled && self.tty && in_fit {
            self.emit("\n", false);
        }
    }

    /// The run moves on to its next DataLoader (`Validation DataLoader 1`, its own total), as
    /// Lightning's bar resets at a DataLoader change. A closed top-level run's line is kept:
    /// the previous DataLoader's is written.
    pub fn on_eval_dataloader(&mut self, title: &str, total: usize) {
        let Some(bar) = self.eval.take() else { return };
        if self.enabled && !self.nested && !self.transient {
            let line = self.line(&bar, None);
            self.emit(&line, true);
        }
        self.eval = Some(Bar::new(title.to_string(), total));
    }

    pub fn on_eval_batch_end(&mut self) {
        let Some(bar) = self.eval.as_mut() else { return };
        bar.done += 1;
        if self.enabled && self.tty && bar.last_draw.is_none_or(|t| t.elapsed() >= REFRESH) {
            bar.last_draw = Some(Instant::now());
            let Some(bar) = self.eval.as_ref() else { return };
            let line = self.line(bar, None);
            self.emit(&line, false);
        }
    }

    /// The run ended: a nested bar is removed (the cursor goes back to the epoch's line); a
    /// top-level one is closed with its totals. On a pipe, one line per run.
    pub fn on_eval_end(&mut self, metrics: &BTreeMap<String, f64>) {
        let Some(bar) = self.eval.take() else { return };
        if !self.enabled {
            return;
        }
        if self.tty && self.nested {
            self.emit("\r\x1b[K\x1b[1A", false);
            let line = self.line(&self.train, None);
            self.emit(&line, false);
        } else if self.transient {
            if self.tty {
                self.emit("\r\x1b[K", false);
            }
        } else {
            let line = self.line(&bar, Some(metrics));
            self.emit(&line, true);
        }
    }

    fn line(&self, bar: &Bar, metrics: Option<&BTreeMap<String, f64>>) -> String {
        let elapsed = bar.started.elapsed();
        let rate = bar.done as f64 / elapsed.as_secs_f64().max(1e-9);
        let is_train = std::ptr::eq(bar, &self.train);
        let mut shown = match self.version.as_ref().filter(|_| is_train) {
            Some(v) => format!(", v_num={v}"),
            None => String::new(),
        };
        if let Some(m) = metrics.filter(|m| !m.is_empty()) {
            shown.push_str(", ");
            shown.push_str(&fmt_metrics(m));
        }
        if bar.total == crate::module::UNBOUNDED {
            // A loader of unknown length: a count, as tqdm shows an iterator without a total.
            let cr = if self.tty { "\r" } else { "" };
            let clear = if self.tty { "\x1b[K" } else { "" };
            return format!(
                "{cr}{}: {}it [{}, {:.2}it/s{}]{clear}",
                bar.title,
                bar.done,
                fmt_time(elapsed),
                rate,
                shown
            );
        }
        if self.tty {
            let frac = if bar.total == 0 { 1.0 } else { bar.done as f64 / bar.total as f64 };
            let width = 20;
            let filled = ((frac * width as f64).round() as usize).min(width);
            format!(
                "\r{}: {:>3.0}%|{}{}| {}/{} [{}, {:.2}it/s{}]\x1b[K",
                bar.title,
                frac * 100.0,
                "█".repeat(filled),
                " ".repeat(width - filled),
                bar.done,
                bar.total,
                fmt_time(elapsed),
                rate,
                shown
            )
        } else {
            format!("{}: {}/{} [{}, {:.2}it/s{}]", bar.title, bar.done, bar.total, fmt_time(elapsed), rate, shown)
        }
    }

    fn emit(&self, text: &str, newline: bool) {
        let mut out = std::io::stdout().lock();
        let _ = if newline { writeln!(out, "{text}") } else { write!(out, "{text}") };
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_gets_a_line_every_n_batches() {
        let mut bar = ProgressBar::with_config(true, &ProgressBarConfig { every_n_steps: 10, terminal: Some(false) });
        bar.on_train_epoch_start(0, 35);
        let due: Vec<usize> = (0..35)
            .filter_map(|i| {
                let d = bar.wants_refresh();
                bar.on_train_batch_end(None);
                d.then_some(i)
            })
            .collect();
        assert_eq!(due, vec![9, 19, 29]);
        let line = bar.line(&bar.train, None);
        assert!(!line.contains('\r') && !line.contains('\x1b'), "{line:?}");
    }

    #[test]
    fn a_loader_of_unknown_length_shows_a_count() {
        for tty in [false, true] {
            let mut bar = ProgressBar::with_config(true, &ProgressBarConfig { every_n_steps: 10, terminal: Some(tty) });
            bar.on_train_epoch_start(2, crate::module::UNBOUNDED);
            for _ in 0..12 {
                bar.on_train_batch_end(None);
            }
            let line = bar.line(&bar.train, None);
            assert!(line.contains("Epoch 2: 12it [") && !line.contains('%'), "{line:?}");
        }
    }
}
