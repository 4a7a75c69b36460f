//! What a request's path names: repository names (which may hold '/'),
//! tags, digests, upload ids, and the endpoint they add up to.

use axum::extract::Query;
use axum::http::Uri;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::errors::{ApiError, ErrorCode};
use crate::digest::Digest;

/// The longest repository name the registry accepts (the spec's minimum).
const MAX_NAME: usize = 255;

/// The endpoint a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`.
    Manifest { name: String, reference: Reference },
    /// `/v2/<name>/blobs/<digest>`.
    Blob { name: String, digest: Digest },
    /// `/v2/<name>/blobs/uploads/`: start an upload.
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`: one upload in progress.
    Upload { name: String, id: String },
}

/// A manifest is named by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// Reads the endpoint from a path. Names may hold '/', so the path is read
/// from its end: the last one or two segments say which endpoint it is, and
/// everything before them is the repository's name.
pub fn route(path: &str) -> Result<Option<Route>, ApiError> {
    let Some(rest) = path.strip_prefix("/v2") else {
        return Ok(None);
    };
    if rest.is_empty() || rest == "/" {
        return Ok(Some(Route::Base));
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Ok(None);
    };
    if rest == "_catalog" {
        return Ok(Some(Route::Catalog));
    }
    // ANCHOR: route
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let tail = |k: usize| segments[n - k..].to_vec();
    let name = |k: usize| -> Result<String, ApiError> {
        let name = segments[..n - k].join("/");
        check_name(&name)?;
        Ok(name)
    };
    let route = if n > 2 && tail(2) == ["tags", "list"] {
        Route::Tags { name: name(2)? }
    } else if n > 3
        && tail(3)[..2] == ["blobs", "uploads"]
        && tail(1)[0].is_empty()
    {
        Route::UploadStart { name: name(3)? }
    } else if n > 3 && tail(3)[..2] == ["blobs", "uploads"] {
        let id = segments[n - 1];
        if !is_upload_id(id) {
            return Err(ApiError::new(
                ErrorCode::BlobUploadUnknown,
                "blob upload unknown to registry",
            ));
        }
        Route::Upload {
            name: name(3)?,
            id: id.to_string(),
        }
    } else if n > 2 && tail(2) == ["blobs", "uploads"] {
        Route::UploadStart { name: name(2)? }
    } else if n > 2 && segments[n - 2] == "blobs" {
        let name = name(2)?;
        Route::Blob {
            name,
            digest: parse_digest(segments[n - 1])?,
        }
    } else if n > 2 && segments[n - 2] == "manifests" {
        let name = name(2)?;
        Route::Manifest {
            name,
            reference: parse_reference(segments[n - 1])?,
        }
    } else {
        return Ok(None);
    };
    // ANCHOR_END: route
    Ok(Some(route))
}

/// Checks a repository name against the spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(
            ApiError::new(ErrorCode::NameInvalid, "invalid repository name")
                .detail(serde_json::json!({ "name": name })),
        )
    }
}

/// Whether `name` is a valid repository name.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('/').all(is_component)
}

fn is_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between runs of [a-z0-9]: exactly ".", "_", "__", or any run of "-".
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        if !(sep == "."
            || sep == "_"
            || sep == "__"
            || sep.bytes().all(|b| b == b'-'))
        {
            return false;
        }
    }
    true
}

/// Whether `tag` matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match bytes.first() {
        Some(&first) if word(first) && bytes.len() <= 128 => bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-'),
        _ => false,
    }
}

pub fn parse_digest(text: &str) -> Result<Digest, ApiError> {
    text.parse().map_err(|err: crate::DigestError| {
        ApiError::new(ErrorCode::DigestInvalid, err.to_string())
            .detail(serde_json::json!({ "digest": text }))
    })
}

fn parse_reference(text: &str) -> Result<Reference, ApiError> {
    if text.contains(':') {
        return parse_digest(text).map(Reference::Digest);
    }
    if is_tag(text) {
        Ok(Reference::Tag(text.to_string()))
    } else {
        Err(ApiError::new(ErrorCode::ManifestInvalid, "invalid tag")
            .detail(serde_json::json!({ "tag": text })))
    }
}

/// Upload ids are 32 lowercase hex digits (see `upload::new_id`).
fn is_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The query string's pairs, percent-decoded, in order (a key may repeat,
/// as `scope` does in token requests).
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    // Pairs of strings take any query, so this never falls back in practice.
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default()
}

/// The first value of `key` in the query.
pub fn query_get<'a>(
    pairs: &'a [(String, String)],
    key: &str,
) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| value.as_str())
}

/// The bytes a query value keeps as they are: RFC 3986's unreserved
/// characters. Everything else is percent-encoded.
pub const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_grammar() {
        for good in [
            "kubia", "a/b/c", "my-app", "my--app", "a.b", "a_b", "a__b", "x9",
        ] {
            assert!(is_name(good), "{good}");
        }
        for bad in [
            "", "Kubia", "a//b", "/a", "a/", "-a", "a.", "a..b", "a___b",
            "a_.b", "..",
        ] {
            assert!(!is_name(bad), "{bad}");
        }
    }

    #[test]
    fn routes_read_from_the_end() {
        let d = Digest::of(b"x");
        assert_eq!(route("/v2/").unwrap(), Some(Route::Base));
        assert_eq!(
            route(&format!("/v2/a/blobs/b/blobs/{d}")).unwrap(),
            Some(Route::Blob {
                name: "a/blobs/b".into(),
                digest: d
            })
        );
        assert_eq!(
            route("/v2/team/app/blobs/uploads/").unwrap(),
            Some(Route::UploadStart {
                name: "team/app".into()
            })
        );
        assert_eq!(
            route("/v2/a/manifests/v1").unwrap(),
            Some(Route::Manifest {
                name: "a".into(),
                reference: Reference::Tag("v1".into())
            })
        );
        assert_eq!(
            route("/v2/a/tags/list").unwrap(),
            Some(Route::Tags { name: "a".into() })
        );
        assert!(route("/v2/A/tags/list").is_err());
        assert_eq!(route("/other").unwrap(), None);
    }

    #[test]
    fn queries_decode() {
        let uri: Uri =
            "/v2/a/blobs/uploads/?mount=sha256%3Aab&from=team%2Fapp&x&n=100%"
                .parse()
                .unwrap();
        let pairs = query_pairs(&uri);
        assert_eq!(query_get(&pairs, "mount"), Some("sha256:ab"));
        assert_eq!(query_get(&pairs, "from"), Some("team/app"));
        assert_eq!(query_get(&pairs, "x"), Some(""));
        assert_eq!(query_get(&pairs, "n"), Some("100%"));
        assert!(query_pairs(&Uri::from_static("/v2/")).is_empty());
    }
}
