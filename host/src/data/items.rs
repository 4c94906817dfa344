//! Map-style datasets the DataModule reads item by item (torch's `__getitem__` and
//! `collate_fn`, every pass): the host samples the indices exactly as for columns (or asks
//! the DataModule for the pass's batches of indices, when the sampler is its own), and each
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

use super::fetchers::made_batch;
use crate::engine::torch_ext::Generator;
use crate::module::{ItemFetcher, WorkerInfo};

/// A split's map-style dataset, as the loader keeps it.
pub struct Items {
    pub len: i64,
    pub num_workers: u32,
    pub fetcher: RefCell<Box<dyn ItemFetcher>>,
    /// Who makes them, for errors (`plugin `x`: the train items`).
    pub source: String,
    /// Persistent workers: their generators, kept from one pass to the next, with the base
    /// seed they were started from.
    pub persistent: bool,
    pub kept_workers: RefCell<(Vec<Option<Generator>>, i64)>,
}

/// One pass over the items: its batches of indices, and the workers' generators.
pub struct ItemPass<'a> {
    items: &'a Items,
    batches: Vec<Vec<u64>>,
    /// The DataLoader iterator's base seed (None: a resumed pass that did not keep it).
    base_seed: Option<i64>,
    device: Device,
    /// Worker w's generator (none without workers: the run's generator).
    workers: Vec<Option<Generator>>,
    /// The base seed the workers were started from (worker w's seed is it + w).
    workers_base: i64,
    epoch: u64,
}

/// The first value of a kept item pass (a data order holds no negative index).
const KEPT: i64 = -1;

impl<'a> ItemPass<'a> {
    /// A pass over `batches` whose DataLoader iterator drew `base_seed`; None when a resumed
    /// pass did not keep it (a checkpoint of an earlier lthost): the workers are then seeded
    /// from 0, and the note says their random items may differ.
    pub fn new(
        items: &'a Items,
        batches: Vec<Vec<u64>>,
        base_seed: Option<i64>,
        device: Device,
        split: &str,
        epoch: u64,
    ) -> Result<Self> {
        if let Some((i, ix)) = batches.iter().flatten().enumerate().find(|(_, &ix)| ix >= items.len as u64) {
            bail!(
                "{}: the sampler gave index {ix} (position {i} of the pass), out of range for {} items",
                items.source,
                items.len
            );
        }
        let (kept, kept_base) = std::mem::take(&mut *items.kept_workers.borrow_mut());
        let (workers, workers_base) = match base_seed {
            // Persistent workers go on with their generators (no new base seed was drawn).
            None if !kept.is_empty() => (kept, kept_base),
            _ => {
                if base_seed.is_none() && items.num_workers > 0 {
                    println!("note: the {split} DataLoader's workers are reseeded on the resumed pass, so items that draw random numbers may differ from the interrupted run's");
                }
                let base = base_seed.unwrap_or(0);
                let workers = (0..items.num_workers)
                    .map(|w| {
                        Generator::seeded(base.wrapping_add(i64::from(w)) as u64).map(Some).map_err(anyhow::Error::from)
                    })
                    .collect::<Result<_>>()?;
                (workers, base)
            }
        };
        Ok(ItemPass { items, batches, base_seed, device, workers, workers_base, epoch })
    }

    /// What a resumed pass needs, as one int64 tensor: `[-1, base seed, batches, each
    /// batch's size..., the indices...]`.
    pub fn kept(&self) -> Result<Tensor> {
        // A persistent workers' later pass drew no base seed: the one they started from.
        let mut v = vec![KEPT, self.base_seed.unwrap_or(self.workers_base), self.batches.len() as i64];
        v.extend(self.batches.iter().map(|b| b.len() as i64));
        v.extend(self.batches.iter().flatten().map(|&i| i as i64));
        Ok(Tensor::f_from_slice(&v)?)
    }

    /// The base seed and batches of a pass [`kept`](Self::kept); None for a plain data order
    /// (a checkpoint of an earlier lthost).
    pub fn restore(t: &Tensor) -> Result<Option<(i64, Vec<Vec<u64>>)>> {
        let v = Vec::<i64>::try_from(t)?;
        let bad = || anyhow!("the saved item batches are malformed");
        match v.first() {
            Some(&KEPT) => {}
            _ => return Ok(None),
        }
        let (&base, &n) = (v.get(1).ok_or_else(bad)?, v.get(2).ok_or_else(bad)?);
        let n = usize::try_from(n).map_err(|_| bad())?;
        let sizes = v.get(3..3 + n).ok_or_else(bad)?;
        let mut rest = &v[3 + n..];
        let mut batches = Vec::with_capacity(n);
        for &size in sizes {
            let size = usize::try_from(size).map_err(|_| bad())?;
            let (b, r) = (rest.get(..size).ok_or_else(bad)?, &rest[size..]);
            batches.push(b.iter().map(|&i| u64::try_from(i).map_err(|_| bad())).collect::<Result<_>>()?);
            rest = r;
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(Some((base, batches)))
    }

    /// Batch `i`: its indices fetched from the DataModule (by worker i mod N), moved to the
    /// device.
    pub fn batch(&mut self, i: usize) -> Result<Vec<Tensor>> {
        let mut none = None;
        let (generator, worker) = match self.workers.len() {
            0 => (&mut none, None),
            n => {
                let id = (i % n) as u32;
                let seed = self.workers_base.wrapping_add(i64::from(id)) as u64;
                let info = WorkerInfo { id, num_workers: n as u32, seed, epoch: self.epoch };
                (&mut self.workers[i % n], Some(info))
            }
        };
        let indices = self.batches.get(i).ok_or_else(|| anyhow!("{}: no batch {i}", self.items.source))?;
        let batch = self.items.fetcher.borrow_mut().fetch(indices, generator, worker)?;
        made_batch(batch, self.device, &|| format!("{}, batch {i}", self.items.source))
    }
}

impl Drop for ItemPass<'_> {
    /// Persistent workers keep their generators for the next pass.
    fn drop(&mut self) {
        if self.items.persistent {
            *self.items.kept_workers.borrow_mut() = (std::mem::take(&mut self.workers), self.workers_base);
        }
    }
}

/// A pass's batches of `batch_size` indices from `order` (None: 0..samples), `n` of them (the
/// last one short, or left out with drop_last: `n` says which).
pub fn chunks(order: Option<&Tensor>, samples: i64, batch_size: i64, n: usize) -> Result<Vec<Vec<u64>>> {
    let all: Vec<u64> = match order {
        Some(o) => Vec::<i64>::try_from(o)?.into_iter().map(|i| i as u64).collect(),
        None => (0..samples as u64).collect(),
    };
    Ok(all.chunks(batch_size.max(1) as usize).take(n).map(<[u64]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use crate::data::fetchers::DataLoader;
    use crate::data::sampler::Sampler;
    use crate::engine::torch_ext::{self, Draw, Generator};
    use crate::module::{DatasetSpec, ItemFetcher, ItemSpec, Split, WorkerInfo};

    /// Each batch: its indices, and one number drawn from the generator it is lent (the
    /// run's when none).
    struct Indices;

    impl ItemFetcher for Indices {
        fn fetch(
            &mut self,
            indices: &[u64],
            generator: &mut Option<Generator>,
            worker: Option<WorkerInfo>,
        ) -> anyhow::Result<Vec<tch::Tensor>> {
            let ix: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
            let drawn = match generator {
                Some(g) => g.draw(Draw::Rand, &[1])?,
                None => tch::Tensor::rand([1], (Kind::Float, tch::Device::Cpu)),
            };
            let who = worker.map_or([-1, -1, -1], |w| [i64::from(w.id), i64::from(w.num_workers), w.seed as i64]);
            Ok(vec![tch::Tensor::from_slice(&ix), drawn, tch::Tensor::from_slice(&who)])
        }

        /// Its own sampler: the base seed from the run's generator when asked, then the items
        /// backwards, in batches of 3 (one draw from the run's generator first, as a random
        /// sampler would).
        fn sample(&mut self, base_seed: bool) -> anyhow::Result<(Option<i64>, Vec<Vec<u64>>)> {
            let base = base_seed.then(torch_ext::draw_seed).transpose()?;
            let _ = tch::Tensor::rand([1], (Kind::Float, tch::Device::Cpu));
            Ok((base, (0..10u64).rev().collect::<Vec<_>>().chunks(3).map(<[u64]>::to_vec).collect()))
        }
    }

    /// `n` items of [`Indices`] in batches of `batch_size`.
    fn spec(n: u64, workers: u32, batch_size: usize, shuffle: bool, sampler: Option<Sampler>) -> DatasetSpec {
        let items = ItemSpec { len: n, num_workers: workers, fetcher: Box::new(Indices) };
        DatasetSpec {
            columns: vec![],
            batch_size,
            shuffle,
            drop_last: false,
            sampler,
            items: Some(items),
            persistent_workers: false,
        }
    }

    fn loader(n: u64, workers: u32) -> DataLoader {
        DataLoader::new(spec(n, workers, 4, true, None), Split::Train, "t").expect("a loader")
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
            persistent_workers: false,
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
            let who = vec![(i % 2) as i64, 2, base + (i % 2) as i64];
            assert_eq!(Vec::<i64>::try_from(&b[2]).expect("ints"), who, "batch {i}: fetched as worker i mod 2");
        }
        // Resumed at batch 2 from the order the pass keeps (ending with its base seed): the
        // skipped batches are fetched again, so batch 2 draws what it drew.
        tch::manual_seed(3);
        let mut pass = dl.epoch(tch::Device::Cpu).expect("a pass");
        let all: Vec<f64> = pass.by_ref().map(|b| b.expect("a batch")[1].double_value(&[0])).collect();
        let kept = pass.order().expect("the kept order");
        assert_eq!(kept.size(), [3 + 3 + 10], "marker, base seed, count, 3 sizes, 10 indices");
        let mut resumed = dl.epoch_from(tch::Device::Cpu, Some(kept), 2, 0).expect("a resumed pass");
        let b = resumed.next().expect("batch 2").expect("fetched");
        assert_eq!(Vec::<i64>::try_from(&b[0]).expect("ints"), want[2]);
        assert_eq!(b[1].double_value(&[0]), all[2]);
        assert!(resumed.next().is_none());
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
    fn the_datamodules_own_sampler_gives_each_pass_its_batches() {
        let _rng = torch_ext::global_rng_lock();
        let dl = DataLoader::new(spec(10, 0, 1, false, Some(Sampler::Plugin { batches: 4 })), Split::Train, "t")
            .expect("a loader");
        assert_eq!(dl.num_batches(), 4);
        let got: Vec<Vec<i64>> = dl
            .epoch(tch::Device::Cpu)
            .expect("a pass")
            .map(|b| Vec::<i64>::try_from(&b.expect("a batch")[0]).expect("ints"))
            .collect();
        assert_eq!(got, vec![vec![9, 8, 7], vec![6, 5, 4], vec![3, 2, 1], vec![0]]);
        // A length that disagrees with the sampler is an error, not a short epoch.
        let dl = DataLoader::new(spec(10, 0, 1, false, Some(Sampler::Plugin { batches: 5 })), Split::Train, "t")
            .expect("a loader");
        let err = dl.epoch(tch::Device::Cpu).err().expect("refused").to_string();
        assert!(err.contains("gave 4 batches, its length says 5"), "{err}");
        // So is an index past the dataset's end.
        let dl = DataLoader::new(spec(5, 0, 1, false, Some(Sampler::Plugin { batches: 4 })), Split::Train, "t")
            .expect("a loader");
        let err = dl.epoch(tch::Device::Cpu).err().expect("refused").to_string();
        assert!(err.contains("gave index 9 (position 0 of the pass), out of range for 5 items"), "{err}");
    }

    #[test]
    fn persistent_workers_draw_one_base_seed_and_keep_their_generators() {
        let _rng = torch_ext::global_rng_lock();
        tch::manual_seed(3);
        let base = torch_ext::draw_seed().expect("a seed");
        let mut worker: Vec<Generator> = (0..2).map(|w| Generator::seeded((base + w) as u64).expect("g")).collect();
        tch::manual_seed(3);
        let dl =
            DataLoader::new(DatasetSpec { persistent_workers: true, ..spec(10, 2, 4, false, None) }, Split::Train, "t")
                .expect("a loader");
        for pass in 0..2 {
            let run = torch_ext::cpu_rng_state().expect("state");
            for (i, b) in dl.epoch(tch::Device::Cpu).expect("a pass").enumerate() {
                let drawn = worker[i % 2].draw(Draw::Rand, &[1]).expect("a draw");
                assert_eq!(
                    b.expect("a batch")[1].double_value(&[0]),
                    drawn.double_value(&[0]),
                    "pass {pass}, batch {i}"
                );
            }
            let drew = torch_ext::cpu_rng_state().expect("state") != run;
            assert_eq!(drew, pass == 0, "pass {pass}: only the first draws a base seed");
        }
    }

    #[test]
    fn a_dataset_of_items_refuses_columns_too() {
        let _rng = torch_ext::global_rng_lock();
        let both = DatasetSpec {
            columns: vec![tch::Tensor::arange(3, (Kind::Int64, tch::Device::Cpu))],
            ..spec(3, 0, 1, false, None)
        };
        let err = DataLoader::new(both, Split::Val, "p").err().expect("refused").to_string();
        assert!(err.contains("both columns and items"), "{err}");
    }
}
