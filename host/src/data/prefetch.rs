//! The prefetching fetcher: a background thread gathers the next batches of a pass
//! (`index_select` per column, and on CUDA the pinned, non-blocking copy) while the model
//! computes, `depth` batches ahead, so fetch time hides behind compute. It draws nothing
//! from the generator (the pass's order was drawn before it starts), so results are the
//! same as gathering inline. Dropping the pass (an epoch that ends early) stops the thread.

use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};
use tch::Tensor;

use super::fetchers::BatchPlan;

pub struct Prefetcher {
    rx: Option<Receiver<Result<Vec<Tensor>>>>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts gathering batches `start..end` of `plan`.
    pub fn start(plan: BatchPlan, start: usize, end: usize, depth: usize) -> Prefetcher {
        let (tx, rx) = sync_channel(depth.max(1));
        let worker = std::thread::Builder::new()
            .name("lthost-prefetch".into())
            .spawn(move || {
                for i in start..end {
                    let b = {
                        let _dtype = crate::engine::autocast::data_thread_guard();
                        plan.batch(i)
                    };
                    let failed = b.is_err();
                    if tx.send(b).is_err() || failed {
                        break;
                    }
                }
            })
            .ok();
        Prefetcher { rx: Some(rx), worker }
    }

    /// The next batch, waiting for the thread if it is behind.
    pub fn next_batch(&mut self) -> Result<Vec<Tensor>> {
        match self.rx.as_ref().map(Receiver::recv) {
            Some(Ok(b)) => b,
            _ => Err(anyhow!("the prefetching thread stopped")),
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel makes the thread's next send fail; then it ends.
        self.rx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
