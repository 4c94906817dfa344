//! Lightning's batch-size finder (`Tuner.scale_batch_size`, the `BatchSizeFinder` callback):
//! trials of `steps_per_trial` optimizer steps at growing batch sizes until one runs out of
//! memory, the dataset is smaller than the batch, `max_trials` ran or `max_val` is reached.
//! `power` doubles and halves once after a failure; `binsearch` doubles, then bisects between
//! the last size that ran and the first that failed, and takes `margin` off the result.
//!
//! The search is written over [`Trials`] (the trainer runs them, `tuner/scale_batch_size.rs`)
//! and follows Lightning 2.6.6's `tuner/batch_size_scaling.py` step for step, including
//! where its numbers are not what its docs say: the first trial runs at the batch size the
//! DataLoader was made with (the field's value before `init_val` was set), power mode caps
//! a doubled size at 8192 whatever `max_val` is and stops only once a size reaches `max_val`
//! (so it can return more), and a size as large as the dataset ends the search unchanged.
//! Out of memory is what Lightning's `is_oom_error` recognises, and the plugin's tensor
//! budget (`plugin.tensor_memory_limit_mb`), lthost's memory limit for a plugin.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `[scale_batch_size]`: Lightning's `Tuner.scale_batch_size` / `BatchSizeFinder` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSizeConfig {
    /// "power" or "binsearch" (any case, as Lightning lower-cases it).
    pub mode: String,
    pub steps_per_trial: u64,
    pub init_val: u64,
    pub max_trials: u64,
    /// The field holding the batch size, on the module or DataModule (an attribute or a
    /// hyper-parameter).
    pub batch_arg_name: String,
    /// binsearch only: the found size less this fraction.
    pub margin: f64,
    pub max_val: u64,
}

impl Default for BatchSizeConfig {
    fn default() -> Self {
        BatchSizeConfig {
            mode: "power".into(),
            steps_per_trial: 3,
            init_val: 2,
            max_trials: 25,
            batch_arg_name: "batch_size".into(),
            margin: 0.05,
            max_val: 8192,
        }
    }
}

/// The search strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Power,
    Binsearch,
}

impl BatchSizeConfig {
    /// Lightning's checks (`BatchSizeFinder.__init__`), and a start no DataLoader takes.
    pub fn validate(&self) -> Result<Mode> {
        let mode = match self.mode.to_lowercase().as_str() {
            "power" => Mode::Power,
            "binsearch" => Mode::Binsearch,
            _ => bail!("`mode` should be either of ('power', 'binsearch') (scale_batch_size.mode = {:?})", self.mode),
        };
        if !(0.0..1.0).contains(&self.margin) {
            bail!(
                "`margin` should be between 0 and 1. Found margin={}",
                crate::callbacks::py_format::repr_float(self.margin)
            );
        }
        if self.init_val == 0 {
            bail!("scale_batch_size: init_val must be a positive batch size (a DataLoader takes no batch of 0)");
        }
        if self.batch_arg_name.is_empty() {
            bail!("scale_batch_size.batch_arg_name must name the field that holds the batch size");
        }
        Ok(mode)
    }
}

/// What the search drives: the trainer's fit loop and the field that holds the batch size.
pub trait Trials {
    /// Lightning's `lightning_getattr(model, batch_arg_name)`.
    fn batch_size(&mut self) -> Result<i64>;
    /// Lightning's `lightning_setattr`: every holder of the field.
    fn set_batch_size(&mut self, size: i64) -> Result<()>;
    /// The train DataLoader's dataset length (the loader is asked for if there is none yet,
    /// as `loop.setup_data()`); None when it has none (a stream).
    fn dataset_len(&mut self) -> Result<Option<u64>>;
    /// One trial from the search's starting loop state: true when it ran, false when it ran
    /// out of memory; any other failure is an error.
    fn run(&mut self) -> Result<bool>;
    /// Lightning's `_reset_dataloaders`: the train and validation loaders asked for again.
    fn reset_dataloaders(&mut self) -> Result<()>;
    /// One of Lightning's info lines.
    fn info(&mut self, line: String);
}

/// The batch size the search ends with (before the caller restores the run).
pub fn search(t: &mut dyn Trials, cfg: &BatchSizeConfig) -> Result<i64> {
    let mode = cfg.validate()?;
    let init = i64::try_from(cfg.init_val).unwrap_or(i64::MAX);
    let max_val = i64::try_from(cfg.max_val).unwrap_or(i64::MAX);
    let (size, _) = adjust(t, Change::To(init), None, DEFAULT_MAX_VAL)?;
    match mode {
        Mode::Power => power(t, size, cfg.max_trials, max_val),
        Mode::Binsearch => binsearch(t, size, cfg.max_trials, cfg.margin, max_val),
    }
}

/// `_adjust_batch_size`'s own `max_val` default, which power mode's calls keep.
const DEFAULT_MAX_VAL: i64 = 8192;

#[derive(Clone, Copy)]
enum Change {
    Times(f64),
    To(i64),
}

/// Lightning's `_adjust_batch_size`: the new size and whether it differs; a size as large
/// as the dataset is kept (with Lightning's line) and counts as no change.
fn adjust(t: &mut dyn Trials, change: Change, desc: Option<&str>, max_val: i64) -> Result<(i64, bool)> {
    let size = t.batch_size()?;
    if let Some(len) = t.dataset_len()? {
        if size >= 0 && size as u64 >= len {
            t.info(format!("The batch size {size} is greater or equal than the length of your dataset: {len}."));
            return Ok((size, false));
        }
    }
    let mut new = match change {
        Change::To(v) => v,
        // Python's int(batch_size * factor): the float product truncated.
        Change::Times(f) => (size as f64 * f) as i64,
    };
    if new > max_val {
        if desc.is_some() {
            t.info(format!("Batch size {new} exceeds max_val limit {max_val}, capping at {max_val}"));
        }
        new = max_val;
    }
    if let Some(d) = desc {
        t.info(format!("Batch size {size} {d}, trying batch size {new}"));
    }
    t.set_batch_size(new)?;
    Ok((new, new != size))
}

/// Lightning's `_run_power_scaling`.
fn power(t: &mut dyn Trials, mut size: i64, max_trials: u64, max_val: i64) -> Result<i64> {
    let mut any_success = false;
    for i in 0..max_trials {
        if size >= max_val {
            t.info(format!("Reached the maximum batch size limit of {max_val}. Stopping search."));
            break;
        }
        if t.run()? {
            let last_successful = size;
            if i + 1 >= max_trials {
                size = last_successful;
                break;
            }
            let (new, changed) = adjust(t, Change::Times(2.0), Some("succeeded"), DEFAULT_MAX_VAL)?;
            size = new;
            if !changed {
                break;
            }
            t.reset_dataloaders()?;
            any_success = true;
        } else {
            (size, _) = adjust(t, Change::Times(0.5), Some("failed"), DEFAULT_MAX_VAL)?;
            t.reset_dataloaders()?;
            if any_success {
                break;
            }
        }
    }
    Ok(size)
}

/// Lightning's `_run_binsearch_scaling`, with the margin taken off at the end.
fn binsearch(t: &mut dyn Trials, mut size: i64, max_trials: u64, margin: f64, max_val: i64) -> Result<i64> {
    let (mut low, mut high) = (1i64, None::<i64>);
    let mut count = 0u64;
    loop {
        if size >= max_val {
            t.info(format!("Reached the maximum batch size limit of {max_val}. Stopping search."));
            break;
        }
        if t.run()? {
            let last_successful = size;
            count += 1;
            if count >= max_trials {
                size = last_successful;
                break;
            }
            low = size;
            // Python's `if high:` (a high of 0 counts as none).
            let (new, changed) = match high.filter(|&h| h != 0) {
                Some(h) => {
                    if h - low <= 1 {
                        break;
                    }
                    adjust(t, Change::To((h + low).div_euclid(2)), Some("succeeded"), max_val)?
                }
                None => adjust(t, Change::Times(2.0), Some("succeeded"), max_val)?,
            };
            size = new;
            if !changed {
                break;
            }
            t.reset_dataloaders()?;
        } else {
            let h = size;
            high = Some(h);
            let changed;
            (size, changed) = adjust(t, Change::To((h + low).div_euclid(2)), Some("failed"), DEFAULT_MAX_VAL)?;
            t.reset_dataloaders()?;
            if h - low <= 1 {
                break;
            }
            if !changed {
                // Lightning would run the same trial again forever.
                bail!("the batch size {h} ran out of memory and the search cannot lower it (it is as large as the dataset, which ends each change): give a smaller batch size to start from");
            }
        }
    }
    if margin > 0.0 {
        let reduced = ((size as f64 * (1.0 - margin)) as i64).max(1);
        if reduced != size {
            t.info(format!("Applying margin of {}, reducing batch size from {size} to {reduced}", percent(margin)));
            size = reduced;
            t.set_batch_size(size)?;
        }
    }
    Ok(size)
}

/// Python's `f"{x:.1%}"`.
fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake trainer: sizes above `fits` run out of memory; the dataset holds `len` items.
    struct Fake {
        field: i64,
        loader: i64,
        fits: i64,
        len: Option<u64>,
        tried: Vec<i64>,
        lines: Vec<String>,
    }

    impl Fake {
        fn new(field: i64, fits: i64, len: Option<u64>) -> Fake {
            Fake { field, loader: field, fits, len, tried: vec![], lines: vec![] }
        }
    }

    /// A trial that fails with something other than out of memory.
    struct Broken(Fake);

    impl Trials for Broken {
        fn batch_size(&mut self) -> Result<i64> {
            self.0.batch_size()
        }
        fn set_batch_size(&mut self, size: i64) -> Result<()> {
            self.0.set_batch_size(size)
        }
        fn dataset_len(&mut self) -> Result<Option<u64>> {
            self.0.dataset_len()
        }
        fn run(&mut self) -> Result<bool> {
            match self.0.tried.len() {
                0 => self.0.run(),
                _ => anyhow::bail!("training_step: ValueError: not a memory error"),
            }
        }
        fn reset_dataloaders(&mut self) -> Result<()> {
            self.0.reset_dataloaders()
        }
        fn info(&mut self, line: String) {
            self.0.info(line)
        }
    }

    impl Trials for Fake {
        fn batch_size(&mut self) -> Result<i64> {
            Ok(self.field)
        }
        fn set_batch_size(&mut self, size: i64) -> Result<()> {
            self.field = size;
            Ok(())
        }
        fn dataset_len(&mut self) -> Result<Option<u64>> {
            Ok(self.len)
        }
        fn run(&mut self) -> Result<bool> {
            self.tried.push(self.loader);
            Ok(self.loader <= self.fits)
        }
        fn reset_dataloaders(&mut self) -> Result<()> {
            self.loader = self.field;
            Ok(())
        }
        fn info(&mut self, line: String) {
            self.lines.push(line);
        }
    }

    fn cfg(mode: &str, max_trials: u64, init_val: u64) -> BatchSizeConfig {
        BatchSizeConfig { mode: mode.into(), max_trials, init_val, steps_per_trial: 1, ..BatchSizeConfig::default() }
    }

    #[test]
    fn without_running_out_of_memory_the_trials_decide() {
        // Lightning's test_scale_batch_size_max_trials_modes: (max_trials, mode, init_val) →
        // 8, 7, 4, 2 with no OOM (the module's own batch size is 2 there).
        for (trials, mode, init, want) in
            [(3, "power", 2, 8), (3, "binsearch", 2, 7), (1, "power", 4, 4), (0, "power", 2, 2)]
        {
            let mut f = Fake::new(2, i64::MAX, Some(1 << 20));
            assert_eq!(search(&mut f, &cfg(mode, trials, init)).expect("search"), want, "{trials} {mode} {init}");
        }
    }

    #[test]
    fn the_first_trial_runs_at_the_loaders_size_as_lightnings_does() {
        let mut f = Fake::new(5, i64::MAX, Some(64));
        assert_eq!(search(&mut f, &cfg("power", 3, 2)).expect("search"), 8);
        assert_eq!(f.tried, vec![5, 4, 8]);
        assert_eq!(
            f.lines,
            vec!["Batch size 2 succeeded, trying batch size 4", "Batch size 4 succeeded, trying batch size 8"]
        );
    }

    #[test]
    fn running_out_of_memory_halves_or_bisects() {
        // Lightning's test_dataloader_batch_size_updated_on_failure: init 500, max_trials 10,
        // sizes above 100 fail: power → 62, binsearch → 95 (100 less 5 %).
        let mut f = Fake::new(500, 100, Some(1000));
        assert_eq!(search(&mut f, &cfg("power", 10, 500)).expect("power"), 62);
        let mut f = Fake::new(500, 100, Some(1000));
        assert_eq!(search(&mut f, &cfg("binsearch", 10, 500)).expect("binsearch"), 95);
    }

    #[test]
    fn binsearchs_margin_takes_a_share_off_the_size_found() {
        // Lightning's test_scale_batch_size_margin_and_max_val: binsearch, max_trials 2, no
        // OOM, from 2: 4 unmargined; margins 0.1 and 0.2 give int(4·0.9) = int(4·0.8) = 3.
        for (margin, want) in [(0.0, 4), (0.1, 3), (0.2, 3)] {
            let mut f = Fake::new(2, i64::MAX, Some(1 << 20));
            let c = BatchSizeConfig { margin, ..cfg("binsearch", 2, 2) };
            assert_eq!(search(&mut f, &c).expect("search"), want, "margin {margin}");
            assert_eq!(f.field, want, "the field holds the margined size");
        }
    }

    #[test]
    fn max_val_caps_and_the_dataset_length_ends_the_search() {
        let mut f = Fake::new(2, i64::MAX, Some(1 << 20));
        let c = BatchSizeConfig { max_val: 8, ..cfg("binsearch", 5, 2) };
        assert!(search(&mut f, &c).expect("search") <= 8);
        let mut f = Fake::new(2, i64::MAX, Some(1 << 20));
        assert_eq!(search(&mut f, &BatchSizeConfig { max_val: 8, ..cfg("power", 5, 2) }).expect("search"), 8);
        let mut f = Fake::new(2, i64::MAX, Some(64));
        assert_eq!(search(&mut f, &cfg("power", 25, 64)).expect("search"), 64);
        assert_eq!(f.lines, vec!["The batch size 64 is greater or equal than the length of your dataset: 64."]);
    }

    #[test]
    fn an_error_other_than_out_of_memory_ends_the_search() {
        // Lightning's test_scale_batch_size_checkpoint_cleanup_on_error: the error propagates.
        for mode in ["power", "binsearch"] {
            let mut b = Broken(Fake::new(2, i64::MAX, Some(64)));
            let err = search(&mut b, &cfg(mode, 3, 2)).expect_err("propagates").to_string();
            assert!(err.contains("not a memory error"), "{err}");
        }
    }

    #[test]
    fn binsearch_stops_where_lightnings_would_try_the_same_size_forever() {
        // The loader's own 64 (as large as the dataset) runs out of memory: the field cannot
        // change, so the trial would repeat.
        let mut f = Fake::new(64, 32, Some(64));
        let err = search(&mut f, &cfg("binsearch", 25, 2)).expect_err("stops").to_string();
        assert!(err.contains("cannot lower it"), "{err}");
        assert!(f.tried.len() < 25, "{:?}", f.tried);
    }

    #[test]
    fn lightnings_checks_refuse_a_bad_mode_or_margin() {
        let err = cfg("ThisModeDoesNotExist", 1, 2).validate().expect_err("refused").to_string();
        assert!(err.starts_with("`mode` should be either of ('power', 'binsearch')"), "{err}");
        assert!(BatchSizeConfig { margin: 1.0, ..BatchSizeConfig::default() }.validate().is_err());
        assert_eq!(cfg("BinSearch", 1, 2).validate().expect("any case"), Mode::Binsearch);
    }
}
