//! Streaming sources: batches a DataModule makes itself (torch's IterableDataset behind a
//! DataLoader with `batch_size=None`). With no workers the plugin's own instance makes them
//! between steps; with N, the [`WorkerPool`]'s instances make them ahead on N threads and
//! the loop takes them from worker 0, 1, ..., N-1, 0, ... skipping workers whose share has
//! ended — the order torch's multi-process DataLoader delivers.
//!
//! Every pass draws the DataLoader iterator's base seed from the run's generator (as torch
//! does); worker `i` gets `base + i`. A checkpoint taken mid-pass keeps the base seed; the
//! resumed pass restarts the workers with it and skips the batches already trained on, so
//! it sees the same batches (exactly, when the batches depend only on the workers' seeds;
//! a stream made without workers draws from the run's generator, as torch's main process
//! does, so its replayed random batches can differ and lthost says so).

use std::cell::RefCell;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use tch::{Device, Kind, Tensor};

use super::fetchers::made_batch;
use super::workers::{Delivery, WorkerPool};
use crate::engine::torch_ext;
use crate::module::{BatchSource, Split, StreamSpec, WorkerFactory, WorkerInfo};

pub struct StreamLoader {
    split: Split,
    /// None: unknown; a pass runs until the source ends.
    num_batches: Option<usize>,
    num_workers: u32,
    main: RefCell<Box<dyn BatchSource>>,
    factory: Option<Arc<dyn WorkerFactory>>,
    /// Started on the first pass, kept for the next ones.
    pool: RefCell<Option<WorkerPool>>,
    /// Who makes the batches, for errors (`plugin `x``).
    source: String,
}

impl StreamLoader {
    pub fn new(spec: StreamSpec, split: Split, source: &str) -> Result<StreamLoader> {
        if spec.num_workers > 0 && spec.workers.is_none() {
            bail!(
                "{source}: the {} stream asks for {} workers but this DataModule cannot make worker instances",
                split.name(),
                spec.num_workers
            );
        }
        if spec.num_workers > 64 {
            bail!("{source}: the {} stream asks for {} workers; at most 64", split.name(), spec.num_workers);
        }
        let num_batches = match spec.num_batches {
            Some(n) => Some(
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n != crate::module::UNBOUNDED)
                    .ok_or_else(|| anyhow!("{source}: the {} stream declares {n} batches", split.name()))?,
            ),
            None => None,
        };
        Ok(StreamLoader {
            split,
            num_batches,
            num_workers: spec.num_workers,
            main: RefCell::new(spec.main),
            factory: spec.workers,
            pool: RefCell::new(None),
            source: source.to_string(),
        })
    }

    /// Batches per pass; [`UNBOUNDED`](crate::module::UNBOUNDED) when the source did not say.
    pub fn num_batches(&self) -> usize {
        self.num_batches.unwrap_or(crate::module::UNBOUNDED)
    }

    pub fn num_workers(&self) -> u32 {
        self.num_workers
    }

    /// A pass of epoch `epoch` from batch `start`: with the base seed `seed` (a resumed
    /// pass), else with one drawn from the run's generator.
    pub fn pass(&self, device: Device, seed: Option<&Tensor>, start: usize, epoch: u64) -> Result<StreamPass<'_>> {
        let name = self.split.name();
        let base = match seed {
            Some(t) => {
                let v =
                    Vec::<i64>::try_from(t).map_err(|e| anyhow!("the saved base seed of the {name} stream: {e}"))?;
                match v.as_slice() {
                    [s] => *s,
                    _ => bail!("the saved base seed of the {name} stream has {} values, not 1", v.len()),
                }
            }
            None if start > 0 => bail!("resuming the {name} stream mid-pass needs its saved base seed"),
            None => torch_ext::draw_seed()?,
        };
        let feed = if self.num_workers == 0 {
            let info = WorkerInfo { id: 0, num_workers: 0, seed: base as u64, epoch };
            self.main.borrow_mut().start_pass(info)?;
            Feed::Main
        } else {
            let mut pool = self.pool.borrow_mut();
            if pool.is_none() {
                let factory = self.factory.as_ref().ok_or_else(|| anyhow!("{}: no worker factory", self.source))?;
                *pool = Some(WorkerPool::start(factory, self.num_workers, name)?);
            }
            let receivers = pool.as_ref().map(|p| p.pass(base as u64, epoch)).transpose()?.unwrap_or_default();
            Feed::Workers { receivers: receivers.into_iter().map(Some).collect(), next: 0 }
        };
        let mut pass = StreamPass { loader: self, base, feed, made: 0, device };
        if start > 0 {
            // The plugin's own instance draws from the run's generator, which the checkpoint
            // restored past this point: replaying must not move it.
            let rng = match pass.feed {
                Feed::Main => {
                    println!("note: the {name} stream is replayed up to batch {start} in the plugin's own instance (num_workers 0), drawing from the run's generator, so random batches may differ from the interrupted run's; streams with workers resume exactly");
                    Some(torch_ext::cpu_rng_state()?)
                }
                Feed::Workers { .. } => None,
            };
            for i in 0..start {
                if pass.next_batch()?.is_none() {
                    bail!(
                        "resuming the {name} stream: it ended after {i} batches, before the {start} already trained on"
                    );
                }
            }
            if let Some(state) = rng {
                torch_ext::set_cpu_rng_state(&state)?;
            }
        }
        Ok(pass)
    }
}

enum Feed {
    /// The plugin's own instance, called between steps.
    Main,
    /// One receiver per worker; None once its share has ended.
    Workers { receivers: Vec<Option<Receiver<Delivery>>>, next: usize },
}

pub struct StreamPass<'a> {
    loader: &'a StreamLoader,
    base: i64,
    feed: Feed,
    /// Batches taken so far in this pass.
    made: usize,
    device: Device,
}

impl StreamPass<'_> {
    /// What a resumed pass needs: its base seed, as a one-element int64 tensor.
    pub fn seed(&self) -> Tensor {
        Tensor::from_slice(&[self.base]).to_kind(Kind::Int64)
    }

    /// The next batch on the run's device; None when a stream of unknown length ends (one
    /// that declared its length and ends sooner is an error).
    pub fn next_batch(&mut self) -> Result<Option<Vec<Tensor>>> {
        let l = self.loader;
        let i = self.made;
        let got = match &mut self.feed {
            Feed::Main => l.main.borrow_mut().next_batch()?,
            Feed::Workers { receivers, next } => next_from_workers(receivers, next)?,
        };
        let Some(batch) = got else {
            let Some(declared) = l.num_batches else { return Ok(None) };
            bail!(
                "{}: the {} stream ended after {i} batches, but declares {declared} per pass (num-batches)",
                l.source,
                l.split.name(),
            );
        };
        self.made += 1;
        made_batch(batch, self.device, &|| format!("{}: batch {i} of the {} stream", l.source, l.split.name()))
            .map(Some)
    }
}

/// Worker `next`'s next batch, skipping workers whose share has ended; None when all have.
fn next_from_workers(receivers: &mut [Option<Receiver<Delivery>>], next: &mut usize) -> Result<Option<Vec<Tensor>>> {
    let n = receivers.len();
    while receivers.iter().any(Option::is_some) {
        let w = *next;
        *next = (w + 1) % n;
        let Some(rx) = &receivers[w] else { continue };
        match rx.recv() {
            Ok(Ok(Some(b))) => return Ok(Some(b)),
            Ok(Ok(None)) => receivers[w] = None,
            Ok(Err(e)) => return Err(e.context(format!("DataLoader worker {w}"))),
            Err(_) => bail!("DataLoader worker {w} stopped"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worker `id` makes `id + 1` batches, each `[id * 100 + k, seed]`.
    struct Counting {
        id: u32,
        made: i64,
        left: u32,
        seed: u64,
        fail_at: Option<i64>,
    }

    impl BatchSource for Counting {
        fn start_pass(&mut self, w: WorkerInfo) -> Result<()> {
            assert_eq!(w.id, self.id);
            self.left = w.id + 1;
            self.made = 0;
            self.seed = w.seed;
            Ok(())
        }
        fn next_batch(&mut self) -> Result<Option<Vec<Tensor>>> {
            if self.fail_at == Some(self.made) {
                bail!("shard {} is unreadable", self.id);
            }
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            let b = Tensor::from_slice(&[self.id as i64 * 100 + self.made, self.seed as i64]);
            self.made += 1;
            Ok(Some(vec![b]))
        }
    }

    struct Factory(Option<i64>);

    impl WorkerFactory for Factory {
        fn spawn(&self, id: u32) -> Result<Box<dyn BatchSource>> {
            Ok(Box::new(Counting { id, made: 0, left: 0, seed: 0, fail_at: if id == 1 { self.0 } else { None } }))
        }
    }

    fn loader(workers: u32, batches: Option<u64>, fail_at: Option<i64>) -> StreamLoader {
        let main = Box::new(Counting { id: 0, made: 0, left: 0, seed: 0, fail_at: None });
        let spec =
            StreamSpec { num_batches: batches, num_workers: workers, main, workers: Some(Arc::new(Factory(fail_at))) };
        StreamLoader::new(spec, Split::Train, "test").expect("a loader")
    }

    fn take(pass: &mut StreamPass<'_>, n: usize) -> Vec<Vec<i64>> {
        (0..n)
            .map(|_| Vec::<i64>::try_from(&pass.next_batch().expect("a batch").expect("not ended")[0]).expect("ints"))
            .collect()
    }

    #[test]
    fn workers_take_turns_skipping_those_done_and_get_base_plus_id() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // a pass draws from the global generator
                                                                // Shares 1, 2, 3: torch's order is w0 w1 w2, w1 w2, w2.
        let l = loader(3, Some(6), None);
        let seed = Tensor::from_slice(&[1000i64]);
        let mut p = l.pass(Device::Cpu, Some(&seed), 0, 0).expect("a pass");
        let got = take(&mut p, 6);
        assert_eq!(
            got,
            vec![vec![0, 1000], vec![100, 1001], vec![200, 1002], vec![101, 1001], vec![201, 1002], vec![202, 1002]]
        );
        let err = p.next_batch().err().expect("past the end").to_string();
        assert!(err.contains("ended after 6 batches"), "{err}");
        drop(p);
        // A resumed pass skips what was trained on and sees the rest unchanged; the pool
        // is reused.
        let mut p = l.pass(Device::Cpu, Some(&seed), 4, 0).expect("a resumed pass");
        assert_eq!(take(&mut p, 2), vec![vec![201, 1002], vec![202, 1002]]);
        // A pass dropped early does not block the next.
        let p = l.pass(Device::Cpu, None, 0, 1).expect("a pass");
        drop(p);
        let mut p = l.pass(Device::Cpu, None, 0, 2).expect("a pass");
        assert_eq!(take(&mut p, 1)[0][0], 0);
    }

    #[test]
    fn a_stream_of_unknown_length_ends_with_its_source() {
        let _rng = crate::engine::torch_ext::global_rng_lock();
        let l = loader(3, None, None);
        assert_eq!(l.num_batches(), crate::module::UNBOUNDED);
        let seed = Tensor::from_slice(&[7i64]);
        let mut p = l.pass(Device::Cpu, Some(&seed), 0, 0).expect("a pass");
        assert_eq!(take(&mut p, 6).len(), 6);
        assert!(p.next_batch().expect("no error at the end").is_none());
        drop(p);
        // A resume past the source's end is refused, naming both counts.
        let err = l.pass(Device::Cpu, Some(&seed), 7, 0).err().expect("past the end").to_string();
        assert!(err.contains("ended after 6 batches, before the 7"), "{err}");
    }

    #[test]
    fn the_main_instance_makes_the_batches_without_workers() {
        let _rng = crate::engine::torch_ext::global_rng_lock();
        let l = loader(0, Some(1), None);
        tch::manual_seed(3);
        let want = torch_ext::draw_seed().expect("a seed");
        tch::manual_seed(3);
        let mut p = l.pass(Device::Cpu, None, 0, 0).expect("a pass");
        assert_eq!(take(&mut p, 1), vec![vec![0, want]]);
        assert_eq!(Vec::<i64>::try_from(&p.seed()).expect("ints"), vec![want]);
    }

    #[test]
    fn a_worker_error_names_the_worker() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // a pass draws from the global generator
        let l = loader(2, Some(3), Some(1));
        let mut p = l.pass(Device::Cpu, None, 0, 0).expect("a pass");
        take(&mut p, 2);
        let err = format!("{:#}", p.next_batch().err().expect("worker 1 fails"));
        assert!(err.contains("DataLoader worker 1") && err.contains("shard 1 is unreadable"), "{err}");
        assert!(StreamLoader::new(
            StreamSpec {
                num_batches: Some(1),
                num_workers: 2,
                main: Box::new(Counting { id: 0, made: 0, left: 0, seed: 0, fail_at: None }),
                workers: None
            },
            Split::Val,
            "p"
        )
        .is_err());
    }

    struct Scalar;

    impl BatchSource for Scalar {
        fn start_pass(&mut self, _: WorkerInfo) -> Result<()> {
            Ok(())
        }
        fn next_batch(&mut self) -> Result<Option<Vec<Tensor>>> {
            Ok(Some(vec![Tensor::from(1.0f32)]))
        }
    }

    #[test]
    fn a_scalar_in_a_batch_is_refused() {
        let _rng = crate::engine::torch_ext::global_rng_lock(); // a pass draws from the global generator
        let l = StreamLoader::new(
            StreamSpec { num_batches: Some(1), num_workers: 0, main: Box::new(Scalar), workers: None },
            Split::Train,
            "plugin `p`",
        )
        .expect("a loader");
        let err = l.pass(Device::Cpu, None, 0, 0).expect("a pass").next_batch().err().expect("refused").to_string();
        assert!(err.contains("plugin `p`") && err.contains("is a scalar"), "{err}");
    }
}
