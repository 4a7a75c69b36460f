//! LIST: the objects of a collection, filtered by label and field
//! selectors, at a resourceVersion, a page at a time.

use serde_json::Value;

use super::params::ListParams;
use super::resources::Resource;
use super::status::ApiError;
use crate::store::Store;

/// A list's answer before it is wrapped as `<Kind>List` or a Table.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The objects, each with its resourceVersion.
    pub items: Vec<Value>,
    /// The list's resourceVersion.
    pub resource_version: String,
    /// The `continue` token of the next page, if there is one.
    pub continue_token: Option<String>,
    /// `remainingItemCount`, when known.
    pub remaining: Option<i64>,
}

/// List `resource` in `namespace` (`None`: every namespace, or a cluster
/// scoped resource) as `params` ask.
pub async fn list(
    store: &dyn Store,
    resource: &'static Resource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Listed, ApiError> {
    let _ = (store, resource, namespace, params);
    Err(ApiError::internal("list is not implemented yet"))
}

/// The `<Kind>List` object of a list answer.
pub fn list_object(resource: &Resource, listed: &Listed) -> Value {
    let mut metadata =
        serde_json::json!({ "resourceVersion": listed.resource_version });
    if let Some(c) = &listed.continue_token {
        metadata["continue"] = Value::String(c.clone());
    }
    if let Some(n) = listed.remaining {
        metadata["remainingItemCount"] = Value::from(n);
    }
    serde_json::json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": listed.items,
    })
}
