//! A node's proxy fed by the API server (root): a Service and its
//! EndpointSlice written through the real API server reach lab04's
//! userspace proxy in a throwaway node network, and a connection to the
//! ClusterIP from inside the node lands on the endpoint; when the slice
//! empties, the ClusterIP stops answering; when the proxy stops, its
//! device is gone.
#![cfg(target_os = "linux")]

#[path = "support_rel/mod.rs"]
mod support_rel;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubelings_probe::{require, Privilege};
use lab03::network::scratch::ScratchNode;
use lab05::node_proxy::{NodeProxy, NodeProxyOptions, ProxyMode};
use serde_json::json;
use support_rel::{Backend, Cluster};

const PATIENCE: Duration = Duration::from_secs(15);

/// One answer from `addr`, made from inside the node; None if refused.
fn ask(node: &ScratchNode, addr: SocketAddr) -> Option<String> {
    node.get()
        .run_in(move || {
            let mut s =
                TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            (!text.is_empty()).then_some(text)
        })
        .ok()
        .flatten()
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_service_written_to_the_api_is_served_by_the_nodes_proxy() {
    if !require(Privilege::Root) {
        return;
    }
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let node = ScratchNode::new(77).expect("a node network");
    let backend_ip = node.get().gateway();
    // The "pod": a server in the node's namespace that says who it is.
    let listener = node
        .get()
        .run_in(move || TcpListener::bind((backend_ip, 8080)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"hello from the endpoint");
        }
    });
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubia", "namespace": "default"},
        "spec": {"selector": {"app": "kubia"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let service = client.create(Some("default"), &service).unwrap();
    let ip: Ipv4Addr =
        service.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    let slice = |addresses: serde_json::Value| -> EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubia-abcde", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubia"}},
            "addressType": "IPv4",
            "endpoints": addresses,
            "ports": [{"name": "", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap()
    };
    client
        .create(
            Some("default"),
            &slice(json!([{"addresses": [backend_ip.to_string()], "conditions": {"ready": true}}])),
        )
        .unwrap();
    let proxy = NodeProxy::start(
        client.clone(),
        NodeProxyOptions {
            mode: ProxyMode::Userspace,
            netns: node.netns().to_path_buf(),
            node_ip: backend_ip,
            dns: None,
        },
    )
    .expect("the node's proxy");
    let cluster_ip = SocketAddr::from((ip, 80));
    let answer = until("the ClusterIP answers", || ask(&node, cluster_ip));
    assert_eq!(answer, "hello from the endpoint");

    // The endpoint leaves the slice: the ClusterIP no longer leads to it.
    let mut empty = client
        .get::<EndpointSlice>(Some("default"), "kubia-abcde")
        .unwrap();
    empty.endpoints = Vec::new();
    client
        .replace(Some("default"), "kubia-abcde", &empty)
        .unwrap();
    until("the ClusterIP stops answering", || {
        ask(&node, cluster_ip).is_none().then_some(())
    });

    proxy.stop();
    let listing = lab03::network::show(node.netns()).unwrap();
    assert!(
        listing.link(lab04::proxy::userspace::DEVICE).is_none(),
        "the proxy's device outlived it"
    );
}
