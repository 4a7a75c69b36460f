//! The `continue` token of a paged list: where the next page starts, and
//! the revision every page is read at.
//!
//! kube-apiserver's token (apimachinery `storage/continue.go`) is URL-safe
//! base64, without padding, of `{"v":"meta.k8s.io/v1","rv":N,"start":K}`:
//! `rv` the revision of the first page, `start` the key the next page
//! begins with, relative to the list's prefix. The key is the last key
//! returned with a NUL byte appended, the smallest key after it. Clients
//! treat the token as opaque; the server trusts nothing in it, so a
//! start key that climbs out of the prefix (`../secrets/...`) is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::store::Revision;

/// The one token version there is.
const VERSION: &str = "meta.k8s.io/v1";

/// The token's JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    v: String,
    rv: Revision,
    start: String,
}

/// Where a continued list resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continue {
    /// The revision to read at; `None` (a token with rv -1, which
    /// kube-apiserver hands out after its first one expired) is "now",
    /// an inconsistent continuation.
    pub revision: Option<Revision>,
    /// The full store key the page starts at (inclusive).
    pub start: String,
}

/// Why a token cannot be used (400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContinueError {
    #[error("continue key is not valid: {0}")]
    Malformed(String),
    #[error("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")]
    NoRevision,
    #[error("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")]
    EmptyStart,
    #[error("continue key is not valid: server does not recognize this encoded version {0:?}")]
    Version(String),
    #[error("unable to encode next field: the key ({key}) and key prefix ({prefix}) do not match")]
    Prefix { key: String, prefix: String },
}

/// The token of the page that follows `last_key` (the last key this page
/// read), for a list of `prefix` at `revision`.
pub fn encode(
    last_key: &str,
    prefix: &str,
    revision: Revision,
) -> Result<String, ContinueError> {
    let start =
        last_key
            .strip_prefix(prefix)
            .ok_or_else(|| ContinueError::Prefix {
                key: last_key.to_string(),
                prefix: prefix.to_string(),
            })?;
    let token = Token {
        v: VERSION.to_string(),
        rv: revision,
        start: format!("{start}\0"),
    };
    let json = serde_json::to_vec(&token)
        .map_err(|e| ContinueError::Malformed(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Read a token back for a list of `prefix`.
pub fn decode(token: &str, prefix: &str) -> Result<Continue, ContinueError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| ContinueError::Malformed(e.to_string()))?;
    let token: Token = serde_json::from_slice(&bytes)
        .map_err(|e| ContinueError::Malformed(e.to_string()))?;
    if token.v != VERSION {
        return Err(ContinueError::Version(token.v));
    }
    if token.rv == 0 {
        return Err(ContinueError::NoRevision);
    }
    if token.start.is_empty() {
        return Err(ContinueError::EmptyStart);
    }
    if !is_clean(&token.start) {
        return Err(ContinueError::Malformed(token.start));
    }
    Ok(Continue {
        revision: (token.rv > 0).then_some(token.rv),
        start: format!("{prefix}{}", token.start),
    })
}

/// Whether a relative key is already in the form Go's `path.Clean` gives
/// it: no `.` or `..` segments, no empty segments, no trailing `/`.
fn is_clean(key: &str) -> bool {
    let key = key.strip_prefix('/').unwrap_or(key);
    if key.is_empty() {
        return true;
    }
    key.split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// The store's `start_after` for a page that starts at `start`
/// (inclusive): the tokens we hand out start at `last key + NUL`, which
/// is exactly "after the last key". A foreign token without the NUL would
/// start at its key: rare, and the difference is that one key.
pub fn start_after(start: &str) -> String {
    start.strip_suffix('\0').unwrap_or(start).to_string()
}
