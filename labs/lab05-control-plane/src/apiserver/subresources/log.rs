//! The log subresource: a pod's container logs, which live on its node.
//! Chapter 5's second half connects it to the node agent; until then
//! the server says where it would have to ask.

use axum::response::Response;

use crate::apiserver::handlers::{get as get_one, Call};
use crate::apiserver::status::ApiError;

/// GET …/pods/<name>/log.
pub async fn get(call: &Call) -> Result<Response, ApiError> {
    call.authorize("get", None, None)?;
    let pod = get_one::read(call).await?;
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            call.name()
        )));
    }
    Err(ApiError::unavailable(format!(
        "the logs of pod {} are on node {node}, and this API server has no \
         connection to node agents yet",
        call.name()
    )))
}
