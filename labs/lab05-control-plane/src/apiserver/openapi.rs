//! OpenAPI v3 documents: what `kubectl apply -f` asks before it sends
//! `fieldValidation=Strict`, and what `kubectl explain` reads.

use serde_json::Value;

/// `GET /openapi/v3`: the paths of each group-version's document.
pub fn root() -> Value {
    serde_json::json!({ "paths": {} })
}

/// `GET /openapi/v3/<path>` (`api/v1`, `apis/apps/v1`): the document, or
/// `None` for a path the server does not serve.
pub fn document(path: &str) -> Option<Value> {
    let _ = path;
    None
}
