//! The progress bar (Lightning's TQDMProgressBar). On a terminal: indicatif's bars in tqdm's
//! layout, the epoch's redrawn in place (10 times a second at most), a validation bar on the
//! line below while validation runs (removed when it ends), test/validate/predict bars for
//! those entry points, each finished bar's last state kept as a line. On a pipe or file: one
//! plain line every `every_n_steps` batches and one at the end of each epoch and evaluation
//! run, never a line per update and no control characters. Metrics are read (a host sync)
//! only when the bar's text changes.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};
use serde::{Deserialize, Serialize};

/// Shortest time between two metric reads for the bar on a terminal.
const REFRESH: Duration = Duration::from_millis(100);
/// Redraws a second on a terminal.
const REFRESH_HZ: u8 = 10;

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
    /// On a terminal: indicatif's bars (the epoch's, and an evaluation's below it).
    term: Option<TermBars>,
}

/// indicatif's bars on stdout.
struct TermBars {
    multi: MultiProgress,
    train: Option<indicatif::ProgressBar>,
    eval: Option<indicatif::ProgressBar>,
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

/// tqdm's layout, as Lightning's TQDMProgressBar shows it:
/// `Epoch 0:  45%|█████▍      | 18/40 [00:01<00:01, 17.52it/s, v_num=0, loss=0.52]`.
fn style(bounded: bool) -> ProgressStyle {
    let template = if bounded {
        "{prefix}: {percent:>3}%|{bar:20}| {pos}/{len} [{mmss}<{eta_mmss}, {rate}{msg}]"
    } else {
        "{prefix}: {pos}it [{mmss}, {rate}{msg}]"
    };
    // The template is a constant that parses.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("mmss", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&fmt_time(s.elapsed()));
        })
        .with_key("eta_mmss", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&fmt_time(s.eta()));
        })
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.2}it/s", s.per_sec());
        })
        .progress_chars("█▉▊▋▌▍▎▏ ")
}

/// stdout as indicatif's terminal (also when a run forces terminal drawing onto a pipe).
#[derive(Debug)]
struct Stdout;

impl Stdout {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stdout().lock().write_all(s.as_bytes())
    }
}

impl TermLike for Stdout {
    fn width(&self) -> u16 {
        // SAFETY: TIOCGWINSZ fills the winsize it is given; on failure it is left zeroed.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 {
            ws.ws_col
        } else {
            120
        }
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}A"))?;
        }
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}B"))?;
        }
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}C"))?;
        }
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}D"))?;
        }
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(s)?;
        self.put("\n")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

impl ProgressBar {
    pub fn new(enabled: bool) -> Self {
        Self::with_config(enabled, &ProgressBarConfig::default())
    }

    pub fn with_config(enabled: bool, cfg: &ProgressBarConfig) -> Self {
        let tty = cfg.terminal.unwrap_or_else(|| std::io::stdout().is_terminal());
        let term = (enabled && tty).then(|| TermBars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(Box::new(Stdout), REFRESH_HZ)),
            train: None,
            eval: None,
        });
        ProgressBar {
            enabled,
            tty,
            every: cfg.every_n_steps,
            train: Bar::new(String::new(), 0),
            eval: None,
            nested: false,
            transient: false,
            version: None,
            term,
        }
    }

    /// A new bar in the terminal area (below any other).
    fn term_bar(&self, title: &str, total: usize) -> Option<indicatif::ProgressBar> {
        let t = self.term.as_ref()?;
        let bounded = total != crate::module::UNBOUNDED;
        let pb =
            indicatif::ProgressBar::with_draw_target(bounded.then_some(total as u64), ProgressDrawTarget::hidden());
        pb.set_style(style(bounded));
        pb.set_prefix(title.to_string());
        let pb = t.multi.add(pb);
        // Drawn once at once, as tqdm draws a bar when it opens (redraws are rate-limited).
        pb.force_draw();
        Some(pb)
    }

    /// Ends a terminal bar: its last state printed above the area (kept), or nothing.
    fn close_term_bar(&self, pb: Option<indicatif::ProgressBar>, keep: Option<String>) {
        let (Some(t), Some(pb)) = (self.term.as_ref(), pb) else { return };
        pb.finish_and_clear();
        t.multi.remove(&pb);
        if let Some(line) = keep {
            let _ = t.multi.println(line);
        }
    }

    pub fn on_train_epoch_start(&mut self, epoch: u64, total_batches: usize) {
        self.train = Bar::new(format!("Epoch {epoch}"), total_batches);
        let old = self.term.as_mut().and_then(|t| t.train.take());
        self.close_term_bar(old, None);
        let pb = self.term_bar(&self.train.title, total_batches);
        if let Some(t) = self.term.as_mut() {
            if let Some(pb) = &pb {
                pb.set_message(self.version.as_ref().map(|v| format!(", v_num={v}")).unwrap_or_default());
            }
            t.train = pb;
        }
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
        if let Some(pb) = self.term.as_ref().and_then(|t| t.train.as_ref()) {
            pb.set_position(self.train.done as u64);
            if let (Some(m), true) = (metrics, due) {
                pb.set_message(self.shown(true, Some(m)));
                self.train.last_draw = Some(Instant::now());
            }
            return;
        }
        if let (Some(m), true) = (metrics, due) {
            let line = self.line(&self.train, Some(m));
            self.emit(&line);
            self.train.last_draw = Some(Instant::now());
        }
    }

    /// Closes the epoch's line with the epoch's final metrics.
    pub fn on_train_epoch_end(&mut self, metrics: &BTreeMap<String, f64>) {
        if !self.enabled {
            return;
        }
        let line = self.line(&self.train, Some(metrics));
        match self.term.as_mut().map(|t| t.train.take()) {
            Some(pb) => self.close_term_bar(pb, Some(line)),
            None => self.emit(&line),
        }
    }

    /// A validation, test, predict or sanity-check run starts; `in_fit`: under the epoch
    /// bar; `transient`: removed when done, and not shown on a pipe (the sanity check).
    pub fn on_eval_start(&mut self, title: &str, total: usize, in_fit: bool, transient: bool) {
        self.nested = in_fit;
        self.transient = transient;
        self.eval = Some(Bar::new(title.to_string(), total));
        let pb = self.term_bar(title, total);
        if let Some(t) = self.term.as_mut() {
            t.eval = pb;
        }
    }

    /// The run moves on to its next DataLoader (`Validation DataLoader 1`, its own total), as
    /// Lightning's bar resets at a DataLoader change. A closed top-level run's line is kept:
    /// the previous DataLoader's is written.
    pub fn on_eval_dataloader(&mut self, title: &str, total: usize) {
        let Some(bar) = self.eval.take() else { return };
        let keep = (self.enabled && !self.nested && !self.transient).then(|| self.line(&bar, None));
        match self.term.as_mut().map(|t| t.eval.take()) {
            Some(pb) => self.close_term_bar(pb, keep),
            None => {
                if let Some(line) = keep {
                    self.emit(&line);
                }
            }
        }
        self.eval = Some(Bar::new(title.to_string(), total));
        let pb = self.term_bar(title, total);
        if let Some(t) = self.term.as_mut() {
            t.eval = pb;
        }
    }

    pub fn on_eval_batch_end(&mut self) {
        let Some(bar) = self.eval.as_mut() else { return };
        bar.done += 1;
        if let Some(pb) = self.term.as_ref().and_then(|t| t.eval.as_ref()) {
            pb.set_position(bar.done as u64);
        }
    }

    /// The run ended: a nested bar is removed (the epoch's line stays below the lines before
    /// it); a top-level one is closed with its totals. On a pipe, one line per run.
    pub fn on_eval_end(&mut self, metrics: &BTreeMap<String, f64>) {
        let Some(bar) = self.eval.take() else { return };
        if !self.enabled {
            return;
        }
        // On a terminal a validation bar inside fit goes away; on a pipe each run keeps its line.
        let keep = ((!self.nested || !self.tty) && !self.transient).then(|| self.line(&bar, Some(metrics)));
        match self.term.as_mut().map(|t| t.eval.take()) {
            Some(pb) => self.close_term_bar(pb, keep),
            None => {
                if let Some(line) = keep {
                    self.emit(&line);
                }
            }
        }
    }

    /// `, v_num=…, metrics…` after the rate.
    fn shown(&self, is_train: bool, metrics: Option<&BTreeMap<String, f64>>) -> String {
        let mut shown = match self.version.as_ref().filter(|_| is_train) {
            Some(v) => format!(", v_num={v}"),
            None => String::new(),
        };
        if let Some(m) = metrics.filter(|m| !m.is_empty()) {
            shown.push_str(", ");
            shown.push_str(&fmt_metrics(m));
        }
        shown
    }

    /// A plain line: on a pipe, and the kept last state of a terminal bar.
    fn line(&self, bar: &Bar, metrics: Option<&BTreeMap<String, f64>>) -> String {
        let elapsed = bar.started.elapsed();
        let rate = bar.done as f64 / elapsed.as_secs_f64().max(1e-9);
        let shown = self.shown(std::ptr::eq(bar, &self.train), metrics);
        if bar.total == crate::module::UNBOUNDED {
            // A loader of unknown length: a count, as tqdm shows an iterator without a total.
            return format!("{}: {}it [{}, {:.2}it/s{}]", bar.title, bar.done, fmt_time(elapsed), rate, shown);
        }
        if self.tty {
            let frac = if bar.total == 0 { 1.0 } else { bar.done as f64 / bar.total as f64 };
            let width = 20;
            let filled = ((frac * width as f64).round() as usize).min(width);
            format!(
                "{}: {:>3.0}%|{}{}| {}/{} [{}<00:00, {:.2}it/s{}]",
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

    fn emit(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl Drop for ProgressBar {
    /// Bars still open (a run that failed mid-epoch) are cleared from the terminal.
    fn drop(&mut self) {
        if let Some(t) = self.term.as_mut() {
            for pb in [t.train.take(), t.eval.take()].into_iter().flatten() {
                pb.finish_and_clear();
            }
        }
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
