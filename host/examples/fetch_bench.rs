//! Fetch throughput of lthost's DataLoader (for `make bench`): MNIST-sized float data
//! (60 000 × 784) and int64 labels, batch 64, shuffled, three passes, gathered inline and
//! with 2 batches prefetched on a background thread. Prints one JSON object.
//!
//!     cargo run --release -p lthost --example fetch_bench

use std::time::Instant;

use lthost::data::fetchers::DataLoader;
use lthost::module::{DatasetSpec, Split};
use tch::{Device, Kind, Tensor};

fn main() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let n = 60_000;
    let x = Tensor::randn([n, 784], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
    let mut out = serde_json::Map::new();
    for depth in [0usize, 2] {
        let spec = DatasetSpec {
            columns: vec![x.shallow_clone(), y.shallow_clone()],
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            sampler: None,
            items: None,
            persistent_workers: false,
        };
        let mut dl = DataLoader::new(spec, Split::Train, "bench")?;
        dl.set_prefetch(depth);
        let started = Instant::now();
        let mut batches = 0usize;
        let mut check = 0.0f64;
        for _ in 0..3 {
            for b in dl.epoch(Device::Cpu)? {
                let b = b?;
                check += b[1].int64_value(&[0]) as f64;
                batches += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        out.insert(format!("prefetch_{depth}"), serde_json::json!({"batches": batches, "seconds": secs, "batches_per_sec": batches as f64 / secs, "check": check}));
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
