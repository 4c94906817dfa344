//! An OCI reference, `REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`, read as docker and ORAS
//! read it: the first path component is the registry when it has a `.` or a `:` or is
//! `localhost`, else the registry is Docker Hub (`library/` before a one-part name).

use std::fmt;

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// As written (`ghcr.io`, `localhost:5000`, `docker.io`).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference, with or without `oci://`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.strip_prefix(super::SCHEME).unwrap_or(s);
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                check_digest(d).map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (first, path) = rest.split_once('/').unwrap_or(("", rest));
        let names_registry = first.contains('.') || first.contains(':') || first == "localhost";
        let (registry, path) = match (names_registry, first.is_empty()) {
            (true, _) => (first.to_string(), path.to_string()),
            (false, true) => ("docker.io".to_string(), format!("library/{path}")),
            (false, false) => ("docker.io".to_string(), rest.to_string()),
        };
        // A tag follows the last `:` of the last path component.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last_slash..].rfind(':') {
            Some(i) => (path[..last_slash + i].to_string(), Some(path[last_slash + i + 1..].to_string())),
            None => (path, None),
        };
        let host_ok = !registry.is_empty()
            && !registry.starts_with(['.', '-', ':'])
            && !registry.contains("..")
            && registry.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !host_ok {
            bail!("{s:?}: {registry:?} is not a registry host (expected REGISTRY/REPOSITORY:TAG, e.g. ghcr.io/me/model:1.0)");
        }
        if !repository.split('/').all(path_component_ok) {
            bail!(
                "{s:?}: the repository {repository:?} is not a valid OCI name (lowercase letters and digits, separated by `.`, `_`, `__`, `-` or `/`)"
            );
        }
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                bail!("{s:?}: the tag {t:?} is not valid (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)");
            }
        }
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The host the API is served on (Docker Hub's is not `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// Whether the registry is this machine (plain HTTP allowed, as docker allows it).
    pub fn is_localhost(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self.registry.split(':').next().unwrap_or(""),
        };
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The last path component: the plugin's name when it has no manifest.
    pub fn name(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or(&self.repository)
    }

    /// The tag, `latest` when none is given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What the manifest is asked for by: the digest when there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest.as_deref().unwrap_or_else(|| self.tag_or_latest())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits (the only algorithm lthost verifies).
pub fn check_digest(d: &str) -> Result<()> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(()),
        Some(_) => bail!("the digest {d:?} is not sha256: and 64 lowercase hex digits"),
        None => bail!("the digest {d:?} is not a sha256 digest (the only algorithm lthost verifies)"),
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path component.
fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_as_docker_reads_them() {
        let r = Reference::parse("oci://localhost:5000/team/digits:1.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "team/digits", Some("1.0"))
        );
        assert!(r.is_localhost());
        assert_eq!(r.name(), "digits");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("ghcr.io/me/m@{d}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.reference()), (None, d.as_str()));
        assert!(!r.is_localhost());
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag_or_latest()),
            ("docker.io", "library/busybox", "latest")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("me/model:v2").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("docker.io", "me/model"));
        assert_eq!(Reference::parse("127.0.0.1:5000/a/b:c").unwrap().to_string(), "127.0.0.1:5000/a/b:c");
        for bad in [
            "localhost:5000/Upper:1",
            "localhost:5000/a//b",
            "localhost:5000/a:-x",
            "ghcr.io/a@sha256:xyz",
            "ghcr.io/a@md5:00",
            "../etc/x:1",
            "a..b.io/x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(Reference::parse("localhost:5000/a__b.c-d---e:1").is_ok());
        assert!(Reference::parse("127.0.0.1:5000/a:1").unwrap().is_localhost());
        assert!(Reference::parse("[::1]:5000/a:1").unwrap().is_localhost());
        assert!(!Reference::parse("127.example.com/a:1").unwrap().is_localhost());
    }
}
