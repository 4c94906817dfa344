//! Files lthost writes: whole (a temp file beside the target, then a rename, so a crash
//! leaves the old file or the new one, never half of one), and the temp files a killed
//! process may leave behind.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Writes `contents` to `path` atomically: a temp file in the same directory, fsync, rename.
/// A crash leaves the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_as(path, contents, "write")
}

/// Replaces `path` whole (temp file + rename: a crash leaves the old file or the new one,
/// never half of one) without forcing it to disk: for files rewritten often whose loss on
/// power failure costs nothing that matters (metrics.csv, rewritten every epoch; its two
/// fsyncs cost ~1.5 ms per epoch, most of a small model's logging overhead).
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    write_file(path, contents, "write", false, 0o644)
}

/// [`write_atomic`], naming the write for fault injection (`ckpt-write` for checkpoints).
pub fn write_atomic_as(path: &Path, contents: &[u8], event: &str) -> Result<()> {
    write_file(path, contents, event, true, 0o644)
}

/// [`write_atomic_as`] for a file only its owner may read (mode 0600 from the start: a
/// secret key, compiled plugin code in the cache).
pub fn write_private(path: &Path, contents: &[u8], event: &str) -> Result<()> {
    write_file(path, contents, event, true, 0o600)
}

/// The name prefix of lthost's temp files (`.lthost-tmp-<pid>-…`): a killed process leaves
/// one, and only those of processes no longer running are cleaned up later.
pub const TEMP_PREFIX: &str = ".lthost-tmp-";

/// A new temp file in `dir` named for this process.
pub fn temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(&format!("{TEMP_PREFIX}{}-", std::process::id())).tempfile_in(dir)
}

/// Whether `name` is an lthost temp file whose process is gone (safe to remove).
pub fn is_stale_temp(name: &str) -> bool {
    let Some(pid) =
        name.strip_prefix(TEMP_PREFIX).and_then(|r| r.split_once('-')).and_then(|(p, _)| p.parse::<libc::pid_t>().ok())
    else {
        return false;
    };
    // SAFETY: signal 0 only asks whether the process exists.
    let gone =
        unsafe { libc::kill(pid, 0) } == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    gone && pid > 0
}

fn write_file(path: &Path, contents: &[u8], event: &str, durable: bool, mode: u32) -> Result<()> {
    use std::io::Write as _;
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut tmp = temp_file_in(&dir).with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.write_all(contents)?;
    // The temp file is made private (0600); the result gets `mode` (0644: an ordinary file).
    if mode != 0o600 {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode));
    }
    if durable {
        tmp.as_file().sync_all()?;
    }
    crate::fault::point(event, || path.to_string_lossy().into_owned());
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    // The rename itself is durable once the directory is synced.
    if durable {
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
