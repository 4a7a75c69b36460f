//! PUT, and the read-modify-write every change of an object goes
//! through (PUT, PATCH, the status and scale subresources).
//!
//! As kube-apiserver's GuaranteedUpdate: read the object, compute the
//! new one from it, write it with a compare on the revision read; if
//! someone wrote in between, read again and recompute. A client that
//! sent a resourceVersion gets 409 instead, since its change was
//! computed from a version that is gone.

use chrono::Utc;
use serde_json::Value;

use super::{check_namespace, check_type, Call, Reply};
use crate::apiserver::subresources::status::{split, Part};
use crate::apiserver::typed::{self, FieldValidation};
use crate::apiserver::{allocation, meta, status::ApiError, stored};
use crate::store::StoreError;

/// How often a change is recomputed when the store keeps moving.
const TRIES: usize = 16;

/// PUT of an object.
pub async fn put(call: &Call) -> Result<Reply, ApiError> {
    let tree = call.body_object(None)?;
    check_name(&tree, call.name())?;
    check_namespace(&tree, call.namespace())?;
    let mode = call.field_validation()?;
    change(call, Part::Main, "update", mode, |_| Ok(tree.clone())).await
}

/// The resourceVersion an object carries, if any.
pub fn resource_version(object: &Value) -> Option<&str> {
    meta::meta_str(object, "resourceVersion").filter(|rv| !rv.is_empty())
}

// ANCHOR: change
/// Changes the call's object to what `compute` makes of the current one
/// (a whole object, before defaulting), as `part` of it.
pub async fn change(
    call: &Call,
    part: Part,
    verb: &str,
    mode: FieldValidation,
    compute: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Reply, ApiError> {
    let resource = call.resource();
    let store = call.server.store();
    let key = call.key();
    for _ in 0..TRIES {
        let kv = store.get(&key).await?.ok_or_else(|| call.not_found())?;
        let current = stored::decode(&kv)?;
        let mut tree = compute(&current)?;
        let api_version = resource.api_version();
        check_type(&mut tree, &api_version, resource.kind)?;
        check_namespace(&tree, call.namespace())?;
        check_name(&tree, call.name())?;
        // A resourceVersion in the request is a precondition.
        if let Some(rv) = resource_version(&tree) {
            if rv != kv.mod_revision.to_string() {
                return Err(conflict(call));
            }
        }
        let decoded =
            typed::decode(resource, tree, mode).map_err(|e| match verb {
                "update" => typed::handled_as(resource, e),
                _ => e,
            })?;
        let mut new = if resource.subresource("status").is_some() {
            split(part, &current, decoded.object)
        } else {
            decoded.object
        };
        meta::on_update(&current, &mut new);
        let (added, dropped) =
            allocation::on_update(&call.server, resource, &current, &mut new)
                .await?;
        let checked = typed::validate(resource, &new, Some(&current))
            .and_then(|()| call.authorize(verb, Some(&current), Some(&new)));
        if let Err(e) = checked {
            allocation::release(&call.server, &added).await?;
            return Err(e);
        }
        if unchanged(&current, &new) || call.dry_run() {
            allocation::release(&call.server, &added).await?;
            let shown = if call.dry_run() { new } else { current };
            return Ok(Reply::ok(shown).with_warnings(decoded.warnings));
        }
        // The last finalizer gone from an object being deleted deletes it.
        let written = stored::write_back(
            store.as_ref(),
            &key,
            kv.mod_revision,
            &new,
            finalized(&new),
        )
        .await;
        match written {
            Ok(revision) => {
                allocation::release(&call.server, &dropped).await?;
                stored::set_resource_version(&mut new, revision);
                return Ok(Reply::ok(new).with_warnings(decoded.warnings));
            }
            Err(e) => {
                allocation::release(&call.server, &added).await?;
                match e {
                    StoreError::Conflict { .. } => continue,
                    StoreError::NotFound { .. } => return Err(call.not_found()),
                    other => return Err(other.into()),
                }
            }
        }
    }
    Err(conflict(call))
}
// ANCHOR_END: change

pub fn conflict(call: &Call) -> ApiError {
    let r = call.resource();
    ApiError::conflict(r.group, r.plural, call.name())
}

/// The body's name must be the URL's.
pub fn check_name(tree: &Value, name: &str) -> Result<(), ApiError> {
    match meta::meta_str(tree, "name") {
        Some(given) if given != name && !given.is_empty() => {
            Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name \
                 on the URL ({name})"
            )))
        }
        _ => Ok(()),
    }
}

/// No change but the resourceVersion: nothing is written (so watchers
/// see no event and the version stays).
fn unchanged(current: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(current) == strip(new)
}

/// Deleted already, waiting on finalizers, and now none are left
/// (ShouldDeleteDuringUpdate): the update removes the object. A pod in
/// its grace period stays until its node confirms.
pub fn finalized(object: &Value) -> bool {
    let m = &object["metadata"];
    let none_left = m["finalizers"].as_array().is_none_or(Vec::is_empty);
    m.get("deletionTimestamp").is_some_and(|t| !t.is_null())
        && none_left
        && m["deletionGracePeriodSeconds"].as_i64() == Some(0)
}

/// The time an object's deletion is due, `grace` seconds from now.
pub fn due(grace: i64) -> String {
    meta::timestamp(Utc::now() + chrono::Duration::seconds(grace))
}
