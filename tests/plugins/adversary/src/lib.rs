//! A plugin that tries to get out of its sandbox, for lthost's adversarial suite
//! (tests/e2e/adversarial.rs). The `attack` hyper-parameter picks what it tries:
//!
//! - in `configure`: `env` (read environment variables), `fs-read` (`..`, absolute paths
//!   and a symlink out of `/data`), `fs-write` (into the read-only `/data`, out of it, into
//!   another run's checkpoints), `fs-output` (its own `/output`, and out of it), `network`
//!   (TCP and UDP). An attempt that works makes
//!   `configure` fail with "SANDBOX ESCAPE"; refused ones are printed as "blocked ...".
//! - in `training_step`: `recursion` (unbounded), `forged-handle` (a handle never issued),
//!   `wrong-type-handle` (an operator's handle used as a tensor), `huge-tensor`
//!   (zeros([10^6, 10^6])), `budget` (2 GiB tensors until the budget ends), `handles`
//!   (leaks handles), `load-escape` (`tensor.load` of `../` and absolute paths); against
//!   the tensor budget, charged where libtorch allocates: `views` (keeps a one-element view
//!   of each 128 MiB tensor), `arange` (a 16 GB `arange`), `autograd` (a chain whose saved
//!   tensors pile up), and in `configure`, `params` (registers 64 MiB layers until refused);
//!   `slow-op` (2048² matmuls until the hook's time is up: the op that overran is named);
//!   against time limits and signals: `sleep` (a 60 s WASI sleep), `spin` (a busy loop).
//! - It also exports a callback (`on_hook` does nothing): loaded with `--callback`, it must
//!   be refused, since its tensor imports are more than a callback's world allows.

use lthost_sdk::nn::Linear;
use lthost_sdk::prelude::*;

struct Adversary {
    attack: String,
    layer: Linear,
    /// The path of another run's files the test wants left alone.
    victim: String,
}

fn blocked<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<(), String> {
    match r {
        Ok(_) => Err(format!("SANDBOX ESCAPE: {what} worked")),
        Err(e) => {
            println!("blocked {what}: {e}");
            Ok(())
        }
    }
}

fn configure_attack(attack: &str, victim: &str) -> Result<(), String> {
    match attack {
        "env" => {
            let vars: Vec<(String, String)> = std::env::vars().collect();
            if !vars.is_empty() {
                return Err(format!("SANDBOX ESCAPE: saw {} environment variables, e.g. {:?}", vars.len(), vars[0].0));
            }
            blocked("reading $HOME", std::env::var("HOME"))?;
            println!("blocked env: {} variables visible", vars.len());
        }
        "fs-read" => {
            for p in [
                "/data/../secret.txt",
                "/secret.txt",
                "../secret.txt",
                "/etc/passwd",
                "/data/link-out/secret.txt",
                "/data/link-file",
            ] {
                blocked(&format!("reading {p}"), std::fs::read(p))?;
            }
            blocked("listing /", std::fs::read_dir("/"))?;
        }
        "fs-write" => {
            blocked("writing /data/new.txt", std::fs::write("/data/new.txt", b"x"))?;
            blocked("writing /data/../escape.txt", std::fs::write("/data/../escape.txt", b"x"))?;
            blocked("writing /tmp/escape.txt", std::fs::write("/tmp/escape.txt", b"x"))?;
            blocked(&format!("writing {victim}"), std::fs::write(victim, b"not a checkpoint"))?;
            blocked("removing /data/digits.safetensors", std::fs::remove_file("/data/digits.safetensors"))?;
        }
        "fs-output" => {
            std::fs::write("/output/ok.txt", b"its own output")
                .map_err(|e| format!("could not write its own /output: {e}"))?;
            println!("wrote /output/ok.txt");
            blocked("writing /output/../escape.txt", std::fs::write("/output/../escape.txt", b"x"))?;
            blocked("writing /output/../../secret.txt", std::fs::write("/output/../../secret.txt", b"x"))?;
        }
        "network" => {
            blocked("connecting to 127.0.0.1:9", std::net::TcpStream::connect("127.0.0.1:9"))?;
            blocked("binding a UDP socket", std::net::UdpSocket::bind("0.0.0.0:0"))?;
        }
        _ => {}
    }
    Ok(())
}

fn recurse(n: u64, pad: &mut [u64; 64]) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    pad[(n % 64) as usize] = n;
    let mut local = *pad;
    local[0] = recurse(n + 1, &mut local);
    local.iter().sum()
}

impl LightningModule for Adversary {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"attack": "none", "victim": "/logs/../../version_0/checkpoints/last.ckpt"})
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        let attack = hp.str_or("attack", "none").to_string();
        let victim = hp.str_or("victim", "").to_string();
        configure_attack(&attack, &victim)?;
        let mut _hoard = Vec::new();
        if attack == "params" {
            for i in 0..1000 {
                _hoard.push(Linear::new(&format!("big{i}"), 4096, 4096, true));
            }
        }
        Ok(Adversary { attack, layer: Linear::new("layer", 4, 1, true), victim })
    }

    fn configure_optimizers(&self, _hp: &Hparams) -> Optimization {
        Optimizer::sgd(0.1).into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let out = self.layer.forward(&batch[0]);
        match self.attack.as_str() {
            "recursion" => {
                let mut pad = [0u64; 64];
                let n = recurse(0, &mut pad);
                Some(&out * n as f64)
            }
            "forged-handle" => {
                // SAFETY: deliberately unsound: a handle the host never issued.
                let forged = unsafe { Tensor::from_handle(0x00ff_ff00) };
                Some(forged.mean())
            }
            "wrong-type-handle" => {
                // SAFETY: deliberately unsound: an operator's handle passed as a tensor.
                let op = lthost_sdk::aten::op("aten::relu").expect("resolves");
                let wrong = unsafe { Tensor::from_handle(op.handle()) };
                Some(wrong.mean())
            }
            "huge-tensor" => Some(Tensor::zeros(&[1_000_000, 1_000_000], Dtype::Float32).mean()),
            "budget" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(Tensor::zeros(&[1 << 28], Dtype::Float64));
                    if hoard.len() > 1_000_000 {
                        break;
                    }
                }
                Some(out.mean())
            }
            "handles" => {
                loop {
                    std::mem::forget(Tensor::zeros(&[1], Dtype::Float32));
                    if self.victim.is_empty() {
                        break;
                    }
                }
                Some(out.mean())
            }
            "views" => {
                let mut keep = Vec::new();
                for _ in 0..1000 {
                    let big = Tensor::zeros(&[1 << 25], Dtype::Float32);
                    keep.push(big.narrow(0, 0, 1));
                }
                Some(out.mean())
            }
            "sleep" => {
                println!("sleeping");
                std::thread::sleep(std::time::Duration::from_secs(60));
                println!("woke up early");
                Some(out.mean())
            }
            "spin" => {
                println!("spinning");
                let mut x = 0u64;
                loop {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if x == 42 {
                        break;
                    }
                }
                Some(&out * x as f64)
            }
            "slow-op" => {
                let a = Tensor::randn(&[2048, 2048]);
                for _ in 0..10_000 {
                    let _ = a.matmul(&a);
                }
                Some(out.mean())
            }
            "arange" => Some(Tensor::arange(0.0, 2.0e9, 1.0, Dtype::Float64).mean()),
            "autograd" => {
                let mut x = self.layer.forward(&Tensor::randn(&[1 << 20, 4]));
                for _ in 0..10_000 {
                    x = x.tanh();
                }
                Some(x.mean())
            }
            "load-escape" => {
                let _ = Tensor::load("../secret.safetensors");
                Some(out.mean())
            }
            "load-absolute" => {
                let _ = Tensor::load("/etc/passwd");
                Some(out.mean())
            }
            _ => Some(out.mean()),
        }
    }
}

struct Tiny {
    x: Option<Tensor>,
}

impl DataModule for Tiny {
    fn setup(_stage: Stage, _hp: &Hparams) -> Result<Self, String> {
        Ok(Tiny { x: Some(Tensor::randn(&[8, 4])) })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        Some(dataset(vec![self.x.take()?], 4, false))
    }
}

export_plugin!(Adversary, Tiny);

/// The callback export (see the module docs): never runs, since loading it is refused.
struct Sneaky;

impl lthost_sdk::callback::Callback for Sneaky {
    fn new() -> Self {
        Sneaky
    }
    fn name(&self) -> String {
        "sneaky".into()
    }
    fn hooks() -> Vec<&'static str> {
        vec!["on_train_batch_end"]
    }
    fn on_hook(
        &mut self,
        _hook: &str,
        _info: &lthost_sdk::callback::HookInfo,
    ) -> Result<lthost_sdk::callback::HookResult, String> {
        // Reaching for tensors from a callback.
        let t = Tensor::zeros(&[4], Dtype::Float32);
        println!("SANDBOX ESCAPE: a callback made a tensor of {} elements", t.numel());
        Ok(lthost_sdk::callback::nothing())
    }
}

lthost_sdk::export_callback!(Sneaky);
