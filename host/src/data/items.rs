//! Map-style datasets the DataModule reads item by item (torch's `__getitem__` and
//! `collate_fn`, every pass): the host samples the indices exactly as for columns, and each
//! batch is the DataModule's `fetch` of its indices.
//!
//! DataLoader workers are reproduced in the DataModule's own instance: torch's main process
//! hands index batch i to worker i mod N, and worker w's random ops draw from a generator
//! seeded with the pass's base seed + w; here batch i is fetched with worker i mod N's
//! generator, so random items (augmentation, noise) are torch's, and the run's generator
//! is not drawn from, as torch's main process is not.

use std::cell::RefCell;

use anyhow::{anyhow, bail, Result};
use tch::{Device, Tensor};

use crate::engine::torch_ext::Generator;
use crate::module::ItemFetcher;

/// A split's map-style dataset, as the loader keeps it.
pub struct Items {
    pub len: i64,
    pub num_workers: u32,
    pub fetcher: RefCell<Box<dyn ItemFetcher>>,
}

/// One pass over the items: the order, and the workers' generators.
pub struct ItemPass<'a> {
    items: &'a Items,
    order: Option<Tensor>,
    batch_size: i64,
    samples: i64,
    device: Device,
    /// Worker w's generator (none without workers: the run's generator).
    workers: Vec<Option<Generator>>,
}

impl<'a> ItemPass<'a> {
    /// A pass in `order` (None: 0..len) whose DataLoader iterator drew `base_seed`; None
    /// when resumed mid-pass (the seed was not kept): the workers are then seeded from 0,
    /// and the note says their random items differ from the interrupted run's.
    pub fn new(
        items: &'a Items,
        order: Option<Tensor>,
        batch_size: i64,
        samples: i64,
        device: Device,
        base_seed: Option<i64>,
        split: &str,
    ) -> Result<Self> {
        if base_seed.is_none() && items.num_workers > 0 {
            println!("note: the {split} DataLoader's workers are reseeded on the resumed pass, so items that draw random numbers may differ from the interrupted run's");
        }
        let base = base_seed.unwrap_or(0);
        let workers = (0..items.num_workers)
            .map(|w| Generator::seeded(base.wrapping_add(i64::from(w)) as u64).map(Some).map_err(|e| anyhow!(e)))
            .collect::<Result<_>>()?;
        Ok(ItemPass { items, order, batch_size, samples, device, workers })
    }

    /// Batch `i`: its indices fetched from the DataModule, moved to the device.
    pub fn batch(&mut self, i: usize) -> Result<Vec<Tensor>> {
        let start = i as i64 * self.batch_size;
        let size = self.batch_size.min(self.samples - start);
        let indices: Vec<u64> = match &self.order {
            Some(o) => Vec::<i64>::try_from(o.f_narrow(0, start, size)?)?.into_iter().map(|x| x as u64).collect(),
            None => (start..start + size).map(|x| x as u64).collect(),
        };
        let mut none = None;
        let generator = match self.workers.len() {
            0 => &mut none,
            n => &mut self.workers[i % n],
        };
        let batch = self.items.fetcher.borrow_mut().fetch(&indices, generator)?;
        if batch.is_empty() {
            bail!("the collated batch has no tensors");
        }
        if let Some(k) = batch.iter().position(|t| t.dim() == 0) {
            bail!("tensor {k} of the collated batch is a scalar; a batch's tensors have the batch along dim 0");
        }
        batch
            .into_iter()
            .map(|t| match self.device {
                Device::Cpu => Ok(t),
                d => Ok(t.f_pin_memory(d)?.f_to_device_(d, t.kind(), true, false)?),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use crate::data::fetchers::DataLoader;
    use crate::engine::torch_ext::{self, Draw, Generator};
    use crate::module::{DatasetSpec, ItemFetcher, ItemSpec, Split};

    /// Each batch: its indices, and one number drawn from the generator it is lent (the
    /// run's when none).
    struct Indices;

    impl ItemFetcher for Indices {
        fn fetch(&mut self, indices: &[u64], generator: &mut Option<Generator>) -> anyhow::Result<Vec<tch::Tensor>> {
            let ix: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
            let drawn = match generator {
                Some(g) => g.draw(Draw::Rand, &[1]).map_err(anyhow::Error::msg)?,
                None => tch::Tensor::rand([1], (Kind::Float, tch::Device::Cpu)),
            };
            Ok(vec![tch::Tensor::from_slice(&ix), drawn])
        }
    }

    fn loader(n: u64, workers: u32) -> DataLoader {
        let items = ItemSpec { len: n, num_workers: workers, fetcher: Box::new(Indices) };
        let spec = DatasetSpec {
            columns: vec![],
            batch_size: 4,
            shuffle: true,
            drop_last: false,
            sampler: None,
            items: Some(items),
        };
        DataLoader::new(spec, Split::Train, "t").expect("a loader")
    }

    #[test]
    fn items_come_in_the_samplers_order_with_each_workers_generator() {
        let _rng = torch_ext::global_rng_lock(); // a pass draws from the global generator
        let col = DatasetSpec {
            columns: vec![tch::Tensor::arange(10, (Kind::Int64, tch::Device::Cpu))],
            batch_size: 4,
            shuffle: true,
            drop_last: false,
            sampler: None,
            items: None,
        };
        let columns = DataLoader::new(col, Split::Train, "t").expect("a loader");
        tch::manual_seed(3);
        let want: Vec<Vec<i64>> = columns
            .epoch(tch::Device::Cpu)
            .expect("a pass")
            .map(|b| Vec::<i64>::try_from(&b.expect("a batch")[0]).expect("ints"))
            .collect();
        tch::manual_seed(3);
        let base = torch_ext::draw_seed().expect("a seed");
        let mut worker: Vec<Generator> = (0..2).map(|w| Generator::seeded((base + w) as u64).expect("g")).collect();
        tch::manual_seed(3);
        let dl = loader(10, 2);
        assert_eq!(dl.num_batches(), 3);
        for (i, b) in dl.epoch(tch::Device::Cpu).expect("a pass").enumerate() {
            let b = b.expect("a batch");
            assert_eq!(Vec::<i64>::try_from(&b[0]).expect("ints"), want[i], "batch {i}: the sampler's indices");
            let drawn = worker[i % 2].draw(Draw::Rand, &[1]).expect("a draw");
            assert_eq!(b[1].double_value(&[0]), drawn.double_value(&[0]), "batch {i}: worker {}'s generator", i % 2);
        }
        // Without workers the items draw from the run's generator.
        tch::manual_seed(3);
        let dl = loader(10, 0);
        let mut pass = dl.epoch(tch::Device::Cpu).expect("a pass");
        let first = pass.next().expect("a batch").expect("fetched");
        tch::manual_seed(3);
        torch_ext::draw_seed().expect("base");
        torch_ext::draw_seed().expect("sampler");
        let run = tch::Tensor::rand([1], (Kind::Float, tch::Device::Cpu));
        assert_eq!(first[1].double_value(&[0]), run.double_value(&[0]));
    }

    #[test]
    fn a_dataset_of_items_refuses_columns_too() {
        let _rng = torch_ext::global_rng_lock();
        let items = ItemSpec { len: 3, num_workers: 0, fetcher: Box::new(Indices) };
        let spec = DatasetSpec {
            columns: vec![tch::Tensor::arange(3, (Kind::Int64, tch::Device::Cpu))],
            batch_size: 1,
            shuffle: false,
            drop_last: false,
            sampler: None,
            items: Some(items),
        };
        let err = DataLoader::new(spec, Split::Val, "p").err().expect("refused").to_string();
        assert!(err.contains("both columns and items"), "{err}");
    }
}
