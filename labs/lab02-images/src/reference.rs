//! Image references: the names people type, such as `kubia`, `kubia:v1` or
//! `127.0.0.1:5000/team/kubia@sha256:…`.
//!
//! The grammar is the one the OCI distribution spec and Docker use:
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ registry "/" ] repository
//! registry   := host [ ":" port ]
//! repository := component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9._-]{0,127}
//! ```
//!
//! The first part of a name is a registry only if it looks like a host: it
//! contains a `.` or a `:`, or is `localhost`. So `team/kubia` is a
//! repository with two components, and `127.0.0.1:5000/kubia` names a
//! registry.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The tag a reference gets when it names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// The registry a name without one means, as Docker reads it.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers (`docker.io` itself does not).
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Docker Hub's namespace for its official images (`busybox` is
/// `library/busybox`).
pub const OFFICIAL_NAMESPACE: &str = "library";

/// Longest name (`registry/repository`) a registry accepts.
const MAX_NAME_LEN: usize = 255;
/// Longest tag: one leading character plus up to 127 more.
const MAX_TAG_LEN: usize = 128;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `127.0.0.1:5000`, or `None` for a local name.
    pub registry: Option<String>,
    /// `team/kubia`.
    pub repository: String,
    /// `v1`; `latest` if the text named neither a tag nor a digest.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference. Each variant names the part that
/// was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("{reference:?} has no repository name")]
    NoRepository { reference: String },
    #[error("repository component {component:?} in {reference:?} is not lowercase (write {lowercase:?})")]
    Uppercase {
        reference: String,
        component: String,
        lowercase: String,
    },
    #[error("repository component {component:?} in {reference:?} is invalid: use lowercase letters and digits, separated by '.', '_', '__' or '-'")]
    BadComponent {
        reference: String,
        component: String,
    },
    #[error("{reference:?} has an empty path component (a leading, trailing or doubled '/')")]
    EmptyComponent { reference: String },
    #[error("registry {registry:?} in {reference:?} is not a host[:port]")]
    BadRegistry { reference: String, registry: String },
    #[error("tag {tag:?} in {reference:?} is invalid: use up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    BadTag { reference: String, tag: String },
    #[error("digest in {reference:?}: {source}")]
    BadDigest {
        reference: String,
        source: DigestError,
    },
    #[error("name {name:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong { name: String },
}

impl Reference {
    /// `[registry/]repository`: the name without tag or digest.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// What to ask a registry for: the digest if there is one (it pins the
    /// exact content), otherwise the tag.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The name the local store files this image under (its
    /// `org.opencontainers.image.ref.name`): `name:tag`, or `name@digest`
    /// for a reference by digest alone.
    pub fn local_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{}:{tag}", self.name()),
            (None, Some(digest)) => format!("{}@{digest}", self.name()),
            (None, None) => format!("{}:{DEFAULT_TAG}", self.name()),
        }
    }
}

impl Reference {
    // ANCHOR: normalize
    /// The reference as Docker resolves it to pull or push: a name without
    /// a registry is on Docker Hub (`busybox` is
    /// `docker.io/library/busybox:latest`), a one-part name there is in
    /// `library/`, and `index.docker.io` is another name for `docker.io`.
    pub fn normalized(&self) -> Reference {
        let registry = match self.registry.as_deref() {
            None | Some("index.docker.io") => DOCKER_HUB,
            Some(other) => other,
        };
        let repository =
            if registry == DOCKER_HUB && !self.repository.contains('/') {
                format!("{OFFICIAL_NAMESPACE}/{}", self.repository)
            } else {
                self.repository.clone()
            };
        Reference {
            registry: Some(registry.to_string()),
            repository,
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }
    // ANCHOR_END: normalize

    /// The short name Docker shows for a normalized reference: Docker
    /// Hub's registry and `library/` left out (`busybox:latest`); others
    /// as they are.
    pub fn familiar(&self) -> Reference {
        let mut familiar = self.normalized();
        if familiar.registry.as_deref() == Some(DOCKER_HUB) {
            familiar.registry = None;
            if let Some(rest) = familiar
                .repository
                .strip_prefix(OFFICIAL_NAMESPACE)
                .and_then(|r| r.strip_prefix('/'))
            {
                if !rest.contains('/') {
                    familiar.repository = rest.to_string();
                }
            }
        }
        familiar
    }
}

/// The host a registry's HTTP API answers on: Docker Hub's API is on
/// `registry-1.docker.io`; every other registry answers on its own name.
pub fn api_host(registry: &str) -> &str {
    match registry {
        DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API,
        other => other,
    }
}

/// Whether a registry (`host[:port]`) is on this machine: `localhost`,
/// 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // ANCHOR: parse
        // A digest contains ':' but never '@', so split it off first.
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest.parse::<Digest>().map_err(|source| {
                    ReferenceError::BadDigest {
                        reference: text.to_string(),
                        source,
                    }
                })?;
                (rest, Some(digest))
            }
            None => (text, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(ReferenceError::BadTag {
                    reference: text.to_string(),
                    tag: tag.to_string(),
                });
            }
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong {
                name: name.to_string(),
            });
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if looks_like_host(first) => {
                (Some(first), rest)
            }
            _ => (None, name),
        };
        // ANCHOR_END: parse
        if let Some(registry) = registry {
            if !valid_registry(registry) {
                return Err(ReferenceError::BadRegistry {
                    reference: text.to_string(),
                    registry: registry.to_string(),
                });
            }
        }
        if repository.is_empty() {
            return Err(ReferenceError::NoRepository {
                reference: text.to_string(),
            });
        }
        for component in repository.split('/') {
            check_component(text, component)?;
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry: registry.map(str::to_string),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component is a host if it could not be a
/// repository component.
fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// `host[:port]`, where host is a DNS name, an IPv4 address, or an IPv6
/// address in brackets.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        // `[::1]` has colons inside the brackets; only one after `]` is a port.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(inner) =
        host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
    {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn check_component(
    reference: &str,
    component: &str,
) -> Result<(), ReferenceError> {
    if component.is_empty() {
        return Err(ReferenceError::EmptyComponent {
            reference: reference.to_string(),
        });
    }
    if valid_component(component) {
        return Ok(());
    }
    let lowercase = component.to_ascii_lowercase();
    if lowercase != component && valid_component(&lowercase) {
        return Err(ReferenceError::Uppercase {
            reference: reference.to_string(),
            component: component.to_string(),
            lowercase,
        });
    }
    Err(ReferenceError::BadComponent {
        reference: reference.to_string(),
        component: component.to_string(),
    })
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn valid_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    // Split into runs of alphanumerics and runs of separators: the string
    // must start and end with alphanumerics, and every separator run must
    // be one of the allowed forms.
    if !component.starts_with(alnum) || !component.ends_with(alnum) {
        return false;
    }
    component
        .split(alnum)
        .filter(|run| !run.is_empty())
        .all(|sep| {
            matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-')
        })
}

/// `[A-Za-z0-9_] [A-Za-z0-9._-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        _ => return false,
    }
    tag.len() <= MAX_TAG_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
