//! DataLoader workers for streaming sources: `num_workers` DataModule instances, each on
//! its own thread, making their share of every pass two batches ahead (torch's default
//! prefetch_factor). Passes behave as torch's default (`persistent_workers=False`): each
//! draws a new base seed and every worker starts its share afresh (`start_pass`, with its
//! seed); only the instances themselves, set up once, are kept between passes.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};
use tch::Tensor;

use crate::module::{WorkerFactory, WorkerInfo};

/// What a worker sends for one pass: batches, then None at the end of its share.
pub type Delivery = Result<Option<Vec<Tensor>>>;

/// Batches a worker queues ahead of the loop.
const PREFETCH_FACTOR: usize = 2;

enum Command {
    Pass { info: WorkerInfo, out: SyncSender<Delivery> },
}

struct Worker {
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

pub struct WorkerPool {
    workers: Vec<Worker>,
}

impl WorkerPool {
    /// Starts `n` workers; each makes its DataModule instance on its own thread.
    pub fn start(factory: &Arc<dyn WorkerFactory>, n: u32, label: &str) -> Result<WorkerPool> {
        // Workers already started are joined (by Drop) if a later one cannot start.
        let mut pool = WorkerPool { workers: Vec::with_capacity(n as usize) };
        for id in 0..n {
            let (tx, rx) = channel::<Command>();
            let factory = Arc::clone(factory);
            let thread = std::thread::Builder::new()
                .name(format!("lthost-{label}-worker-{id}"))
                .spawn(move || serve(factory.as_ref(), id, rx))
                .map_err(|e| anyhow!("starting {label} worker {id}: {e}"))?;
            pool.workers.push(Worker { commands: Some(tx), thread: Some(thread) });
        }
        Ok(pool)
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Starts a pass in every worker; one receiver per worker, in worker order.
    pub fn pass(&self, base_seed: u64, epoch: u64) -> Result<Vec<Receiver<Delivery>>> {
        let n = self.workers.len() as u32;
        let mut out = Vec::with_capacity(self.workers.len());
        for (id, w) in self.workers.iter().enumerate() {
            let (tx, rx) = sync_channel(PREFETCH_FACTOR);
            let info = WorkerInfo { id: id as u32, num_workers: n, seed: base_seed.wrapping_add(id as u64), epoch };
            let sent = w.commands.as_ref().map(|c| c.send(Command::Pass { info, out: tx }).is_ok()).unwrap_or(false);
            if !sent {
                return Err(anyhow!("worker {id} has stopped"));
            }
            out.push(rx);
        }
        Ok(out)
    }
}

/// A worker's thread: builds its instance, then serves passes until the pool is dropped.
fn serve(factory: &dyn WorkerFactory, id: u32, commands: Receiver<Command>) {
    let mut source = {
        let _dtype = crate::engine::autocast::data_thread_guard();
        factory.spawn(id)
    };
    while let Ok(Command::Pass { info, out }) = commands.recv() {
        let src = match &mut source {
            Ok(s) => s,
            Err(e) => {
                let _ = out.send(Err(anyhow!("{e:#}")));
                continue;
            }
        };
        let started = {
            let _dtype = crate::engine::autocast::data_thread_guard();
            src.start_pass(info)
        };
        if let Err(e) = started {
            let _ = out.send(Err(e));
            continue;
        }
        loop {
            // The plugin's calls only: never held while waiting for the run's thread.
            let b = {
                let _dtype = crate::engine::autocast::data_thread_guard();
                src.next_batch()
            };
            let end = !matches!(b, Ok(Some(_)));
            // A closed channel: the pass was dropped (an epoch that ended early).
            if out.send(b).is_err() || end {
                break;
            }
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // Closing the command channels ends the threads once their pass is dropped.
        for w in &mut self.workers {
            w.commands.take();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
