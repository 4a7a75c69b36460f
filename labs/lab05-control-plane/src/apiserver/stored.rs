//! Objects as the store holds them: one object's JSON per key, its
//! resourceVersion being the key's mod_revision (never stored in the
//! value itself, as kube-apiserver's etcd3 storage does).

use serde_json::Value;

use super::splice;
use super::status::ApiError;
use crate::store::{KeyValue, Revision, Store, StoreError};

/// The object a key holds, with `metadata.resourceVersion` filled from
/// the store's revision.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!("object at {} is not JSON: {e}", kv.key))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// Appends the JSON of the object a key holds, with resourceVersion
/// `revision` (its own, or a deletion's), to `out`: the same bytes as
/// serializing [`decode`]'s answer, most often without parsing.
pub fn render_into(
    out: &mut Vec<u8>,
    kv: &KeyValue,
    revision: i64,
) -> Result<(), ApiError> {
    if splice::append_with_resource_version(out, &kv.value, revision) {
        return Ok(());
    }
    let mut object = decode(kv)?;
    set_resource_version(&mut object, revision);
    serde_json::to_writer(&mut *out, &object)
        .map_err(|e| ApiError::internal(format!("object at {}: {e}", kv.key)))
}

/// The bytes to store for `object`: its JSON without resourceVersion.
pub fn encode(object: &Value) -> Vec<u8> {
    let mut object = object.clone();
    if let Some(meta) =
        object.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("resourceVersion");
    }
    object.to_string().into_bytes()
}

/// Set `metadata.resourceVersion` to `revision`.
pub fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(meta) =
        object.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// Writes `object` back over the key read at `expected`, or, when the
/// last finalizer of an object being deleted is gone (`finalized`),
/// deletes it: the revision of the write.
pub async fn write_back(
    store: &dyn Store,
    key: &str,
    expected: Revision,
    object: &Value,
    finalized: bool,
) -> Result<Revision, StoreError> {
    if finalized {
        store
            .delete(key, Some(expected))
            .await
            .map(|(revision, _)| revision)
    } else {
        store.update(key, Some(expected), encode(object)).await
    }
}
