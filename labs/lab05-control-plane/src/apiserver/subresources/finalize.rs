//! The finalize subresource of a Namespace: how the namespace
//! controller, once a deleted namespace is empty, takes its
//! `kubernetes` finalizer off `spec.finalizers`. A Terminating namespace
//! with none left (and no metadata finalizers) is gone.

use serde_json::Value;

use crate::apiserver::handlers::{Call, Reply};
use crate::apiserver::status::ApiError;
use crate::apiserver::stored;
use crate::store::StoreError;

const TRIES: usize = 16;

/// The namespace is deleted and nothing holds it any more.
fn done(namespace: &Value) -> bool {
    let m = &namespace["metadata"];
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    m.get("deletionTimestamp").is_some_and(|t| !t.is_null())
        && empty(&namespace["spec"]["finalizers"])
        && empty(&m["finalizers"])
}

/// PUT …/namespaces/<name>/finalize with the Namespace: only its
/// `spec.finalizers` are taken.
pub async fn put(call: &Call) -> Result<Reply, ApiError> {
    let body = call.body_object(None)?;
    let finalizers = body["spec"]["finalizers"].clone();
    let store = call.server.store();
    let key = call.key();
    for _ in 0..TRIES {
        let kv = store.get(&key).await?.ok_or_else(|| call.not_found())?;
        let current = stored::decode(&kv)?;
        let mut new = current.clone();
        match &finalizers {
            Value::Null => {
                if let Some(spec) = new["spec"].as_object_mut() {
                    spec.remove("finalizers");
                }
            }
            list => new["spec"]["finalizers"] = list.clone(),
        }
        call.authorize("update", Some(&current), Some(&new))?;
        let written = stored::write_back(
            store.as_ref(),
            &key,
            kv.mod_revision,
            &new,
            done(&new),
        )
        .await;
        match written {
            Ok(revision) => {
                stored::set_resource_version(&mut new, revision);
                return Ok(Reply::ok(new));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => return Err(call.not_found()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(crate::apiserver::handlers::update::conflict(call))
}
