//! Where a built-in logger writes: Lightning's CSVLogger and TensorBoardLogger arguments
//! (`[loggers.csv]`, `[loggers.tensorboard]` in a run file) resolved to a log directory as
//! Lightning resolves them, `<save_dir>/<name>/version_<N>` (a string version is the
//! directory's own name; the name "" is no directory), and the version Lightning's default
//! logger takes under SLURM.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::next_version;

/// A logger's version: `version_<N>`, or a directory named by the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Version {
    Number(u64),
    Name(String),
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Version;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a version: a whole number 0 or above (`version_<N>`) or a string (the directory's name)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Version, E> {
                Ok(Version::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Version, E> {
                u64::try_from(v)
                    .map(Version::Number)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Version, E> {
                Ok(Version::Name(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Number(n) => write!(f, "{n}"),
            Version::Name(s) => f.write_str(s),
        }
    }
}

impl Version {
    fn dir_name(&self) -> String {
        match self {
            Version::Number(n) => format!("version_{n}"),
            Version::Name(s) => s.clone(),
        }
    }
}

/// One built-in logger's arguments (Lightning's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggerOptions {
    /// Lightning's `save_dir`; default: the Trainer's `default_root_dir`.
    pub save_dir: Option<PathBuf>,
    /// The experiment's directory under `save_dir`; "" writes versions into `save_dir`.
    pub name: String,
    /// An int (`version_<N>`) or a string (the directory's name); default: the next free
    /// `version_<N>` under `<save_dir>/<name>`.
    pub version: Option<Version>,
    /// Put before every metric key, joined with `-` (`tmp-train_loss`).
    pub prefix: String,
    /// TensorBoard's `default_hp_metric`: `hp_metric` -1 logged with the hyper-parameters.
    pub default_hp_metric: Option<bool>,
    /// TensorBoard's `sub_dir`: its files go in `<version dir>/<sub_dir>` (checkpoints stay
    /// in the version directory).
    pub sub_dir: Option<String>,
}

impl Default for LoggerOptions {
    fn default() -> Self {
        LoggerOptions {
            save_dir: None,
            name: "lightning_logs".into(),
            version: None,
            prefix: String::new(),
            default_hp_metric: None,
            sub_dir: None,
        }
    }
}

/// `[loggers.csv]` and `[loggers.tensorboard]`; a table given is Lightning's logger built
/// with those arguments, none the default logger (`logger=True`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggersConfig {
    pub csv: Option<LoggerOptions>,
    pub tensorboard: Option<LoggerOptions>,
    /// `[loggers.mlflow]`: MLFlowLogger's arguments (a tracking server's URI among them).
    pub mlflow: Option<super::mlflow::MlflowOptions>,
}

impl LoggersConfig {
    pub fn validate(&self) -> Result<()> {
        if let Some(m) = &self.mlflow {
            m.validate()?;
        }
        for (kind, opts) in [("csv", &self.csv), ("tensorboard", &self.tensorboard)] {
            let Some(o) = opts else { continue };
            if kind == "csv" && o.default_hp_metric.is_some() {
                bail!("loggers.csv.default_hp_metric: TensorBoard's argument (the CSV logger has no hp_metric)");
            }
            if let Some(s) = &o.sub_dir {
                if kind == "csv" {
                    bail!("loggers.csv.sub_dir: TensorBoard's argument (the CSV logger has none)");
                }
                relative_dir(&format!("loggers.{kind}.sub_dir"), s, true)?;
            }
            relative_dir(&format!("loggers.{kind}.name"), &o.name, true)?;
            if let Some(Version::Name(v)) = &o.version {
                relative_dir(&format!("loggers.{kind}.version"), v, false)?;
            }
        }
        Ok(())
    }
}

/// `what` must name a directory below another: relative, without `..`; a version also one
/// component and not empty.
fn relative_dir(what: &str, s: &str, may_nest: bool) -> Result<()> {
    let p = Path::new(s);
    let comps: Vec<Component> = p.components().collect();
    let plain = comps.iter().all(|c| matches!(c, Component::Normal(_)));
    if !plain || (!may_nest && comps.len() != 1) {
        let want = if may_nest { "a relative directory without `..`" } else { "one directory name" };
        bail!("{what} = {s:?}: must be {want}");
    }
    Ok(())
}

/// A logger's directory and version, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLocation {
    /// `<save_dir>/<name>`: where versions are numbered.
    pub root: PathBuf,
    pub version: Version,
    /// `<root>/<version_N or the version's name>`.
    pub dir: PathBuf,
}

/// Resolves `opts` under `default_root` (a relative `save_dir` is taken from the current
/// directory, as Lightning's); with no version, `auto` gives the one for its root (so
/// loggers sharing a root share a version). The directory is made.
pub fn locate(
    opts: &LoggerOptions,
    default_root: &Path,
    auto: &mut dyn FnMut(&Path) -> Version,
) -> Result<LogLocation> {
    let save_dir = opts.save_dir.as_deref().map(crate::run_dir::expand_home).unwrap_or_else(|| default_root.into());
    let root = if opts.name.is_empty() { save_dir } else { save_dir.join(&opts.name) };
    let version = opts.version.clone().unwrap_or_else(|| auto(&root));
    let dir = root.join(version.dir_name());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(LogLocation { root, version, dir })
}

/// The next free `version_<N>` under `root`.
pub fn next_free(root: &Path) -> Version {
    Version::Number(next_version(root))
}

/// Lightning's `SLURMEnvironment.job_id()`: the job's id, except in an interactive
/// allocation (job name `bash` or `interactive`) or outside SLURM. Lightning's default
/// logger takes it as its version, so a requeued job logs on in the same directory.
pub fn slurm_job_id(job_id: Option<&str>, job_name: Option<&str>) -> Option<u64> {
    if matches!(job_name, Some("bash" | "interactive")) {
        return None;
    }
    // Python's int(): surrounding blanks, and single underscores between digits.
    let t = job_id?.trim();
    if t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    t.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_lightnings() -> Result<()> {
        let root = tempfile::tempdir()?;
        let mut auto = |r: &Path| next_free(r);
        let named =
            LoggerOptions { name: "exp".into(), version: Some(Version::Name("run-a".into())), ..Default::default() };
        let at = locate(&named, root.path(), &mut auto)?;
        assert_eq!(at.dir, root.path().join("exp/run-a"));
        assert!(at.dir.is_dir());
        let unnamed = LoggerOptions { name: String::new(), version: Some(Version::Number(3)), ..Default::default() };
        assert_eq!(locate(&unnamed, root.path(), &mut auto)?.dir, root.path().join("version_3"));
        let next = LoggerOptions { name: String::new(), ..Default::default() };
        assert_eq!(locate(&next, root.path(), &mut auto)?.version, Version::Number(4));
        let saved = LoggerOptions { save_dir: Some(root.path().join("logs")), ..Default::default() };
        assert_eq!(
            locate(&saved, Path::new("/nonexistent"), &mut auto)?.dir,
            root.path().join("logs/lightning_logs/version_0")
        );
        Ok(())
    }

    #[test]
    fn names_and_versions_stay_below_the_save_dir() {
        let bad = |name: &str, version: Option<Version>| {
            let cfg = LoggersConfig {
                csv: Some(LoggerOptions { name: name.into(), version, ..Default::default() }),
                ..Default::default()
            };
            cfg.validate().is_err()
        };
        assert!(bad("../up", None));
        assert!(bad("/abs", None));
        assert!(bad("exp", Some(Version::Name("a/b".into()))));
        assert!(bad("exp", Some(Version::Name(String::new()))));
        assert!(bad("exp", Some(Version::Name("..".into()))));
        assert!(!bad("group/exp", Some(Version::Name("run-a".into()))));
        assert!(!bad("", Some(Version::Number(2))));
        let csv_hp = LoggersConfig {
            csv: Some(LoggerOptions { default_hp_metric: Some(false), ..Default::default() }),
            ..Default::default()
        };
        assert!(csv_hp.validate().is_err());
        let sub = |kind: &str, s: &str| {
            let o = Some(LoggerOptions { sub_dir: Some(s.into()), ..Default::default() });
            let cfg = if kind == "csv" {
                LoggersConfig { csv: o, ..Default::default() }
            } else {
                LoggersConfig { tensorboard: o, ..Default::default() }
            };
            cfg.validate().is_ok()
        };
        assert!(sub("tensorboard", "a/b") && !sub("tensorboard", "../x") && !sub("csv", "a"));
    }

    #[test]
    fn a_slurm_job_gives_its_id_unless_interactive() {
        assert_eq!(slurm_job_id(Some("4242"), Some("train")), Some(4242));
        assert_eq!(slurm_job_id(Some("4242"), None), Some(4242));
        assert_eq!(slurm_job_id(Some("4242"), Some("bash")), None);
        assert_eq!(slurm_job_id(Some("4242"), Some("interactive")), None);
        assert_eq!(slurm_job_id(None, Some("train")), None);
        assert_eq!(slurm_job_id(Some(" 12_3 "), None), Some(123));
        assert_eq!(slurm_job_id(Some("12__3"), None), None);
        assert_eq!(slurm_job_id(Some("x"), None), None);
    }
}
