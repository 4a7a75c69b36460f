//! Subresources: paths below an object with a job of their own.
//!
//! - [`status`]: the object's status alone (and the spec/status split)
//! - [`scale`]: a controller's replica count, as an `autoscaling/v1` Scale
//! - [`binding`]: the scheduler puts a pod on a node
//! - [`eviction`]: a polite delete of a pod
//! - [`finalize`]: the namespace controller's last word on a namespace
//! - [`log`]: a pod's logs (the node agent's, in the second half)
//! - [`exec`]: a command in a pod's container, over a WebSocket

pub mod binding;
pub mod eviction;
pub mod exec;
pub mod finalize;
pub mod log;
pub mod scale;
pub mod status;

use axum::http::Method;
use axum::response::{IntoResponse, Response};

use super::handlers::Call;
use super::status::{qualified, ApiError};

/// Runs the call's verb on subresource `sub`.
pub async fn dispatch(call: Call, sub: &str) -> Result<Response, ApiError> {
    let method = call.method.clone();
    let reply = match (sub, &method) {
        ("status", &Method::GET) => status::get(&call).await?,
        ("status", &Method::PUT) => status::put(&call).await?,
        ("status", &Method::PATCH) => status::patch(&call).await?,
        ("scale", &Method::GET) => scale::get(&call).await?,
        ("scale", &Method::PUT) => scale::put(&call).await?,
        ("scale", &Method::PATCH) => scale::patch(&call).await?,
        ("binding", &Method::POST) => binding::create(&call).await?,
        ("eviction", &Method::POST) => eviction::create(&call).await?,
        ("finalize", &Method::PUT) => finalize::put(&call).await?,
        ("log", &Method::GET) => return log::get(&call).await,
        ("exec", &Method::GET | &Method::POST) => {
            return exec::connect(&call).await
        }
        _ => {
            let r = call.resource();
            return Err(ApiError::method_not_allowed(
                method.as_str(),
                &format!("{}/{sub}", qualified(r.group, r.plural)),
            ));
        }
    };
    Ok(reply.into_response())
}

/// The `Status` of a subresource call that succeeded (binding,
/// eviction): `201 {"kind":"Status","status":"Success"}`.
pub fn success(code: u16) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    })
}
