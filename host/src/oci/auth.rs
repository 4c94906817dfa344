//! Registry credentials, from where docker, podman and ORAS keep them, and the challenges a
//! registry answers with (`WWW-Authenticate`).
//!
//! Where: `REGISTRY_AUTH_FILE` (containers' auth.json), else `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`. In that file, for the registry's host: `credHelpers[host]`
//! or `credsStore` (the `docker-credential-<name> get` protocol), else `auths[host]` with
//! `auth` (base64 `user:password`), `username`/`password`, or `identitytoken`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use serde_json::Value;

#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), traded at the token service.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// The `Authorization` value for Basic auth.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)))
            }
            Credential::IdentityToken(_) => None,
        }
    }
}

/// The config file credentials are read from, if there is one.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The credential for `registry` (as written in the reference), or None.
pub fn lookup(registry: &str) -> Result<Option<Credential>> {
    let Some(path) = config_path() else { return Ok(None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    let cfg: Value = serde_json::from_str(&text).map_err(|e| anyhow!("{}: not JSON: {e}", path.display()))?;
    credential_in(&cfg, registry, &run_helper).with_context(|| format!("registry credentials in {}", path.display()))
}

/// The keys a registry may be filed under: docker files Docker Hub as its v1 index URL.
fn keys_for(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
            .map(String::from)
            .to_vec();
    }
    vec![registry.to_string()]
}

/// `https://host/v1/` → `host`, as docker matches `auths` keys.
fn host_of(key: &str) -> &str {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

type Helper<'a> = &'a dyn Fn(&str, &str) -> Result<Option<Credential>>;

fn credential_in(cfg: &Value, registry: &str, helper: Helper<'_>) -> Result<Option<Credential>> {
    let keys = keys_for(registry);
    let server = keys[0].as_str();
    let helper_name = keys
        .iter()
        .find_map(|k| cfg.get("credHelpers").and_then(|h| h.get(k)).and_then(Value::as_str))
        .or_else(|| cfg.get("credsStore").and_then(Value::as_str));
    if let Some(name) = helper_name.filter(|n| !n.is_empty()) {
        if let Some(c) = helper(name, server)? {
            return Ok(Some(c));
        }
    }
    let Some(auths) = cfg.get("auths").and_then(Value::as_object) else { return Ok(None) };
    let entry = auths.iter().find(|(k, _)| keys.iter().any(|want| host_of(k) == host_of(want))).map(|(_, v)| v);
    let Some(entry) = entry else { return Ok(None) };
    if let Some(t) = entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(t.to_string())));
    }
    if let Some(a) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| anyhow!("auths[{registry:?}].auth is not base64"))?;
        let raw = String::from_utf8(raw).map_err(|_| anyhow!("auths[{registry:?}].auth is not UTF-8"))?;
        let (u, p) =
            raw.split_once(':').ok_or_else(|| anyhow!("auths[{registry:?}].auth is not base64 of `user:password`"))?;
        return Ok(Some(Credential::Basic { username: u.to_string(), password: p.to_string() }));
    }
    match (entry.get("username").and_then(Value::as_str), entry.get("password").and_then(Value::as_str)) {
        (Some(u), Some(p)) => Ok(Some(Credential::Basic { username: u.to_string(), password: p.to_string() })),
        _ => Ok(None),
    }
}

/// `docker-credential-<name> get`: the server on stdin, `{"Username","Secret"}` on stdout
/// (a Username of `<token>` makes the Secret an identity token); "not found" is no credential.
fn run_helper(name: &str, server: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("the credential helper `{program}` (credsStore/credHelpers) could not be started: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| anyhow!("`{program} get`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") || String::from_utf8_lossy(&out.stderr).contains("not found") {
            return Ok(None);
        }
        bail!("`{program} get` failed for {server}: {}", stdout.trim());
    }
    let v: Value = serde_json::from_str(&stdout).map_err(|_| anyhow!("`{program} get` did not answer JSON"))?;
    let (u, s) = (v.get("Username").and_then(Value::as_str), v.get("Secret").and_then(Value::as_str));
    Ok(match (u, s) {
        (Some("<token>"), Some(s)) => Some(Credential::IdentityToken(s.to_string())),
        (Some(u), Some(s)) => Some(Credential::Basic { username: u.to_string(), password: s.to_string() }),
        _ => None,
    })
}

/// A `WWW-Authenticate` challenge: its scheme and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase: `basic` or `bearer`.
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// `Bearer realm="…",service="…",scope="a,b"` (quoted values may hold commas).
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        let mut params = Vec::new();
        let mut chars = rest.trim().chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_string();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied().filter(|c| *c != ',') {
                    value.push(c);
                    chars.next();
                }
            }
            params.push((key, value.trim().to_string()));
        }
        Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_commas_inside_quotes() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("reg.example"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!((c.scheme.as_str(), c.param("realm")), ("basic", Some("Registry Realm")));
    }

    #[test]
    fn credentials_come_from_auths_helpers_and_docker_hubs_v1_key() {
        let no_helper = |_: &str, _: &str| -> Result<Option<Credential>> { panic!("no helper configured") };
        let cfg: Value = serde_json::json!({"auths": {
            "localhost:5000": {"auth": "dTpwOnc="},
            "https://index.docker.io/v1/": {"username": "me", "password": "pw"},
            "ghcr.io": {"identitytoken": "tok"}
        }});
        let basic = |u: &str, p: &str| Some(Credential::Basic { username: u.into(), password: p.into() });
        assert_eq!(credential_in(&cfg, "localhost:5000", &no_helper).unwrap(), basic("u", "p:w"));
        assert_eq!(credential_in(&cfg, "docker.io", &no_helper).unwrap(), basic("me", "pw"));
        assert_eq!(credential_in(&cfg, "ghcr.io", &no_helper).unwrap(), Some(Credential::IdentityToken("tok".into())));
        assert_eq!(credential_in(&cfg, "quay.io", &no_helper).unwrap(), None);
        let cfg: Value = serde_json::json!({"credsStore": "desktop", "credHelpers": {"ghcr.io": "gh"}, "auths": {}});
        let helper = |name: &str, server: &str| -> Result<Option<Credential>> { Ok(basic(name, server)) };
        assert_eq!(credential_in(&cfg, "ghcr.io", &helper).unwrap(), basic("gh", "ghcr.io"));
        assert_eq!(credential_in(&cfg, "docker.io", &helper).unwrap(), basic("desktop", "https://index.docker.io/v1/"));
        let bad: Value = serde_json::json!({"auths": {"r.io": {"auth": "!!"}}});
        assert!(credential_in(&bad, "r.io", &no_helper).is_err());
    }
}
