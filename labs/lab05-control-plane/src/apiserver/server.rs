//! The API server itself: its options, its state (the store, the
//! guard), the router that serves discovery and every resource path,
//! and `serve` on a listener.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lab03::ipam::Cidr;
use serde_json::{json, Value};

use super::guard::Guard;
use super::status::ApiError;
use super::{bootstrap, discovery, handlers, openapi};
use crate::store::Store;

/// What `/version` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: String,
    pub minor: String,
    pub git_version: String,
}

impl Default for Version {
    fn default() -> Self {
        Version {
            major: "1".into(),
            minor: "32".into(),
            git_version: "v1.32.0-kubelings".into(),
        }
    }
}

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where Services' ClusterIPs come from (the `kubernetes` Service
    /// gets the first).
    pub service_cidr: Cidr,
    /// NodePorts, inclusive.
    pub node_port_range: (u16, u16),
    /// The largest request body taken (kube-apiserver's 3 MiB / 2).
    pub max_body: usize,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    pub version: Version,
    /// The address `/api` advertises (`serverAddressByClientCIDRs`).
    pub advertise_address: String,
    /// Delete a namespace's contents when it is deleted, standing in
    /// for the namespace controller of chapter 5's second half; when
    /// false, a deleted namespace stays Terminating with its
    /// `kubernetes` finalizer until that controller finalizes it.
    pub finalize_namespaces: bool,
    /// DefaultTolerationSeconds: how long new pods tolerate a node that
    /// is not ready or unreachable.
    pub toleration_seconds: super::admission::TolerationSeconds,
    /// The cluster network's namespace, where nodes' addresses are: the
    /// API server reaches nodes (their logs) from inside it. `None`:
    /// nodes are reached from the server's own namespace (tests, on
    /// loopback).
    pub node_netns: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            service_cidr: lab04::allocator::service_cidr(),
            node_port_range: lab04::allocator::NODE_PORTS,
            max_body: 3 * 1024 * 1024 / 2,
            bookmark_interval: Duration::from_secs(60),
            version: Version::default(),
            advertise_address: "127.0.0.1:6443".into(),
            finalize_namespaces: true,
            toleration_seconds: Default::default(),
            node_netns: None,
        }
    }
}

/// The server's state: every request handler gets it.
pub struct ApiServer {
    store: Arc<dyn Store>,
    guard: Arc<dyn Guard>,
    options: Options,
}

impl ApiServer {
    /// A server over `store`; makes the default namespaces and the
    /// `kubernetes` Service when they are not there yet.
    pub async fn new(
        store: Arc<dyn Store>,
        guard: Arc<dyn Guard>,
        options: Options,
    ) -> Result<Arc<ApiServer>, ApiError> {
        let server = Arc::new(ApiServer {
            store,
            guard,
            options,
        });
        bootstrap::run(&server).await?;
        Ok(server)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn guard(&self) -> &Arc<dyn Guard> {
        &self.guard
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    // ANCHOR: router
    /// Every path the server answers: discovery and health by route,
    /// the resources through one handler that reads the path itself.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api", get(api))
            .route("/apis", get(apis))
            .route("/api/v1", get(core_v1))
            .route("/apis/{group}", get(group))
            .route("/apis/{group}/{version}", get(group_version))
            .route("/version", get(version))
            .route("/healthz", get(ok))
            .route("/livez", get(ok))
            .route("/readyz", get(ok))
            .route("/openapi/v3", get(openapi_root))
            .route("/openapi/v3/{*path}", get(openapi_document))
            .fallback(handlers::dispatch)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(
                Arc::clone(self),
                authenticate,
            ))
            .with_state(Arc::clone(self))
    }
    // ANCHOR_END: router
}

/// Serves `server` on `listener` over plain HTTP until the listener
/// fails.
pub async fn serve(
    server: Arc<ApiServer>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(listener, server.router()).await
}

/// Every request is authenticated first; the identity travels to the
/// handlers as a request extension.
async fn authenticate(
    State(server): State<Arc<ApiServer>>,
    mut request: Request,
    next: Next,
) -> Response {
    match server.guard.authenticate(request.headers()) {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(e) => refuse_unread(request, e).await,
    }
}

/// How much of a refused request's body is read and dropped before the
/// answer (Go's server drains as much after a handler that did not).
const DRAIN_UNREAD: usize = 256 * 1024;

/// The answer to a request refused before its body was read. The body
/// is read first, so the client, still sending, sees the answer instead
/// of a reset, and the connection stays usable; past [`DRAIN_UNREAD`]
/// (or a client that stalls), the connection ends with this answer and
/// says so.
async fn refuse_unread(request: Request, e: ApiError) -> Response {
    let body = axum::body::to_bytes(request.into_body(), DRAIN_UNREAD);
    let drained = tokio::time::timeout(Duration::from_secs(5), body)
        .await
        .is_ok_and(|read| read.is_ok());
    let mut response = e.into_response();
    if !drained {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A JSON answer with status 200.
pub fn json_ok(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn api(State(server): State<Arc<ApiServer>>) -> Response {
    json_ok(&discovery::api_versions(&server.options.advertise_address))
}

async fn apis() -> Response {
    json_ok(&discovery::api_group_list())
}

async fn core_v1() -> Response {
    match discovery::api_resource_list("", "v1") {
        Some(list) => json_ok(&list),
        None => ApiError::no_such_path().into_response(),
    }
}

async fn group(Path(group): Path<String>) -> Response {
    match discovery::api_group(&group) {
        Some(g) => json_ok(&g),
        None => ApiError::no_such_path().into_response(),
    }
}

async fn method_not_allowed(request: Request) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path());
    ApiError::method_not_allowed(method.as_str(), path).into_response()
}

async fn group_version(
    Path((group, version)): Path<(String, String)>,
) -> Response {
    match discovery::api_resource_list(&group, &version) {
        Some(list) => json_ok(&list),
        None => ApiError::no_such_path().into_response(),
    }
}

async fn version(State(server): State<Arc<ApiServer>>) -> Response {
    let v = &server.options.version;
    json_ok(&json!({
        "major": v.major,
        "minor": v.minor,
        "gitVersion": v.git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": "linux/amd64",
    }))
}

async fn ok() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok",
    )
        .into_response()
}

async fn openapi_root() -> Response {
    json_ok(&openapi::root())
}

async fn openapi_document(Path(path): Path<String>) -> Response {
    match openapi::document(&path) {
        Some(doc) => json_ok(&doc),
        None => ApiError::no_such_path().into_response(),
    }
}
