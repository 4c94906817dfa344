//! lthost's own launcher (Lightning's `_SubprocessScriptLauncher`): the process the user
//! started is local rank 0 and starts local ranks 1..devices as copies of itself, with the
//! world in their environment. A child dies with its parent (`PR_SET_PDEATHSIG`); a child
//! that fails ends the run on every rank, naming the rank (Lightning's `_ChildProcessObserver`).

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::cluster::Cluster;

/// The local ranks this process started, watched by a thread.
pub struct Children {
    watcher: Option<std::thread::JoinHandle<Vec<(usize, std::process::ExitStatus)>>>,
}

/// A free TCP port on this machine (Lightning's `find_free_network_port`).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port for the DDP world")?;
    Ok(l.local_addr()?.port())
}

/// Starts local ranks 1.. of `cluster` running this command line again; `cluster` gets the
/// world's port.
pub fn launch(cluster: &mut Cluster) -> Result<Children> {
    let port = match cluster.main_port {
        Some(p) => p,
        None => free_port()?,
    };
    cluster.main_port = Some(port);
    let exe = std::env::current_exe().context("locating the lthost executable to start the other ranks")?;
    // A plugin pulled by tag: the other ranks get the digest this rank pulled.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).map(|a| crate::oci::pinned(&a)).collect();
    let mut children: Vec<(usize, Child)> = Vec::new();
    for local_rank in 1..cluster.local_world_size {
        let mut cmd = Command::new(&exe);
        cmd.args(&args)
            .env("MASTER_ADDR", &cluster.main_address)
            .env("MASTER_PORT", port.to_string())
            .env("NODE_RANK", cluster.node_rank.to_string())
            .env("LOCAL_RANK", local_rank.to_string())
            .env("WORLD_SIZE", cluster.world_size.to_string());
        // SAFETY: prctl is async-signal-safe; it runs in the forked child before exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            let parent = libc::getpid();
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(c) => children.push((cluster.node_rank * cluster.local_world_size + local_rank, c)),
            Err(e) => {
                for (_, c) in &mut children {
                    let _ = c.kill();
                }
                return Err(e).context(format!("starting local rank {local_rank}"));
            }
        }
    }
    let children = Arc::new(Mutex::new(children));
    let watched = children.clone();
    let watcher = std::thread::Builder::new()
        .name("ddp-ranks".into())
        .spawn(move || watch(&watched))
        .context("starting the thread that watches the other ranks")?;
    Ok(Children { watcher: Some(watcher) })
}

/// Waits for every child; the first that fails ends the others and this process.
fn watch(children: &Mutex<Vec<(usize, Child)>>) -> Vec<(usize, std::process::ExitStatus)> {
    let mut done = Vec::new();
    loop {
        let mut failed = None;
        {
            let mut cs = children.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut i = 0;
            while i < cs.len() {
                match cs[i].1.try_wait() {
                    Ok(Some(status)) => {
                        let (rank, _) = cs.remove(i);
                        if !status.success() && !stopped_by_signal(status) && failed.is_none() {
                            failed = Some((rank, status));
                        }
                        done.push((rank, status));
                    }
                    _ => i += 1,
                }
            }
            if let Some((rank, status)) = failed {
                for (_, c) in cs.iter_mut() {
                    let _ = c.kill();
                }
                eprintln!("error: rank {rank} {}; stopping every rank", describe(status));
                // This rank's next collective fails at once on Gloo (the peer's connection is gone)
                // and the run ends as any failure does, a checkpoint being written finished;
                // should it not, it ends here.
                drop(cs);
                std::thread::sleep(std::time::Duration::from_secs(10));
                // Still here: the main thread is stuck (in CUDA, say, where NCCL's error may
                // never reach it). End without running exit handlers and static destructors,
                // which could wait on the same stuck communicator.
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                let _ = std::io::stderr().flush();
                // SAFETY: ends the process at once; nothing after it runs.
                unsafe { libc::_exit(1) }
            }
            if cs.is_empty() {
                return done;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A rank that stopped for a signal every rank agreed on (exit 128 + SIGINT, SIGUSR1 or
/// SIGTERM after saving): this rank stops after the same batch.
fn stopped_by_signal(status: std::process::ExitStatus) -> bool {
    matches!(status.code(), Some(c) if [libc::SIGINT, libc::SIGUSR1, libc::SIGTERM].iter().any(|s| c == 128 + s))
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended".to_string(),
    }
}

impl Children {
    /// Waits for the other ranks to finish (each ran the same command to its end).
    pub fn wait(mut self) -> Result<()> {
        if let Some(w) = self.watcher.take() {
            w.join().map_err(|_| anyhow::anyhow!("the thread watching the other ranks failed"))?;
        }
        Ok(())
    }
}
