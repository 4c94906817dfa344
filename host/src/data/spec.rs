//! What a DataModule hands the data path for a split's DataLoader: a dataset of columns or of
//! items it reads ([`DatasetSpec`], [`ItemSpec`]), or a stream of batches made by it or by its
//! worker instances ([`StreamSpec`]).

use anyhow::Result;
use tch::Tensor;

/// A dataset as columns of equal length along dim 0 (or a map-style dataset the DataModule
/// reads item by item, `items`), and how to batch it.
pub struct DatasetSpec {
    pub columns: Vec<Tensor>,
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    /// The sampler (None: RandomSampler when `shuffle`, else SequentialSampler).
    pub sampler: Option<crate::data::sampler::Sampler>,
    /// A map-style dataset: its items make the batches (`columns` empty).
    pub items: Option<ItemSpec>,
    /// DataLoader workers that persist (`persistent_workers`): the iterator's base seed is
    /// drawn on the first pass only, and the workers keep their generators.
    pub persistent_workers: bool,
}

/// A map-style dataset the DataModule reads item by item (torch's `__getitem__` and
/// `collate_fn`, every pass), `len` items, fetched as DataLoader workers would.
pub struct ItemSpec {
    pub len: u64,
    pub num_workers: u32,
    pub fetcher: Box<dyn ItemFetcher>,
}

/// Makes batches of a map-style dataset's items.
pub trait ItemFetcher {
    /// The batch of items `indices`, the random ops drawing from `generator` (DataLoader
    /// worker `worker`'s, lent for the call and given back) or, when None, from the run's
    /// generator.
    fn fetch(
        &mut self,
        indices: &[u64],
        generator: &mut Option<crate::engine::torch_ext::Generator>,
        worker: Option<WorkerInfo>,
    ) -> Result<Vec<Tensor>>;
    /// A new pass of the DataModule's own sampler, its draws in torch's order: the
    /// DataLoader iterator's base seed first when `base_seed` (returned; from the
    /// DataLoader's own generator, else the run's), then the pass's batches of indices.
    fn sample(&mut self, base_seed: bool) -> Result<(Option<i64>, Vec<Vec<u64>>)>;
}

/// Batches per pass of a loader that cannot say how many it makes (a stream without a
/// length): Lightning's `float("inf")`; its passes run until the source ends.
pub const UNBOUNDED: usize = usize::MAX;

/// `n` batches as Lightning's loop numbers give them: None for [`UNBOUNDED`] (inf).
pub fn sized(n: usize) -> Option<u64> {
    (n != UNBOUNDED).then_some(n as u64)
}

/// A source the DataModule produces batch by batch (an IterableDataset yielding batches):
/// `num_batches` per pass (None: unknown, until the source ends), made by `main`
/// (num_workers 0) or by `num_workers` instances that `workers` makes on their own threads.
pub struct StreamSpec {
    pub num_batches: Option<u64>,
    pub num_workers: u32,
    pub main: Box<dyn BatchSource>,
    pub workers: Option<std::sync::Arc<dyn WorkerFactory>>,
}

/// torch.utils.data.get_worker_info() for one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerInfo {
    pub id: u32,
    pub num_workers: u32,
    /// The pass's base seed + id: a worker's random ops draw from a generator seeded so.
    pub seed: u64,
    pub epoch: u64,
}

/// Batches made by one DataModule instance, pass by pass.
pub trait BatchSource {
    fn start_pass(&mut self, worker: WorkerInfo) -> Result<()>;
    /// None: this instance's share of the pass has ended.
    fn next_batch(&mut self) -> Result<Option<Vec<Tensor>>>;
}

/// Makes the DataModule instance of DataLoader worker `id`, on that worker's thread.
pub trait WorkerFactory: Send + Sync {
    fn spawn(&self, id: u32) -> Result<Box<dyn BatchSource>>;
}
