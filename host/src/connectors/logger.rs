//! Lightning's logger connector and result collection. Logged values arrive as tensors and
//! stay tensors: step values are kept until a logger or the progress bar reads them, epoch
//! values accumulate on the device (weighted by batch size for means). Reading a value is
//! the only host sync, and happens only when something shows or writes it.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use tch::{Kind, Tensor};

use crate::context::{LogRecord, ReduceFx};
use crate::error::torch_message;
use crate::hooks::Hook;

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
    meta: Meta,
}

/// What a logged value's entry keeps of how it was logged.
#[derive(Clone, PartialEq)]
struct Meta {
    /// A forked metric's bare name (`val_loss` for `val_loss_epoch`, with the DataLoader's
    /// suffix when it has one): callbacks see the value under it too.
    bare: Option<String>,
    /// The DataLoader it was logged under (Lightning's `_Metadata.dataloader_idx`).
    dataloader: Option<u32>,
}

/// The values logged in one loop (training or an evaluation run).
#[derive(Default)]
pub struct ResultCollection {
    step: BTreeMap<String, (Tensor, Routing, Meta)>,
    epoch: BTreeMap<String, EpochAcc>,
    /// The DataLoader each (hook, name) was first logged under: Lightning's registered
    /// metadata, which a later call in that hook must match.
    registered: BTreeMap<(Option<&'static str>, String), Option<u32>>,
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
            let bare = both.then(|| r.shown(""));
            let meta = Meta { bare, dataloader: r.dataloader_idx };
            // Lightning's metadata check: one name, with add_dataloader_idx=False, from two
            // DataLoaders in one hook (its key is the hook and the name; the index differs).
            match self.registered.get(&(r.hook.map(Hook::name), r.shown(""))) {
                Some(first) if *first != r.dataloader_idx => {
                    return Err(anyhow!(
                        "You called `self.log({}, ...)` twice in `{}` with different arguments (from DataLoader {} and then {}, with `add_dataloader_idx=False`). This is not allowed",
                        r.name,
                        r.hook.map_or("this hook", Hook::name),
                        first.map_or("none".into(), |i| i.to_string()),
                        r.dataloader_idx.map_or("none".into(), |i| i.to_string()),
                    ));
                }
                Some(_) => {}
                None => {
                    self.registered.insert((r.hook.map(Hook::name), r.shown("")), r.dataloader_idx);
                }
            }
            let value = crate::engine::scalar::zero_dim(as_float(&r.value)?)
                .map_err(|e| anyhow!("logging `{}`: {}", r.name, torch_message(&e)))?;
            if r.on_step {
                let key = r.shown(if both { "_step" } else { "" });
                self.step.insert(key, (value.shallow_clone(), routing, meta.clone()));
            }
            if r.on_epoch {
                let key = r.shown(if both { "_epoch" } else { "" });
                let w = r.batch_size.map(|b| b as f64).unwrap_or(batch_size as f64);
                let err = |e: tch::TchError| anyhow!("logging `{}`: {}", r.name, torch_message(&e));
                let contrib = if r.reduce_fx == ReduceFx::Mean {
                    value.f_mul_scalar(w).map_err(err)?
                } else {
                    value.shallow_clone()
                };
                match self.epoch.get_mut(&key) {
                    None => {
                        let acc = EpochAcc { value: contrib, weight: w, reduce: r.reduce_fx, routing, meta };
                        self.epoch.insert(key, acc);
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
        self.step.iter().map(|(k, (v, r, _))| (k.clone(), v.shallow_clone(), *r)).collect()
    }

    /// Epoch values reduced (still tensors).
    pub fn epoch_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        self.epoch.iter().map(|(k, a)| (k.clone(), a.reduced(), a.routing)).collect()
    }

    /// The epoch values logged under DataLoader `dataloader` (None: outside any, or with a
    /// single DataLoader): Lightning's results while `results.dataloader_idx` is that, what
    /// `trainer.validate` returns for each DataLoader.
    pub fn epoch_metrics_of(&self, dataloader: Option<u32>) -> Vec<(String, Tensor, Routing)> {
        let of = self.epoch.iter().filter(|(_, a)| a.meta.dataloader == dataloader);
        of.map(|(k, a)| (k.clone(), a.reduced(), a.routing)).collect()
    }

    /// Lightning's `callback_metrics` view of the step values: each one, and a metric logged
    /// with both on_step and on_epoch also under its bare name (`loss` beside `loss_step`).
    pub fn step_callback_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        let mut out = self.step_metrics();
        for (v, r, m) in self.step.values() {
            if let Some(bare) = &m.bare {
                out.push((bare.clone(), v.shallow_clone(), *r));
            }
        }
        out
    }

    /// As [`Self::step_callback_metrics`], for the epoch values: the bare name holds the
    /// epoch's value (`val_loss` beside `val_loss_epoch`, what `monitor="val_loss"` reads).
    pub fn epoch_callback_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        self.epoch_callback_view(|_| true)
    }

    /// As [`Self::epoch_callback_metrics`], for the values logged under DataLoader
    /// `dataloader` only (see [`Self::epoch_metrics_of`]).
    pub fn epoch_callback_metrics_of(&self, dataloader: Option<u32>) -> Vec<(String, Tensor, Routing)> {
        self.epoch_callback_view(|m| m.dataloader == dataloader)
    }

    fn epoch_callback_view(&self, keep: impl Fn(&Meta) -> bool) -> Vec<(String, Tensor, Routing)> {
        let kept: Vec<_> = self.epoch.iter().filter(|(_, a)| keep(&a.meta)).collect();
        let mut out: Vec<_> = kept.iter().map(|(k, a)| ((*k).clone(), a.reduced(), a.routing)).collect();
        for (_, a) in kept {
            if let Some(bare) = &a.meta.bare {
                out.push((bare.clone(), a.reduced(), a.routing));
            }
        }
        out
    }

    /// The step values read once each: Lightning's callback view of them (forked ones under
    /// their bare name too, as [`Self::step_callback_metrics`]) and those for the loggers.
    pub fn read_step(&self) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
        let (mut callback, mut logged) = (BTreeMap::new(), BTreeMap::new());
        let mut bare = Vec::new();
        for (k, (v, r, m)) in &self.step {
            let Ok(x) = v.f_double_value(&[]) else { continue };
            if r.logger {
                logged.insert(k.clone(), x);
            }
            callback.insert(k.clone(), x);
            if let Some(name) = &m.bare {
                bare.push((name.clone(), x));
            }
        }
        // After the keys themselves: the bare name wins over a value logged under that name.
        callback.extend(bare);
        (callback, logged)
    }

    pub fn clear_step(&mut self) {
        self.step.clear();
    }

    pub fn reset(&mut self) {
        self.step.clear();
        self.epoch.clear();
        self.registered.clear();
    }
}

impl EpochAcc {
    fn reduced(&self) -> Tensor {
        if self.reduce == ReduceFx::Mean && self.weight > 0.0 {
            self.value.f_div_scalar(self.weight).unwrap_or_else(|_| self.value.shallow_clone())
        } else {
            self.value.shallow_clone()
        }
    }
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
            hook: Some(Hook::ValidationStep),
            value: Tensor::from(v),
            prog_bar: true,
            logger: true,
            on_step,
            on_epoch,
            reduce_fx: reduce,
            batch_size: None,
            dataloader_idx: None,
            add_dataloader_idx: true,
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

    #[test]
    fn a_dataloaders_values_carry_its_suffix_after_the_fork() {
        // Lightning's `_forked_name`: `val_loss_epoch/dataloader_idx_1`, bare
        // `val_loss/dataloader_idx_1`; each DataLoader's epoch values apart.
        let mut rc = ResultCollection::default();
        let dl = |name: &str, v: f64, i: u32, add: bool| LogRecord {
            dataloader_idx: Some(i),
            add_dataloader_idx: add,
            ..rec(name, v, true, true, ReduceFx::Mean)
        };
        rc.add(vec![dl("val_loss", 2.0, 0, true), dl("acc_0", 0.5, 0, false)], 4).unwrap();
        rc.add(vec![dl("val_loss", 4.0, 1, true)], 4).unwrap();
        let epoch = read(&rc.epoch_callback_metrics(), |_| true);
        assert_eq!(epoch["val_loss_epoch/dataloader_idx_0"], 2.0);
        assert_eq!(epoch["val_loss/dataloader_idx_1"], 4.0);
        assert_eq!(epoch["acc_0"], 0.5, "add_dataloader_idx=False keeps the name as given");
        let of1: Vec<String> = rc.epoch_metrics_of(Some(1)).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(of1, ["val_loss_epoch/dataloader_idx_1"]);
        let of0 = read(&rc.epoch_metrics_of(Some(0)), |_| true);
        assert_eq!(of0.keys().collect::<Vec<_>>(), ["acc_0_epoch", "val_loss_epoch/dataloader_idx_0"]);
        // The same unsuffixed name from another DataLoader in the same hook is refused, as
        // Lightning refuses it (on the step alone too); from another hook it is another metric.
        let err = rc.add(vec![dl("acc_0", 0.1, 1, false)], 4).unwrap_err().to_string();
        assert!(err.contains("twice in `validation_step` with different arguments"), "{err}");
        let step_only = LogRecord { on_epoch: false, ..dl("seen", 1.0, 0, false) };
        rc.add(vec![step_only], 4).unwrap();
        let err = rc.add(vec![LogRecord { on_epoch: false, ..dl("seen", 1.0, 1, false) }], 4).unwrap_err();
        assert!(err.to_string().contains("twice in"), "{err}");
        let at_epoch_end =
            LogRecord { hook: Some(Hook::OnValidationEpochEnd), dataloader_idx: None, ..dl("acc_0", 1.0, 0, false) };
        rc.add(vec![at_epoch_end], 1).expect("another hook's");
    }
}
