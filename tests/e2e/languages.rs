//! Plugins from any language: the digits MLP written in Rust, Python (a plain Lightning file,
//! `lthost build`), JavaScript (componentize-js) and C (wit-bindgen c + clang) against the
//! same WIT. All the math runs in the host, so with the same seed every language gives the
//! same losses and metrics, step for step, bit for bit, without leaking tensor handles (each
//! SDK frees a step's tensors); and a guest's failure is a clear error in each.

use std::path::Path;

use crate::common::{lthost, plugin, read_metrics, repo_root, Run};

const LANGUAGES: [&str; 4] = ["digits-mlp", "python-digits", "js-digits", "c-digits"];

fn fit(dir: &Path, name: &str, extra: &[&str]) -> Run {
    let wasm = plugin(name);
    let cfg = repo_root().join("plugins/digits-mlp/run.toml");
    let mut args = vec![
        "fit",
        wasm.to_str().expect("utf-8"),
        "--config",
        cfg.to_str().expect("utf-8"),
        "--max-epochs",
        "3",
        "--no-progress-bar",
        "--set",
        "trainer.log_every_n_steps=1",
    ];
    args.extend(extra);
    lthost(dir, &args)
}

#[test]
fn the_digits_mlp_gives_identical_losses_in_every_language() {
    let mut tables = Vec::new();
    for name in LANGUAGES {
        let d = tempfile::tempdir().expect("tempdir");
        // A plugin that leaked a handle per step would hit this bound (120 steps).
        let run = fit(d.path(), name, &["--set", "plugin.max_live_handles=100"]);
        assert!(run.ok(), "{name}: {}", run.stderr);
        let rows = read_metrics(&d.path().join("lightning_logs/version_0"));
        assert!(rows.len() > 100, "{name}: a row per step");
        let table: Vec<Vec<(String, String)>> = rows
            .into_iter()
            .map(|r| {
                let mut cells: Vec<(String, String)> = r
                    .into_iter()
                    .filter(|(k, _)| ["step", "train_loss", "val_loss", "val_acc"].contains(&k.as_str()))
                    .collect();
                cells.sort();
                cells
            })
            .collect();
        tables.push((name, table));
    }
    let (first, want) = &tables[0];
    for (name, got) in &tables[1..] {
        assert_eq!(got.len(), want.len(), "{name} vs {first}: rows");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "{name} vs {first}: metrics row {i}");
        }
    }
}

#[test]
fn fit_after_lr_find_sets_the_same_lr_and_trains_the_same_in_every_language() {
    // `--lr-find`: each SDK answers the WIT's `has-attr("lr")` and `set-attr` (Rust: its
    // hyper-parameter; Python: `self.hparams.lr`; JavaScript: `this.hparams.lr`; C: its `lr`),
    // so the same search sets the same lr, and the fit after it gives the same losses.
    let mut runs = Vec::new();
    for name in LANGUAGES {
        let d = tempfile::tempdir().expect("tempdir");
        let run = fit(d.path(), name, &["--lr-find", "--set", "lr_find.num_training=30"]);
        assert!(run.ok(), "{name}: {}", run.stderr);
        let set: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("Learning rate set to") || l.starts_with("Optimizer:"))
            .collect();
        assert_eq!(set.len(), 2, "{name}: the suggestion set and used: {}", run.stdout);
        let rows = read_metrics(&d.path().join("lightning_logs/version_0"));
        let losses: Vec<String> = rows.iter().filter_map(|r| r.get("train_loss").cloned()).collect();
        runs.push((name, set.join("\n"), losses));
    }
    let (first, want_set, want_losses) = &runs[0];
    for (name, set, losses) in &runs[1..] {
        assert_eq!(set, want_set, "{name} vs {first}");
        assert_eq!(losses, want_losses, "{name} vs {first}: training losses");
    }
}

#[test]
fn a_guest_failure_is_a_clear_error_in_every_language() {
    let d = tempfile::tempdir().expect("tempdir");
    for name in LANGUAGES {
        let run = fit(d.path(), name, &["--hparams", "{\"dropout\": 1.5}"]);
        let plugin = format!("plugin `{name}`");
        run.assert_fails_with(&[&plugin, "hook `configure`"]);
        assert!(
            run.stderr.contains("op `dropout`")
                || run.stderr.contains("dropout in [0, 1)")
                || run.stderr.contains("dropout probability has to be between 0 and 1, but got 1.5"),
            "{name}: {}",
            run.stderr
        );
    }
}

/// Every text file of a new project, concatenated.
fn walk_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).expect("project dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out += &walk_text(&p);
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out += &t;
        }
    }
    out
}

/// `lthost init --lang python|js|c` scaffolds a project whose `build.sh` builds it with the
/// toolchain `make` installed, and the plugin signs and trains; the template's model gives
/// the same validation loss in Python, JavaScript and C.
#[test]
fn init_scaffolds_python_js_and_c_projects_that_build_and_train() {
    let d = tempfile::tempdir().expect("tempdir");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_lthost")).parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let key = d.path().join("me");
    assert!(lthost(d.path(), &["keygen", "--out", key.to_str().expect("utf-8")]).ok());
    let public = d.path().join("me.pub");
    let mut losses = Vec::new();
    for lang in ["python", "js", "c"] {
        let project = d.path().join(format!("model-{lang}"));
        let run = lthost(d.path(), &["init", project.to_str().expect("utf-8"), "--lang", lang]);
        assert!(run.ok(), "{lang}: {}", run.stderr);
        // The project names no path of this machine: the tools `make` installed come in
        // through build.sh's variables, as a user's own would.
        let text = walk_text(&project);
        assert!(!text.contains(&repo_root().display().to_string()), "{lang}: the project names this checkout");
        let out = std::process::Command::new(project.join("build.sh"))
            .env("PATH", &path)
            .env("COMPONENTIZE_JS", repo_root().join("tools/js/node_modules/.bin/componentize-js"))
            .env("WIT_BINDGEN", repo_root().join(".tools/bin/wit-bindgen"))
            .output()
            .expect("build.sh runs");
        assert!(
            out.status.success(),
            "{lang}: build.sh failed\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let wasm = project.join(format!("model-{lang}.wasm"));
        let k = format!("{}.key", key.display());
        assert!(lthost(d.path(), &["sign", wasm.to_str().expect("utf-8"), "--key", &k]).ok());
        let cfg = project.join("run.toml");
        let run = lthost(
            &project,
            &[
                "fit",
                wasm.to_str().expect("utf-8"),
                "--config",
                cfg.to_str().expect("utf-8"),
                "--trusted-keys",
                public.to_str().expect("utf-8"),
                "--no-progress-bar",
                "--set",
                "trainer.max_epochs=3",
            ],
        );
        assert!(run.ok(), "{lang}: {}", run.stderr);
        let val = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("val_loss"))
            .map(str::to_string)
            .expect("val_loss in the summary");
        losses.push((lang, val));
    }
    assert!(losses.iter().all(|(_, v)| *v == losses[0].1), "the same model in every language: {losses:?}");
}

#[test]
fn python_and_javascript_plugins_catch_an_operators_error_and_call_any_operator_typed_or_by_name() {
    let d = tempfile::tempdir().expect("tempdir");
    for (name, wants) in [
        (
            "python-digits",
            [
                "probe caught: aten::mm: ",
                "cannot be multiplied",
                "probe masked_fill: [1.0, -1.0, -1.0]",
                "probe no_grad: tracked=False after=True",
                "probe typed: [6.0] 1 [3.0] [2] [-0.5, -1.0, -1.5] [1.0, 4.0, 9.0]",
                "probe typed caught: aten::mm: ",
            ],
        ),
        (
            "js-digits",
            [
                "probe caught: aten::mm: ",
                "cannot be multiplied",
                "probe masked_fill: -1,-1,-1",
                "probe no_grad: tracked=false after=true",
                "probe typed: 6 1 3 2 -0.5,-1,-1.5",
                "probe typed caught: aten::mm: ",
            ],
        ),
    ] {
        let run = fit(d.path(), name, &["--hparams", "{\"probe_errors\": true}"]);
        assert!(run.ok(), "{name}: {}", run.stderr);
        for want in wants {
            assert!(run.stderr.contains(want), "{name}: {want:?} not in:\n{}", run.stderr);
        }
    }
}
