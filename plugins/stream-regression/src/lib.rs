//! Linear regression, y = x·w + 0.5 + noise, with its data from one of two places:
//!
//! - `source = "stream"`: a streaming source (an IterableDataset yielding batches). Each
//!   DataLoader worker makes its share of a pass from its own seeded generator: worker `w`
//!   of `num_workers` makes `batches_per_worker` (+ `w` when `uneven`) batches of
//!   `x = rand(bs, 4)`, `y = x·w + 0.5 + 0.1·randn(bs, 1)`. With `num_workers = 0` the
//!   plugin's own instance makes them from the run's generator.
//! - `source = "csv"`: `/data/regression.csv` (columns x0..x3, y) read with `load-csv`,
//!   split 80/20 with `random_split(generator=manual_seed(42))`; train shuffled.
//!
//! tests/reference/stream_reference.py is the same in PyTorch; tests/e2e/streams.rs compares.
//! `fail_worker = k` makes worker k fail its second batch (an error it returns),
//! `panic_worker = k` makes it trap there, `extra_declared = n` declares n more batches per
//! pass than the workers make (all for the error tests).

use lthost_sdk::nn::Linear;
use lthost_sdk::prelude::*;
use lthost_sdk::CsvColumn;

const W: [f32; 4] = [1.0, -2.0, 3.0, 0.5];

struct Regression {
    fc: Linear,
}

impl LightningModule for Regression {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.1})
    }

    fn configure(_hp: &Hparams) -> Result<Self, String> {
        Ok(Regression { fc: Linear::new("fc", 4, 1, true) })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        Optimizer::sgd(hp.f64_or("lr", 0.1)).into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let loss = F::mse_loss(&self.fc.forward(&batch[0]), &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }

    fn validation_step(&mut self, batch: Batch, _batch_idx: u64) {
        let loss = F::mse_loss(&self.fc.forward(&batch[0]), &batch[1]);
        log::log_prog_bar("val_loss", &loss);
    }
}

struct Data {
    hp: Hparams,
    /// This instance's pass: (batches left to make, batches made).
    left: u64,
    made: u64,
    worker: Option<WorkerInfo>,
    csv: Option<(Vec<Tensor>, Vec<Tensor>)>,
}

impl Data {
    fn workers(&self) -> u64 {
        self.hp.u64_or("num_workers", 2)
    }

    fn share(&self, id: u64) -> u64 {
        let per = self.hp.u64_or("batches_per_worker", 4);
        if self.workers() > 0 && self.hp.bool_or("uneven", true) {
            per + id
        } else {
            per
        }
    }

    fn load_csv() -> Result<(Vec<Tensor>, Vec<Tensor>), String> {
        let cols: Vec<CsvColumn> = ["x0", "x1", "x2", "x3", "y"]
            .iter()
            .map(|n| CsvColumn { name: n.to_string(), dtype: Dtype::Float32 })
            .collect();
        let loaded = Tensor::load_csv("regression.csv", &cols, true, ",");
        let t: Vec<&Tensor> = loaded.iter().map(|(_, t)| t).collect();
        let x = Tensor::stack(&t[..4], 1);
        let y = t[4].unsqueeze(1);
        let mut parts = random_split(&[x, y], Lengths::Fractions(&[0.8, 0.2]), Some(42))?;
        let val = parts.pop().ok_or("no val part")?;
        let train = parts.pop().ok_or("no train part")?;
        Ok((train, val))
    }
}

impl DataModule for Data {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let csv = if hp.str_or("source", "stream") == "csv" { Some(Self::load_csv()?) } else { None };
        Ok(Data { hp: hp.clone(), left: 0, made: 0, worker: None, csv })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let bs = self.hp.u64_or("batch_size", 8) as u32;
        let (train, _) = self.csv.as_mut()?;
        Some(dataset(std::mem::take(train), bs, true))
    }

    fn val_dataset(&mut self) -> Option<Dataset> {
        let bs = self.hp.u64_or("batch_size", 8) as u32;
        let (_, val) = self.csv.as_mut()?;
        Some(dataset(std::mem::take(val), bs, false))
    }

    fn stream(&mut self, split: Split) -> Option<StreamSource> {
        if self.csv.is_some() || split != Split::Train {
            return None;
        }
        let n = self.workers();
        let total: u64 = if n == 0 { self.share(0) } else { (0..n).map(|w| self.share(w)).sum() };
        Some(StreamSource { num_batches: Some(total + self.hp.u64_or("extra_declared", 0)), num_workers: n as u32 })
    }

    fn start_pass(&mut self, _split: Split, worker: WorkerInfo) -> Result<(), String> {
        self.left = self.share(worker.id as u64);
        self.made = 0;
        self.worker = Some(worker);
        Ok(())
    }

    fn next_batch(&mut self, _split: Split) -> Result<Option<Batch>, String> {
        let w = self.worker.ok_or("next_batch before start_pass")?;
        if self.hp.get("fail_worker").and_then(|v| v.as_u64()) == Some(w.id as u64) && self.made == 1 {
            return Err(format!("worker {} cannot read its shard", w.id));
        }
        if self.hp.get("panic_worker").and_then(|v| v.as_u64()) == Some(w.id as u64) && self.made == 1 {
            panic!("worker {} hit a bug", w.id);
        }
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.made += 1;
        let bs = self.hp.u64_or("batch_size", 8) as i64;
        let x = Tensor::rand(&[bs, 4]);
        // The generic op: a worker's draws come from its own generator on this path too.
        let noise = aten::randn(&[bs, 1], None, None, None, None);
        let w_true = Tensor::from_slice_f32(&W, &[4, 1]);
        let y = &(&x.matmul(&w_true) + 0.5) + &noise.mul_scalar(0.1);
        Ok(Some(vec![x, y]))
    }
}

export_plugin!(Regression, Data);
