//! Signed artifacts and the trust policy: keygen, sign (embedded, several signers,
//! detached), verify, inspect; unsigned and untrusted plugins refused unless
//! --allow-unsigned; a changed signed plugin always refused, down to every single-byte
//! flip of a small signed component; manifests and the capabilities they request.

use std::path::{Path, PathBuf};

use lthost::artifact::manifest::{self, Manifest};
use lthost::artifact::signing;
use lthost::artifact::trust::{TrustPolicy, Verdict};

use crate::common::{lthost, plugin, repo_root, Run};

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let run = lthost(dir, &["keygen", "--out", name]);
    assert!(run.ok(), "{}", run.stderr);
    (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")))
}

fn fit(dir: &Path, wasm: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["fit", wasm.to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar"];
    args.extend_from_slice(extra);
    lthost(dir, &args)
}

/// An unsigned copy of a built plugin (its manifest kept).
fn unsigned_copy(dir: &Path, name: &str) -> PathBuf {
    let bytes = std::fs::read(plugin(name)).expect("a built plugin");
    let sections = lthost::artifact::sections::sections(&bytes).expect("sections");
    let mut out = bytes[..8].to_vec();
    for s in sections.iter().filter(|s| !matches!(s.custom(), Some(("signature", _)))) {
        out.extend_from_slice(s.bytes);
    }
    let p = dir.join(format!("{name}.wasm"));
    std::fs::write(&p, out).expect("write");
    p
}

#[test]
fn sign_verify_inspect_and_the_trust_policy() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    let (alice_key, alice_pub) = keygen(dir, "alice");
    let (bob_key, bob_pub) = keygen(dir, "bob");
    assert!(
        lthost(dir, &["keygen", "--out", "alice"]).stderr.contains("not overwriting"),
        "keygen never overwrites a key"
    );
    let wasm = unsigned_copy(dir, "parity-mlp");
    let (a, b) = (alice_pub.to_str().expect("utf-8"), bob_pub.to_str().expect("utf-8"));

    // Unsigned: refused, unless --allow-unsigned (with a warning).
    fit(dir, &wasm, &[]).assert_fails_with(&["plugin `parity-mlp` is not signed", "--allow-unsigned"]);
    let run = fit(dir, &wasm, &["--allow-unsigned"]);
    assert!(run.ok() && run.stderr.contains("warning: plugin `parity-mlp` is not signed"), "{}", run.stderr);

    // Signed by alice: trusted with alice's key, refused with only bob's.
    assert!(lthost(dir, &["sign", wasm.to_str().expect("utf-8"), "--key", alice_key.to_str().expect("utf-8")]).ok());
    assert!(fit(dir, &wasm, &["--trusted-keys", a]).ok());
    fit(dir, &wasm, &["--trusted-keys", b]).assert_fails_with(&["is signed by", "not among the trusted keys"]);
    let run = fit(dir, &wasm, &["--trusted-keys", b, "--allow-unsigned"]);
    assert!(run.ok() && run.stderr.contains("untrusted key"), "{}", run.stderr);
    let verify = lthost(dir, &["verify", wasm.to_str().expect("utf-8"), "--trusted-keys", a]);
    assert!(verify.ok() && verify.stdout.contains("trusted, signed by"), "{}", verify.stdout);
    assert!(!lthost(dir, &["verify", wasm.to_str().expect("utf-8"), "--trusted-keys", b]).ok());

    // A second signer: trusted with either key; inspect lists both and the manifest.
    assert!(lthost(dir, &["sign", wasm.to_str().expect("utf-8"), "--key", bob_key.to_str().expect("utf-8")]).ok());
    assert!(fit(dir, &wasm, &["--trusted-keys", a]).ok());
    assert!(fit(dir, &wasm, &["--trusted-keys", b]).ok());
    let inspect =
        lthost(dir, &["inspect", wasm.to_str().expect("utf-8"), "--trusted-keys", dir.to_str().expect("utf-8")]);
    assert!(inspect.ok(), "{}", inspect.stderr);
    for needle in [
        "name        parity-mlp",
        "version     0.1.0",
        "wit         lt:plugin@0.3.0",
        "is a          LightningModule + DataModule",
        "lt:plugin/lightning-module@0.3.0",
        "lt:plugin/tensor@0.3.0",
        "signatures    2 (embedded)",
        "trust         trusted: signed by",
    ] {
        assert!(inspect.stdout.contains(needle), "inspect lacks {needle:?}:\n{}", inspect.stdout);
    }

    // Changed after signing: refused even with --allow-unsigned, before compiling.
    let mut bytes = std::fs::read(&wasm).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    let changed = dir.join("changed.wasm");
    std::fs::write(&changed, &bytes).expect("write");
    fit(dir, &changed, &["--trusted-keys", a, "--allow-unsigned"]).assert_fails_with(&["was changed after signing"]);

    // Detached: the signature beside the plugin (`plugin.wasm.sig`).
    let plain = unsigned_copy(dir, "parity-rnn");
    let sig = format!("{}.sig", plain.display());
    assert!(lthost(
        dir,
        &["sign", plain.to_str().expect("utf-8"), "--key", alice_key.to_str().expect("utf-8"), "--detached", &sig]
    )
    .ok());
    std::fs::create_dir(dir.join("ref")).expect("mkdir");
    assert_eq!(
        std::fs::read(&plain).expect("read"),
        std::fs::read(unsigned_copy(&dir.join("ref"), "parity-rnn")).expect("read"),
        "detached signing leaves the component alone"
    );
    assert!(fit(dir, &plain, &["--trusted-keys", a]).ok());
    let mut bytes = std::fs::read(&plain).expect("read");
    let last = bytes.len() - 1;
    bytes[at.min(last)] ^= 1;
    std::fs::write(&plain, &bytes).expect("write");
    fit(dir, &plain, &["--trusted-keys", a, "--allow-unsigned"]).assert_fails_with(&["was changed after signing"]);
}

#[test]
fn every_single_byte_flip_of_a_signed_component_is_refused() {
    // A small component: the preamble and a manifest, signed.
    let m = Manifest {
        name: "tiny".into(),
        version: "1.0.0".into(),
        authors: vec!["t".into()],
        description: "d".into(),
        wit: manifest::WIT.into(),
        capabilities: vec![],
        defaults: None,
    };
    let bytes = manifest::embed(b"\0asm\x0d\0\x01\0", &m).expect("embed");
    let kp = wasmsign2::KeyPair::generate();
    let signed = signing::sign(&bytes, &kp.sk, false).expect("sign");
    let trust = TrustPolicy {
        keys: vec![(PathBuf::from("k.pub"), kp.pk.clone().attach_default_key_id())],
        allow_unsigned: false,
    };
    assert!(matches!(trust.check("tiny", &signed, None), Ok(Verdict::Trusted(_))));
    let lenient = TrustPolicy { allow_unsigned: true, ..trust.clone() };
    let header_end = 8 + lthost::artifact::sections::sections(&signed).expect("sections")[0].bytes.len();
    let mut checked = 0;
    for i in 0..signed.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = signed.clone();
            b[i] ^= mask;
            assert!(
                trust.check("tiny", &b, None).is_err(),
                "flip {mask:#x} at byte {i} of {} was accepted",
                signed.len()
            );
            if i >= header_end {
                // The signed content: refused whatever the policy.
                assert!(
                    lenient.check("tiny", &b, None).is_err(),
                    "flip {mask:#x} at signed byte {i} passed --allow-unsigned"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 300, "{checked}");
    // And a sample across a real plugin.
    let real = std::fs::read(plugin("digits-mlp")).expect("a built plugin");
    let dev = TrustPolicy::load(&[crate::common::trusted_keys()], false).expect("dev key");
    assert!(matches!(dev.check("digits-mlp", &real, None), Ok(Verdict::Trusted(_))));
    for k in 0..400 {
        let i = (k * 7919 + 13) % real.len();
        let mut b = real.clone();
        b[i] ^= 0x04;
        assert!(dev.check("digits-mlp", &b, None).is_err(), "flip at byte {i} of digits-mlp was accepted");
    }
}

#[test]
fn a_manifest_grants_only_what_it_requests() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    let (key, public) = keygen(dir, "k");
    let wasm = unsigned_copy(dir, "digits-mlp");
    let data = repo_root().join("plugins/digits-mlp/data");
    // The same plugin, its manifest asking for nothing: the data directory is not granted.
    let bare = dir.join("bare.toml");
    std::fs::write(&bare, "name = \"digits-mlp\"\nversion = \"0.1.0\"\n").expect("write");
    let out = dir.join("bare.wasm");
    assert!(lthost(
        dir,
        &[
            "manifest",
            wasm.to_str().expect("utf-8"),
            "--from",
            bare.to_str().expect("utf-8"),
            "--output",
            out.to_str().expect("utf-8")
        ]
    )
    .ok());
    assert!(lthost(dir, &["sign", out.to_str().expect("utf-8"), "--key", key.to_str().expect("utf-8")]).ok());
    let run = fit(
        dir,
        &out,
        &["--trusted-keys", public.to_str().expect("utf-8"), "--data-dir", data.to_str().expect("utf-8")],
    );
    // The failing load names the manifest line to add, not --data-dir (which was given).
    run.assert_fails_with(&["manifest does not request it", "capabilities = [\"data-read\"]"]);
    assert!(!run.stderr.contains("granted no data directory"), "{}", run.stderr);
    assert!(run.stderr.contains("does not request `data-read` in its manifest"), "{}", run.stderr);
    // A manifest cannot be added to a signed plugin (it would void the signature).
    let again = lthost(dir, &["manifest", out.to_str().expect("utf-8"), "--from", bare.to_str().expect("utf-8")]);
    again.assert_fails_with(&["signed", "before signing"]);
    // Unknown capabilities are refused with the known ones listed.
    std::fs::write(&bare, "name = \"x\"\nversion = \"1\"\ncapabilities = [\"network\"]\n").expect("write");
    lthost(dir, &["manifest", wasm.to_str().expect("utf-8"), "--from", bare.to_str().expect("utf-8")])
        .assert_fails_with(&["unknown capability \"network\"", "data-read", "logs-write"]);
}

#[test]
fn init_scaffolds_a_project_that_builds_signs_and_trains() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    let project = dir.join("my-model");
    let run = lthost(dir, &["init", project.to_str().expect("utf-8")]);
    assert!(run.ok(), "{}", run.stderr);
    lthost(dir, &["init", project.to_str().expect("utf-8")]).assert_fails_with(&["not empty"]);
    // Its own copy of the SDK and the WIT package: no path of this machine in it.
    let cargo = std::fs::read_to_string(project.join("Cargo.toml")).expect("Cargo.toml");
    assert!(cargo.contains("lthost-sdk = { path = \"lthost-sdk\" }"), "{cargo}");
    assert!(project.join("lthost-sdk/src/lib.rs").exists() && project.join("wit/worlds.wit").exists());
    let manifest = std::fs::read_to_string(project.join("lthost.toml")).expect("lthost.toml");
    assert!(manifest.contains("capabilities = [\"data-read\"]"), "the manifest says how to ask for data: {manifest}");
    // Build it against the SDK, sharing this repository's target directory for speed.
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .env("CARGO_TARGET_DIR", repo_root().join("target/init-test"))
        .current_dir(&project)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the scaffolded project builds");
    let built = repo_root().join("target/init-test/wasm32-wasip2/release/my_model.wasm");
    let wasm = project.join("my-model.wasm");
    let m = project.join("lthost.toml");
    assert!(lthost(
        dir,
        &[
            "manifest",
            built.to_str().expect("utf-8"),
            "--from",
            m.to_str().expect("utf-8"),
            "--output",
            wasm.to_str().expect("utf-8")
        ]
    )
    .ok());
    let (key, public) = keygen(dir, "me");
    assert!(lthost(dir, &["sign", wasm.to_str().expect("utf-8"), "--key", key.to_str().expect("utf-8")]).ok());
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
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("`max_epochs=3` reached"), "--set overrides the run file: {}", run.stdout);
    assert!(run.stdout.contains("val_loss"), "{}", run.stdout);
}

#[test]
fn the_cli_lists_valid_choices_completes_and_logs() {
    let d = tempfile::tempdir().expect("tempdir");
    let bad = lthost(d.path(), &["fit", "x.wasm", "--set", "trainer.max_epoch=3"]);
    bad.assert_fails_with(&["unknown field `max_epoch`", "max_epochs"]);
    let bad = lthost(d.path(), &["fit", "x.wasm", "--set", "trainer.accelerator=tpu"]);
    assert!(bad.stderr.contains("tpu") && bad.stderr.contains("cpu"), "{}", bad.stderr);
    let bad = lthost(d.path(), &["init", "p", "--lang", "cobol"]);
    assert!(!bad.ok() && bad.stderr.contains("rust") && bad.stderr.contains("python"), "{}", bad.stderr);
    let comp = lthost(d.path(), &["completions", "bash"]);
    assert!(comp.ok() && comp.stdout.contains("lthost") && comp.stdout.contains("lr-find"), "a bash completion script");
    let v = lthost(
        d.path(),
        &["-vv", "fit", plugin("parity-mlp").to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar"],
    );
    assert!(
        v.ok() && v.stderr.contains("plugin admitted") && v.stderr.contains("component ready"),
        "-vv logs the plugin's admission: {}",
        v.stderr
    );
}
