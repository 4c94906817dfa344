//! Lightning's logger connector and result collection. Logged values arrive as tensors and
//! stay tensors: a step value is kept until the metric is logged again or the loop's results
//! are reset (Lightning's forward cache: a row shows the latest value of every metric logged
//! so far in the epoch), epoch values accumulate on the device (weighted by batch size for
//! means) in the value's float32/float64 dtype, as Lightning's `_ResultMetric` does. Reading a
//! value is the only host sync, and happens only when something shows or writes it.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use tch::{Kind, Tensor};

use crate::context::{LogRecord, ReduceFx};
use crate::distributed::ddp::Syncer;
use crate::error::torch_message;
use crate::hooks::Hook;

/// Where a metric goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routing {
    pub prog_bar: bool,
    pub logger: bool,
}

/// How a value was logged: Lightning's `_Metadata`, which every later call of the same hook
/// and name must repeat.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Meta {
    routing: (bool, bool),
    on_step: bool,
    on_epoch: bool,
    reduce: ReduceFx,
    add_dataloader_idx: bool,
    /// The DataLoader it was logged under (Lightning's `_Metadata.dataloader_idx`).
    dataloader: Option<u32>,
    /// Lightning's `sync_dist`.
    sync_dist: bool,
}

/// One logged metric, Lightning's `_ResultMetric`: keyed by the hook that logs it and its
/// name (with the DataLoader's suffix), so one name from two hooks is two metrics.
struct Entry {
    name: String,
    /// `/dataloader_idx_<i>` when the name carries its DataLoader, else empty.
    suffix: String,
    meta: Meta,
    /// This batch's value (on_step).
    step: Option<Tensor>,
    /// The epoch's accumulated value and the weight of a mean (on_epoch).
    epoch: Option<(Tensor, f64)>,
}

impl Entry {
    fn routing(&self) -> Routing {
        Routing { prog_bar: self.meta.routing.0, logger: self.meta.routing.1 }
    }

    /// Lightning's `_forked_name`: `name_step`/`name_epoch` for a metric logged on both, the
    /// DataLoader's suffix after it.
    fn shown(&self, fork: &str) -> String {
        let fork = if self.meta.on_step && self.meta.on_epoch { fork } else { "" };
        format!("{}{fork}{}", self.name, self.suffix)
    }

    /// The name callbacks also see a forked metric under (`val_loss` beside `val_loss_epoch`).
    fn bare(&self) -> Option<String> {
        (self.meta.on_step && self.meta.on_epoch).then(|| format!("{}{}", self.name, self.suffix))
    }

    /// Lightning's `_ResultMetric.compute`: a mean is the weighted sum divided by the summed
    /// batch sizes in the sum's dtype (float32 for float32 values: a float64 division would
    /// round differently). With `sync_dist` in a distributed run, the sum and the batch sizes
    /// are reduced across the ranks first (every rank reads its metrics at the same points).
    fn reduced(&self, sync: Option<&Syncer>) -> Option<Tensor> {
        let (value, weight) = self.epoch.as_ref()?;
        if let (Some(s), true) = (sync, self.meta.sync_dist) {
            let synced = (|| -> Result<Tensor> {
                let v = s.reduce(value, self.meta.reduce)?;
                if self.meta.reduce != ReduceFx::Mean {
                    return Ok(v);
                }
                let total = Tensor::from(s.mean_count(*weight)? as i64).f_to_device(v.device())?;
                Ok(v.f_div(&total)?)
            })();
            match synced {
                Ok(v) => return Some(v),
                // The run's next collective fails as well and ends it.
                Err(e) => tracing::warn!("`{}`: {e:#}", self.name),
            }
        }
        Some(if self.meta.reduce == ReduceFx::Mean {
            // By an int64 tensor on the value's device, as Lightning's `cumulated_batch_size`:
            // CUDA divides by a CPU scalar as a multiplication by its reciprocal (an ulp off).
            let total = Tensor::from(*weight as i64).f_to_device(value.device());
            total.and_then(|t| value.f_div(&t)).unwrap_or_else(|_| value.shallow_clone())
        } else {
            value.shallow_clone()
        })
    }
}

/// The values logged in one loop (training or an evaluation run), in the order their metrics
/// were first logged: where two share a shown name, the later one's value is read (as
/// Lightning's dict of results gives it).
#[derive(Default)]
pub struct ResultCollection {
    entries: Vec<Entry>,
    index: BTreeMap<(Option<&'static str>, String), usize>,
    /// A distributed run's reduction for `sync_dist` values (None: one process).
    sync: Option<Syncer>,
}

/// Lightning's warning (`_ResultMetric.update`) when a logged tensor is not floating point.
fn warn_not_floating(name: &str, hook: &str) {
    let name = crate::callbacks::py_format::repr_str(name);
    crate::warnings::warn_once(&format!(
        "You called `self.log({name}, ...)` in your `{hook}` but the value needs to be floating to be reduced. \
         Converting it to torch.float32. You can silence this warning by converting the value to floating point \
         yourself. If you don't intend to reduce the value (for instance when logging the global step or epoch) \
         then you can use `self.logger.log_metrics({{{name}: ...}})` instead."
    ));
}

/// Lightning's `_ResultMetric.update`: a value stays float32 or float64; any other dtype
/// (an integer, a half) becomes float32 (the default dtype).
fn as_float(t: &Tensor) -> Result<Tensor> {
    match t.f_kind() {
        Ok(Kind::Float | Kind::Double) => Ok(t.shallow_clone()),
        _ => t.f_to_kind(Kind::Float).map_err(|e| anyhow!("logging: {}", torch_message(&e))),
    }
}

impl ResultCollection {
    /// An empty collection; `sync`: a distributed run's, for `sync_dist` values.
    pub fn synced(sync: Option<Syncer>) -> Self {
        ResultCollection { sync, ..Default::default() }
    }

    /// Takes what a hook logged. `batch_size` weights epoch means (Lightning's default).
    pub fn add(&mut self, records: Vec<LogRecord>, batch_size: i64) -> Result<()> {
        for r in records {
            let meta = Meta {
                routing: (r.prog_bar, r.logger),
                on_step: r.on_step,
                on_epoch: r.on_epoch,
                reduce: r.reduce_fx,
                add_dataloader_idx: r.add_dataloader_idx,
                dataloader: r.dataloader_idx,
                sync_dist: r.sync_dist,
            };
            let hook = r.hook.map(Hook::name);
            let key = (hook, r.shown(""));
            let i = match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    let suffix = crate::context::dataloader_suffix(r.add_dataloader_idx, r.dataloader_idx);
                    self.entries.push(Entry { name: r.name.clone(), suffix, meta, step: None, epoch: None });
                    self.index.insert(key, self.entries.len() - 1);
                    self.entries.len() - 1
                }
            };
            let e = &mut self.entries[i];
            if e.meta != meta {
                // Lightning's metadata check (result.py): a hook logs one name one way.
                return Err(anyhow!(
                    "You called `self.log({}, ...)` twice in `{}` with different arguments. This is not allowed",
                    r.name,
                    hook.unwrap_or("this hook"),
                ));
            }
            if !r.value.f_is_floating_point().unwrap_or(true) {
                warn_not_floating(&r.name, hook.unwrap_or("this hook"));
            }
            let value = crate::engine::scalar::zero_dim(as_float(&r.value)?)
                .map_err(|err| anyhow!("logging `{}`: {}", r.name, torch_message(&err)))?;
            if r.on_step {
                // Lightning's `_ResultMetric.update`: a synced step value is reduced at once.
                e.step = Some(match (&self.sync, r.sync_dist) {
                    (Some(s), true) => s.reduce(&value, r.reduce_fx)?,
                    _ => value.shallow_clone(),
                });
            }
            if r.on_epoch {
                let w = r.batch_size.map(|b| b as f64).unwrap_or(batch_size as f64);
                let err = |err: tch::TchError| anyhow!("logging `{}`: {}", r.name, torch_message(&err));
                let contrib = if r.reduce_fx == ReduceFx::Mean {
                    value.f_mul_scalar(w).map_err(err)?
                } else {
                    value.shallow_clone()
                };
                e.epoch = Some(match e.epoch.take() {
                    None => (contrib, w),
                    Some((acc, weight)) => {
                        let acc = match r.reduce_fx {
                            ReduceFx::Mean | ReduceFx::Sum => acc.f_add(&contrib),
                            ReduceFx::Max => acc.f_maximum(&contrib),
                            ReduceFx::Min => acc.f_minimum(&contrib),
                        }
                        .map_err(err)?;
                        (acc, weight + w)
                    }
                });
            }
        }
        Ok(())
    }

    /// The latest step values (still tensors): each metric's last, whichever batch logged it.
    pub fn step_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        self.step_view(|_| true)
    }

    /// The latest step values logged under DataLoader `dataloader` (Lightning's `valid_items`
    /// while `results.dataloader_idx` is that): an evaluation batch's row.
    pub fn step_metrics_of(&self, dataloader: Option<u32>) -> Vec<(String, Tensor, Routing)> {
        self.step_view(|m| m.dataloader == dataloader)
    }

    fn step_view(&self, keep: impl Fn(&Meta) -> bool) -> Vec<(String, Tensor, Routing)> {
        let entries = self.entries.iter().filter(|e| keep(&e.meta));
        entries.filter_map(|e| Some((e.shown("_step"), e.step.as_ref()?.shallow_clone(), e.routing()))).collect()
    }

    /// Epoch values reduced (still tensors).
    pub fn epoch_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        self.epoch_view(|_| true, false)
    }

    /// The epoch values logged under DataLoader `dataloader` (None: outside any, or with a
    /// single DataLoader): Lightning's results while `results.dataloader_idx` is that, what
    /// `trainer.validate` returns for each DataLoader.
    pub fn epoch_metrics_of(&self, dataloader: Option<u32>) -> Vec<(String, Tensor, Routing)> {
        self.epoch_view(|m| m.dataloader == dataloader, false)
    }

    /// Lightning's `callback_metrics` view of the step values: each one, and a metric logged
    /// with both on_step and on_epoch also under its bare name (`loss` beside `loss_step`).
    pub fn step_callback_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        let mut out = Vec::new();
        for e in &self.entries {
            let Some(v) = &e.step else { continue };
            if let Some(bare) = e.bare() {
                out.push((bare, v.shallow_clone(), e.routing()));
            }
            out.push((e.shown("_step"), v.shallow_clone(), e.routing()));
        }
        out
    }

    /// As [`Self::step_callback_metrics`], for the epoch values: the bare name holds the
    /// epoch's value (`val_loss` beside `val_loss_epoch`, what `monitor="val_loss"` reads).
    pub fn epoch_callback_metrics(&self) -> Vec<(String, Tensor, Routing)> {
        self.epoch_view(|_| true, true)
    }

    /// As [`Self::epoch_callback_metrics`], for the values logged under DataLoader
    /// `dataloader` only (see [`Self::epoch_metrics_of`]).
    pub fn epoch_callback_metrics_of(&self, dataloader: Option<u32>) -> Vec<(String, Tensor, Routing)> {
        self.epoch_view(|m| m.dataloader == dataloader, true)
    }

    /// The epoch values of the metrics `keep` takes, in Lightning's order (with their bare
    /// names first when `bare`).
    fn epoch_view(&self, keep: impl Fn(&Meta) -> bool, bare: bool) -> Vec<(String, Tensor, Routing)> {
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| keep(&e.meta)) {
            let Some(v) = e.reduced(self.sync.as_ref()) else { continue };
            if let Some(name) = e.bare().filter(|_| bare) {
                out.push((name, v.shallow_clone(), e.routing()));
            }
            out.push((e.shown("_epoch"), v, e.routing()));
        }
        out
    }

    /// The step values read once each: Lightning's callback view of them (forked ones under
    /// their bare name too, as [`Self::step_callback_metrics`]) and those for the loggers.
    pub fn read_step(&self) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
        let (mut callback, mut logged) = (BTreeMap::new(), BTreeMap::new());
        for e in &self.entries {
            let Some(Ok(x)) = e.step.as_ref().map(|v| v.f_double_value(&[])) else { continue };
            let name = e.shown("_step");
            if e.meta.routing.1 {
                logged.insert(name.clone(), x);
            }
            if let Some(bare) = e.bare() {
                callback.insert(bare, x);
            }
            callback.insert(name, x);
        }
        (callback, logged)
    }

    pub fn reset(&mut self) {
        self.entries.clear();
        self.index.clear();
    }
}

/// Reads tensors to numbers: the one place a logged value syncs with the device.
/// Where two share a name, the later one's value is kept (the order results give them).
pub fn read(metrics: &[(String, Tensor, Routing)], keep: impl Fn(&Routing) -> bool) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (k, v, _) in metrics.iter().filter(|(_, _, r)| keep(r)) {
        if let Ok(x) = v.f_double_value(&[]) {
            out.insert(k.clone(), x);
        }
    }
    out
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
            sync_dist: false,
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
    fn an_explicit_batch_size_weighs_the_mean_and_sums_are_not_weighted() {
        // Lightning's test_result_collection_no_batch_size_extraction (docs/lightning-tests/
        // logging.md row 9): 7.0 logged with batch_size=10 while the batch holds 1 is a step
        // value of 7 and an epoch mean of 7 (70 over 10); a sum of 7.0 is 7, unweighted.
        let mut rc = ResultCollection::default();
        let mean = LogRecord { batch_size: Some(10), ..rec("epoch_log_val", 7.0, true, true, ReduceFx::Mean) };
        let sum = rec("epoch_sum_log_val", 7.0, true, true, ReduceFx::Sum);
        rc.add(vec![mean, sum], 1).unwrap();
        let step = read(&rc.step_metrics(), |_| true);
        assert_eq!((step["epoch_log_val_step"], step["epoch_sum_log_val_step"]), (7.0, 7.0));
        let epoch = read(&rc.epoch_metrics(), |_| true);
        assert_eq!((epoch["epoch_log_val_epoch"], epoch["epoch_sum_log_val_epoch"]), (7.0, 7.0));
        // Weighted by the batch size given: a second value with batch_size 30 moves the mean
        // three quarters of the way.
        rc.add(vec![LogRecord { batch_size: Some(30), ..rec("epoch_log_val", 3.0, true, true, ReduceFx::Mean) }], 1)
            .unwrap();
        assert_eq!(read(&rc.epoch_metrics(), |_| true)["epoch_log_val_epoch"], 4.0);
    }

    #[test]
    fn epoch_values_are_reduced_in_the_logged_float32_as_lightnings() {
        // Lightning's `_ResultMetric`: `value + v * batch_size` then `/ cumulated_batch_size`,
        // in float32 for float32 values; an integer value becomes float32 first.
        let mut rc = ResultCollection::default();
        let f32_rec = |v: f32, reduce| LogRecord { value: Tensor::from(v), ..rec("m", 0.0, false, true, reduce) };
        for (v, bs) in [(0.1f32, 3), (0.7, 5), (0.3, 7)] {
            rc.add(vec![f32_rec(v, ReduceFx::Mean)], bs).unwrap();
        }
        let want = (0.1f32 * 3.0 + 0.7 * 5.0 + 0.3 * 7.0) / 15.0;
        let got = rc.epoch_metrics().remove(0).1;
        assert_eq!(got.kind(), Kind::Float);
        assert_eq!(got.double_value(&[]), f64::from(want), "the float64 mean would be {}", (0.3 + 3.5 + 2.1) / 15.0);
        let mut ints = ResultCollection::default();
        let int_rec = LogRecord { value: Tensor::from(3i64), ..rec("n", 0.0, true, true, ReduceFx::Sum) };
        ints.add(vec![int_rec], 4).unwrap();
        assert_eq!(ints.step_metrics()[0].1.kind(), Kind::Float);
        // ... with Lightning's warning, said once (saying it again now is refused).
        let hook = rec("n", 0.0, true, true, ReduceFx::Sum).hook.map(Hook::name).unwrap_or("this hook");
        assert!(!crate::warnings::warn_once(&format!(
            "You called `self.log('n', ...)` in your `{hook}` but the value needs to be floating to be reduced. \
             Converting it to torch.float32. You can silence this warning by converting the value to floating point \
             yourself. If you don't intend to reduce the value (for instance when logging the global step or epoch) \
             then you can use `self.logger.log_metrics({{'n': ...}})` instead."
        )));
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

    #[test]
    fn one_name_from_two_hooks_is_two_metrics_and_the_later_one_is_read() {
        // Lightning keys its results by hook and name (logging.md differences 3 and 4): `dup`
        // in training_step (1.0, mean) and in on_train_batch_end (3.0, sum) are two metrics;
        // the one logged first in the epoch comes first, so the other's value is read.
        let mut rc = ResultCollection::default();
        let at = |hook, v, reduce| LogRecord { hook: Some(hook), ..rec("dup", v, false, true, reduce) };
        for _ in 0..4 {
            rc.add(vec![at(Hook::TrainingStep, 1.0, ReduceFx::Mean)], 4).unwrap();
            rc.add(vec![at(Hook::OnTrainBatchEnd, 3.0, ReduceFx::Sum)], 4).unwrap();
        }
        assert_eq!(read(&rc.epoch_metrics(), |_| true)["dup"], 12.0);
        // One hook logging one name another way is refused, with Lightning's message.
        let err = rc.add(vec![LogRecord { prog_bar: false, ..at(Hook::TrainingStep, 1.0, ReduceFx::Mean) }], 4);
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("You called `self.log(dup, ...)` twice in `training_step` with different arguments"),
            "{err}"
        );
    }

    #[test]
    fn tensor_values_reduce_and_route_as_lightnings_result_collection_test() {
        // Lightning's test_result_collection_on_tensor_with_mean_reduction
        // (tests_pytorch/trainer/logging_/test_logger_connector.py): values 1..9 (int64, made
        // float32) with batch sizes v², logged from training_step under every combination of
        // on_step, on_epoch, prog_bar and logger; its literal dicts below.
        let mut ctx = crate::context::RunContext::default();
        let mut rc = ResultCollection::default();
        for v in 1..=9i64 {
            for prog_bar in [false, true] {
                for logger in [false, true] {
                    for (on_step, on_epoch) in [(true, true), (false, true), (true, false), (false, false)] {
                        let mut name = "loss".to_string();
                        for (on, part) in [
                            (on_step, "_on_step"),
                            (on_epoch, "_on_epoch"),
                            (prog_bar, "_prog_bar"),
                            (logger, "_logger"),
                        ] {
                            if on {
                                name.push_str(part);
                            }
                        }
                        let opts = crate::context::LogOptions {
                            prog_bar,
                            logger,
                            on_step: Some(on_step),
                            on_epoch: Some(on_epoch),
                            reduce_fx: ReduceFx::Mean,
                            batch_size: Some((v * v) as u32),
                            add_dataloader_idx: true,
                            sync_dist: false,
                        };
                        ctx.current_hook = Some(Hook::TrainingStep);
                        let logged = ctx.log(&name, Tensor::from(v), opts);
                        if !on_step && !on_epoch {
                            assert!(logged.is_err_and(|e| e.to_string().contains("on_step=False, on_epoch=False")));
                        } else {
                            logged.unwrap();
                        }
                    }
                }
            }
            rc.add(std::mem::take(&mut ctx.logs), 1).unwrap();
        }
        let keys = |m: &BTreeMap<String, f64>, want: f64| {
            assert!(m.values().all(|&x| x == want), "{m:?}");
            m.keys().cloned().collect::<Vec<_>>()
        };
        let sorted = |names: &[&str]| {
            let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        let (step_callback, step_log) = rc.read_step();
        let step_pbar = read(&rc.step_metrics(), |r| r.prog_bar);
        let last = 9.0;
        assert_eq!(
            keys(&step_pbar, last),
            sorted(&[
                "loss_on_step_on_epoch_prog_bar_step",
                "loss_on_step_on_epoch_prog_bar_logger_step",
                "loss_on_step_prog_bar",
                "loss_on_step_prog_bar_logger"
            ])
        );
        assert_eq!(
            keys(&step_log, last),
            sorted(&[
                "loss_on_step_on_epoch_logger_step",
                "loss_on_step_logger",
                "loss_on_step_on_epoch_prog_bar_logger_step",
                "loss_on_step_prog_bar_logger"
            ])
        );
        assert_eq!(
            keys(&step_callback, last),
            sorted(&[
                "loss_on_step",
                "loss_on_step_logger",
                "loss_on_step_on_epoch",
                "loss_on_step_on_epoch_logger",
                "loss_on_step_on_epoch_logger_step",
                "loss_on_step_on_epoch_prog_bar",
                "loss_on_step_on_epoch_prog_bar_logger",
                "loss_on_step_on_epoch_prog_bar_logger_step",
                "loss_on_step_on_epoch_prog_bar_step",
                "loss_on_step_on_epoch_step",
                "loss_on_step_prog_bar",
                "loss_on_step_prog_bar_logger"
            ])
        );
        // Σv³ / Σv² accumulated and divided in float32, as Lightning's `_ResultMetric`.
        let mean = f64::from(2025f32 / 285f32);
        let epoch = rc.epoch_metrics();
        assert_eq!(
            keys(&read(&epoch, |r| r.prog_bar), mean),
            sorted(&[
                "loss_on_epoch_prog_bar",
                "loss_on_epoch_prog_bar_logger",
                "loss_on_step_on_epoch_prog_bar_epoch",
                "loss_on_step_on_epoch_prog_bar_logger_epoch"
            ])
        );
        assert_eq!(
            keys(&read(&epoch, |r| r.logger), mean),
            sorted(&[
                "loss_on_epoch_logger",
                "loss_on_epoch_prog_bar_logger",
                "loss_on_step_on_epoch_logger_epoch",
                "loss_on_step_on_epoch_prog_bar_logger_epoch"
            ])
        );
        assert_eq!(
            keys(&read(&rc.epoch_callback_metrics(), |_| true), mean),
            sorted(&[
                "loss_on_epoch",
                "loss_on_epoch_logger",
                "loss_on_epoch_prog_bar",
                "loss_on_epoch_prog_bar_logger",
                "loss_on_step_on_epoch",
                "loss_on_step_on_epoch_epoch",
                "loss_on_step_on_epoch_logger",
                "loss_on_step_on_epoch_logger_epoch",
                "loss_on_step_on_epoch_prog_bar",
                "loss_on_step_on_epoch_prog_bar_epoch",
                "loss_on_step_on_epoch_prog_bar_logger",
                "loss_on_step_on_epoch_prog_bar_logger_epoch"
            ])
        );
    }
}
