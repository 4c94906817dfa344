//! Lightning's logger connector and result collection. Logged values arrive as tensors and
//! stay tensors: step values are kept until a logger or the progress bar reads them, epoch
//! values accumulate on the device (weighted by batch size for means). Reading a value is
//! the only host sync, and happens only when something shows or writes it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Result};
use tch::{Kind, Tensor};

use crate::context::{LogRecord, ReduceFx};
use crate::error::torch_message;

/// Where a metric goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routing {
    pub prog_bar: bool,
    pub logger: bool,
}

struct EpochAcc {
    value: Tensor,
    weight: f64,
    reduce: ReduceFx,
    routing: Routing,
}

/// The values logged in one loop (training or an evaluation run).
#[derive(Default)]
pub struct ResultCollection {
    step: BTreeMap<String, (Tensor, Routing)>,
    epoch: BTreeMap<String, EpochAcc>,
    /// Names logged with both on_step and on_epoch (kept as `name_step` / `name_epoch`).
    forked: BTreeSet<String>,
}

fn as_float(t: &Tensor) -> Result<Tensor> {
    t.f_to_kind(Kind::Double).map_err(|e| anyhow!("logging: {}", torch_message(&e)))
}

impl ResultCollection {
    /// Takes what a hook logged. `batch_size` weights epoch means (Lightning's default).
    pub fn add(&mut self, records: Vec<LogRecord>, batch_size: i64) -> Result<()> {
        for r in records {
            let routing = Routing { prog_bar: r.prog_bar, logger: r.logger };
            let both = r.on_step && r.on_epoch;
            if both {
                self.forked.insert(r.name.clone());
            }
            let value = crate::engine::scalar::zero_dim(as_float(&r.value)?)
                .map_err(|e| anyhow!("logging `{}`: {}", r.name, torch_message(&e)))?;
            if r.on_step {
                let key = if both { format!("{}_step", r.name) } else { r.name.clone() };
                self.step.insert(key, (value.shallow_clone(), routing));
            }
            if r.on_epoch {
                let key = if both { format!("{}_epoch", r.name) } else { r.name.clone() };
                let w = r.batch_size.map(|b| b as f64).unwrap_or(batch_size as f64);
                let err = |e: tch::TchError| anyhow!("logging `{}`: {}", r.name, torch_message(&e));
                let contrib = if r.reduce_fx == ReduceFx::Mean {
                    value.f_mul_scalar(w).map_err(err)?
                } else {
                    value.shallow_clone()
                };
                match self.epoch.get_mut(&key) {
                    None => {
                        self.epoch.insert(key, EpochAcc { value: contrib, weight: w, reduce: r.reduce_fx, routing });
                    }
                    Some(acc) if acc.reduce != r.reduce_fx => {
                        return Err(anyhow!(
                            "`{}` was logged with reduce_fx {:?} and then {:?}; one metric has one reduction",
                            r.name,
                            acc.reduce,
                            r.reduce_fx
                        ));
                    }
                    Some(acc) => {
                        acc.value = match acc.reduce {
                            ReduceFx::Mean | ReduceFx::Sum => acc.value.f_add(&contrib),
                            ReduceFx::Max => acc.value.f_maximum(&contrib),
                            ReduceFx::Min => acc.value.f_minimum(&contrib),
                        }
                        .map_err(err)?;
                        acc.weight += w;
                    }
                }
            }
        }
        Ok(())
    }

    /// The latest step values (still tensors).
    pub fn step_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        self.step.iter().map(|(k, (v, r))| (k.clone(), v.shallow_clone(), *r)).collect()
    }

    /// Epoch values reduced (still tensors).
    pub fn epoch_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        self.epoch
            .iter()
            .map(|(k, a)| {
                let v = if a.reduce == ReduceFx::Mean && a.weight > 0.0 {
                    a.value.f_div_scalar(a.weight).unwrap_or_else(|_| a.value.shallow_clone())
                } else {
                    a.value.shallow_clone()
                };
                (k.clone(), v, a.routing)
            })
            .collect()
    }

    /// Lightning's `callback_metrics` view of the step values: each one, and a metric logged
    /// with both on_step and on_epoch also under its bare name (`loss` beside `loss_step`).
    pub fn step_callback_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        with_bare_names(self.step_metrics(), &self.forked, "_step")
    }

    /// As [`Self::step_callback_metrics`], for the epoch values: the bare name holds the
    /// epoch's value (`val_loss` beside `val_loss_epoch`, what `monitor="val_loss"` reads).
    pub fn epoch_callback_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        with_bare_names(self.epoch_metrics(), &self.forked, "_epoch")
    }

    /// The step values read once each: Lightning's callback view of them (forked ones under
    /// their bare name too, as [`Self::step_callback_metrics`]) and those for the loggers.
    pub fn read_step(&self) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
        let (mut callback, mut logged) = (BTreeMap::new(), BTreeMap::new());
        for (k, (v, r)) in &self.step {
            let Ok(x) = v.f_double_value(&[]) else { continue };
            if r.logger {
                logged.insert(k.clone(), x);
            }
            callback.insert(k.clone(), x);
            // After the key itself: `name_step` sorts after `name`, so the bare name wins.
            if let Some(name) = k.strip_suffix("_step").filter(|n| self.forked.contains(*n)) {
                callback.insert(name.to_string(), x);
            }
        }
        (callback, logged)
    }

    pub fn clear_step(&mut self) {
        self.step.clear();
    }

    pub fn reset(&mut self) {
        self.step.clear();
        self.epoch.clear();
        self.forked.clear();
    }
}

fn with_bare_names(
    mut metrics: Vec<(String, Tensor, Routing)>,
    forked: &BTreeSet<String>,
    suffix: &str,
) -> Vec<(String, Tensor, Routing)> {
    let bare: Vec<_> = metrics
        .iter()
        .filter_map(|(k, v, r)| {
            let name = k.strip_suffix(suffix)?;
            forked.contains(name).then(|| (name.to_string(), v.shallow_clone(), *r))
        })
        .collect();
    metrics.extend(bare);
    metrics
}

/// Reads tensors to numbers: the one place a logged value syncs with the device.
pub fn read(metrics: &[(String, Tensor, Routing)], keep: impl Fn(&Routing) -> bool) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .filter(|(_, _, r)| keep(r))
        .filter_map(|(k, v, _)| v.f_double_value(&[]).ok().map(|x| (k.clone(), x)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, v: f64, on_step: bool, on_epoch: bool, reduce: ReduceFx) -> LogRecord {
        LogRecord {
            name: name.into(),
            value: Tensor::from(v),
            prog_bar: true,
            logger: true,
            on_step,
            on_epoch,
            reduce_fx: reduce,
            batch_size: None,
        }
    }

    #[test]
    fn epoch_mean_is_weighted_by_batch_size() {
        let mut rc = ResultCollection::default();
        rc.add(vec![rec("acc", 1.0, false, true, ReduceFx::Mean)], 30).unwrap();
        rc.add(vec![rec("acc", 0.0, false, true, ReduceFx::Mean)], 10).unwrap();
        let m = read(&rc.epoch_metrics(), |_| true);
        assert!((m["acc"] - 0.75).abs() < 1e-12);
    }

    #[test]
    fn step_and_epoch_get_suffixes() {
        let mut rc = ResultCollection::default();
        rc.add(vec![rec("loss", 2.0, true, true, ReduceFx::Max)], 4).unwrap();
        rc.add(vec![rec("loss", 3.0, true, true, ReduceFx::Max)], 4).unwrap();
        assert_eq!(read(&rc.step_metrics(), |_| true)["loss_step"], 3.0);
        assert_eq!(read(&rc.epoch_metrics(), |_| true)["loss_epoch"], 3.0);
        assert!(!read(&rc.epoch_metrics(), |_| true).contains_key("loss"), "loggers get the suffixed names only");
    }

    #[test]
    fn callback_metrics_also_carry_a_forked_metrics_bare_name() {
        // Lightning's callback_metrics: `loss` beside `loss_step` (the step's value) and
        // `loss_epoch` (the epoch's), so a monitor or a filename template can name `loss`.
        let mut rc = ResultCollection::default();
        rc.add(vec![rec("loss", 2.0, true, true, ReduceFx::Mean), rec("acc", 0.5, false, true, ReduceFx::Mean)], 4)
            .unwrap();
        rc.add(vec![rec("loss", 4.0, true, true, ReduceFx::Mean)], 4).unwrap();
        let step = read(&rc.step_callback_metrics(), |_| true);
        assert_eq!((step["loss"], step["loss_step"]), (4.0, 4.0));
        let epoch = read(&rc.epoch_callback_metrics(), |_| true);
        assert_eq!((epoch["loss"], epoch["loss_epoch"], epoch["acc"]), (3.0, 3.0, 0.5));
        assert!(!epoch.contains_key("acc_epoch"), "only forked metrics get a bare twin");
    }
}
