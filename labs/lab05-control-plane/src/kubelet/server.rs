//! The node agent's own server, as the kubelet's on 10250: container
//! logs ([`super::logs`]) and exec ([`super::exec`]), which the API
//! server's `pods/log` and `pods/exec` reach through the node's
//! InternalIP and `daemonEndpoints.kubeletEndpoint`.
//!
//! Plain HTTP on the node's address: the cluster network is the only way
//! in (a real kubelet serves HTTPS and asks the API server who is
//! calling; that is left out here, and the book says so).

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lab03::cri::RuntimeService;

use super::exec::{self, ExecOptions};
use super::logs::{self, LogIndex, Refusal};

/// The server's state: what the sync loop knows of the node's pods, and
/// the runtime that exec goes through.
#[derive(Clone)]
pub struct Served {
    pub index: LogIndex,
    pub runtime: Arc<dyn RuntimeService>,
}

// ANCHOR: exec_route
/// GET /exec/<ns>/<pod>/<container>?command=…: found and running, then
/// upgraded; anything wrong is answered before the upgrade, as an HTTP
/// error the API server hands back to kubectl.
async fn exec_in(
    State(served): State<Served>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    let options = match ExecOptions::parse(query.as_deref().unwrap_or("")) {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    let id = match running_id(&served.index, &ns, &pod, &container) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejected) => {
            let message = format!(
                "exec needs a WebSocket upgrade ({} or {}): {}",
                exec::PROTOCOLS[0],
                exec::PROTOCOLS[1],
                rejected.body_text()
            );
            return Refusal { code: 400, message }.into_response();
        }
    };
    let runtime = served.runtime.clone();
    upgrade
        .protocols(exec::PROTOCOLS)
        .on_upgrade(move |socket| exec::session(socket, runtime, id, options))
}
// ANCHOR_END: exec_route

/// The runtime's id of the container's running instance.
fn running_id(
    index: &LogIndex,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, Refusal> {
    let missing = |code, message: String| Refusal { code, message };
    let logs = index.get(ns, pod).ok_or_else(|| {
        missing(
            404,
            format!(
                "pod \"{pod}\" in namespace \"{ns}\" not found on this node"
            ),
        )
    })?;
    let c = logs.containers.get(container).ok_or_else(|| {
        missing(
            400,
            format!("container {container} is not valid for pod {pod}"),
        )
    })?;
    match (&c.id, c.running) {
        (Some(id), true) => Ok(id.clone()),
        _ => Err(missing(
            400,
            format!("container not found (\"{container}\")"),
        )),
    }
}

/// The router of the node agent's server.
pub fn router(served: Served) -> Router {
    Router::new()
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route("/exec/{ns}/{pod}/{container}", get(exec_in))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(served)
}

/// The server, on a runtime of its own; stopped when dropped.
pub struct AgentServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl AgentServer {
    /// Binds `addr` (port 0: any free one) and serves.
    pub fn start(
        addr: SocketAddr,
        served: Served,
    ) -> std::io::Result<AgentServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kubelet-server")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        runtime.spawn(axum::serve(listener, router(served)).into_future());
        Ok(AgentServer {
            addr,
            runtime: Some(runtime),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
