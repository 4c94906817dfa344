//! A directory the run writes in (the checkpoint directory, the root dir's HPC checkpoints,
//! a logger plugin's directory), opened once through `cap-std`. Files in it are named by a
//! plain file name, never by a path: a path taken from a checkpoint or a plugin is first
//! reduced to a name in this directory ([`RunDir::name_of`]) or refused, and every removal
//! goes through the directory handle, so `..`, absolute paths and symlinks cannot lead a
//! removal out of it.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result};
use cap_std::fs::Dir;

pub struct RunDir {
    path: PathBuf,
    dir: Dir,
}

/// `path` with a leading `~` component expanded to the user's home directory (Python's
/// `os.path.expanduser`, which Lightning applies to `default_root_dir` and checkpoint
/// `dirpath`); unchanged without `~` or without `$HOME`.
pub fn expand_home(path: &Path) -> PathBuf {
    let mut parts = path.components();
    match (parts.next(), std::env::var_os("HOME").filter(|h| !h.is_empty())) {
        (Some(Component::Normal(first)), Some(home)) if first == "~" => PathBuf::from(home).join(parts.as_path()),
        _ => path.to_path_buf(),
    }
}

/// `path` made absolute without resolving symlinks (the comparison is on names only; the
/// directory handle does the resolving, contained).
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A single plain file name: no separators, not `.` or `..`, not empty.
pub fn plain_name(name: &OsStr) -> Option<&str> {
    let s = name.to_str()?;
    let mut parts = Path::new(s).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) if n == name => Some(s),
        _ => None,
    }
}

impl RunDir {
    /// Opens (creating it if needed) the directory at `path`.
    pub fn open(path: &Path) -> Result<RunDir> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(RunDir { path: path.to_path_buf(), dir })
    }

    /// Opens the directory at `path` if it exists (nothing is created).
    pub fn open_existing(path: &Path) -> Option<RunDir> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).ok()?;
        Some(RunDir { path: path.to_path_buf(), dir })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file name `p` has in this directory, if `p` names a file directly inside it
    /// (compared by name, `.`/`..` folded); anything else is not this directory's.
    pub fn name_of(&self, p: &Path) -> Option<String> {
        let p = absolute(p);
        let name = plain_name(p.file_name()?)?.to_string();
        (p.parent()? == absolute(&self.path)).then_some(name)
    }

    /// Whether `name` is a regular file here (a symlink is not).
    pub fn is_file(&self, name: &str) -> bool {
        self.dir.symlink_metadata(name).is_ok_and(|m| m.is_file())
    }

    /// Opens the regular file `name` for reading (a symlink is not followed).
    pub fn open_regular(&self, name: &str) -> std::io::Result<cap_std::fs::File> {
        if !self.is_file(name) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        }
        self.dir.open(name)
    }

    /// Removes the regular file `name` (a symlink or directory of that name is left alone).
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        if plain_name(OsStr::new(name)).is_none() || !self.is_file(name) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not a regular file directly in {}", self.path.display()),
            ));
        }
        self.dir.remove_file(name)
    }

    /// Names of the entries here, with whether each is a symlink.
    pub fn entries(&self) -> Vec<(String, bool)> {
        let Ok(rd) = self.dir.entries() else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.file_type().ok()?.is_symlink())))
            .collect()
    }

    /// Makes `name` a symlink to `target`, a plain name in this directory (the link stays
    /// inside it, and is relative, as Lightning's `save_last="link"` makes it). What is at
    /// `name` is replaced atomically (the link is made under a temporary name and renamed
    /// over it); a directory there is not replaced (an error).
    pub fn link(&self, name: &str, target: &str) -> std::io::Result<()> {
        let plain = |n: &str| plain_name(OsStr::new(n)).is_some();
        if !plain(name) || !plain(target) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a link {name:?} -> {target:?} must join two plain names in {}", self.path.display()),
            ));
        }
        let tmp = format!("{}{}-link-{name}", crate::fs::TEMP_PREFIX, std::process::id());
        if self.dir.symlink_metadata(&tmp).is_ok() {
            self.remove_link(&tmp)?;
        }
        self.dir.symlink(target, &tmp)?;
        self.dir.rename(&tmp, &self.dir, name).inspect_err(|_| {
            let _ = self.dir.remove_file(&tmp);
        })
    }

    /// Whether `name` here is a symlink (not followed).
    pub fn is_link(&self, name: &str) -> bool {
        self.dir.symlink_metadata(name).is_ok_and(|m| m.file_type().is_symlink())
    }

    /// The regular file directly in this directory that the symlink `name` names (a link
    /// made by [`RunDir::link`]); None for anything else (a file, a link leading elsewhere).
    pub fn link_target(&self, name: &str) -> Option<String> {
        if !self.is_link(name) {
            return None;
        }
        let target = self.dir.read_link_contents(name).ok()?;
        let target = plain_name(target.as_os_str())?;
        self.is_file(target).then(|| target.to_string())
    }

    /// Removes a symlink `name` (whatever it points to, it is not followed).
    pub fn remove_link(&self, name: &str) -> std::io::Result<()> {
        if !self.dir.symlink_metadata(name)?.file_type().is_symlink() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a symlink"));
        }
        self.dir.remove_file(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_files_directly_inside() {
        let t = tempfile::tempdir().unwrap();
        let d = RunDir::open(&t.path().join("ckpts")).unwrap();
        assert_eq!(d.name_of(&t.path().join("ckpts/a.ckpt")).as_deref(), Some("a.ckpt"));
        assert_eq!(d.name_of(&t.path().join("ckpts/./x/../b.ckpt")).as_deref(), Some("b.ckpt"));
        assert_eq!(d.name_of(&t.path().join("ckpts/../a.ckpt")), None);
        assert_eq!(d.name_of(&t.path().join("ckpts/sub/a.ckpt")), None);
        assert_eq!(d.name_of(Path::new("/etc/passwd")), None);
        assert_eq!(d.name_of(&t.path().join("ckpts")), None);
    }

    #[test]
    fn links_join_plain_names_inside_and_replace_atomically() {
        let t = tempfile::tempdir().unwrap();
        let d = RunDir::open(&t.path().join("ckpts")).unwrap();
        std::fs::write(t.path().join("ckpts/a.ckpt"), b"a").unwrap();
        std::fs::write(t.path().join("ckpts/b.ckpt"), b"b").unwrap();
        d.link("last.ckpt", "a.ckpt").unwrap();
        assert_eq!(std::fs::read_link(t.path().join("ckpts/last.ckpt")).unwrap(), Path::new("a.ckpt"));
        assert_eq!(d.link_target("last.ckpt").as_deref(), Some("a.ckpt"));
        d.link("last.ckpt", "b.ckpt").unwrap();
        assert_eq!(std::fs::read(t.path().join("ckpts/last.ckpt")).unwrap(), b"b");
        assert!(d.link("x.ckpt", "../a.ckpt").is_err() && d.link("../x.ckpt", "a.ckpt").is_err());
        std::fs::create_dir(t.path().join("ckpts/dir.ckpt")).unwrap();
        assert!(d.link("dir.ckpt", "a.ckpt").is_err(), "a directory is not replaced");
        // A link leading out of the directory, or to a link, is no checkpoint of it.
        std::os::unix::fs::symlink(t.path().join("ckpts/a.ckpt"), t.path().join("ckpts/abs.ckpt")).unwrap();
        assert_eq!(d.link_target("abs.ckpt"), None);
        assert_eq!(d.link_target("a.ckpt"), None);
        let left: Vec<String> = d.entries().into_iter().map(|(n, _)| n).filter(|n| n.starts_with('.')).collect();
        assert!(left.is_empty(), "no temporary link left: {left:?}");
    }

    #[test]
    fn removes_regular_files_only() {
        let t = tempfile::tempdir().unwrap();
        let d = RunDir::open(&t.path().join("ckpts")).unwrap();
        let outside = t.path().join("outside.txt");
        std::fs::write(&outside, b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("ckpts/link.ckpt")).unwrap();
        std::fs::write(t.path().join("ckpts/own.ckpt"), b"x").unwrap();
        assert!(d.remove("link.ckpt").is_err());
        assert!(d.remove("../outside.txt").is_err());
        assert!(d.remove("own.ckpt").is_ok());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert!(d.remove_link("link.ckpt").is_ok());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
    }
}
