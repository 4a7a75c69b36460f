//! What the registry checks in a manifest before accepting it: that it
//! parses, that its media type is one it knows, and which blobs (or, for an
//! index, which manifests) it names, so that each can be checked to exist.

use super::errors::{ApiError, ErrorCode};
use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str =
    "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests bigger than this are refused (the spec asks for at least 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;

/// What a manifest refers to.
#[derive(Debug)]
pub struct Checked {
    pub media_type: String,
    /// Config and layers: blobs of the same repository.
    pub blobs: Vec<Digest>,
    /// An index's manifests: manifests of the same repository.
    pub manifests: Vec<Digest>,
}

/// Only the fields the registry needs; the rest is the client's business.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Loose {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<LooseDescriptor>,
    layers: Option<Vec<LooseDescriptor>>,
    manifests: Option<Vec<LooseDescriptor>>,
}

#[derive(serde::Deserialize)]
struct LooseDescriptor {
    digest: String,
}

// ANCHOR: check_manifest
/// Parses a manifest sent with `content_type` and lists what it names.
pub fn check(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<Checked, ApiError> {
    let invalid =
        |message: String| ApiError::new(ErrorCode::ManifestInvalid, message);
    let loose: Loose = serde_json::from_slice(bytes)
        .map_err(|err| invalid(format!("manifest is not valid JSON: {err}")))?;
    if loose.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2".into()));
    }
    // The body's own mediaType wins; it must agree with Content-Type when
    // both are given.
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json");
    let media_type = match (&loose.media_type, header) {
        (Some(body), Some(header)) if body != header => {
            return Err(invalid(format!(
                "mediaType {body} does not match Content-Type {header}"
            )))
        }
        (Some(body), _) => body.clone(),
        (None, Some(header)) => header.to_string(),
        (None, None) if loose.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    let digest = |d: &LooseDescriptor| {
        d.digest
            .parse::<Digest>()
            .map_err(|err| invalid(format!("bad digest in manifest: {err}")))
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = loose.config.as_ref().ok_or_else(|| {
                invalid("an image manifest needs a config".into())
            })?;
            let layers = loose.layers.as_ref().ok_or_else(|| {
                invalid("an image manifest needs layers".into())
            })?;
            let mut blobs = vec![digest(config)?];
            for layer in layers {
                blobs.push(digest(layer)?);
            }
            Ok(Checked {
                media_type,
                blobs,
                manifests: Vec::new(),
            })
        }
        OCI_INDEX | DOCKER_LIST => {
            let manifests = loose
                .manifests
                .as_ref()
                .ok_or_else(|| invalid("an index needs manifests".into()))?
                .iter()
                .map(digest)
                .collect::<Result<_, _>>()?;
            Ok(Checked {
                media_type,
                blobs: Vec::new(),
                manifests,
            })
        }
        other => {
            Err(invalid(format!("unsupported manifest media type {other}")))
        }
    }
}
// ANCHOR_END: check_manifest

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_must_agree() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}"}},"layers":[]}}"#,
            Digest::of(b"{}")
        );
        assert_eq!(
            check(body.as_bytes(), Some(OCI_MANIFEST))
                .unwrap()
                .blobs
                .len(),
            1
        );
        assert!(check(body.as_bytes(), Some(OCI_INDEX)).is_err());
        assert!(check(b"{", None).is_err());
        assert!(check(br#"{"schemaVersion":1}"#, None).is_err());
    }
}
