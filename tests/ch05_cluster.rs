//! `ch05 up --nodes 2` as root: the real kubectl sees the nodes Ready,
//! a node reaches the API server on the cluster network, a node stopped
//! and started again, and `ch05 down` leaves nothing: no process, no
//! network namespace, no listening socket, no cgroup beneath ours.
//!
//! Until `ch05 node-agent` exists the nodes cannot become Ready: the test
//! then says so and checks the rest (the control plane, the network,
//! `ssh`, `down`).
#![cfg(target_os = "linux")]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lab01::probe::{require, require_program, Privilege};

#[path = "ch05/cluster.rs"]
mod cluster;
use cluster::{
    alive, cgroups_beneath_ours, ch05, nsfs_mounts_under, recorded, run, text,
};

#[test]
fn up_kubectl_nodes_ssh_stop_start_down() {
    if !require(Privilege::Root) || !require_program("kubectl") {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let ch05 = ch05();
    let has_agent = run(
        &ch05,
        &["node-agent", "--help"],
        home,
        Duration::from_secs(10),
    )
    .status
    .success();
    if !has_agent {
        eprintln!("ch05 has no node-agent yet: the nodes cannot become Ready, only the rest is checked");
    }
    let cgroups_before = cgroups_beneath_ours();
    let wait = if has_agent { "60" } else { "3" };
    let up = run(
        &ch05,
        &["up", "--nodes", "2", "--port", "0", "--wait", wait],
        home,
        Duration::from_secs(180),
    );
    let ids = recorded(home);
    let url =
        std::fs::read_to_string(home.join("cluster/control-plane/server-url"))
            .expect("the server's URL");
    let port: u16 = url
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let kubectl = Path::new("kubectl");
    if has_agent {
        assert!(up.status.success(), "ch05 up: {}", text(&up));
        assert!(text(&up).contains("export KUBECONFIG="), "{}", text(&up));
        let nodes =
            run(kubectl, &["get", "nodes"], home, Duration::from_secs(30));
        let table = text(&nodes);
        for node in ["node-1", "node-2"] {
            let row = table
                .lines()
                .find(|l| l.starts_with(node))
                .unwrap_or_else(|| panic!("{table}"));
            assert_eq!(row.split_whitespace().nth(1), Some("Ready"), "{table}");
        }
    } else {
        assert!(
            !up.status.success(),
            "ch05 up without node agents: {}",
            text(&up)
        );
    }
    let info = run(kubectl, &["cluster-info"], home, Duration::from_secs(30));
    assert!(
        text(&info).contains(&format!("https://127.0.0.1:{port}")),
        "{}",
        text(&info)
    );
    // From node-1's namespace, with node-1's own kubeconfig: the API
    // server's second listener, its address in the certificate.
    let node_config = home.join("cluster/control-plane/node-1.kubeconfig");
    let node_config = node_config.to_str().expect("utf-8");
    let from_node = run(
        &ch05,
        &[
            "ssh",
            "node-1",
            "--",
            "kubectl",
            "--kubeconfig",
            node_config,
            "get",
            "--raw",
            "/version",
        ],
        home,
        Duration::from_secs(30),
    );
    assert!(from_node.status.success(), "{}", text(&from_node));
    assert!(
        text(&from_node).contains("gitVersion"),
        "{}",
        text(&from_node)
    );
    let config =
        std::fs::read_to_string(node_config).expect("node-1's kubeconfig");
    assert!(config.contains("https://198.18.0.254:6443"), "{config}");
    // stop-node takes node-2 off the network, start-node brings it back.
    let stop = run(
        &ch05,
        &["stop-node", "node-2"],
        home,
        Duration::from_secs(60),
    );
    assert!(stop.status.success(), "{}", text(&stop));
    let ssh = run(
        &ch05,
        &["ssh", "node-2", "--", "true"],
        home,
        Duration::from_secs(10),
    );
    assert!(!ssh.status.success(), "node-2 is stopped: {}", text(&ssh));
    let start = run(
        &ch05,
        &["start-node", "node-2"],
        home,
        Duration::from_secs(60),
    );
    assert!(start.status.success(), "{}", text(&start));
    let ssh = run(
        &ch05,
        &["ssh", "node-2", "--", "true"],
        home,
        Duration::from_secs(10),
    );
    assert!(ssh.status.success(), "{}", text(&ssh));
    let status = run(&ch05, &["status"], home, Duration::from_secs(30));
    let shown = text(&status);
    assert!(shown.contains("apiserver"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("node-2") && l.contains("running"))
            || !has_agent,
        "{shown}"
    );
    let logs =
        run(&ch05, &["logs", "apiserver"], home, Duration::from_secs(10));
    assert!(
        text(&logs).contains("the API server listens on"),
        "{}",
        text(&logs)
    );
    let ids_now = recorded(home);

    let down = run(&ch05, &["down"], home, Duration::from_secs(120));
    assert!(down.status.success(), "{}", text(&down));
    for id in ids.iter().chain(&ids_now) {
        assert!(!alive(*id), "process {} outlived ch05 down", id.0);
    }
    assert_eq!(
        nsfs_mounts_under(home),
        Vec::<PathBuf>::new(),
        "namespaces left"
    );
    assert!(!home.join("cluster/network").exists());
    assert!(
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(500)
        )
        .is_err(),
        "something still listens on 127.0.0.1:{port}"
    );
    let cgroups_after = cgroups_beneath_ours();
    let left: Vec<_> = cgroups_after.difference(&cgroups_before).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let again = run(&ch05, &["status"], home, Duration::from_secs(10));
    assert!(
        text(&again).contains("no cluster is up"),
        "{}",
        text(&again)
    );
}
