//! The node agent against a real API server (HTTPS, tokens, the node
//! rule: the agent shows node-1's token), on lab03's fake runtime: it
//! registers its Node and renews its Lease, runs the pods bound to it
//! and writes their status, stops and deletes the deleted ones, shows
//! its static pods as mirror pods, leaves other nodes' pods alone, and
//! serves `pods/log` and (to the real kubectl) `pods/exec` through the
//! API server.

mod support_kubectl;
mod support_rel;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use lab03::kubelet::fake::FakeRuntime;
use lab03::SystemClock;
use lab05::client::Client;
use lab05::kubelet::node::{ready_condition, Health};
use lab05::kubelet::{AgentConfig, Cri, NodeAgent};
use serde_json::json;
use support_rel::{Backend, Cluster};

/// A cluster, a node agent `node-1` on a fake runtime holding the image
/// `kubia`, and its data directory.
struct Setup {
    cluster: Cluster,
    admin: Client,
    runtime: Arc<FakeRuntime>,
    agent: Option<NodeAgent>,
    data: tempfile::TempDir,
}

fn config(data: &Path, manifests: Option<&Path>) -> AgentConfig {
    let mut c = AgentConfig::new(
        "node-1",
        Ipv4Addr::LOCALHOST,
        "198.18.1.0/24",
        data.to_path_buf(),
    );
    c.port = 0;
    c.renew_interval = Duration::from_millis(200);
    c.status_update_frequency = Duration::from_millis(200);
    c.file_check_frequency = Duration::from_millis(100);
    c.manifests = manifests.map(Path::to_path_buf);
    c
}

fn setup(manifests: Option<&Path>) -> Setup {
    let cluster = Cluster::start(Backend::Embedded)
        .expect("the embedded store needs nothing");
    let admin = cluster.admin();
    let runtime = FakeRuntime::new(Arc::new(SystemClock));
    // The API server defaults an untagged image's pull policy to Always:
    // the agent pulls before every start.
    runtime.add_pullable("kubia");
    let data = tempfile::tempdir().unwrap();
    let node_client = cluster.client(Some(&cluster.tokens.node1));
    let agent = NodeAgent::start(
        node_client,
        config(data.path(), manifests),
        Cri::of(runtime.clone()),
    )
    .unwrap();
    Setup {
        cluster,
        admin,
        runtime,
        agent: Some(agent),
        data,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            let _ = agent.stop(Duration::from_secs(5));
        }
    }
}

/// Waits up to 10 s for `f` to give something.
fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn pod_on(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "kubia", "image": "kubia"}]},
    }))
    .unwrap()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn running(admin: &Client, name: &str) -> Pod {
    wait(&format!("pod {name} Running"), || {
        admin
            .get::<Pod>(Some("default"), name)
            .ok()
            .filter(|p| phase(p) == Some("Running"))
    })
}

/// The node's conditions: type, status and reason, then the message.
fn conditions(node: &Node) -> String {
    let list = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    list.into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{:<15} {:<6} {}\n    {}\n",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn the_node_registers_with_its_conditions_and_renews_its_lease() {
    let s = setup(None);
    let node: Node = wait("the Node", || s.admin.get(None, "node-1").ok());
    let port = s
        .agent
        .as_ref()
        .and_then(NodeAgent::server_addr)
        .unwrap()
        .port();
    let status = node.status.clone().unwrap();
    let spec = node.spec.clone().unwrap();
    assert_eq!(spec.pod_cidr.as_deref(), Some("198.18.1.0/24"));
    let capacity = status.capacity.unwrap();
    assert_eq!(capacity["pods"].0, "110");
    assert!(capacity.contains_key("cpu") && capacity.contains_key("memory"));
    let addresses: Vec<(String, String)> = status
        .addresses
        .unwrap()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert_eq!(
        addresses,
        [
            ("InternalIP".to_string(), "127.0.0.1".to_string()),
            ("Hostname".to_string(), "node-1".to_string())
        ]
    );
    let endpoint = status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap();
    assert_eq!(endpoint.port, i32::from(port));
    let info = status.node_info.unwrap();
    assert_eq!(info.kubelet_version, "v1.32.0-kubelings");
    assert_eq!(info.container_runtime_version, "fake://0.1.0");
    assert_eq!(info.operating_system, "linux");
    insta::assert_snapshot!("node_conditions", conditions(&node));

    let lease: Lease = wait("the Lease", || {
        s.admin.get(Some("kube-node-lease"), "node-1").ok()
    });
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("node-1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Node", node.metadata.uid.as_deref().unwrap())
    );
    let first = spec.renew_time.unwrap();
    wait("a renewal", || {
        let l: Lease = s.admin.get(Some("kube-node-lease"), "node-1").ok()?;
        (l.spec?.renew_time? != first).then_some(())
    });
}

#[test]
fn a_node_takes_over_its_existing_node_object() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let admin = cluster.admin();
    let made: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}))
    .unwrap();
    let made = admin.create(None, &made).unwrap();
    let runtime = FakeRuntime::new(Arc::new(SystemClock));
    let data = tempfile::tempdir().unwrap();
    let agent = NodeAgent::start(
        cluster.client(Some(&cluster.tokens.node1)),
        config(data.path(), None),
        Cri::of(runtime),
    )
    .unwrap();
    let node: Node = admin.get(None, "node-1").unwrap();
    assert_eq!(node.metadata.uid, made.metadata.uid);
    assert_eq!(
        node.spec.unwrap().pod_cidr.as_deref(),
        Some("198.18.1.0/24")
    );
    assert!(conditions(&admin.get(None, "node-1").unwrap())
        .contains("KubeletReady"));
    agent.stop(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_pod_bound_to_the_node_runs_and_gets_its_status() {
    let s = setup(None);
    s.admin
        .create(Some("default"), &pod_on("kubia", "node-1"))
        .unwrap();
    let pod = running(&s.admin, "kubia");
    let status = pod.status.unwrap();
    let ip: Ipv4Addr = status.pod_ip.as_deref().unwrap().parse().unwrap();
    let cidr: lab03::ipam::Cidr = "198.18.1.0/24".parse().unwrap();
    assert!(cidr.contains(ip), "{ip}");
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(status.start_time.is_some());
    let c = &status.container_statuses.unwrap()[0];
    assert_eq!(
        (c.name.as_str(), c.image.as_str(), c.restart_count),
        ("kubia", "kubia", 0)
    );
    assert!(c.image_id.starts_with("sha256:"));
    assert!(c
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("kubelings://"));
    assert!(c.state.as_ref().unwrap().running.is_some());
    let ready: Vec<(String, String)> = status
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert!(
        ready.contains(&("Ready".into(), "True".into())),
        "{ready:?}"
    );
    // The events went to the API, from the kubelet on node-1.
    let events = wait("the Started event", || {
        let v = s
            .admin
            .request("GET", "/api/v1/namespaces/default/events", None)
            .ok()?;
        let items = v["items"].as_array()?.clone();
        items
            .iter()
            .any(|e| e["reason"] == "Started")
            .then_some(items)
    });
    let started = events.iter().find(|e| e["reason"] == "Started").unwrap();
    assert_eq!(started["source"]["component"], "kubelet");
    assert_eq!(started["source"]["host"], "node-1");
    assert_eq!(
        started["involvedObject"]["fieldPath"],
        "spec.containers{kubia}"
    );
}

#[test]
fn a_deleted_pod_is_stopped_with_its_grace_period_then_gone() {
    let s = setup(None);
    s.admin
        .create(Some("default"), &pod_on("kubia", "node-1"))
        .unwrap();
    running(&s.admin, "kubia");
    s.admin
        .delete::<Pod>(
            Some("default"),
            "kubia",
            Some(&json!({"gracePeriodSeconds": 7})),
        )
        .unwrap();
    wait("the pod gone from the API", || {
        match s.admin.get::<Pod>(Some("default"), "kubia") {
            Err(e) if e.is_not_found() => Some(()),
            _ => None,
        }
    });
    let calls = s.runtime.calls();
    assert!(
        calls.iter().any(|c| c == "stop_container kubia#0 7s"),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c == "remove_pod_sandbox kubia"),
        "{calls:?}"
    );
    assert_eq!(s.runtime.counts(), (0, 0));
}

#[test]
fn a_static_pod_shows_as_a_mirror_pod() {
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("web.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: kubia\n    image: kubia\n",
    )
    .unwrap();
    let s = setup(Some(manifests.path()));
    let mirror = running(&s.admin, "web-node-1");
    let annotations = mirror.metadata.annotations.clone().unwrap();
    let hash = &annotations["kubernetes.io/config.mirror"];
    assert_eq!(&annotations["kubernetes.io/config.hash"], hash);
    assert_ne!(mirror.metadata.uid.as_ref(), Some(hash));
    let owner = &mirror.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "node-1")
    );
    assert_eq!(owner.controller, Some(true));
    // Deleted by hand, it comes back; its static pod never stopped.
    s.admin
        .delete::<Pod>(
            Some("default"),
            "web-node-1",
            Some(&json!({"gracePeriodSeconds": 0})),
        )
        .unwrap();
    let again = wait("the mirror pod again", || {
        s.admin
            .get::<Pod>(Some("default"), "web-node-1")
            .ok()
            .filter(|p| p.metadata.uid != mirror.metadata.uid)
    });
    assert_eq!(
        again.metadata.annotations.unwrap()["kubernetes.io/config.mirror"],
        *hash
    );
    assert!(!s
        .runtime
        .calls()
        .iter()
        .any(|c| c.starts_with("stop_container")));
    // Its file removed, the pod stops and the mirror pod goes.
    std::fs::remove_file(manifests.path().join("web.yaml")).unwrap();
    wait("the mirror pod gone", || {
        match s.admin.get::<Pod>(Some("default"), "web-node-1") {
            Err(e) if e.is_not_found() => Some(()),
            _ => None,
        }
    });
    assert_eq!(s.runtime.counts(), (0, 0));
}

#[test]
fn a_missing_image_is_err_image_pull_then_image_pull_back_off() {
    let s = setup(None);
    let mut pod = pod_on("nothere", "node-1");
    pod.spec.as_mut().unwrap().containers[0].image =
        Some("registry.local/nothere:1".into());
    s.admin.create(Some("default"), &pod).unwrap();
    let waiting = |reason: &'static str| {
        wait(reason, || {
            let p: Pod = s.admin.get(Some("default"), "nothere").ok()?;
            let c = p.status?.container_statuses?.into_iter().next()?;
            let w = c.state?.waiting?;
            (w.reason.as_deref() == Some(reason))
                .then_some(w.message.unwrap_or_default())
        })
    };
    let pulled = waiting("ErrImagePull");
    assert!(pulled.contains("registry.local/nothere:1"), "{pulled}");
    assert_eq!(
        waiting("ImagePullBackOff"),
        "Back-off pulling image \"registry.local/nothere:1\""
    );
    let policy = s.admin.get::<Pod>(Some("default"), "nothere").unwrap();
    let policy = policy.spec.unwrap().containers[0].image_pull_policy.clone();
    assert_eq!(policy.as_deref(), Some("IfNotPresent"));
}

#[test]
fn pull_policy_always_pulls_though_the_image_is_there() {
    let s = setup(None);
    s.runtime.add_image("kubia");
    s.admin
        .create(Some("default"), &pod_on("kubia", "node-1"))
        .unwrap();
    running(&s.admin, "kubia");
    let calls = s.runtime.calls();
    assert!(calls.iter().any(|c| c == "pull_image kubia"), "{calls:?}");
}

#[test]
fn a_pod_of_another_node_is_left_alone() {
    let s = setup(None);
    s.admin
        .create(Some("default"), &pod_on("elsewhere", "node-2"))
        .unwrap();
    s.admin
        .create(Some("default"), &pod_on("here", "node-1"))
        .unwrap();
    running(&s.admin, "here");
    let other: Pod = s.admin.get(Some("default"), "elsewhere").unwrap();
    let statuses = other.status.and_then(|s| s.container_statuses);
    assert!(statuses.is_none(), "{statuses:?}");
    let calls = s.runtime.calls();
    assert!(!calls.iter().any(|c| c.contains("elsewhere")), "{calls:?}");
}

#[test]
fn pods_log_through_the_api_server_reads_the_nodes_file() {
    let s = setup(None);
    s.admin
        .create(Some("default"), &pod_on("kubia", "node-1"))
        .unwrap();
    let pod = running(&s.admin, "kubia");
    // The fake runs no process: write what the runtime's log pump would.
    let uid = pod.metadata.uid.unwrap();
    let dir = s
        .data
        .path()
        .join(format!("kubelet/logs/default_kubia_{uid}/kubia"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0.log"),
        "2026-12-03T06:00:00.1Z stdout F Kubia server starting...\n\
         2026-12-03T06:00:01Z stdout F Received request from ::ffff:198.18.0.1\n",
    )
    .unwrap();
    let path = "/api/v1/namespaces/default/pods/kubia/log";
    let text = s.admin.request_bytes("GET", path, None).unwrap();
    insta::assert_snapshot!("pod_log", String::from_utf8_lossy(&text));
    let tail = s
        .admin
        .request_bytes(
            "GET",
            &format!("{path}?tailLines=1&timestamps=true"),
            None,
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&tail),
        "2026-12-03T06:00:01.000000000Z Received request from ::ffff:198.18.0.1\n"
    );
    let previous = s
        .admin
        .request_bytes("GET", &format!("{path}?previous=true"), None)
        .unwrap_err();
    assert_eq!(
        previous.to_string(),
        "400 BadRequest: previous terminated container \"kubia\" in pod \"kubia\" not found"
    );
    let _ = &s.cluster;
}

#[test]
fn pods_log_follow_streams_until_the_container_stops() {
    let s = setup(None);
    s.admin
        .create(Some("default"), &pod_on("kubia", "node-1"))
        .unwrap();
    let pod = running(&s.admin, "kubia");
    let uid = pod.metadata.uid.unwrap();
    let dir = s
        .data
        .path()
        .join(format!("kubelet/logs/default_kubia_{uid}/kubia"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("0.log");
    std::fs::write(&file, "2026-12-03T06:00:00Z stdout F one\n").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let admin = s.admin.clone();
    std::thread::spawn(move || {
        let path = "/api/v1/namespaces/default/pods/kubia/log?follow=true";
        let _ = tx.send(admin.request_bytes("GET", path, None));
    });
    std::thread::sleep(Duration::from_millis(300));
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(b"2026-12-03T06:00:02Z stderr F two\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The container ends (and restarts): the follow ends with it.
    s.runtime.exit("kubia", lab03::kubelet::fake::Exit::Code(0));
    let text = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the follow ends once the container stopped")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&text), "one\ntwo\n");
}

#[test]
fn kubectl_exec_reaches_the_container_through_the_api_server() {
    if !kubelings_probe::require_program("kubectl") {
        return;
    }
    let s = setup(None);
    s.admin
        .create(Some("default"), &pod_on("kubia", "node-1"))
        .unwrap();
    running(&s.admin, "kubia");
    let home = tempfile::tempdir().unwrap();
    let ca = home.path().join("ca.crt");
    std::fs::write(&ca, &s.cluster.ca_pem).unwrap();
    std::fs::write(
        home.path().join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: \
             {{server: \"{}\", certificate-authority: \"{}\"}}}}]\n\
             users: [{{name: u, user: {{token: \"{}\"}}}}]\n\
             contexts: [{{name: x, context: {{cluster: c, user: u, \
             namespace: default}}}}]\ncurrent-context: x\n",
            s.cluster.url,
            ca.display(),
            s.cluster.tokens.admin
        ),
    )
    .unwrap();
    let exec = |args: &[&str], input: &[u8]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        let (run, code) =
            support_kubectl::run_with_input(home.path(), &all, Some(input));
        (code, run.stdout, run.stderr)
    };
    // The fake runtime runs the command on the host: the streams and the
    // exit code are what is under test here.
    let (code, out, err) = exec(
        &["kubia", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        b"",
    );
    assert_eq!((code, out.as_str()), (3, "out\n"), "{err}");
    assert_eq!(err, "err\ncommand terminated with exit code 3\n");
    let (code, out, err) = exec(&["-i", "kubia", "--", "cat"], b"typed in\n");
    assert_eq!((code, out.as_str()), (0, "typed in\n"), "{err}");
    let (code, _, err) = exec(&["kubia", "-c", "nope", "--", "true"], b"");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error from server (BadRequest): container nope is not valid for pod kubia\n"
    );
    let calls = s.runtime.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("exec kubia#") && c.ends_with(" cat")),
        "{calls:?}"
    );
}

#[test]
fn ready_condition_words_what_the_node_knows() {
    let ok = ready_condition(&Health::default());
    assert_eq!(
        (ok.status, ok.reason, ok.message.as_str()),
        ("True", "KubeletReady", "kubelet is posting ready status")
    );
    let down = ready_condition(&Health {
        runtime_error: Some("container runtime is down".into()),
        ..Health::default()
    });
    assert_eq!(
        (down.status, down.reason, down.message.as_str()),
        ("False", "KubeletNotReady", "container runtime is down")
    );
    let two = ready_condition(&Health {
        network_error: Some("container runtime network not ready".into()),
        missing_capacity: vec!["cpu".into(), "memory".into()],
        ..Health::default()
    });
    assert_eq!(
        two.message,
        "[container runtime network not ready, missing node capacity for resources: cpu, memory]"
    );
    assert_eq!(two.status, "False");
    // Pressure is a condition of its own: Ready stays True.
    let pressed = ready_condition(&Health {
        memory_pressure: true,
        ..Health::default()
    });
    assert_eq!(pressed.status, "True");
}
