//! PATCH: JSON merge patch (RFC 7386), Kubernetes' strategic merge patch
//! and JSON patch (RFC 6902), applied to an object's JSON.
//!
//! JSON patch and merge patch come from the `json-patch` crate: they are
//! standards with nothing Kubernetes about them. Strategic merge is ours
//! ([`strategic`], with the merge keys of [`schema`]): it is the lesson.
//!
//! Server-side apply (`application/apply-patch+yaml`) is done here as a
//! strategic merge of the applied configuration onto the live object.
//! Real server-side apply also tracks which manager owns which field
//! (`metadata.managedFields`) and removes fields a manager stops
//! applying; we keep no ownership, so a field dropped from the applied
//! file stays until something deletes it.

use serde_json::Value;

use super::resources::Resource;

pub mod schema;
pub mod strategic;

/// The three patch types, by their Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/json-patch+json`
    Json,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type of a request's Content-Type (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        match content_type.split(';').next().map(str::trim) {
            Some("application/merge-patch+json") => Some(PatchType::Merge),
            Some("application/strategic-merge-patch+json") => {
                Some(PatchType::StrategicMerge)
            }
            Some("application/json-patch+json") => Some(PatchType::Json),
            Some("application/apply-patch+yaml") => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Why a patch could not be applied (the API answers 400, or 422 for a
/// JSON patch test that failed).
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    NotApplicable(String),
}

/// `current` with `patch` (the request body) applied, for an object of
/// `resource`. Server-side apply (`PatchType::Apply`) is applied as a
/// strategic merge of the applied configuration; a `current` of `null`
/// (the object does not exist yet) is patched as an empty object.
pub fn apply_patch(
    resource: &Resource,
    current: &Value,
    patch: &[u8],
    patch_type: PatchType,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json_patch_ops(current, patch),
        PatchType::Merge => {
            let patch = parse_json(patch)?;
            let mut patched = current.clone();
            json_patch::merge(&mut patched, &patch);
            Ok(patched)
        }
        PatchType::StrategicMerge => {
            strategic_merge(resource, current, parse_json(patch)?)
        }
        PatchType::Apply => {
            // YAML is a superset of JSON: one parser takes both bodies.
            let applied: Value = serde_yaml::from_slice(patch)
                .map_err(|e| PatchError::Malformed(e.to_string()))?;
            strategic_merge(resource, current, applied)
        }
    }
}

fn parse_json(patch: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(patch)
        .map_err(|e| PatchError::Malformed(e.to_string()))
}

/// RFC 6902: a list of operations, applied all or nothing.
fn json_patch_ops(current: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| PatchError::Malformed(e.to_string()))?;
    let mut patched = current.clone();
    json_patch::patch(&mut patched, &ops)
        .map_err(|e| PatchError::NotApplicable(e.to_string()))?;
    Ok(patched)
}

fn strategic_merge(
    resource: &Resource,
    current: &Value,
    patch: Value,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let current = match current {
        Value::Object(map) => map.clone(),
        Value::Null => serde_json::Map::new(),
        _ => {
            return Err(PatchError::NotApplicable(
                "the current object is not a JSON object".into(),
            ))
        }
    };
    let ty = schema::of_kind(resource.kind);
    Ok(Value::Object(strategic::merge_map(current, patch, ty)?))
}
