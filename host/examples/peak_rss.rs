//! `make bench`'s launcher: runs one command as its own process and reports that process's
//! peak resident set size, so that each runner's memory is its own. (Measured by a parent
//! that imported torch, `wait4` reports the parent's pages too: Linux keeps a forked child's
//! pre-exec high-water mark in its rusage, and `/bin/true` reads ~500 MiB.)
//!
//!     peak_rss OUT_FILE COMMAND [ARGS...]
//!
//! The command inherits stdin, stdout and stderr; OUT_FILE receives its peak RSS in KiB
//! (`ru_maxrss` from `wait4`); the exit status is the command's.

use std::process::{exit, Command};

use anyhow::{bail, Context, Result};

fn run() -> Result<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, program, rest @ ..] = args.as_slice() else {
        bail!("usage: peak_rss OUT_FILE COMMAND [ARGS...]");
    };
    let child = Command::new(program).args(rest).spawn().with_context(|| format!("cannot start {program}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for the child we started.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet waited for; the pointers outlive the call.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    std::fs::write(out, format!("{}\n", usage.ru_maxrss)).with_context(|| format!("cannot write {out}"))?;
    Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) })
}

fn main() {
    match run() {
        Ok(code) => exit(code),
        Err(e) => {
            eprintln!("peak_rss: {e:#}");
            exit(2)
        }
    }
}
