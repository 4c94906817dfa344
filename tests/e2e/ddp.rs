//! DDP on torch's c10d: two processes with Gloo train as torch's DistributedDataParallel
//! under torchrun and as Lightning's `strategy="ddp"` (tests/reference/ddp_reference.py),
//! whoever starts them (lthost's launcher, torchrun, SLURM's variables); a rank that dies
//! or hangs ends the run naming it; killed runs resume to the uninterrupted weights.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lthost::checkpoint;

use crate::common::{column, command, plugin, read_metrics, repo_root, Run};

fn reference() -> serde_json::Value {
    let path = repo_root().join("tests/reference/ddp.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("valid reference JSON")
}

/// The environment a launcher or a cluster would set, removed: each test sets its own.
const WORLD_VARS: &[&str] = &[
    "LOCAL_RANK",
    "RANK",
    "WORLD_SIZE",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_USE_AGENT_STORE",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NODEID",
    "SLURM_NODELIST",
    "SLURM_NTASKS_PER_NODE",
    "LTHOST_FAULT",
];

fn clean(program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
    let mut c = command(program, cwd);
    for v in WORLD_VARS {
        c.env_remove(v);
    }
    c
}

fn run(out: Output) -> Run {
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The model's arguments as the reference trains it: seed, epochs, one thread, every step
/// logged, validation off (its iterator would draw from the generator).
fn model_args(name: &str) -> Vec<String> {
    let r = reference();
    let m = &r["models"][name];
    let mut a: Vec<String> = vec![
        "fit".into(),
        plugin(name).to_string_lossy().into_owned(),
        "--seed".into(),
        m["seed"].to_string(),
        "--max-epochs".into(),
        m["epochs"].to_string(),
        "--threads".into(),
        r["threads"].to_string(),
        "--log-every-n-steps".into(),
        "1".into(),
        "--no-progress-bar".into(),
        "--accelerator".into(),
        "cpu".into(),
        "--devices".into(),
        r["world_size"].to_string(),
        "--set".into(),
        "trainer.limit_val_batches=0".into(),
    ];
    if name == "mnist-cnn" {
        a.extend(["--data-dir".into(), r["mnist_dir"].as_str().expect("mnist_dir").into()]);
        a.extend(["--hparams".into(), m["hparams"].to_string()]);
    }
    a
}

fn lthost_ddp(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Run {
    run(clean(env!("CARGO_BIN_EXE_lthost"), dir).args(args).envs(env.iter().copied()).output().expect("lthost runs"))
}

fn losses(dir: &Path, version: &str) -> Vec<f64> {
    column(&read_metrics(&dir.join("lightning_logs").join(version)), "train_loss")
}

fn assert_bitwise(got: &[f64], want: &serde_json::Value, what: &str) {
    let want: Vec<f64> = want.as_array().expect("losses").iter().map(|v| v.as_f64().expect("a loss")).collect();
    assert_eq!(got.len(), want.len(), "{what}: step count");
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(*g as f32 == *w as f32, "{what} step {step}: lthost {g} vs {w}");
    }
}

#[test]
fn two_processes_train_as_torch_ddp_and_lightning_ddp() {
    let r = reference();
    // parity-mlp draws its data in the DataModule's setup: Lightning's "datamodule" order.
    for (name, torch_key, lightning_key) in
        [("parity-mlp", "torch_datamodule", "lightning_datamodule"), ("mnist-cnn", "torch", "lightning")]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = lthost_ddp(dir.path(), &model_args(name), &[]);
        assert!(out.ok(), "{name}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2"), "{}", out.stdout);
        assert!(out.stdout.contains("All distributed processes registered. Starting with 2 processes"));
        assert!(out.stdout.contains("processes     2 (DDP, gloo): the same weights on every rank"), "{}", out.stdout);
        // Rank 0 alone logs, prints the summary and writes checkpoints.
        assert_eq!(out.stdout.matches("`Trainer.fit` stopped").count(), 1, "{}", out.stdout);
        let versions: Vec<_> = std::fs::read_dir(dir.path().join("lightning_logs")).expect("logs").collect();
        assert_eq!(versions.len(), 1, "one log directory");
        let got = losses(dir.path(), "version_0");
        let m = &r["models"][name];
        // Rank 0's own loss at each step, as Lightning logs it without sync_dist.
        assert_bitwise(&got, &m[torch_key]["0"]["losses"], &format!("{name} vs torch DDP"));
        assert_bitwise(&got, &m[lightning_key]["0"]["losses"], &format!("{name} vs Lightning ddp"));
    }
}

/// Two lthost processes started as SLURM's `srun --ntasks-per-node 2` would start them.
fn slurm_pair(dir: &Path, args: &[String]) -> (Run, Run) {
    let ranks: Vec<std::process::Child> = (0..2)
        .map(|r| {
            let rank = r.to_string();
            clean(env!("CARGO_BIN_EXE_lthost"), dir)
                .args(args)
                .envs([
                    ("SLURM_NTASKS", "2"),
                    ("SLURM_PROCID", rank.as_str()),
                    ("SLURM_LOCALID", rank.as_str()),
                    ("SLURM_NODEID", "0"),
                    ("SLURM_NODELIST", "localhost"),
                    ("SLURM_NTASKS_PER_NODE", "2"),
                    ("SLURM_JOB_NAME", "ddp-test"),
                    ("MASTER_ADDR", "127.0.0.1"),
                    ("MASTER_PORT", &free_port().to_string()),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut outs = ranks.into_iter().map(|c| run(c.wait_with_output().expect("wait")));
    (outs.next().expect("rank 0"), outs.next().expect("rank 1"))
}

/// One port for both SLURM tasks (as SLURM derives it from the job id): picked once.
fn free_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a free port");
        l.local_addr().expect("addr").port()
    })
}

#[test]
fn torchrun_and_slurm_start_the_same_run_as_lthosts_launcher() {
    let args = model_args("parity-mlp");
    let own = tempfile::tempdir().expect("tempdir");
    let out = lthost_ddp(own.path(), &args, &[]);
    assert!(out.ok(), "{}", out.stderr);
    let want = losses(own.path(), "version_0");

    let torchrun = repo_root().join(".venv/bin/torchrun");
    let tr = tempfile::tempdir().expect("tempdir");
    let out = run(clean(&torchrun, tr.path())
        .args(["--standalone", "--nproc-per-node", "2", "--no-python", env!("CARGO_BIN_EXE_lthost")])
        .args(&args)
        .output()
        .expect("torchrun runs"));
    assert!(out.ok(), "torchrun: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("the same weights on every rank"), "{}", out.stdout);
    assert_eq!(losses(tr.path(), "version_0"), want, "torchrun");

    let sl = tempfile::tempdir().expect("tempdir");
    let (r0, r1) = slurm_pair(sl.path(), &args);
    assert!(r0.ok() && r1.ok(), "SLURM ranks: {}\n{}", r0.stderr, r1.stderr);
    assert!(r0.stdout.contains("the same weights on every rank"), "{}", r0.stdout);
    assert!(!r1.stdout.contains("Trainer.fit"), "rank 1 prints rank-zero output: {}", r1.stdout);
    assert_eq!(losses(sl.path(), "version_0"), want, "SLURM");
}

/// A parity-mlp run of `epochs` epochs for the fault tests.
fn long_args(epochs: u32, extra: &[&str]) -> Vec<String> {
    let mut a = model_args("parity-mlp");
    let i = a.iter().position(|x| x == "--max-epochs").expect("--max-epochs") + 1;
    a[i] = epochs.to_string();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn a_rank_that_dies_ends_every_rank_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let out = lthost_ddp(dir.path(), &long_args(60, &[]), &[("LTHOST_FAULT", "step:20:rank1")]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stderr.contains("error: rank 1 was killed by signal 9; stopping every rank"), "{}", out.stderr);
    assert!(started.elapsed().as_secs() < 60, "the run ended {:?} after starting", started.elapsed());
}

#[test]
fn a_rank_that_hangs_ends_the_run_within_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let args = long_args(60, &["--set", "trainer.ddp_timeout_s=10"]);
    let out = lthost_ddp(dir.path(), &args, &[("LTHOST_FAULT", "step:20:rank1:stop")]);
    out.assert_fails_with(&[
        "rank 0 of 2: a collective with the other ranks failed (rank 1 did not answer within 10 s (hung or dead))",
        "ddp_timeout_s = 10 s",
    ]);
    assert!(out.stderr.contains("LTHOST_FAULT: stopping the process"), "{}", out.stderr);
    assert!(started.elapsed().as_secs() < 60, "the run ended {:?} after starting", started.elapsed());
}

#[test]
fn a_rank_that_dies_under_another_launcher_is_named_by_the_others() {
    // torchrun's variables, no lthost launcher watching: rank 0 learns which rank is gone from
    // the rendezvous store (rank 1 never says its collective failed).
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).expect("a port").port();
    let port = port.to_string();
    let args = long_args(60, &["--set", "trainer.ddp_timeout_s=20"]);
    let ranks: Vec<std::process::Child> = ["0", "1"]
        .iter()
        .map(|rank| {
            clean(env!("CARGO_BIN_EXE_lthost"), dir.path())
                .args(&args)
                .envs([
                    ("TORCHELASTIC_RUN_ID", "fault"),
                    ("RANK", rank),
                    ("LOCAL_RANK", rank),
                    ("WORLD_SIZE", "2"),
                    ("LOCAL_WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "127.0.0.1"),
                    ("MASTER_PORT", port.as_str()),
                    ("LTHOST_FAULT", "step:20:rank1"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outs: Vec<Run> = ranks.into_iter().map(|c| run(c.wait_with_output().expect("wait"))).collect();
    outs[0].assert_fails_with(&[
        "rank 0 of 2: a collective with the other ranks failed (rank 1 did not answer within 10 s (hung or dead))",
    ]);
    assert_ne!(outs[1].code, Some(0), "{}", outs[1].stderr);
}

fn weights(path: &Path) -> Vec<(String, tch::Tensor)> {
    let c = checkpoint::load(path).expect("a whole checkpoint");
    c.tensors.into_iter().filter(|(k, _)| k.starts_with("state_dict.")).collect()
}

#[test]
fn killed_ranks_resume_to_the_uninterrupted_weights() {
    let ckpt = ["--set", "checkpoint.every_n_train_steps=7", "--set", "checkpoint.save_last=true"];
    let args = long_args(60, &ckpt);
    let full = tempfile::tempdir().expect("tempdir");
    let out = lthost_ddp(full.path(), &args, &[]);
    assert!(out.ok(), "{}", out.stderr);
    let last = |d: &Path, v: &str| -> PathBuf { d.join("lightning_logs").join(v).join("checkpoints/last.ckpt") };
    let want = weights(&last(full.path(), "version_0"));
    let want_losses = losses(full.path(), "version_0");
    // Every rank is killed at its 50th step (mid-epoch: 3 steps an epoch), or by the launcher
    // when a child goes first; the last save was at step 49.
    let dir = tempfile::tempdir().expect("tempdir");
    let killed = lthost_ddp(dir.path(), &args, &[("LTHOST_FAULT", "step:50")]);
    assert!(!killed.ok(), "the run was killed");
    let resumed = lthost_ddp(dir.path(), &[args.clone(), vec!["--ckpt-path".into(), "last".into()]].concat(), &[]);
    assert!(resumed.ok(), "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(resumed.stdout.contains("global step 49"), "{}", resumed.stdout);
    assert!(resumed.stdout.contains("the same weights on every rank"), "{}", resumed.stdout);
    // The resumed run logs and saves in a new version, as Lightning's.
    let got = weights(&last(dir.path(), "version_1"));
    assert_eq!(got.len(), want.len());
    for ((k, a), (_, b)) in got.iter().zip(&want) {
        assert!(a.equal(b), "`{k}` differs from the uninterrupted run");
    }
    // The resumed run logs the steps after 49 as the uninterrupted one did.
    let tail = losses(dir.path(), "version_1");
    assert_eq!(tail, want_losses[want_losses.len() - tail.len()..], "losses after the resume");
}

#[test]
fn sigterm_to_the_launcher_stops_every_rank_with_one_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = clean(env!("CARGO_BIN_EXE_lthost"), dir.path())
        .args(long_args(100_000, &["--set", "checkpoint.save_last=true"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let ckpts = dir.path().join("lightning_logs/version_0/checkpoints");
    // Training has begun once the first epoch's checkpoint is there.
    let begun = std::time::Instant::now();
    while std::fs::read_dir(&ckpts).map(|d| d.count()).unwrap_or(0) == 0 && begun.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = run(child.wait_with_output().expect("wait"));
    assert_eq!(out.code, Some(143), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("signal 15 received"), "{}", out.stdout);
    assert!(out.stdout.contains("the same weights on every rank"), "{}", out.stdout);
    assert!(checkpoint::load(&ckpts.join("last.ckpt")).is_ok(), "last.ckpt is whole");
}

#[test]
fn distributed_settings_are_checked_as_lightning_checks_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = model_args("parity-mlp");
    let with =
        |extra: &[&str]| -> Vec<String> { [base.clone(), extra.iter().map(|s| s.to_string()).collect()].concat() };
    lthost_ddp(dir.path(), &with(&["--strategy", "fsdp"]), &[])
        .assert_fails_with(&["strategy \"fsdp\" is not available in lthost"]);
    let mut zero = base.clone();
    let i = zero.iter().position(|x| x == "--devices").expect("--devices") + 1;
    zero[i] = "0".into();
    lthost_ddp(dir.path(), &zero, &[])
        .assert_fails_with(&["`devices` must be a positive number of processes per node"]);
    lthost_ddp(dir.path(), &with(&["--strategy", "single_device"]), &[])
        .assert_fails_with(&["strategy \"single_device\" runs one process"]);
    // torchrun's world of 4 with devices=2 on one node (Lightning's TorchElasticEnvironment check).
    let torchrun_env = [
        ("TORCHELASTIC_RUN_ID", "x"),
        ("RANK", "0"),
        ("LOCAL_RANK", "0"),
        ("WORLD_SIZE", "4"),
        ("MASTER_PORT", "29400"),
    ];
    lthost_ddp(dir.path(), &base, &torchrun_env)
        .assert_fails_with(&["the product (2 * 1) does not match the world size (4)"]);
    let mut validate = base.clone();
    validate[0] = "validate".into();
    lthost_ddp(dir.path(), &validate, &[]).assert_fails_with(&["is built for `fit`"]);
}

#[test]
fn a_lightning_file_logs_synced_values_as_lightnings_ddp() {
    let r = reference();
    // Automatic optimization, then manual (the plugin's own backward and step under DDP), then
    // layers some ranks leave unused at some steps (find_unused_parameters).
    let unused = "ddp_find_unused_parameters_true";
    for (tag, hparams, strategy) in [
        ("lit-ddp", "{}", "ddp"),
        ("lit-ddp-manual", r#"{"manual": true}"#, "ddp"),
        ("lit-ddp-unused", r#"{"unused": true}"#, unused),
    ] {
        let want = r["lightning_file"][tag].as_array().expect("rows");
        let dir = tempfile::tempdir().expect("tempdir");
        let args = lit_ddp_args("2", &["--log-every-n-steps", "1", "--hparams", hparams, "--strategy", strategy]);
        let out = lthost_ddp(dir.path(), &args, &[]);
        assert!(out.ok(), "{tag}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("the same weights on every rank"), "{tag}: {}", out.stdout);
        let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
        assert_eq!(rows.len(), want.len(), "{tag}: metrics.csv rows");
        for (i, (got, want)) in rows.iter().zip(want).enumerate() {
            let want = want.as_object().expect("a row");
            let filled: Vec<(&String, &String)> = got.iter().filter(|(_, v)| !v.is_empty()).collect();
            assert_eq!(filled.len(), want.len(), "{tag} row {i}: {got:?} vs {want:?}");
            for (k, v) in filled {
                let w = want
                    .get(k)
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or_else(|| panic!("{tag} row {i}: `{k}` not in {want:?}"));
                let g: f64 = v.parse().expect("a number");
                assert!(g as f32 == w as f32, "{tag} row {i} `{k}`: lthost {g} vs Lightning {w}");
            }
        }
    }
}

/// lit-ddp's arguments: 2 processes on the CPU, one thread each (the reference's), seed 0,
/// `epochs` epochs, then `extra`.
fn lit_ddp_args(epochs: &str, extra: &[&str]) -> Vec<String> {
    let wasm = plugin("lit-ddp").to_string_lossy().into_owned();
    let base = ["fit", &wasm, "--seed", "0", "--max-epochs", epochs, "--threads", "1", "--no-progress-bar"];
    let mut a: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    a.extend(["--accelerator", "cpu", "--devices", "2"].iter().chain(extra).map(|s| s.to_string()));
    a
}

/// lit-ddp under DDP for many epochs, with `extra` settings and a short collective timeout
/// (a rank left waiting fails in seconds rather than hanging the test).
fn lit_ddp_until_stopped(dir: &Path, extra: &[&str]) -> Run {
    let timeout = ["--set", "trainer.ddp_timeout_s=20"];
    let extra: Vec<&str> = timeout.iter().chain(extra).copied().collect();
    lthost_ddp(dir, &lit_ddp_args("100000", &extra), &[])
}

#[test]
fn a_stop_one_rank_decides_stops_every_rank_at_the_same_batch() {
    // EarlyStopping on a value each rank has its own of (not synced): the ranks decide apart,
    // and every rank stops when one does (Lightning's reduce_boolean_decision(all=False)).
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lit_ddp_until_stopped(
        dir.path(),
        &["--set", "early_stopping.monitor=\"val_loss_rank0\"", "--set", "early_stopping.patience=0"],
    );
    assert!(out.ok(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("the same weights on every rank"), "{}", out.stdout);
    // max_time on each rank's own clock.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lit_ddp_until_stopped(dir.path(), &["--set", "trainer.max_time=\"00:00:00:02\""]);
    assert!(out.ok(), "{}\n{}", out.stdout, out.stderr);
    // Rank 0's clock, or rank 1's a batch earlier.
    let stopped = |why: &str| out.stdout.contains(&format!("`Trainer.fit` stopped: {why}"));
    assert!(stopped("`max_time` reached") || stopped("another rank asked to stop"), "{}", out.stdout);
    assert!(out.stdout.contains("the same weights on every rank"), "{}", out.stdout);
}

#[test]
fn sync_batchnorm_normalises_with_every_ranks_batch() {
    // torch's SyncBatchNorm refuses CPU tensors; the oracle is what it computes, one process
    // on the union of both ranks' batches (tests/reference/ddp_reference.py, "sync_batchnorm").
    // In float64 the two agree to rounding (~1e-13). In float32 the reductions' order shows:
    // losses within ~2e-5, and the running statistics within ~1e-3, since Adam's first steps
    // move a weight whose gradient is rounding noise by ±lr whatever its size.
    let r = reference();
    let plain = &r["models"]["parity-mlp"]["torch_datamodule"]["0"]["losses"];
    for (key, precision, tolerance, stats_tolerance) in
        [("parity-mlp-64-true", "64-true", 1e-9, 1e-9), ("parity-mlp", "32-true", 1e-4, 1e-2)]
    {
        let want = &r["sync_batchnorm"][key];
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = model_args("parity-mlp");
        args.extend(["--precision", precision, "--set", "trainer.sync_batchnorm=true"].map(String::from));
        let out = lthost_ddp(dir.path(), &args, &[]);
        assert!(out.ok(), "{key}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("the same weights on every rank"), "{key}: {}", out.stdout);
        let got = losses(dir.path(), "version_0");
        let close = |want: &serde_json::Value, tol: f64| {
            let want = want.as_array().expect("losses");
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w.as_f64().expect("a loss")).abs() <= tol)
        };
        assert!(close(&want["losses"]["0"], tolerance), "{key}: lthost {got:?} vs {}", want["losses"]["0"]);
        // Unsynced, the losses are plain DDP's, far from these.
        assert!(!close(plain, 1e-3), "{key}: the losses are plain DDP's: {got:?}");
        // Every rank's running statistics are the union's.
        let ckpt = std::fs::read_dir(dir.path().join("lightning_logs/version_0/checkpoints"))
            .expect("checkpoints")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "ckpt"))
            .expect("a checkpoint");
        let state = weights(&ckpt);
        for (layer, stats) in want["state"].as_object().expect("state") {
            for stat in ["running_mean", "running_var"] {
                let (_, t) = state
                    .iter()
                    .find(|(k, _)| k.ends_with(&format!("{layer}.{stat}")))
                    .unwrap_or_else(|| panic!("{key}: no {layer}.{stat} in the checkpoint"));
                let t: Vec<f64> = Vec::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).expect("values");
                let w: Vec<f64> =
                    stats[stat].as_array().expect(stat).iter().map(|v| v.as_f64().expect("a value")).collect();
                let worst = t.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(t.len() == w.len() && worst <= stats_tolerance, "{key} {layer}.{stat}: differs by {worst}");
            }
        }
    }
}

#[test]
fn unused_parameters_need_find_unused_parameters_as_in_lightning() {
    // Plain DDP waits for gradients a layer nobody used never gets: the next step fails with
    // Lightning's explanation; ddp_find_unused_parameters_true trains (the test above).
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lit_ddp_until_stopped(dir.path(), &["--hparams", r#"{"unused": true}"#]);
    assert!(!out.ok(), "{}", out.stdout);
    // The rank that fails first says why; the launcher then stops the other.
    for needle in ["parameters that were not used in producing the loss", "strategy='ddp_find_unused_parameters_true'"]
    {
        assert!(out.stderr.contains(needle), "no {needle:?} in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}
