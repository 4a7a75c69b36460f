//! The exec subresource: `kubectl exec` reaches a container through the
//! API server, which finds the pod's node (as for `pods/log`) and hands
//! the connection on to the node agent's `/exec/<ns>/<pod>/<container>`.
//!
//! kubectl asks for a WebSocket upgrade (`v5.channel.k8s.io`). The
//! server opens a connection to the node, sends it the same upgrade
//! request, and answers kubectl with the node's answer: an error passes
//! back as a Status; a `101 Switching Protocols` passes back too, and
//! from then on the two connections are spliced, bytes both ways, as
//! kube-apiserver's upgrade-aware proxy does. The protocol itself is
//! the node's business ([`crate::kubelet::exec`]).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::log::{container_of, kubelet_of};
use crate::apiserver::handlers::{get as get_one, Call};
use crate::apiserver::status::ApiError;

/// The request headers a WebSocket handshake needs passed on.
const HANDSHAKE: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// The node's answer headers passed back to the client on a 101.
const ANSWER: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// The longest answer head (and error body) taken from a node.
const HEAD_LIMIT: usize = 64 * 1024;
/// How long a node has to connect and answer the handshake.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the request asks to become a WebSocket.
fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// GET (or POST) …/pods/<name>/exec.
pub async fn connect(call: &Call) -> Result<Response, ApiError> {
    call.authorize("create", None, None)?;
    let pod = get_one::read(call).await?;
    let name = call.name().to_string();
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let container = container_of(&pod, call.param("container"), &name)?;
    if !is_websocket(&call.headers) {
        // kubectl falls back to SPDY only when the WebSocket fails.
        return Err(ApiError::bad_request(
            "exec is served over WebSocket only (v5.channel.k8s.io or \
             v4.channel.k8s.io); this request asked for no WebSocket upgrade",
        ));
    }
    // ANCHOR: connect
    let upgrade = call.upgrade.clone().ok_or_else(|| {
        ApiError::internal("this connection cannot be upgraded")
    })?;
    let (ip, port) = kubelet_of(call, node_name).await?;
    let ns = call.namespace().unwrap_or("default");
    let query = call.uri.query().unwrap_or_default();
    let target = format!("/exec/{ns}/{name}/{container}?{query}");
    let (mut node, answer) = upgrade_at_node(call, &ip, port, &target).await?;
    if answer.code != 101 {
        return Err(refused(answer));
    }
    let response = switching_protocols(&answer.headers);
    let early = answer.rest;
    tokio::spawn(async move {
        let Ok(client) = upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(client);
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
    });
    Ok(response)
    // ANCHOR_END: connect
}

/// kubectl's 101, with the node's WebSocket answer headers.
fn switching_protocols(headers: &[(String, String)]) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in headers {
        if ANSWER.contains(&k.to_ascii_lowercase().as_str()) {
            if let (Ok(k), Ok(v)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                response.headers_mut().append(k, v);
            }
        }
    }
    response
}

/// Sends the node agent the upgrade request kubectl sent (its WebSocket
/// headers passed on), and reads the agent's answer.
async fn upgrade_at_node(
    call: &Call,
    ip: &str,
    port: u16,
    target: &str,
) -> Result<(TcpStream, Answer), ApiError> {
    let netns = call.server.options().node_netns.clone();
    let mut node = dial(ip, port, netns).await?;
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {ip}:{port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n"
    );
    for name in HANDSHAKE {
        for value in call.headers.get_all(*name) {
            if let Ok(v) = value.to_str() {
                head += &format!("{name}: {v}\r\n");
            }
        }
    }
    head += "\r\n";
    let answer = tokio::time::timeout(NODE_TIMEOUT, async {
        node.write_all(head.as_bytes()).await?;
        read_head(&mut node).await
    })
    .await
    .map_err(|_| node_error(ip, port, "no answer to the upgrade"))?
    .map_err(|e| node_error(ip, port, &e.to_string()))?;
    Ok((node, answer))
}

/// A connection to the node agent, made from inside the cluster
/// network's namespace when there is one (see `pods/log`).
async fn dial(
    ip: &str,
    port: u16,
    netns: Option<std::path::PathBuf>,
) -> Result<TcpStream, ApiError> {
    let addr: std::net::SocketAddr = format!("{ip}:{port}")
        .parse()
        .map_err(|_| node_error(ip, port, "not an address"))?;
    let connect = move || {
        let s = std::net::TcpStream::connect_timeout(&addr, NODE_TIMEOUT)?;
        s.set_nonblocking(true)?;
        Ok::<_, std::io::Error>(s)
    };
    let made = tokio::task::spawn_blocking(move || match &netns {
        Some(ns) => lab03::network::run_in(ns, connect)
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()))),
        None => connect(),
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| node_error(ip, port, &e.to_string()))?;
    TcpStream::from_std(made).map_err(|e| node_error(ip, port, &e.to_string()))
}

fn node_error(ip: &str, port: u16, why: &str) -> ApiError {
    ApiError::internal(format!(
        "error dialing backend: dial tcp {ip}:{port}: {why}"
    ))
}

/// A node's answer head, and whatever came after it in the same read.
struct Answer {
    code: u16,
    headers: Vec<(String, String)>,
    rest: Vec<u8>,
}

async fn read_head(node: &mut TcpStream) -> std::io::Result<Answer> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = node.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the node closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let mut answer = Answer {
                    code: parsed.code.unwrap_or(502),
                    headers,
                    rest: buf[len..].to_vec(),
                };
                if answer.code != 101 {
                    read_body(node, &mut answer).await;
                }
                return Ok(answer);
            }
            Ok(httparse::Status::Partial) if buf.len() < HEAD_LIMIT => {}
            Ok(httparse::Status::Partial) => {
                return Err(std::io::Error::other("answer head too long"))
            }
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// The rest of an error's body, by its Content-Length (bounded).
async fn read_body(node: &mut TcpStream, answer: &mut Answer) {
    let length = answer
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(HEAD_LIMIT);
    let mut chunk = [0u8; 4096];
    while answer.rest.len() < length {
        match node.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.rest.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The node's refusal, as the API's Status.
fn refused(answer: Answer) -> ApiError {
    let message = String::from_utf8_lossy(&answer.rest).trim().to_string();
    let reason = match answer.code {
        404 => "NotFound",
        400 => "BadRequest",
        _ => "InternalError",
    };
    ApiError::new(answer.code, reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_websocket_upgrade_is_passed_on() {
        let mut h = HeaderMap::new();
        assert!(!is_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        assert!(is_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(!is_websocket(&h), "SPDY is not served");
    }
}
