//! POST: a new object. Decoded and defaulted by its type, given the
//! server's metadata, checked, its ClusterIP allocated (a Service), and
//! stored only if the key is free.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{json, Value};

use super::{check_namespace, Call, Reply};
use crate::apiserver::resources::{self, Resource};
use crate::apiserver::server::ApiServer;
use crate::apiserver::status::ApiError;
use crate::apiserver::typed::{self, FieldValidation};
use crate::apiserver::{allocation, meta, stored};
use crate::store::StoreError;

/// How often a generated name is tried again when it is taken (the
/// retries of KEP-4420, GA in 1.32).
const GENERATE_NAME_TRIES: usize = 8;

/// POST to a collection.
pub async fn create(call: &Call) -> Result<Reply, ApiError> {
    let tree = call.body_object(None)?;
    create_from(call, tree, call.field_validation()?).await
}

/// Creates the object `tree` (its type already checked) at the call's
/// collection: shared by POST and server-side apply of a new object.
pub async fn create_from(
    call: &Call,
    tree: Value,
    mode: FieldValidation,
) -> Result<Reply, ApiError> {
    let resource = call.resource();
    check_namespace(&tree, call.namespace())?;
    let namespace = call.namespace().filter(|_| resource.namespaced);
    if let Some(ns) = namespace {
        namespace_accepts(&call.server, resource, ns, &tree).await?;
    }
    let decoded = typed::decode(resource, tree, mode)
        .map_err(|e| typed::handled_as(resource, e))?;
    let object = store_new(
        &call.server,
        resource,
        namespace,
        decoded.object,
        call.dry_run(),
        &|object| call.authorize("create", None, Some(object)),
    )
    .await?;
    Ok(Reply::new(StatusCode::CREATED, object).with_warnings(decoded.warnings))
}

// ANCHOR: namespace_accepts
/// Namespace lifecycle (kube-apiserver's admission plugin): no new
/// objects in a namespace that does not exist or is being deleted.
async fn namespace_accepts(
    server: &ApiServer,
    resource: &Resource,
    namespace: &str,
    tree: &Value,
) -> Result<(), ApiError> {
    let namespaces = resources::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("no namespaces resource"))?;
    let kv = server
        .store()
        .get(&namespaces.key("", namespace))
        .await?
        .ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
    let ns = stored::decode(&kv)?;
    let terminating = ns["status"]["phase"] == "Terminating"
        || ns["metadata"].get("deletionTimestamp").is_some();
    if terminating {
        let name = meta::meta_str(tree, "name").unwrap_or_default();
        return Err(ApiError::forbidden(
            resource.group,
            resource.plural,
            name,
            &format!(
                "unable to create new content in namespace {namespace} \
                 because it is being terminated"
            ),
        ));
    }
    Ok(())
}
// ANCHOR_END: namespace_accepts

/// What a kind's create does to its object before it is checked
/// (PrepareForCreate): a new object has no status of its own but what
/// the server says, except a Node, whose agent reports it at once.
fn prepare(
    server: &ApiServer,
    resource: &Resource,
    object: &mut Value,
) -> Result<(), ApiError> {
    match resource.kind {
        "Pod" => {
            let pod = serde_json::from_value(object.clone()).map_err(|e| {
                ApiError::internal(format!("decoding a pod: {e}"))
            })?;
            let qos = lab03::kubelet::config::qos_of(&pod);
            object["status"] =
                json!({ "phase": "Pending", "qosClass": qos.to_string() });
            crate::apiserver::admission::default_toleration_seconds(
                object,
                server.options().toleration_seconds,
            );
        }
        "Namespace" => {
            object["spec"] = json!({ "finalizers": ["kubernetes"] });
            object["status"] = json!({ "phase": "Active" });
        }
        "Node" => {}
        _ if resource.subresource("status").is_some() => {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
            if resource.kind == "Service" {
                object["status"] = json!({ "loadBalancer": {} });
            }
        }
        _ => {}
    }
    Ok(())
}

// ANCHOR: store_new
/// Stores `object` (decoded and defaulted) as a new object of
/// `resource`: metadata, validation, `authorize`, allocations, then the
/// store's create, retried with a new name for `generateName`.
pub async fn store_new(
    server: &ApiServer,
    resource: &'static Resource,
    namespace: Option<&str>,
    mut object: Value,
    dry_run: bool,
    authorize: &(dyn Fn(&Value) -> Result<(), ApiError> + Sync),
) -> Result<Value, ApiError> {
    let given = meta::meta_str(&object, "name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let prefix = meta::meta_str(&object, "generateName").map(str::to_string);
    let tries = if given.is_none() && prefix.is_some() {
        GENERATE_NAME_TRIES
    } else {
        1
    };
    prepare(server, resource, &mut object)?;
    for _ in 0..tries {
        let name = match (&given, &prefix) {
            (Some(name), _) => name.clone(),
            (None, Some(prefix)) => meta::generate_name(prefix)?,
            (None, None) => String::new(),
        };
        let mut candidate = object.clone();
        meta::on_create(&mut candidate, &name, namespace, Utc::now())?;
        typed::validate(resource, &candidate, None)?;
        authorize(&candidate)?;
        let store = server.store();
        let allocated = if dry_run {
            allocation::Allocated::default()
        } else {
            allocation::on_create(server, resource, &mut candidate).await?
        };
        // Allocation may have changed the spec (a ClusterIP): check it.
        typed::validate(resource, &candidate, None)?;
        if dry_run {
            return Ok(candidate);
        }
        let key = resource.key(namespace.unwrap_or_default(), &name);
        match store.create(&key, stored::encode(&candidate)).await {
            Ok(revision) => {
                stored::set_resource_version(&mut candidate, revision);
                return Ok(candidate);
            }
            Err(e) => {
                allocation::release(server, &allocated).await?;
                match e {
                    StoreError::AlreadyExists { .. } if tries > 1 => continue,
                    StoreError::AlreadyExists { .. } => {
                        return Err(ApiError::already_exists(
                            resource.group,
                            resource.plural,
                            &name,
                        ))
                    }
                    other => return Err(other.into()),
                }
            }
        }
    }
    Err(ApiError::new(
        409,
        "AlreadyExists",
        format!(
            "{} with generateName {:?} could not be given a free name",
            resource.plural,
            prefix.unwrap_or_default()
        ),
    ))
}
// ANCHOR_END: store_new
