//! Plugins through a real OCI registry: Debian's `docker-registry` (the CNCF distribution
//! registry) started on localhost with htpasswd auth. Push (embedded and detached
//! signatures), the Wasm OCI layout as the registry stores it, ORAS (oras-py) pulling what
//! lthost pushed and lthost pulling what ORAS pushed, pull by tag and by digest,
//! credentials from a docker config, a moved tag reported, an untrusted plugin and a
//! tampered blob refused with nothing kept, and a run by digest from the pull cache with
//! the registry gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::common::{command, plugin, repo_root, Run};

const REGISTRY: &str = "/usr/bin/docker-registry";
/// `testuser:testpass`, bcrypt at cost 4 (the registry checks it on every request).
const HTPASSWD: &str = "testuser:$2b$04$tsijT2DE1YDEswHpMQY74eXVfRbbCDtQBMmviwNTWLhlGQipvE1N6\n";

/// The registry process, stopped when dropped.
struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        assert!(
            Path::new(REGISTRY).exists(),
            "{REGISTRY} is missing: `make test` installs Debian's docker-registry (tools/install-test-servers.sh)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let storage = dir.join("storage");
        std::fs::write(dir.join("htpasswd"), HTPASSWD).expect("htpasswd");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: lthost-test\n    path: {}\n",
            storage.display(),
            dir.join("htpasswd").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("config");
        let child = Command::new(REGISTRY)
            .args(["serve", dir.join("config.yml").to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let r = Registry { child, port, storage };
        // Ready when /v2/ answers as a distribution registry (401: it wants credentials).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = match ureq::get(&format!("http://127.0.0.1:{port}/v2/")).call() {
                Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                    resp.header("Docker-Distribution-Api-Version").map(String::from)
                }
                Err(_) => None,
            };
            if answer.as_deref() == Some("registry/2.0") {
                return r;
            }
            assert!(Instant::now() < deadline, "docker-registry did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256");
        self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// A manifest as the registry serves it (with the test's credentials).
    fn manifest(&self, repo: &str, reference: &str) -> Value {
        let auth = base64::engine::general_purpose::STANDARD.encode("testuser:testpass");
        let resp = ureq::get(&format!("http://127.0.0.1:{}/v2/{repo}/manifests/{reference}", self.port))
            .set("Authorization", &format!("Basic {auth}"))
            .set("Accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .expect("the manifest");
        serde_json::from_reader(resp.into_reader()).expect("JSON")
    }

    fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let auth = base64::engine::general_purpose::STANDARD.encode("testuser:testpass");
        let resp = ureq::get(&format!("http://127.0.0.1:{}/v2/{repo}/blobs/{digest}", self.port))
            .set("Authorization", &format!("Basic {auth}"))
            .call()
            .expect("the blob");
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut out).expect("read");
        out
    }
}

/// lthost with a docker config, a pull cache and trusted keys of the test's choosing.
fn oci_lthost(cwd: &Path, docker: &Path, cache: &Path, trusted: &Path, args: &[&str]) -> Run {
    let out = command(env!("CARGO_BIN_EXE_lthost"), cwd)
        .env("DOCKER_CONFIG", docker)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("LTHOST_OCI_DIR", cache)
        .env("LTHOST_TRUSTED_KEYS", trusted)
        // Reproducible pushes: the config's `created`, so the same plugin gives the same digests.
        .env("SOURCE_DATE_EPOCH", "1764720000")
        .args(args)
        .output()
        .expect("lthost runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn digest_in(stdout: &str) -> String {
    stdout.lines().find_map(|l| l.strip_prefix("digest ")).expect("push prints the digest").trim().to_string()
}

fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(wasm_files(&p));
            } else if p.extension().is_some_and(|x| x == "wasm") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn plugins_go_through_a_real_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let reg = Registry::start(d);
    let host = format!("localhost:{}", reg.port);
    let (no_creds, docker) = (d.join("no-docker-config"), d.join("docker"));
    std::fs::create_dir_all(&no_creds).expect("dir");
    std::fs::create_dir_all(&docker).expect("dir");
    let auth = base64::engine::general_purpose::STANDARD.encode("testuser:testpass");
    std::fs::write(docker.join("config.json"), format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#))
        .expect("config");
    let (cache, trusted) = (d.join("oci-cache"), repo_root().join(".lthost/trusted"));
    let run = |docker: &Path, cache: &Path, trusted: &Path, args: &[&str]| oci_lthost(d, docker, cache, trusted, args);
    let digits = plugin("digits-mlp");
    let digits_s = digits.to_str().expect("utf-8");
    let tag = format!("{host}/team/digits:1.0");

    // Without credentials the registry's Basic challenge is named.
    run(&no_creds, &cache, &trusted, &["push", digits_s, &tag]).assert_fails_with(&["asks for credentials"]);

    // Push (embedded signature): the Wasm OCI layout, as the registry stores it.
    let pushed = run(&docker, &cache, &trusted, &["push", digits_s, &tag]);
    assert!(pushed.ok(), "{}", pushed.stderr);
    let digest = digest_in(&pushed.stdout);
    let m = reg.manifest("team/digits", "1.0");
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let bytes = std::fs::read(&digits).expect("plugin");
    assert_eq!(layers[0]["size"], bytes.len());
    assert_eq!(layers[0]["digest"], format!("sha256:{}", lthost::artifact::sha256_hex(&bytes)));
    let config: Value =
        serde_json::from_slice(&reg.blob("team/digits", m["config"]["digest"].as_str().expect("digest")))
            .expect("JSON");
    assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some("wasm"), Some("wasip2")));
    assert_eq!(config["layerDigests"][0], layers[0]["digest"]);
    let exports: Vec<&str> =
        config["component"]["exports"].as_array().expect("exports").iter().filter_map(Value::as_str).collect();
    assert!(exports.iter().any(|e| e.starts_with("lt:plugin/lightning-module@")), "{exports:?}");
    assert_eq!(m["annotations"]["org.opencontainers.image.title"], "digits-mlp");
    assert_eq!(config["created"], "2025-12-03T00:00:00Z", "SOURCE_DATE_EPOCH");
    // Pushing again finds both blobs there and gives the same manifest.
    let again = run(&docker, &cache, &trusted, &["push", digits_s, &tag]);
    assert!(again.stdout.contains("2 blob(s) already there"), "{}", again.stdout);
    assert_eq!(digest_in(&again.stdout), digest, "a reproducible push");

    // ORAS (its Python SDK) pulls what lthost pushed, and lthost pulls what ORAS pushes in the
    // Wasm OCI layout.
    let oras = |args: &[&str]| {
        let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("tests/reference/oras_interop.py"))
            .args(args)
            .output()
            .expect("python runs");
        assert!(out.status.success(), "oras_interop.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let oras_dir = d.join("oras");
    let written = oras(&["pull", &host, "testuser", "testpass", &tag, oras_dir.to_str().expect("utf-8")]);
    assert!(written.contains("digits-mlp.wasm"), "{written}");
    assert_eq!(
        std::fs::read(oras_dir.join("digits-mlp.wasm")).expect("ORAS's file"),
        bytes,
        "ORAS pulls the component"
    );
    let cnn = plugin("mnist-cnn");
    let cnn_copy = d.join("mnist-cnn.wasm");
    std::fs::copy(&cnn, &cnn_copy).expect("copy");
    let oras_tag = format!("{host}/team/by-oras:1");
    let oras_digest = oras(&["push", &host, "testuser", "testpass", &oras_tag, cnn_copy.to_str().expect("utf-8")]);
    let from_oras = d.join("from-oras.wasm");
    let pulled_oras = run(&docker, &cache, &trusted, &["pull", &oras_tag, "-o", from_oras.to_str().expect("utf-8")]);
    assert!(
        pulled_oras.ok() && pulled_oras.stdout.contains(&oras_digest),
        "{}{}",
        pulled_oras.stdout,
        pulled_oras.stderr
    );
    assert_eq!(
        std::fs::read(&from_oras).expect("pulled"),
        std::fs::read(&cnn).expect("cnn"),
        "lthost pulls ORAS's push"
    );

    // Pull by tag: verified (trusted), kept, written where asked, byte for byte.
    let out = d.join("pulled.wasm");
    let pulled = run(&docker, &cache, &trusted, &["pull", &tag, "-o", out.to_str().expect("utf-8")]);
    assert!(pulled.ok(), "{}", pulled.stderr);
    assert!(pulled.stdout.contains(&digest) && pulled.stdout.contains("trusted, signed by"), "{}", pulled.stdout);
    assert_eq!(std::fs::read(&out).expect("pulled"), bytes);

    // Untrusted: refused, nothing kept.
    let (other_cache, no_keys) = (d.join("cache-untrusted"), d.join("no-keys"));
    std::fs::create_dir_all(&no_keys).expect("dir");
    run(&docker, &other_cache, &no_keys, &["pull", &tag]).assert_fails_with(&["not among the trusted keys"]);
    assert!(wasm_files(&other_cache).is_empty(), "an untrusted plugin was kept");

    // A detached signature travels in the manifest and is verified on pull.
    let unsigned = d.join("detached.wasm");
    let raw = lthost::artifact::sections::sections(&bytes).expect("sections");
    let mut stripped = bytes[..8].to_vec();
    for s in raw.iter().filter(|s| !matches!(s.custom(), Some(("signature", _)))) {
        stripped.extend_from_slice(s.bytes);
    }
    std::fs::write(&unsigned, &stripped).expect("write");
    let key = repo_root().join(".lthost/dev.key");
    let sig = d.join("detached.wasm.sig");
    let (unsigned_s, key_s, sig_s) =
        (unsigned.to_str().expect("utf-8"), key.to_str().expect("utf-8"), sig.to_str().expect("utf-8"));
    let signed = run(&docker, &cache, &trusted, &["sign", unsigned_s, "--key", key_s, "--detached", sig_s]);
    assert!(signed.ok(), "{}", signed.stderr);
    let dtag = format!("{host}/team/detached:1");
    let pushed_d = run(&docker, &cache, &trusted, &["push", unsigned_s, &dtag]);
    assert!(pushed_d.ok(), "{}", pushed_d.stderr);
    let ddigest = digest_in(&pushed_d.stdout);
    let dout = d.join("detached-pulled.wasm");
    let pulled_d = run(&docker, &cache, &trusted, &["pull", &dtag, "-o", dout.to_str().expect("utf-8")]);
    assert!(pulled_d.ok() && pulled_d.stdout.contains("trusted, signed by"), "{}{}", pulled_d.stdout, pulled_d.stderr);
    assert_eq!(std::fs::read(d.join("detached-pulled.wasm.sig")).expect("sig"), std::fs::read(&sig).expect("sig"));

    // A tampered blob (one byte flipped in the registry's storage): refused, nothing kept.
    let layer = format!("sha256:{}", lthost::artifact::sha256_hex(&stripped));
    let mut tampered = stripped.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    std::fs::write(reg.blob_file(&layer), &tampered).expect("tamper");
    let fresh = d.join("cache-fresh");
    let refused = run(&docker, &fresh, &trusted, &["pull", &format!("{host}/team/detached@{ddigest}")]);
    refused.assert_fails_with(&["refused as tampered or corrupt", &layer]);
    assert!(wasm_files(&fresh).is_empty(), "a tampered blob was kept");
    // The copy pulled before the tampering still answers by digest, from the cache.
    let cached = run(&docker, &cache, &trusted, &["pull", &format!("{host}/team/detached@{ddigest}")]);
    assert!(cached.ok() && cached.stdout.contains("from the pull cache"), "{}{}", cached.stdout, cached.stderr);

    // A tag that moves is reported.
    assert!(run(&docker, &cache, &trusted, &["push", cnn.to_str().expect("utf-8"), &tag]).ok());
    let moved = run(&docker, &cache, &trusted, &["pull", &tag]);
    assert!(moved.ok(), "{}", moved.stderr);
    assert!(moved.stdout.contains(&format!("moved: it was {digest} when last pulled")), "{}", moved.stdout);
    run(&docker, &cache, &trusted, &["pull", &format!("{host}/team/nothing:1")]).assert_fails_with(&["not found"]);

    // A run by tag pulls, checks and trains; by digest it needs no registry at all.
    let cfg = repo_root().join("plugins/digits-mlp/run.toml");
    let cfg = cfg.to_str().expect("utf-8");
    let by_digest = format!("oci://{host}/team/digits@{digest}");
    let fit = |cache: &Path, reference: &str| {
        run(
            &docker,
            cache,
            &trusted,
            &[
                "fit",
                reference,
                "--config",
                cfg,
                "--max-steps",
                "3",
                "--no-progress-bar",
                "--default-root-dir",
                d.join("runs").to_str().expect("utf-8"),
            ],
        )
    };
    let trained = fit(&d.join("cache-run"), &by_digest);
    assert!(trained.ok(), "{}", trained.stderr);
    assert!(trained.stderr.contains(&format!("pulled {host}/team/digits@{digest}")), "{}", trained.stderr);
    assert!(trained.stdout.contains("Summary") || trained.stdout.contains("train_loss"), "{}", trained.stdout);
    drop(reg);
    let offline = fit(&d.join("cache-run"), &by_digest);
    assert!(offline.ok(), "a run by digest needs the registry although the plugin is cached:\n{}", offline.stderr);
    assert!(!offline.stderr.contains("pulled"), "{}", offline.stderr);
    fit(&d.join("cache-run"), &format!("oci://{host}/team/digits:1.0"))
        .assert_fails_with(&["team/digits/manifests/1.0"]);
}
