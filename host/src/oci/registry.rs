//! The OCI distribution API, as a client: blobs (exists, monolithic upload, download
//! checked against its digest) and manifests (get, put), with the auth dance a registry
//! asks for (`401` + `WWW-Authenticate`: Basic, or a Bearer token from the registry's token
//! service, with the credentials of [`super::auth`]).

use std::io::Read as _;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use super::auth::{self, Challenge, Credential};
use super::{Reference, Transport};

/// The manifest type lthost pushes and accepts (the Wasm OCI layout's).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Largest manifest read (the distribution spec's 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Largest component pulled.
const MAX_BLOB: u64 = 2 << 30;

pub struct Registry {
    agent: ureq::Agent,
    /// `https://host` or `http://host`.
    base: String,
    registry: String,
    repository: String,
    credential: Option<Credential>,
    /// The `Authorization` value that last worked (or was earned from a challenge).
    authorization: Option<String>,
}

impl Registry {
    /// A client for `r`'s repository: HTTPS, or plain HTTP for localhost or when asked.
    pub fn connect(r: &Reference, how: Transport) -> Result<Self> {
        let scheme = if how.plain_http || r.is_localhost() { "http" } else { "https" };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(300))
            .user_agent(concat!("lthost/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Registry {
            agent,
            base: format!("{scheme}://{}", r.api_host()),
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            credential: auth::lookup(&r.registry)?,
            authorization: None,
        })
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repository)
    }

    /// One request, answering one auth challenge; any status comes back (no error for 4xx).
    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<ureq::Response> {
        let mut challenged = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            // Credentials go to the registry only, never to a host an upload's Location names.
            let same_origin = url.strip_prefix(self.base.as_str()).is_some_and(|r| r.is_empty() || r.starts_with('/'));
            if let Some(a) = self.authorization.as_ref().filter(|_| same_origin) {
                req = req.set("Authorization", a);
            }
            let res = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            let resp = match res {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    bail!(
                        "{}: could not reach the registry for {method} {url} ({})",
                        self.registry,
                        transport_cause(&t)
                    )
                }
            };
            if resp.status() != 401 || challenged {
                return Ok(resp);
            }
            challenged = true;
            let header = resp.header("WWW-Authenticate").unwrap_or("").to_string();
            self.authorization = Some(self.answer(&header)?);
        }
    }

    /// The `Authorization` a challenge asks for.
    fn answer(&self, header: &str) -> Result<String> {
        let needs = || {
            anyhow!(
                "{} asks for credentials and none were found for it (docker login {}, or `auths` in {})",
                self.registry,
                self.registry,
                auth::config_path().map_or("~/.docker/config.json".into(), |p| p.display().to_string())
            )
        };
        let c = Challenge::parse(header)
            .ok_or_else(|| anyhow!("{}: 401 without a WWW-Authenticate challenge", self.registry))?;
        match c.scheme.as_str() {
            "basic" => self.credential.as_ref().and_then(Credential::basic_header).ok_or_else(needs),
            "bearer" => {
                let realm =
                    c.param("realm").ok_or_else(|| anyhow!("{}: a Bearer challenge without a realm", self.registry))?;
                let mut req = self.agent.get(realm);
                if let Some(s) = c.param("service") {
                    req = req.query("service", s);
                }
                let scope = c
                    .param("scope")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("repository:{}:pull,push", self.repository));
                req = req.query("scope", &scope);
                let res = match &self.credential {
                    Some(Credential::Basic { .. }) => req
                        .set(
                            "Authorization",
                            &self.credential.as_ref().and_then(Credential::basic_header).unwrap_or_default(),
                        )
                        .call(),
                    Some(Credential::IdentityToken(t)) => {
                        let service = c.param("service").unwrap_or("");
                        self.agent.post(realm).send_form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", t),
                            ("service", service),
                            ("scope", &scope),
                            ("client_id", "lthost"),
                        ])
                    }
                    None => req.call(),
                };
                let resp = match res {
                    Ok(r) => r,
                    Err(ureq::Error::Status(401 | 403, _)) if self.credential.is_none() => return Err(needs()),
                    Err(ureq::Error::Status(code, r)) => {
                        bail!("{}: the token service {realm} refused ({code}): {}", self.registry, body_text(r))
                    }
                    Err(ureq::Error::Transport(t)) => {
                        bail!("{}: could not reach the token service {realm} ({})", self.registry, transport_cause(&t))
                    }
                };
                let v: serde_json::Value = serde_json::from_str(&body_text(resp))
                    .map_err(|_| anyhow!("{}: the token service {realm} did not answer JSON", self.registry))?;
                let token = v.get("token").or_else(|| v.get("access_token")).and_then(|t| t.as_str());
                let token =
                    token.ok_or_else(|| anyhow!("{}: the token service {realm} gave no token", self.registry))?;
                Ok(format!("Bearer {token}"))
            }
            other => bail!(
                "{}: asks for `{other}` authentication, which lthost does not speak (Basic, Bearer)",
                self.registry
            ),
        }
    }

    /// Whether the registry has a blob.
    pub fn blob_exists(&mut self, digest: &str) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send("HEAD", &url, &[], None)?;
        match resp.status() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused("HEAD", &url, resp)),
        }
    }

    /// A monolithic upload: POST for a session, PUT the bytes with their digest.
    pub fn upload_blob(&mut self, digest: &str, bytes: &[u8]) -> Result<()> {
        let url = self.url("blobs/uploads/");
        let resp = self.send("POST", &url, &[("Content-Length", "0")], Some(&[]))?;
        if resp.status() != 202 {
            return Err(self.refused("POST", &url, resp));
        }
        let location = resp
            .header("Location")
            .ok_or_else(|| anyhow!("{}: an upload session without a Location", self.registry))?;
        let mut put = self.absolute(location);
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str("digest=");
        put.push_str(&digest.replace(':', "%3A"));
        let len = bytes.len().to_string();
        let headers = [("Content-Type", "application/octet-stream"), ("Content-Length", len.as_str())];
        let resp = self.send("PUT", &put, &headers, Some(bytes))?;
        if resp.status() != 201 {
            return Err(self.refused("PUT", &put, resp));
        }
        Ok(())
    }

    /// PUTs a manifest under a tag; returns its digest (the registry's, checked against ours).
    pub fn put_manifest(&mut self, tag: &str, manifest: &[u8]) -> Result<String> {
        let url = self.url(&format!("manifests/{tag}"));
        let resp = self.send("PUT", &url, &[("Content-Type", OCI_MANIFEST)], Some(manifest))?;
        if resp.status() != 201 {
            return Err(self.refused("PUT", &url, resp));
        }
        let ours = format!("sha256:{}", crate::artifact::sha256_hex(manifest));
        match resp.header("Docker-Content-Digest") {
            Some(d) if d != ours => bail!("{}: stored the manifest as {d}, but its bytes are {ours}", self.registry),
            _ => Ok(ours),
        }
    }

    /// The manifest's bytes (as the registry stores them: its digest is of these bytes).
    pub fn get_manifest(&mut self, reference: &str) -> Result<Vec<u8>> {
        let url = self.url(&format!("manifests/{reference}"));
        let accept = format!("{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json");
        let resp = self.send("GET", &url, &[("Accept", &accept)], None)?;
        if resp.status() != 200 {
            return Err(self.refused("GET", &url, resp));
        }
        let media = resp.content_type().to_string();
        let bytes = read_limited(resp, MAX_MANIFEST, "a manifest")?;
        if media.contains("index") || media.contains("manifest.list") {
            bail!("{url}: an image index ({media}), not a Wasm artifact's manifest; pull one manifest of it by digest");
        }
        Ok(bytes)
    }

    /// A blob, refused unless its bytes have `digest` and `size`.
    pub fn get_blob(&mut self, digest: &str, size: u64) -> Result<Vec<u8>> {
        if size > MAX_BLOB {
            bail!("{digest}: {size} bytes is larger than a plugin may be ({MAX_BLOB})");
        }
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send("GET", &url, &[], None)?;
        if resp.status() != 200 {
            return Err(self.refused("GET", &url, resp));
        }
        let bytes = read_limited(resp, size, "the layer")?;
        let got = format!("sha256:{}", crate::artifact::sha256_hex(&bytes));
        if got != digest || bytes.len() as u64 != size {
            bail!(
                "{}: the blob served for {digest} has digest {got} ({} bytes; the manifest names {size}): refused as tampered or corrupt, nothing kept",
                self.registry,
                bytes.len()
            );
        }
        Ok(bytes)
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{}{location}", self.base, if location.starts_with('/') { "" } else { "/" })
        }
    }

    /// An error from a registry answer: its status and the spec's `errors` list.
    fn refused(&self, method: &str, url: &str, resp: ureq::Response) -> anyhow::Error {
        let status = resp.status();
        let text = body_text(resp);
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
            .map(|errs| {
                errs.iter()
                    .map(|e| {
                        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("?");
                        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                        format!("{code}: {msg}")
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| text.chars().take(200).collect());
        match status {
            401 | 403 => anyhow!("{method} {url}: {status} — not allowed with the credentials found ({detail})"),
            404 => anyhow!("{method} {url}: not found ({detail})"),
            _ => anyhow!("{method} {url}: {status} ({detail})"),
        }
    }
}

/// At most `limit` bytes of a body; more is an error (a registry cannot make lthost read
/// without end).
fn read_limited(resp: ureq::Response, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.into_reader().take(limit + 1).read_to_end(&mut out).map_err(|e| anyhow!("reading {what}: {e}"))?;
    if out.len() as u64 > limit {
        bail!("{what} is larger than {limit} bytes; refused");
    }
    Ok(out)
}

/// A transport failure as its kind and innermost cause (`Connection Failed: Connection refused`).
pub(crate) fn transport_cause(t: &ureq::Transport) -> String {
    use std::error::Error as _;
    let (mut inner, mut last) = (t.source(), None);
    while let Some(e) = inner {
        last = Some(e.to_string());
        inner = e.source();
    }
    match last.or_else(|| t.message().map(String::from)) {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    }
}

fn body_text(resp: ureq::Response) -> String {
    read_limited(resp, 64 << 10, "an answer").map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}
