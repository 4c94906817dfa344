//! What a generic ATen call costs against a typed one (issue 16): `aten::add.Tensor` on two
//! 4-element float32 tensors, through tch's typed `f_add` and through `engine::aten::Op`
//! (resolved once, then a boxed call with the schema's defaults filled in), in alternating
//! rounds; prints nanoseconds per call, median (min–max) of the rounds, as JSON.
//!
//!     cargo run --release -p lthost --example dispatch_cost

use std::time::Instant;

use lthost::engine::aten::{Op, Value};
use tch::{Device, Kind, Tensor};

const ROUNDS: usize = 10;
const CALLS: usize = 50_000;

fn median_and_range(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let m = if xs.len() % 2 == 1 { xs[xs.len() / 2] } else { (xs[xs.len() / 2 - 1] + xs[xs.len() / 2]) / 2.0 };
    (m, xs[0], xs[xs.len() - 1])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tch::set_num_threads(1);
    let a = Tensor::ones([4], (Kind::Float, Device::Cpu));
    let b = Tensor::ones([4], (Kind::Float, Device::Cpu));
    let op = Op::find("aten::add.Tensor")?;
    let args = [Value::Tensor(a.shallow_clone()), Value::Tensor(b.shallow_clone())];
    let (mut typed, mut generic) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        for _ in 0..CALLS {
            let _ = a.f_add(&b).map_err(|e| e.to_string())?;
        }
        typed.push(t0.elapsed().as_nanos() as f64 / CALLS as f64);
        let t0 = Instant::now();
        for _ in 0..CALLS {
            let _ = op.call(&args, &[])?;
        }
        generic.push(t0.elapsed().as_nanos() as f64 / CALLS as f64);
    }
    let (t, tlo, thi) = median_and_range(typed);
    let (g, glo, ghi) = median_and_range(generic);
    println!(
        "{{\"op\": \"aten::add.Tensor\", \"typed_ns\": [{t:.0}, {tlo:.0}, {thi:.0}], \"generic_ns\": [{g:.0}, {glo:.0}, {ghi:.0}], \"rounds\": {ROUNDS}, \"calls_per_round\": {CALLS}}}"
    );
    Ok(())
}
