//! DELETE: of one object, or of every object a selector picks.
//!
//! Deleting is not always removing. A pod on a node gets its grace
//! period (`deletionTimestamp` in the future, the node agent confirms
//! with a delete of grace 0); an object with finalizers is only marked
//! (`deletionTimestamp` now) until the last finalizer is taken off.
//! `propagationPolicy` Foreground or Orphan records, as a finalizer,
//! what the garbage collector must do with the object's dependents.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_type, update, Call, Reply};
use crate::apiserver::resources::{Resource, RESOURCES};
use crate::apiserver::status::ApiError;
use crate::apiserver::{allocation, body, list, meta, stored};
use crate::store::StoreError;

const TRIES: usize = 16;

/// Namespaces kube-apiserver never lets go (NamespaceLifecycle).
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// What a client may say about a delete: the body's DeleteOptions and
/// the query's parameters, the query winning.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    #[serde(default)]
    pub grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub propagation_policy: Option<String>,
    #[serde(default)]
    pub orphan_dependents: Option<bool>,
    #[serde(default)]
    pub preconditions: Option<Preconditions>,
    #[serde(default)]
    pub dry_run: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
}

/// The call's DeleteOptions, from its body (JSON, may be empty) and
/// query.
pub fn options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let mut o = if call.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        let media = body::content_type(&call.headers);
        let mut tree = body::decode(&media, &call.body)?;
        check_type(&mut tree, "v1", "DeleteOptions").or_else(|_| {
            // meta.k8s.io/v1 is the other name it goes by.
            check_type(&mut tree, "meta.k8s.io/v1", "DeleteOptions")
        })?;
        DeleteOptions::deserialize(&tree)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?
    };
    if let Some(g) = call.param("gracePeriodSeconds") {
        o.grace_period_seconds = Some(g.parse().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds: {g:?}"))
        })?);
    }
    if let Some(p) = call.param("propagationPolicy") {
        o.propagation_policy = Some(p.to_string());
    }
    if o.orphan_dependents == Some(true) && o.propagation_policy.is_none() {
        o.propagation_policy = Some("Orphan".into());
    }
    match o.propagation_policy.as_deref() {
        None | Some("Foreground" | "Background" | "Orphan") => Ok(o),
        Some(other) => Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "propagationPolicy: Unsupported value: {other:?}: supported \
                 values: \"Foreground\", \"Background\", \"Orphan\""
            ),
        )),
    }
}

/// DELETE of the call's object.
pub async fn delete(call: &Call) -> Result<Reply, ApiError> {
    let opts = options(call)?;
    let dry_run = call.dry_run()
        || opts
            .dry_run
            .as_ref()
            .is_some_and(|d| d.iter().any(|s| s == "All"));
    if call.resource().kind == "Namespace" && IMMORTAL.contains(&call.name()) {
        return Err(ApiError::forbidden(
            "",
            "namespaces",
            call.name(),
            "this namespace may not be deleted",
        ));
    }
    let object = delete_object(call, &opts, dry_run).await?;
    Ok(Reply::ok(object))
}

// ANCHOR: grace_period
/// The grace period a delete gives: only pods have one, and only pods
/// that are on a node and still running.
fn grace_period(
    resource: &Resource,
    object: &Value,
    opts: &DeleteOptions,
) -> i64 {
    if resource.kind != "Pod" {
        return 0;
    }
    let on_node = object["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let done = matches!(
        object["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !on_node || done {
        return 0;
    }
    opts.grace_period_seconds
        .or(object["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0)
}
// ANCHOR_END: grace_period

// ANCHOR: finalizers
/// The finalizers an object keeps, with the garbage collector's ones as
/// `policy` asks (Foreground: `foregroundDeletion`, Orphan: `orphan`,
/// Background: neither).
fn finalizers(object: &Value, policy: Option<&str>) -> Vec<String> {
    let mut list: Vec<String> = object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    let Some(policy) = policy else { return list };
    list.retain(|f| f != "foregroundDeletion" && f != "orphan");
    match policy {
        "Foreground" => list.push("foregroundDeletion".into()),
        "Orphan" => list.push("orphan".into()),
        _ => {}
    }
    list
}
// ANCHOR_END: finalizers

// ANCHOR: delete_object
/// Deletes (or marks for deletion) the call's object; the object as it
/// was last.
pub async fn delete_object(
    call: &Call,
    opts: &DeleteOptions,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let resource = call.resource();
    let store = call.server.store();
    let key = call.key();
    for _ in 0..TRIES {
        let kv = store.get(&key).await?.ok_or_else(|| call.not_found())?;
        let current = stored::decode(&kv)?;
        check_preconditions(call, &current, opts)?;
        call.authorize("delete", Some(&current), None)?;
        let grace = grace_period(resource, &current, opts);
        let finalizers =
            finalizers(&current, opts.propagation_policy.as_deref());
        let meta = &current["metadata"];
        let deleting =
            meta.get("deletionTimestamp").is_some_and(|t| !t.is_null());
        let old_grace = meta["deletionGracePeriodSeconds"].as_i64();
        // A namespace waits for its contents to go while it has the
        // namespace controller's finalizer (`spec.finalizers`).
        let namespace = resource.kind == "Namespace"
            && current["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        let keep = !finalizers.is_empty() || grace > 0 || namespace;
        let mut new = current.clone();
        if keep {
            let m = meta::metadata_mut(&mut new);
            if !finalizers.is_empty() || m.contains_key("finalizers") {
                m.insert("finalizers".into(), json!(finalizers));
            }
            // A second delete may only shorten the grace period.
            if !deleting || old_grace.is_some_and(|g| grace < g) {
                m.insert("deletionTimestamp".into(), json!(update::due(grace)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if namespace {
                new["status"]["phase"] = json!("Terminating");
            }
        }
        if dry_run {
            return Ok(new);
        }
        let written = if keep {
            if new == current {
                return Ok(current);
            }
            store
                .update(&key, Some(kv.mod_revision), stored::encode(&new))
                .await
        } else {
            store
                .delete(&key, Some(kv.mod_revision))
                .await
                .map(|(r, _)| r)
        };
        match written {
            Ok(revision) if keep => {
                stored::set_resource_version(&mut new, revision);
                if namespace && call.server.options().finalize_namespaces {
                    finalize_namespace(call, &new).await?;
                }
                return Ok(new);
            }
            Ok(_) => {
                let allocated = allocation::of_object(&current);
                if resource.kind == "Service" {
                    allocation::release(&call.server, &allocated).await?;
                }
                return Ok(current);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => return Err(call.not_found()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(update::conflict(call))
}
// ANCHOR_END: delete_object

fn check_preconditions(
    call: &Call,
    current: &Value,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    let Some(p) = &opts.preconditions else {
        return Ok(());
    };
    let r = call.resource();
    let failed = |what: &str, wanted: &str, is: &str| {
        let mut e = ApiError::conflict(r.group, r.plural, call.name());
        e.message = format!(
            "Operation cannot be fulfilled on {} \"{}\": Precondition failed: \
             {what} in precondition: {wanted}, {what} in object meta: {is}",
            crate::apiserver::status::qualified(r.group, r.plural),
            call.name()
        );
        e
    };
    let uid = meta::meta_str(current, "uid").unwrap_or_default();
    if let Some(want) = p.uid.as_deref().filter(|u| *u != uid) {
        return Err(failed("UID", want, uid));
    }
    let rv = meta::meta_str(current, "resourceVersion").unwrap_or_default();
    if let Some(want) = p.resource_version.as_deref().filter(|v| *v != rv) {
        return Err(failed("ResourceVersion", want, rv));
    }
    Ok(())
}

/// Stands in for the namespace controller: every object in the
/// namespace is removed, then the namespace itself.
async fn finalize_namespace(
    call: &Call,
    namespace: &Value,
) -> Result<(), ApiError> {
    let name = meta::meta_str(namespace, "name").unwrap_or_default();
    let store = call.server.store();
    for r in RESOURCES.iter().filter(|r| r.namespaced) {
        let listed = store
            .list(&r.prefix(Some(name)), &Default::default())
            .await?;
        for kv in listed.kvs {
            match store.delete(&kv.key, None).await {
                Ok(_) if r.kind == "Service" => {
                    let object = stored::decode(&kv)?;
                    allocation::release(
                        &call.server,
                        &allocation::of_object(&object),
                    )
                    .await?;
                }
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    match store.delete(&call.key(), None).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// DELETE of a collection: every object the selectors pick, each
/// deleted as one DELETE would; the answer lists them.
pub async fn collection(call: &Call) -> Result<Reply, ApiError> {
    let resource = call.resource();
    call.authorize("deletecollection", None, None)?;
    let opts = options(call)?;
    let params = call.list_params()?;
    let listed = list::list(
        call.server.store().as_ref(),
        resource,
        call.namespace(),
        &params,
    )
    .await?;
    let mut deleted = Vec::new();
    for item in &listed.items {
        let name = meta::meta_str(item, "name").unwrap_or_default();
        let one = Call {
            server: call.server.clone(),
            user: call.user.clone(),
            path: crate::apiserver::route::ResourcePath {
                resource,
                namespace: meta::meta_str(item, "namespace")
                    .map(str::to_string),
                name: Some(name.to_string()),
                subresource: None,
            },
            method: call.method.clone(),
            uri: call.uri.clone(),
            query: call.query.clone(),
            headers: call.headers.clone(),
            body: axum::body::Bytes::new(),
            upgrade: None,
        };
        match delete_object(&one, &opts, call.dry_run()).await {
            Ok(object) => deleted.push(object),
            // Gone in the meantime: deleted all the same.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let done = list::Listed {
        items: deleted,
        resource_version: listed.resource_version,
        continue_token: None,
        remaining: None,
    };
    Ok(Reply::ok(list::list_object(resource, &done)))
}
