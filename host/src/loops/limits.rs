//! How much a run does, resolved from the Trainer flags and the dataloaders' sizes, with
//! Lightning's rules: batch limits, validation cadence, sanity steps, stopping conditions,
//! fast_dev_run and overfit_batches.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::config::{parse_max_time, Limit, TrainerConfig};
use crate::context::Stage;
use crate::module::UNBOUNDED;

#[derive(Debug, Clone)]
pub struct LoopLimits {
    pub train_batches: usize,
    /// Per validation DataLoader (Lightning's `num_val_batches`); none, or all 0: no validation.
    pub val_batches: Vec<usize>,
    /// Per validation DataLoader, the sanity check's batches.
    pub sanity_steps: Vec<usize>,
    /// The sanity check's batches per DataLoader at most (`num_sanity_val_steps`; -1: all).
    pub sanity_cap: usize,
    /// Validate when (batch index + 1) is a multiple of this (counted across epochs when
    /// `check_val_every_n_epoch` is None).
    pub val_check_batch: usize,
    /// Validate after each pass's last batch: a train loader of unknown length with
    /// `val_check_interval` 1.0 (Lightning's `val_check_batch = inf`).
    pub val_at_pass_end: bool,
    pub check_val_every_n_epoch: Option<u64>,
    /// Validate when this many seconds passed since training started or the last
    /// validation (a time-based `val_check_interval`; batch counts then trigger none).
    pub val_check_seconds: Option<f64>,
    pub max_epochs: Option<u64>,
    pub max_steps: Option<u64>,
    pub min_epochs: u64,
    pub min_steps: u64,
    pub max_time: Option<Duration>,
    pub accumulate: u64,
    pub shuffle_train: bool,
    pub logger: bool,
    /// (value, by_norm)
    pub clip: Option<(f64, bool)>,
}

fn fast_dev(cfg: &TrainerConfig) -> Option<usize> {
    cfg.fast_dev_run.batches().map(|n| n as usize)
}

impl LoopLimits {
    /// `train_len`/`val_lens`: batches in the train DataLoader and in each validation one
    /// (none: no validation data).
    pub fn for_fit(cfg: &TrainerConfig, train_len: usize, val_lens: &[usize]) -> Result<Self> {
        let overfit = !cfg.overfit_batches.is_zero();
        let dev = fast_dev(cfg);
        let (train_limit, val_limit) = if overfit {
            (cfg.overfit_batches, cfg.overfit_batches)
        } else {
            (cfg.limit_train_batches, cfg.limit_val_batches)
        };
        // overfit_batches sets the train and val limits over fast_dev_run's (Lightning's
        // `_init_debugging_flags` applies it last); fast_dev_run still sets max_steps.
        let train_batches = match dev {
            Some(n) if !overfit => train_len.min(n),
            _ => train_limit.apply(train_len, "limit_train_batches")?,
        };
        // Each DataLoader limited on its own, as Lightning's `_parse_num_batches` per loader.
        let val_batches = val_lens
            .iter()
            .map(|&v| match dev {
                Some(n) if !overfit => Ok(v.min(n)),
                _ => val_limit.apply(v, "limit_val_batches"),
            })
            .collect::<Result<Vec<usize>>>()?;
        let (interval, every) = if dev.is_some() {
            (Some(Limit::Fraction(1.0)), Some(1))
        } else {
            (cfg.val_check_interval().limit(), cfg.check_val_every_n_epoch.epochs()?)
        };
        // By time (not under fast_dev_run): no batch count triggers a validation.
        let val_check_seconds = if dev.is_some() { None } else { cfg.val_check_interval().seconds()? };
        let val_check_batch = match interval {
            None => usize::MAX,
            // A train loader of unknown length validates at each pass's end (1.0) or every k
            // batches (an int), as Lightning; a fraction of it means nothing.
            Some(Limit::Fraction(f)) if train_len == UNBOUNDED && f != 1.0 => bail!(
                "val_check_interval = {f}: with a train DataLoader of unknown length (an IterableDataset without __len__) it must be time based, 1.0 or an int (validate every k training batches), as Lightning requires"
            ),
            Some(Limit::Fraction(_)) if train_len == UNBOUNDED => UNBOUNDED,
            Some(Limit::Fraction(f)) => ((train_batches as f64 * f) as usize).max(1),
            Some(Limit::Batches(k)) => {
                let k = k as usize;
                // Lightning refuses it by the limit set, whatever the validation loader holds.
                // (Nothing to train, nothing to refuse: Lightning returns before the check.)
                if every.is_some() && k > train_batches && train_batches > 0 && !val_limit.is_zero() {
                    bail!("val_check_interval ({k}) must be less than or equal to the number of the training batches ({train_batches}); set check_val_every_n_epoch = \"none\" to count batches across epochs");
                }
                k.max(1)
            }
        };
        let val_at_pass_end = train_len == UNBOUNDED && interval == Some(Limit::Fraction(1.0));
        let sanity_cap = match cfg.num_sanity_val_steps {
            _ if dev.is_some() => 0,
            n if n < 0 => usize::MAX,
            n => n as usize,
        };
        let sanity_steps = val_batches.iter().map(|&v| v.min(sanity_cap)).collect();
        let max_steps = match dev {
            Some(n) => Some(n as u64),
            None if cfg.max_steps >= 0 => Some(cfg.max_steps as u64),
            None => None,
        };
        let max_time = match &cfg.max_time {
            Some(t) => Some(parse_max_time(t)?),
            None => None,
        };
        let min_epochs = cfg.min_epochs.unwrap_or(if cfg.min_steps.is_some() { 1 } else { 0 });
        let clip = match cfg.gradient_clip_val {
            Some(v) if v > 0.0 => Some((v, cfg.gradient_clip_algorithm != "value")),
            _ => None,
        };
        Ok(LoopLimits {
            train_batches,
            val_batches,
            sanity_steps,
            sanity_cap,
            val_check_batch,
            val_at_pass_end,
            check_val_every_n_epoch: every,
            val_check_seconds,
            max_epochs: cfg.effective_max_epochs(),
            max_steps,
            min_epochs,
            min_steps: cfg.min_steps.unwrap_or(0),
            max_time,
            accumulate: cfg.accumulate_grad_batches.max(1),
            shuffle_train: !overfit,
            logger: cfg.logger && dev.is_none(),
            clip,
        })
    }

    /// Batches of an evaluation or prediction run. overfit_batches is Lightning's
    /// `limit_val_batches` whenever set, in `validate` too (over fast_dev_run).
    /// Whether `epoch` validates at all (Lightning's `_should_check_val_epoch`).
    /// The training progress bar's total for an epoch starting at `global_step`: the epoch's
    /// batches or, with no epoch limit and `max_steps` (Lightning's `max_epochs=-1`), the
    /// steps left when fewer (Lightning's `total_train_batches`); UNBOUNDED: unknown.
    pub fn train_bar_total(&self, global_step: u64) -> usize {
        match (self.max_epochs, self.max_steps) {
            (None, Some(m)) if m > 0 => {
                let left = usize::try_from(m.saturating_sub(global_step)).unwrap_or(UNBOUNDED);
                self.train_batches.min(left)
            }
            _ => self.train_batches,
        }
    }

    pub fn validates_in(&self, epoch: u64) -> bool {
        self.check_val_every_n_epoch.is_none_or(|n| (epoch + 1) % n.max(1) == 0)
    }

    /// The limits of a validate, test or predict run: fit's settings that only concern
    /// training (its batch limit, overfit_batches, val_check_interval) play no part there, as
    /// in Lightning (a fraction of a training loader that does not exist is no error).
    pub fn for_evaluation(cfg: &TrainerConfig) -> Result<LoopLimits> {
        let eval_only = TrainerConfig {
            limit_train_batches: Limit::Batches(1),
            overfit_batches: Limit::Batches(0),
            val_check_interval: None,
            check_val_every_n_epoch: crate::config::EveryNEpochs::Epochs(1),
            ..cfg.clone()
        };
        LoopLimits::for_fit(&eval_only, 1, &[])
    }

    /// Whether a fit validates at all: some validation DataLoader has batches (Lightning's
    /// `skip` is `sum(max_batches) == 0`).
    pub fn validates(&self) -> bool {
        self.val_batches.iter().any(|&b| b > 0)
    }

    /// Whether the sanity check runs (Lightning: `num_sanity_val_steps > 0` and not `skip`).
    pub fn sanity_checks(&self) -> bool {
        self.sanity_steps.iter().any(|&b| b > 0)
    }

    pub fn for_stage(cfg: &TrainerConfig, stage: Stage, len: usize) -> Result<usize> {
        if matches!(stage, Stage::Validate | Stage::SanityCheck) && !cfg.overfit_batches.is_zero() {
            return cfg.overfit_batches.apply(len, "overfit_batches");
        }
        if let Some(n) = fast_dev(cfg) {
            return Ok(len.min(n));
        }
        match stage {
            Stage::Test => cfg.limit_test_batches.apply(len, "limit_test_batches"),
            Stage::Predict => cfg.limit_predict_batches.apply(len, "limit_predict_batches"),
            _ => cfg.limit_val_batches.apply(len, "limit_val_batches"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EveryNEpochs, FastDevRun};

    #[test]
    fn the_train_bar_counts_the_steps_left_without_an_epoch_limit() {
        // Lightning's test_tqdm_total_steps_with_iterator_no_length: an iterator of unknown
        // length, max_epochs=-1, max_steps 7: the bar's total is 7 (then what is left).
        let cfg = TrainerConfig { max_epochs: Some(-1), max_steps: 7, ..TrainerConfig::default() };
        let l = LoopLimits::for_fit(&cfg, UNBOUNDED, &[]).unwrap();
        assert_eq!((l.train_bar_total(0), l.train_bar_total(5)), (7, 2));
        let sized = LoopLimits::for_fit(&cfg, 4, &[]).unwrap();
        assert_eq!((sized.train_bar_total(0), sized.train_bar_total(5)), (4, 2));
        // An epoch limit: the epoch's batches, as Lightning.
        let cfg = TrainerConfig { max_epochs: Some(3), max_steps: 7, ..TrainerConfig::default() };
        assert_eq!(LoopLimits::for_fit(&cfg, 4, &[]).unwrap().train_bar_total(5), 4);
    }

    #[test]
    fn val_check_interval_as_fraction_and_batches() {
        let mut cfg = TrainerConfig {
            val_check_interval: Some(crate::config::ValCheckInterval::Every(Limit::Fraction(0.3))),
            ..TrainerConfig::default()
        };
        assert_eq!(LoopLimits::for_fit(&cfg, 10, &[4]).unwrap().val_check_batch, 3);
        cfg.val_check_interval = Some(crate::config::ValCheckInterval::Every(Limit::Batches(11)));
        assert!(LoopLimits::for_fit(&cfg, 10, &[4]).is_err());
        // Refused by the limit set, even with no validation loader (Lightning's fit loop).
        assert!(LoopLimits::for_fit(&cfg, 10, &[]).is_err());
        cfg.check_val_every_n_epoch = EveryNEpochs::Named("none".into());
        assert_eq!(LoopLimits::for_fit(&cfg, 10, &[4]).unwrap().val_check_batch, 11);
    }

    #[test]
    fn a_train_loader_of_unknown_length_takes_ints_and_one_point_zero() {
        let mut cfg = TrainerConfig::default();
        let l = LoopLimits::for_fit(&cfg, UNBOUNDED, &[UNBOUNDED]).unwrap();
        assert_eq!(
            (l.train_batches, l.val_batches, l.sanity_steps, l.val_at_pass_end),
            (UNBOUNDED, vec![UNBOUNDED], vec![2], true)
        );
        cfg.limit_train_batches = Limit::Batches(7);
        let l = LoopLimits::for_fit(&cfg, UNBOUNDED, &[3]).unwrap();
        assert_eq!((l.train_batches, l.val_batches, l.val_at_pass_end), (7, vec![3], true));
        cfg.limit_train_batches = Limit::Fraction(0.5);
        let err = LoopLimits::for_fit(&cfg, UNBOUNDED, &[]).unwrap_err().to_string();
        assert!(err.contains("limit_train_batches = 0.5") && err.contains("1.0 or an int"), "{err}");
        cfg.limit_train_batches = Limit::Fraction(1.0);
        cfg.val_check_interval = Some(crate::config::ValCheckInterval::Every(Limit::Fraction(0.25)));
        let err = LoopLimits::for_fit(&cfg, UNBOUNDED, &[3]).unwrap_err().to_string();
        assert!(err.contains("val_check_interval = 0.25"), "{err}");
        cfg.val_check_interval = Some(crate::config::ValCheckInterval::Every(Limit::Batches(5)));
        let l = LoopLimits::for_fit(&cfg, UNBOUNDED, &[3]).unwrap();
        assert_eq!((l.val_check_batch, l.val_at_pass_end), (5, false));
        // A sized train loader is untouched by any of this.
        assert!(!LoopLimits::for_fit(&TrainerConfig::default(), 10, &[3]).unwrap().val_at_pass_end);
    }

    #[test]
    fn fast_dev_run_limits_everything() {
        let cfg = TrainerConfig { fast_dev_run: FastDevRun::Batches(3), ..TrainerConfig::default() };
        let l = LoopLimits::for_fit(&cfg, 10, &[10]).unwrap();
        assert_eq!(
            (l.train_batches, l.val_batches, l.sanity_steps, l.max_steps, l.max_epochs, l.logger),
            (3, vec![3], vec![0], Some(3), Some(1), false)
        );
    }

    #[test]
    fn each_validation_dataloader_is_limited_on_its_own() {
        // Lightning's `_parse_num_batches` per DataLoader; the sanity check takes
        // min(num_sanity_val_steps, batches) of each.
        let cfg = TrainerConfig { limit_val_batches: Limit::Fraction(0.5), ..TrainerConfig::default() };
        let l = LoopLimits::for_fit(&cfg, 10, &[4, 0, 6]).unwrap();
        assert_eq!((l.val_batches.clone(), l.sanity_steps.clone()), (vec![2, 0, 3], vec![2, 0, 2]));
        assert!(l.validates() && l.sanity_checks());
        let cfg = TrainerConfig { limit_val_batches: Limit::Batches(3), ..TrainerConfig::default() };
        let l = LoopLimits::for_fit(&cfg, 10, &[4, 1]).unwrap();
        assert_eq!(l.val_batches, [3, 1]);
        let none = LoopLimits::for_fit(&cfg, 10, &[0, 0]).unwrap();
        assert!(!none.validates() && !none.sanity_checks());
    }
}
