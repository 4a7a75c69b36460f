//! The log subresource: a pod's container logs, which live on its node.
//! As kube-apiserver does, the server finds the node the pod is bound
//! to, its InternalIP and the port the node agent serves on
//! (`status.daemonEndpoints.kubeletEndpoint`), and proxies the request
//! to the agent's `/containerLogs/<ns>/<pod>/<container>`, streaming the
//! answer back (so `kubectl logs -f` follows).
//!
//! The hop to the node is plain HTTP on the cluster network, without
//! credentials: the node agent's server does not check who asks (a real
//! kube-apiserver shows a client certificate to a kubelet serving HTTPS).

use std::io::Read;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::apiserver::handlers::{get as get_one, Call};
use crate::apiserver::resources;
use crate::apiserver::status::ApiError;
use crate::apiserver::stored;

/// The query parameters passed on to the node, by their API names.
const PASSED: &[&str] = &[
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "limitBytes",
];

// ANCHOR: log_location
/// Which container the request is for: `?container=`, or the pod's only
/// one (kube-apiserver's `LogLocation`).
pub fn container_of(
    pod: &Value,
    asked: Option<&str>,
    name: &str,
) -> Result<String, ApiError> {
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let (apps, inits) = (names("containers"), names("initContainers"));
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if apps.iter().chain(&inits).any(|n| n == c) => {
            Ok(c.to_string())
        }
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if apps.len() == 1 => Ok(apps[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                apps.join(" ")
            );
            if !inits.is_empty() {
                message += &format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                );
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// Where the node agent of `node` serves: its InternalIP and port.
pub fn node_endpoint(node: &Value) -> Option<(String, u16)> {
    let ip = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()?;
    Some((ip, u16::try_from(port).ok()?))
}
// ANCHOR_END: log_location

/// The node agent that runs a pod bound to `node_name`: its Node's
/// InternalIP and kubelet port.
pub async fn kubelet_of(
    call: &Call,
    node_name: &str,
) -> Result<(String, u16), ApiError> {
    let nodes = resources::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("no resource nodes"))?;
    let node = match call.server.store().get(&nodes.key("", node_name)).await? {
        Some(kv) => stored::decode(&kv)?,
        None => {
            return Err(ApiError::not_found("", "nodes", node_name));
        }
    };
    node_endpoint(&node).ok_or_else(|| {
        ApiError::bad_request(format!(
            "node {node_name} has no InternalIP and kubelet port to reach it by"
        ))
    })
}

/// GET …/pods/<name>/log.
pub async fn get(call: &Call) -> Result<Response, ApiError> {
    call.authorize("get", None, None)?;
    let pod = get_one::read(call).await?;
    let name = call.name().to_string();
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let container = container_of(&pod, call.param("container"), &name)?;
    let (ip, port) = kubelet_of(call, &node_name).await?;
    let ns = call.namespace().unwrap_or("default");
    let mut url =
        format!("http://{ip}:{port}/containerLogs/{ns}/{name}/{container}");
    let query: Vec<String> = PASSED
        .iter()
        .filter_map(|k| call.param(k).map(|v| format!("{k}={v}")))
        .collect();
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    proxy(url, call.server.options().node_netns.clone()).await
}

/// The node's answer, streamed: a thread reads it (ureq blocks) and
/// hands its chunks over until it ends or the reader goes away.
///
/// Nodes' addresses are on the cluster network, which only its own
/// namespace reaches: with `netns`, the connection is made from a thread
/// inside it (a socket stays in the namespace it was made in), never
/// from the host's, where that address would lead nowhere or out.
async fn proxy(
    url: String,
    netns: Option<std::path::PathBuf>,
) -> Result<Response, ApiError> {
    let (head_tx, head_rx) =
        tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        let call = || agent.get(&url).call();
        let response = match &netns {
            Some(ns) => lab03::network::run_in(ns, call).unwrap_or_else(|e| {
                Err(ureq::Error::Io(std::io::Error::other(e.to_string())))
            }),
            None => call(),
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let _ = head_tx.send(Err(ApiError::internal(format!(
                    "Get \"{url}\": {e}"
                ))));
                return;
            }
        };
        let code = response.status().as_u16();
        let mut body = response.into_body().into_reader();
        if code >= 400 {
            let mut text = String::new();
            let _ = body.read_to_string(&mut text);
            let reason = match code {
                404 => "NotFound",
                400 => "BadRequest",
                _ => "InternalError",
            };
            let _ = head_tx.send(Err(ApiError::new(
                code,
                reason,
                text.trim().to_string(),
            )));
            return;
        }
        if head_tx.send(Ok(())).is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match body.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Bytes::copy_from_slice(&buf[..n]))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    match head_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ApiError::internal("the node's answer was lost")),
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_asked_for_or_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "kubia"}]}});
        assert_eq!(container_of(&one, None, "p").unwrap(), "kubia");
        let two =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            container_of(&two, None, "p").unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            container_of(&two, Some("c"), "p").unwrap_err().message,
            "container c is not valid for pod p"
        );
    }

    #[test]
    fn the_node_is_reached_at_its_internal_ip_and_kubelet_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "node-1"},
                          {"type": "InternalIP", "address": "198.18.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(node_endpoint(&node), Some(("198.18.0.1".into(), 10250)));
    }
}
