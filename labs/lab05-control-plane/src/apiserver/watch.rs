//! WATCH: a collection's changes as a stream of `{"type", "object"}`
//! lines, from a resourceVersion on, filtered by the selectors.

use std::sync::Arc;

use axum::response::Response;

use super::params::ListParams;
use super::resources::Resource;
use super::status::ApiError;
use crate::store::Store;

/// How each event's object is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchOutput {
    /// The object's JSON.
    Object,
    /// A one-row Table (`kubectl get -w` asks for this).
    Table,
}

/// A watch response: `200`, chunked, one JSON event per line, ending at
/// `timeoutSeconds`.
pub async fn watch(
    store: Arc<dyn Store>,
    resource: &'static Resource,
    namespace: Option<String>,
    params: ListParams,
    output: WatchOutput,
) -> Result<Response, ApiError> {
    let _ = (store, resource, namespace, params, output);
    Err(ApiError::internal("watch is not implemented yet"))
}
