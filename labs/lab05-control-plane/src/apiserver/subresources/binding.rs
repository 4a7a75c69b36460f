//! The binding subresource: how the scheduler puts a pod on a node
//! (`POST …/pods/kubia/binding` with a Binding naming the node). The
//! only way `spec.nodeName` is set after creation, and only once.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{json, Value};

use crate::apiserver::handlers::{Call, Reply};
use crate::apiserver::status::ApiError;
use crate::apiserver::typed::{self, FieldValidation};
use crate::apiserver::{meta, stored};
use crate::store::StoreError;

const TRIES: usize = 16;

/// 409 on `pods/binding "x"`, as BindingREST words it.
fn refused(call: &Call, why: String) -> ApiError {
    let mut e = ApiError::conflict("", "pods/binding", call.name());
    e.message = format!(
        "Operation cannot be fulfilled on pods/binding \"{}\": {why}",
        call.name()
    );
    e
}

// ANCHOR: bind
/// The pod bound to `node`: its nodeName set, the binding's annotations
/// merged in, and its PodScheduled condition True.
pub fn bind(pod: &Value, node: &str, annotations: &Value) -> Value {
    let mut pod = pod.clone();
    pod["spec"]["nodeName"] = json!(node);
    for (k, v) in annotations.as_object().into_iter().flatten() {
        meta::metadata_mut(&mut pod)
            .entry("annotations")
            .or_insert_with(|| json!({}))[k] = v.clone();
    }
    let scheduled = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": meta::timestamp(Utc::now()),
    });
    let conditions = &mut pod["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    if let Some(list) = conditions.as_array_mut() {
        list.retain(|c| c["type"] != "PodScheduled");
        list.push(scheduled);
    }
    pod
}
// ANCHOR_END: bind

/// POST …/pods/<name>/binding.
pub async fn create(call: &Call) -> Result<Reply, ApiError> {
    let tree = call.body_object(Some(("v1", "Binding")))?;
    let (binding, _) = typed::strict::<k8s_openapi::api::core::v1::Binding>(
        tree,
        call.field_validation().unwrap_or(FieldValidation::Strict),
    )?;
    if binding.metadata.name.as_deref() != Some(call.name()) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let node = binding.target.name.clone().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request("target.name: Required value"));
    }
    let annotations =
        serde_json::to_value(&binding.metadata.annotations).unwrap_or_default();
    let store = call.server.store();
    let key = call.key();
    for _ in 0..TRIES {
        let kv = store.get(&key).await?.ok_or_else(|| call.not_found())?;
        let pod = stored::decode(&kv)?;
        let m = &pod["metadata"];
        if m.get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
            let why = format!(
                "pod {} is being deleted, cannot be assigned to a host",
                call.name()
            );
            return Err(refused(call, why));
        }
        if let Some(on) =
            pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
        {
            let why = format!(
                "pod {} is already assigned to node {on:?}",
                call.name()
            );
            return Err(refused(call, why));
        }
        let uid = binding.metadata.uid.as_deref();
        if uid.is_some_and(|u| Some(u) != meta::meta_str(&pod, "uid")) {
            return Err(refused(call, "the pod's uid changed".into()));
        }
        let bound = bind(&pod, &node, &annotations);
        call.authorize("create", Some(&pod), Some(&bound))?;
        if call.dry_run() {
            break;
        }
        match store
            .update(&key, Some(kv.mod_revision), stored::encode(&bound))
            .await
        {
            Ok(_) => break,
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => return Err(call.not_found()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Reply::new(StatusCode::CREATED, super::success(201)))
}
