//! Lightning's checkpoint connector, the file side: which file `--ckpt-path last|best|PATH`
//! means, HPC checkpoints, and the model's weights put back from a checkpoint. What a run
//! saves and how its training state is put back belong to the loops (`loops/run_state.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use tch::Tensor;

use crate::checkpoint::{self, Checkpoint};
use crate::context::RunContext;
use crate::run_dir::RunDir;

/// Where the model's parameters and buffers are in a checkpoint's tensors.
pub const STATE_DICT: &str = "state_dict.";

/// Loads the model's parameters and buffers; every missing, unexpected or mis-shaped key is
/// reported in one error, and nothing is changed unless all fit.
pub fn restore_model(ctx: &mut RunContext, ckpt: &Checkpoint, shown: &str) -> Result<()> {
    let saved: HashMap<&str, &Tensor> =
        ckpt.tensors.iter().filter_map(|(k, t)| k.strip_prefix(STATE_DICT).map(|n| (n, t))).collect();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for e in ctx.params.stored() {
        match saved.get(e.name.as_str()) {
            None => missing.push(e.name.clone()),
            Some(t) if t.size() != e.tensor.size() => {
                mismatched.push(format!("{} (checkpoint {:?}, model {:?})", e.name, t.size(), e.tensor.size()))
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<&str> = saved.keys().copied().filter(|k| ctx.params.get(k).is_none()).collect();
    let untied: Vec<String> = ctx
        .params
        .entries()
        .iter()
        .filter_map(|e| Some((e.name.as_str(), ctx.params.tied_to(e)?)))
        .filter(|(name, first)| ckpt.meta.tied.get(*name).map(String::as_str) != Some(*first))
        .map(|(name, first)| format!("{name} (tied to {first} in the model, not in the checkpoint)"))
        .collect();
    mismatched.extend(untied);
    if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
        bail!(
            "checkpoint {shown} does not fit the model of plugin `{}`: missing keys {missing:?}, unexpected keys {unexpected:?}, shape mismatches {mismatched:?}",
            ckpt.meta.plugin
        );
    }
    tch::no_grad(|| -> Result<()> {
        for e in ctx.params.stored() {
            if let Some(src) = saved.get(e.name.as_str()) {
                let src = src.f_to_kind(e.tensor.kind())?.f_to_device(e.tensor.device())?;
                e.tensor.shallow_clone().f_copy_(&src)?;
            }
        }
        Ok(())
    })
}

/// `--ckpt-path`: `last` (the checkpoint directory's last.ckpt, else the newest
/// lightning_logs/version_*/checkpoints/last.ckpt), `best` (the best path ModelCheckpoint
/// recorded in that last checkpoint, if it lies in the same directory), or a path.
/// The newest of `last.ckpt` and its versions (`last-v1.ckpt`, ...) in `dir`, by
/// modification time (Lightning's `_find_last_checkpoints` and `max(..., key=mtime)`).
fn newest_last(dir: &Path) -> Option<PathBuf> {
    let is_last = |n: &str| {
        n.strip_suffix(".ckpt").is_some_and(|s| {
            s == "last"
                || s.strip_prefix("last-v").is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let run_dir = RunDir::open_existing(dir)?;
    run_dir
        .entries()
        .into_iter()
        .filter(|(name, _)| is_last(name))
        .filter_map(|(name, link)| {
            // A `save_last="link"` link stands for the checkpoint it names beside it (that
            // file is what resumes, and what ModelCheckpoint then never removes).
            let file = match link {
                true => run_dir.link_target(&name)?,
                false => Some(name).filter(|n| run_dir.is_file(n))?,
            };
            let path = dir.join(file);
            Some((std::fs::symlink_metadata(&path).ok()?.modified().ok()?, path))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        .map(|(_, p)| p)
}

pub fn resolve(spec: &str, dirpath: Option<&Path>, root: &Path) -> Result<PathBuf> {
    let last = || -> Option<PathBuf> {
        if let Some(p) = dirpath.and_then(newest_last) {
            return Some(p);
        }
        let logs = root.join("lightning_logs");
        let mut versions: Vec<(u64, PathBuf)> = std::fs::read_dir(&logs)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("version_")?.parse().ok().map(|v: u64| (v, e.path())))
            .collect();
        versions.sort();
        versions.into_iter().rev().find_map(|(_, p)| newest_last(&p.join("checkpoints")))
    };
    match spec {
        "last" => last().ok_or_else(|| anyhow!("--ckpt-path last: no last.ckpt found (is `save_last` on?)")),
        "best" => {
            let l =
                last().ok_or_else(|| anyhow!("--ckpt-path best: no checkpoint found to read the best path from"))?;
            let ck = checkpoint::load(&l)?;
            // Only ModelCheckpoint's own state, never a callback plugin's (whose keys are
            // namespaced apart), and only a file beside last.ckpt.
            let best = ck
                .meta
                .callbacks
                .iter()
                .filter(|(k, _)| k.starts_with(crate::callbacks::model_checkpoint::STATE_KEY_PREFIX))
                .find_map(|(_, s)| s["best_model_path"].as_str().map(PathBuf::from))
                .ok_or_else(|| anyhow!("--ckpt-path best: {} records no best model", l.display()))?;
            let dir = l
                .parent()
                .and_then(RunDir::open_existing)
                .ok_or_else(|| anyhow!("--ckpt-path best: cannot open the directory of {}", l.display()))?;
            match dir.name_of(&best) {
                Some(name) if dir.is_file(&name) => Ok(dir.path().join(name)),
                _ => bail!(
                    "--ckpt-path best: {} names {} as the best model, which is not a checkpoint file in {}; refused",
                    l.display(),
                    best.display(),
                    dir.path().display()
                ),
            }
        }
        path => {
            let p = PathBuf::from(path);
            if !p.exists() {
                bail!("--ckpt-path {path}: no such file");
            }
            Ok(p)
        }
    }
}

/// Lightning's HPC checkpoints: `<root>/hpc_ckpt_<n>.ckpt`, the highest n resumed first —
/// but only a regular file written by this same plugin (`plugin_sha256`); others are passed
/// over with a warning.
pub fn latest_hpc(root: &Path, plugin_sha256: &str) -> Option<PathBuf> {
    let dir = RunDir::open_existing(root)?;
    let mut found: Vec<(u64, String)> = dir
        .entries()
        .into_iter()
        .filter_map(|(name, _)| {
            let n: u64 = name.strip_prefix("hpc_ckpt_")?.strip_suffix(".ckpt")?.parse().ok()?;
            Some((n, name))
        })
        .collect();
    found.sort();
    for (_, name) in found.into_iter().rev() {
        match checkpoint::read_meta(&dir, &name) {
            Ok(m) if m.plugin_sha256 == plugin_sha256 => return Some(root.join(name)),
            Ok(m) => eprintln!(
                "warning: not resuming from {}: it was written by plugin `{}` (sha256 {}), not this one",
                root.join(&name).display(),
                m.plugin,
                short(&m.plugin_sha256)
            ),
            Err(e) => eprintln!("warning: not resuming from {}: {e}", root.join(&name).display()),
        }
    }
    None
}

/// The highest HPC checkpoint number in `root` (whoever wrote it), for naming the next.
pub fn highest_hpc(root: &Path) -> Option<u64> {
    RunDir::open_existing(root)?
        .entries()
        .into_iter()
        .filter_map(|(name, _)| name.strip_prefix("hpc_ckpt_")?.strip_suffix(".ckpt")?.parse().ok())
        .max()
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
