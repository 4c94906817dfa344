//! Data fetchers: a [`DataLoader`] batches a [`DatasetSpec`]'s columns along dim 0 in its
//! sampler's order (gathering rows with `index_select`, no per-sample copies), or asks the
//! DataModule for the items of each batch ([`super::items`]), or takes a streaming source's
//! batches ([`super::stream`]), and moves each batch to the run's device.

use anyhow::{bail, Result};
use tch::{Device, Tensor};

use crate::context::RunContext;
use crate::data::items::{chunks, ItemPass, Items};
use crate::data::sampler::Sampler;
use crate::data::stream::{StreamLoader, StreamPass};
use crate::engine::torch_ext;
use crate::module::{DataModule, DatasetSpec, Split, StreamSpec};

pub struct DataLoader {
    pub split: Split,
    /// A streaming source's loader; None: the rows below.
    stream: Option<StreamLoader>,
    /// A map-style dataset read item by item; None: the columns.
    items: Option<Items>,
    columns: Vec<Tensor>,
    /// Rows in the dataset.
    len: i64,
    batch_size: i64,
    sampler: Sampler,
    drop_last: bool,
    prefetch: usize,
    /// Persistent DataLoader workers: only the first pass draws a base seed.
    persistent: bool,
    /// Passes begun so far.
    passes: std::cell::Cell<u64>,
    /// The base seed of an iterator made ahead of its pass ([`DataLoader::make_iterator_now`]).
    predrawn: std::cell::Cell<Option<i64>>,
}

/// The most DataLoaders one split may have.
pub const MAX_DATALOADERS: usize = 256;

impl DataLoader {
    /// DataLoader `index` of the DataModule's `split` (None: it has no such loader): its
    /// dataset, else its stream; `prefetch` batches gathered ahead on a thread.
    pub fn from_plugin(
        data: &mut dyn DataModule,
        ctx: &mut RunContext,
        split: Split,
        index: u32,
        prefetch: usize,
    ) -> Result<Option<DataLoader>> {
        let source = format!("plugin `{}`", data.name());
        if let Some(spec) = data.dataset(ctx, split, index)? {
            let mut dl = DataLoader::new(spec, split, &source)?;
            dl.set_prefetch(prefetch);
            if let Some(world) = ctx.world {
                dl.distribute(world).map_err(|e| anyhow::anyhow!("{source}: the {} data: {e}", split.name()))?;
            }
            return Ok(Some(dl));
        }
        match data.stream(ctx, split, index)? {
            Some(spec) => Ok(Some(DataLoader::streaming(spec, split, &source)?)),
            None => Ok(None),
        }
    }

    /// Every DataLoader of an evaluation or prediction split, in order (Lightning's list of
    /// `val_dataloader()`s run one after the other; empty: no such split).
    pub fn all_from_plugin(
        data: &mut dyn DataModule,
        ctx: &mut RunContext,
        split: Split,
        prefetch: usize,
    ) -> Result<Vec<DataLoader>> {
        let mut loaders = Vec::new();
        while let Some(dl) = DataLoader::from_plugin(data, ctx, split, loaders.len() as u32, prefetch)? {
            if loaders.len() == MAX_DATALOADERS {
                bail!("plugin `{}` gives more than {MAX_DATALOADERS} {} DataLoaders", data.name(), split.name());
            }
            loaders.push(dl);
        }
        Ok(loaders)
    }

    /// The random draws of an iterator made and dropped at once, as Lightning's fit loop
    /// makes one when it reloads the train DataLoader (`FitLoop.setup_data`, under
    /// `reload_dataloaders_every_n_epochs`) before the epoch makes its own: the base seed,
    /// and with workers the sampler's first draws (they prefetch indices). With persistent
    /// workers torch keeps that iterator, so the pass after it draws no base seed. Not
    /// reproduced (nothing drawn here, the pass draws as any first pass): a sampler of the
    /// file's (it draws in the plugin), and persistent item workers (torch's kept ones were
    /// started by the dropped iterator, and have fetched ahead).
    pub fn discard_iterator(&self) -> Result<()> {
        let workers = self.items.as_ref().is_some_and(|i| i.num_workers > 0);
        if matches!(self.sampler, Sampler::Plugin { .. }) || (self.persistent && workers) {
            return Ok(());
        }
        self.passes.set(self.passes.get() + 1);
        torch_ext::draw_seed()?;
        if workers {
            self.sampler.order(self.len, 0)?;
        }
        Ok(())
    }

    /// Lightning's `FitLoop.setup_data` makes the iterator as it sets the loader up (its base
    /// seed drawn now); the first pass then uses it without drawing one. Reproduced for a
    /// loader of columns or items read in the main process (no workers: theirs fetch ahead
    /// as the iterator is made) with the host's sampler; otherwise nothing is drawn here and
    /// the pass draws as any first pass.
    pub fn make_iterator_now(&self) -> Result<()> {
        let workers = self.items.as_ref().is_some_and(|i| i.num_workers > 0);
        if self.stream.is_some() || workers || matches!(self.sampler, Sampler::Plugin { .. }) {
            return Ok(());
        }
        self.predrawn.set(Some(torch_ext::draw_seed()?));
        Ok(())
    }

    pub fn new(spec: DatasetSpec, split: Split, source: &str) -> Result<Self> {
        let name = split.name();
        if spec.batch_size == 0 {
            bail!("{source}: the {name} dataset has batch size 0");
        }
        let items = match spec.items {
            Some(_) if !spec.columns.is_empty() => bail!("{source}: the {name} dataset has both columns and items"),
            Some(i) => Some(Items {
                len: i64::try_from(i.len)
                    .map_err(|_| anyhow::anyhow!("{source}: the {name} dataset declares {} items", i.len))?,
                num_workers: i.num_workers,
                fetcher: std::cell::RefCell::new(i.fetcher),
                source: format!("{source}: the {name} items"),
                persistent: spec.persistent_workers,
                kept_workers: std::cell::RefCell::new((Vec::new(), 0)),
            }),
            None if spec.columns.is_empty() => bail!("{source}: the {name} dataset has no columns"),
            None => None,
        };
        let mut len = items.as_ref().map(|i| i.len);
        for (i, c) in spec.columns.iter().enumerate() {
            if c.dim() == 0 {
                bail!("{source}: column {i} of the {name} dataset is a scalar; columns are batched along dim 0");
            }
            let n = c.size()[0];
            match len {
                None => len = Some(n),
                Some(l) if l != n => bail!(
                    "{source}: the {name} dataset's columns differ in length along dim 0 ({l} vs {n} in column {i})"
                ),
                _ => {}
            }
        }
        let len = len.unwrap_or(0);
        if matches!(spec.sampler, Some(Sampler::Plugin { .. })) && items.is_none() {
            bail!("{source}: the {name} dataset's sampler is the plugin's own, which needs a dataset of items");
        }
        let sampler = spec.sampler.unwrap_or(if spec.shuffle { Sampler::Random } else { Sampler::Sequential });
        sampler.validate(len).map_err(|e| anyhow::anyhow!("{source}: the {name} dataset: {e}"))?;
        Ok(DataLoader {
            split,
            stream: None,
            items,
            columns: spec.columns,
            len,
            batch_size: spec.batch_size as i64,
            sampler,
            drop_last: spec.drop_last,
            prefetch: 0,
            persistent: spec.persistent_workers,
            passes: std::cell::Cell::new(0),
            predrawn: std::cell::Cell::new(None),
        })
    }

    /// A loader over a streaming source.
    pub fn streaming(spec: StreamSpec, split: Split, source: &str) -> Result<Self> {
        let stream = StreamLoader::new(spec, split, source)?;
        let len = i64::try_from(stream.num_batches()).unwrap_or(i64::MAX);
        Ok(DataLoader {
            split,
            stream: Some(stream),
            items: None,
            columns: Vec::new(),
            len,
            batch_size: 1,
            sampler: Sampler::Sequential,
            drop_last: false,
            prefetch: 0,
            persistent: false,
            passes: std::cell::Cell::new(0),
            predrawn: std::cell::Cell::new(None),
        })
    }

    /// DataLoader workers making the batches (streams only).
    pub fn num_workers(&self) -> u32 {
        self.stream.as_ref().map(StreamLoader::num_workers).unwrap_or(0)
    }

    /// Turns shuffling off (overfit_batches: Lightning swaps in a SequentialSampler, or keeps
    /// the DistributedSampler unshuffled).
    pub fn set_shuffle(&mut self, shuffle: bool) {
        if !shuffle {
            self.sampler = match self.sampler {
                Sampler::Distributed { num_replicas, rank, seed, drop_last, .. } => {
                    Sampler::Distributed { num_replicas, rank, shuffle: false, seed, drop_last }
                }
                _ => Sampler::Sequential,
            };
        }
    }

    /// Lightning's `use_distributed_sampler` under a distributed strategy: a map-style
    /// dataset's sampler becomes a DistributedSampler for this rank — shuffled for training
    /// whatever the loader said (Lightning's `_process_dataloader`), as the loader said for
    /// evaluation — seeded with the run's seed (`PL_GLOBAL_SEED`). A stream (an
    /// IterableDataset) and a DistributedSampler of the plugin's own are left as they are.
    pub fn distribute(&mut self, world: crate::distributed::World) -> Result<()> {
        if self.stream.is_some() {
            return Ok(());
        }
        let shuffle = match &self.sampler {
            Sampler::Distributed { .. } => return Ok(()),
            Sampler::Sequential => self.split == Split::Train,
            Sampler::Random => true,
            Sampler::Weighted { .. } | Sampler::Plugin { .. } => bail!(
                "a sampler of the plugin's own under a distributed strategy needs Lightning's DistributedSamplerWrapper, which lthost does not have yet; use shuffle or a DistributedSampler"
            ),
        };
        if self.split == Split::Predict {
            bail!("prediction under a distributed strategy (Lightning's UnrepeatedDistributedSampler) is not supported yet");
        }
        self.sampler = Sampler::Distributed {
            num_replicas: world.world_size as i64,
            rank: world.global_rank as i64,
            shuffle,
            seed: world.seed as i64,
            drop_last: false,
        };
        self.sampler.validate(self.len)
    }

    /// Rows in the dataset (a stream: batches per pass).
    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The dataset's length as Lightning's `len(dataloader.dataset)` gives it; None for a
    /// stream (an IterableDataset).
    pub fn dataset_len(&self) -> Option<u64> {
        self.stream.is_none().then_some(self.len.max(0) as u64)
    }

    /// Samples per pass (the sampler's length).
    pub fn samples(&self) -> i64 {
        self.sampler.len(self.len)
    }

    /// Batches per pass; [`UNBOUNDED`](crate::module::UNBOUNDED) for a stream of unknown
    /// length.
    pub fn num_batches(&self) -> usize {
        if let Some(st) = &self.stream {
            return st.num_batches();
        }
        if let Sampler::Plugin { batches } = self.sampler {
            return batches as usize;
        }
        let s = self.samples();
        let n = if self.drop_last { s / self.batch_size } else { (s + self.batch_size - 1) / self.batch_size };
        n as usize
    }

    /// One pass over the data, in a new order from the sampler.
    pub fn epoch(&self, device: Device) -> Result<EpochBatches<'_>> {
        self.epoch_from(device, None, 0, 0)
    }

    /// A pass of epoch `epoch` starting at batch `start`: in `order` if given (a resumed
    /// epoch: nothing is drawn, the generator was restored past this epoch's draws), else
    /// in a new order from the sampler. For a stream `order` is the pass's base seed.
    pub fn epoch_from(
        &self,
        device: Device,
        order: Option<Tensor>,
        start: usize,
        epoch: u64,
    ) -> Result<EpochBatches<'_>> {
        if let Some(st) = &self.stream {
            let pass = st.pass(device, order.as_ref(), start, epoch)?;
            return Ok(EpochBatches {
                loader: self,
                order: Some(pass.seed()),
                next: start,
                source: Source::Stream(Box::new(pass)),
            });
        }
        if let Some(items) = &self.items {
            return self.item_pass(items, device, order, start, epoch);
        }
        let (_, order) = self.pass_order(order, start, epoch)?;
        let plan = BatchPlan {
            columns: self.columns.iter().map(Tensor::shallow_clone).collect(),
            order: order.as_ref().map(Tensor::shallow_clone),
            batch_size: self.batch_size,
            samples: self.samples(),
            device,
        };
        let end = self.num_batches();
        let source = if self.prefetch > 0 && end > start + 1 {
            Source::Ahead(super::prefetch::Prefetcher::start(plan, start, end, self.prefetch))
        } else {
            Source::Inline(plan)
        };
        Ok(EpochBatches { loader: self, order, next: start, source })
    }

    /// Whether a new pass draws the DataLoader iterator's base seed: every pass, or with
    /// persistent workers the first one only (torch keeps that iterator and its workers).
    fn draws_base_seed(&self) -> bool {
        let first = self.passes.replace(self.passes.get() + 1) == 0;
        first || !self.persistent
    }

    /// The pass's base seed (None: not drawn, a resumed pass) and order (None: 0..len):
    /// `saved` if given, else a new one from the sampler.
    fn pass_order(&self, saved: Option<Tensor>, start: usize, epoch: u64) -> Result<(Option<i64>, Option<Tensor>)> {
        if let (Some(base), None, 0) = (self.predrawn.take(), &saved, start) {
            self.passes.set(self.passes.get() + 1);
            return Ok((Some(base), self.sampler.order(self.len, epoch)?));
        }
        let draws = self.draws_base_seed();
        Ok(match saved {
            Some(o) => {
                if o.size() != [self.samples()] {
                    bail!("the saved data order has {:?} entries, this pass has {}", o.size(), self.samples());
                }
                // A DistributedSampler's order is its seed's, epoch's and rank's: every rank
                // takes its own again (a checkpoint holds rank 0's).
                match self.sampler {
                    Sampler::Distributed { .. } => (None, self.sampler.order(self.len, epoch)?),
                    _ => (None, Some(o)),
                }
            }
            None if start == 0 && !draws => (None, self.sampler.order(self.len, epoch)?),
            None if start == 0 => {
                let (base, order) = self
                    .sampler
                    .pass(self.len, epoch)
                    .map_err(|e| anyhow::anyhow!("sampling the {} data: {e}", self.split.name()))?;
                (Some(base), order)
            }
            None if self.sampler.is_random() => {
                bail!("resuming the {} data mid-pass needs the saved order of its random sampler", self.split.name())
            }
            None => match &self.sampler {
                Sampler::Sequential => (None, None),
                s => (None, s.pass(self.len, epoch)?.1),
            },
        })
    }

    /// A pass over a map-style dataset's items, from batch `start`: in the batches a resumed
    /// pass kept (`saved`, with its base seed), else in new ones — the host sampler's order in
    /// batches, or the DataModule's own sampler's batches.
    fn item_pass<'a>(
        &'a self,
        items: &'a Items,
        device: Device,
        saved: Option<Tensor>,
        start: usize,
        epoch: u64,
    ) -> Result<EpochBatches<'a>> {
        let name = self.split.name();
        let kept = saved.as_ref().map(ItemPass::restore).transpose()?.flatten();
        let (base, batches) = match (kept, &self.sampler) {
            // A DistributedSampler's batches are this rank's again (the base seed is every
            // rank's: the same generator state).
            (Some((base, _)), Sampler::Distributed { .. }) => {
                let order = self.sampler.order(self.len, epoch)?;
                (Some(base), chunks(order.as_ref(), self.samples(), self.batch_size, self.num_batches())?)
            }
            (Some((base, batches)), _) => (Some(base), batches),
            (None, Sampler::Plugin { .. }) => {
                if start > 0 {
                    bail!("resuming the {name} data mid-pass needs the saved batches of its sampler");
                }
                // The plugin draws the iterator's base seed and then its sampler's indices, as
                // torch does, from the generators the file gave them.
                items.fetcher.borrow_mut().sample(self.draws_base_seed())?
            }
            (None, _) => {
                let (base, order) = self.pass_order(saved, start, epoch)?;
                (base, chunks(order.as_ref(), self.samples(), self.batch_size, self.num_batches())?)
            }
        };
        if batches.len() != self.num_batches() {
            bail!(
                "{}: the {name} sampler gave {} batches, its length says {}",
                items.source,
                batches.len(),
                self.num_batches()
            );
        }
        if self.persistent && items.num_workers > 0 && start > 0 {
            println!("note: the {name} DataLoader's persistent workers keep generators a checkpoint does not hold; they restart from the pass's seed, so items that draw random numbers may differ from the interrupted run's after the first epoch");
        }
        let plan = ItemPass::new(items, batches, base, device, name, epoch)?;
        let order = Some(plan.kept()?);
        let replay = items.num_workers > 0 && base.is_some();
        let mut pass = EpochBatches { loader: self, order, next: 0, source: Source::Items(Box::new(plan)) };
        if replay {
            // The batches already trained on are fetched again: each advances its worker's
            // generator as it did (without workers the run's generator was restored past them).
            for _ in 0..start {
                pass.next().transpose()?;
            }
        }
        pass.next = start;
        Ok(pass)
    }

    /// Batches a background thread prepares ahead (0: none, gathered when asked for).
    pub fn set_prefetch(&mut self, depth: usize) {
        self.prefetch = depth;
    }
}

/// What a pass gathers: the columns, the pass's order, the batch size; cheap to copy to a
/// prefetching thread (shallow tensor clones).
pub struct BatchPlan {
    columns: Vec<Tensor>,
    order: Option<Tensor>,
    batch_size: i64,
    samples: i64,
    device: Device,
}

impl BatchPlan {
    pub fn shallow_clone(&self) -> BatchPlan {
        BatchPlan {
            columns: self.columns.iter().map(Tensor::shallow_clone).collect(),
            order: self.order.as_ref().map(Tensor::shallow_clone),
            batch_size: self.batch_size,
            samples: self.samples,
            device: self.device,
        }
    }

    /// Batch `i`: the rows of every column, gathered with one `index_select` (or a view,
    /// in natural order) and moved to the device (through pinned memory, without blocking,
    /// for CUDA).
    pub fn batch(&self, i: usize) -> Result<Vec<Tensor>> {
        let start = i as i64 * self.batch_size;
        let size = self.batch_size.min(self.samples - start);
        let index = match &self.order {
            Some(o) => Some(o.f_narrow(0, start, size)?),
            None => None,
        };
        let mut out = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let part = match &index {
                Some(ix) => c.f_index_select(0, ix)?,
                None => c.f_narrow(0, start, size)?,
            };
            out.push(to_device(part, self.device)?);
        }
        Ok(out)
    }
}

/// A batch the plugin made (`what` names it in errors): at least one tensor, none a
/// scalar, moved to `device` (through pinned memory, without blocking, for CUDA).
pub(super) fn made_batch(batch: Vec<Tensor>, device: Device, what: &dyn Fn() -> String) -> Result<Vec<Tensor>> {
    if batch.is_empty() {
        bail!("{} has no tensors", what());
    }
    if let Some(k) = batch.iter().position(|t| t.dim() == 0) {
        bail!("tensor {k} of {} is a scalar; a batch's tensors have the batch along dim 0", what());
    }
    batch.into_iter().map(|t| to_device(t, device)).collect()
}

fn to_device(t: Tensor, device: Device) -> Result<Tensor> {
    Ok(match device {
        Device::Cpu => t,
        d => t.f_pin_memory(d)?.f_to_device_(d, t.kind(), true, false)?,
    })
}

pub struct EpochBatches<'a> {
    loader: &'a DataLoader,
    order: Option<Tensor>,
    next: usize,
    source: Source<'a>,
}

enum Source<'a> {
    /// Gathered when asked for.
    Inline(BatchPlan),
    /// Gathered ahead by a background thread (`prefetch` batches deep).
    Ahead(super::prefetch::Prefetcher),
    /// Made by the plugin (or its workers).
    Stream(Box<StreamPass<'a>>),
    /// Items fetched from the plugin.
    Items(Box<ItemPass<'a>>),
}

impl EpochBatches<'_> {
    /// What a resumed pass needs: this pass's order (None: the natural one), or for a
    /// stream its base seed.
    pub fn order(&self) -> Option<Tensor> {
        self.order.as_ref().map(Tensor::shallow_clone)
    }
}

impl Iterator for EpochBatches<'_> {
    type Item = Result<Vec<Tensor>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.loader.num_batches() {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let b = match &mut self.source {
            Source::Inline(plan) => plan.batch(i),
            Source::Ahead(p) => p.next_batch(),
            Source::Stream(p) => match p.next_batch() {
                Ok(Some(b)) => Ok(b),
                Ok(None) => {
                    // A stream of unknown length ended: so does the pass.
                    self.next = crate::module::UNBOUNDED;
                    return None;
                }
                Err(e) => Err(e),
            },
            Source::Items(p) => p.batch(i),
        };
        Some(b.map_err(|e| anyhow::anyhow!("fetching {} batch {i}: {e:#}", self.loader.split.name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn spec(n: i64, bs: usize, drop_last: bool) -> DatasetSpec {
        DatasetSpec {
            columns: vec![
                Tensor::arange(n, (Kind::Int64, Device::Cpu)),
                Tensor::zeros([n, 2], (Kind::Float, Device::Cpu)),
            ],
            batch_size: bs,
            shuffle: false,
            drop_last,
            sampler: None,
            items: None,
            persistent_workers: false,
        }
    }

    #[test]
    fn batches_cover_the_data_in_order() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // a pass draws from the global generator
        let dl = DataLoader::new(spec(10, 4, false), Split::Train, "t").unwrap();
        assert_eq!(dl.num_batches(), 3);
        let sizes: Vec<i64> = dl.epoch(Device::Cpu).unwrap().map(|b| b.unwrap()[0].size()[0]).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let dl = DataLoader::new(spec(10, 4, true), Split::Train, "t").unwrap();
        assert_eq!(dl.num_batches(), 2);
    }

    #[test]
    fn prefetching_gives_the_same_batches() {
        let _rng = crate::engine::torch_ext::global_rng_lock();
        let mut s = spec(103, 8, false);
        s.shuffle = true;
        let mut dl = DataLoader::new(s, Split::Train, "t").unwrap();
        tch::manual_seed(5);
        let inline: Vec<Vec<i64>> =
            dl.epoch(Device::Cpu).unwrap().map(|b| Vec::<i64>::try_from(&b.unwrap()[0]).unwrap()).collect();
        dl.set_prefetch(3);
        tch::manual_seed(5);
        let ahead: Vec<Vec<i64>> =
            dl.epoch(Device::Cpu).unwrap().map(|b| Vec::<i64>::try_from(&b.unwrap()[0]).unwrap()).collect();
        assert_eq!(inline, ahead);
        // Stopping early (a break in the loop) ends the thread.
        tch::manual_seed(5);
        let first: Vec<Vec<Tensor>> = dl.epoch(Device::Cpu).unwrap().take(2).map(|b| b.unwrap()).collect();
        assert_eq!(first.len(), 2);
    }

    #[test]
    fn refuses_ragged_columns() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // a pass draws from the global generator
        let s = DatasetSpec {
            columns: vec![
                Tensor::zeros([3], (Kind::Float, Device::Cpu)),
                Tensor::zeros([4], (Kind::Float, Device::Cpu)),
            ],
            batch_size: 2,
            shuffle: false,
            drop_last: false,
            sampler: None,
            items: None,
            persistent_workers: false,
        };
        let err = DataLoader::new(s, Split::Val, "p").err().unwrap().to_string();
        assert!(err.contains("differ in length"), "{err}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let _rng = crate::engine::torch_ext::global_rng_lock();
        let mut s = spec(9, 4, false);
        s.shuffle = true;
        let dl = DataLoader::new(s, Split::Train, "t").unwrap();
        let mut seen: Vec<i64> =
            dl.epoch(Device::Cpu).unwrap().flat_map(|b| Vec::<i64>::try_from(&b.unwrap()[0]).unwrap()).collect();
        seen.sort();
        assert_eq!(seen, (0..9).collect::<Vec<_>>());
    }
}
