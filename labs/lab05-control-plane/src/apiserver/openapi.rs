//! OpenAPI v3 documents: what `kubectl apply -f` asks before it sends
//! `fieldValidation=Strict`, and what `kubectl explain` reads.
//!
//! kubectl (cli-runtime's `query_param_verifier_v3.go`) looks, in the
//! group-version's document, for a `patch` operation tagged with the
//! kind's `x-kubernetes-group-version-kind` that takes a `fieldValidation`
//! parameter. Finding it, it leaves validation to the server; without
//! OpenAPI at all it refuses to create from files. So each document here
//! has, per kind, its item path with that operation, and a schema per
//! kind under `components.schemas` named as kube-apiserver names them
//! (`io.k8s.api.core.v1.Pod`). The schemas carry only the kind's
//! identity and a description, not its fields: `kubectl explain pod`
//! works, `kubectl explain pod.spec` does not (yet).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use super::resources::{Resource, RESOURCES};

/// `api/v1`, `apis/apps/v1`: the document paths, in discovery order.
fn group_versions() -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for r in RESOURCES {
        let path = document_path(r);
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

fn document_path(r: &Resource) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

// ANCHOR: root
/// `GET /openapi/v3`: the paths of each group-version's document. The
/// `hash` changes when the document does, so clients may cache by URL.
pub fn root() -> Value {
    let mut paths = Map::new();
    for path in group_versions() {
        let Some(doc) = document(&path) else { continue };
        let url = format!("/openapi/v3/{path}?hash={}", hash(&doc));
        paths.insert(path, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}
// ANCHOR_END: root

/// kube-apiserver's ETag of a document: SHA-512 of its JSON, upper hex.
fn hash(doc: &Value) -> String {
    let digest = Sha512::digest(doc.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// `GET /openapi/v3/<path>` (`api/v1`, `apis/apps/v1`): the document, or
/// `None` for a path the server does not serve.
pub fn document(path: &str) -> Option<Value> {
    let path = path.trim_matches('/');
    let resources: Vec<&Resource> = RESOURCES
        .iter()
        .filter(|r| document_path(r) == path)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in &resources {
        paths.insert(item_path(r), json!({ "patch": patch_operation(r) }));
        schemas.insert(schema_name(r), kind_schema(r));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.32.0" },
        "paths": paths,
        "components": { "schemas": schemas },
    }))
}

/// `/api/v1/namespaces/{namespace}/pods/{name}`, `/api/v1/nodes/{name}`.
fn item_path(r: &Resource) -> String {
    let namespace = if r.namespaced {
        "namespaces/{namespace}/"
    } else {
        ""
    };
    format!("/{}/{namespace}{}/{{name}}", document_path(r), r.plural)
}

fn gvk(r: &Resource) -> Value {
    json!({ "group": r.group, "version": r.version, "kind": r.kind })
}

/// The Go package of a group's types, as the schema names spell it.
fn package(group: &str) -> String {
    match group {
        "" => "core".into(),
        g => g.strip_suffix(".k8s.io").unwrap_or(g).to_string(),
    }
}

/// `io.k8s.api.core.v1.Pod`, `io.k8s.api.apps.v1.Deployment`,
/// `io.k8s.api.discovery.v1.EndpointSlice`.
pub fn schema_name(r: &Resource) -> String {
    format!("io.k8s.api.{}.{}.{}", package(r.group), r.version, r.kind)
}

fn query(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

// ANCHOR: patch_operation
/// The PATCH of one object: the operation kubectl's verifier looks for.
fn patch_operation(r: &Resource) -> Value {
    let body = json!({
        "schema": { "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch" }
    });
    let reply = json!({
        "schema": { "$ref": format!("#/components/schemas/{}", schema_name(r)) }
    });
    json!({
        "description": format!("partially update the specified {}", r.kind),
        "operationId": format!("patch{}", r.kind),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk(r),
        "parameters": [
            query("dryRun", "When present, do not persist the change."),
            query("fieldManager", "The name of the actor making the change."),
            query(
                "fieldValidation",
                "Ignore, Warn or Strict: what to do with unknown fields.",
            ),
            query("force", "Server-side apply: take over conflicting fields."),
        ],
        "requestBody": {
            "content": {
                "application/apply-patch+yaml": body,
                "application/json-patch+json": body,
                "application/merge-patch+json": body,
                "application/strategic-merge-patch+json": body,
            },
            "required": true,
        },
        "responses": {
            "200": {
                "description": "OK",
                "content": { "application/json": reply },
            },
        },
    })
}
// ANCHOR_END: patch_operation

/// A kind's schema: its identity, for `kubectl explain <kind>`.
fn kind_schema(r: &Resource) -> Value {
    json!({
        "description": format!(
            "{} is the {} resource of the {} API.",
            r.kind,
            r.singular,
            r.api_version()
        ),
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(r)],
    })
}
