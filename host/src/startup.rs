//! How long this process has been running, from the kernel's record of its start (so the
//! dynamic loading of libtorch before `main` counts): the start-up time lthost reports to
//! the first training step. Linux /proc, 10 ms resolution.

use std::time::Duration;

pub fn since_process_start() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22 (starttime, clock ticks after boot), counted after the `(comm)` field.
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    let age = uptime - start_ticks / hz.max(1.0);
    (age >= 0.0).then(|| Duration::from_secs_f64(age))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_running_process_has_an_age() {
        let age = super::since_process_start().expect("Linux /proc");
        assert!(age.as_secs() < 24 * 3600, "{age:?}");
    }
}
