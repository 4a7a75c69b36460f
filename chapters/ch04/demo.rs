//! `ch04 demo`: the chapter in one go, on a throwaway node. Three kubia
//! pods labelled `app=kubia` and the book's Service in front of them; a
//! client pod reaches all three through the ClusterIP and through the
//! Service's DNS name; ClientIP affinity pins it to one; a pod that fails
//! its readiness probe gets no traffic until it passes again; a deleted
//! pod's endpoint leaves and no request fails; the ClusterIP never moves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chapters::layout::{NodeConfig, NodeDir};
use chapters::node::Node;
use chapters::running::Running;
use chapters::service_node::{ProxyMode, ServiceNode};
use chapters::services::ServiceStore;
use k8s_openapi::api::core::v1::Service;
use lab02::home::Home;

#[derive(clap::Args)]
pub struct Args {
    /// Which proxy the node runs.
    #[arg(long, value_enum, default_value_t = ProxyMode::Nftables)]
    proxy: ProxyMode,
}

const SERVICE: &str =
    include_str!("../../labs/lab04-services/tests/services/kubia-svc.yaml");
const AFFINITY: &str = include_str!(
    "../../labs/lab04-services/tests/services/kubia-svc-client-ip.yaml"
);

/// A kubia pod with a readiness probe on `/ready`, checked every second.
fn kubia_pod(name: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: kubia
spec:
  containers:
  - name: kubia
    image: kubia:v1
    ports:
    - containerPort: 8080
      name: http
    readinessProbe:
      httpGet:
        path: /ready
        port: 8080
      periodSeconds: 1
      failureThreshold: 1
"
    )
}

fn client_pod(name: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: main
    image: busybox:1
    command: [sleep, '3600']
"
    )
}

/// Under a loaded machine a busybox lookup may wait out a lost packet.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

const PODS: [&str; 3] = ["kubia-1", "kubia-2", "kubia-3"];

fn step(n: u32, what: &str) {
    println!("{n}. {what}");
}

fn say(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

/// What `count` requests from the client pod to `url` met: each hostname
/// that answered, and how many failed.
fn hits(
    node: &Node,
    url: &str,
    count: u32,
) -> Result<(BTreeMap<String, u32>, u32)> {
    let script = format!(
        "for i in $(seq {count}); do wget -q -O- {url} || echo FAILED; done"
    );
    let (out, _) = node.exec_sync_within(
        "client",
        "main",
        &["sh", "-c", &script],
        EXEC_TIMEOUT,
    )?;
    let mut seen = BTreeMap::new();
    let mut failed = 0;
    for line in out.lines() {
        if let Some(host) = line.strip_prefix("You've hit ") {
            *seen.entry(host.trim().to_string()).or_insert(0) += 1;
        } else if line.contains("FAILED") {
            failed += 1;
        }
    }
    Ok((seen, failed))
}

fn summary(
    url: &str,
    count: u32,
    (seen, failed): &(BTreeMap<String, u32>, u32),
) -> String {
    let names: Vec<&str> = seen.keys().map(String::as_str).collect();
    format!(
        "{count} requests to {url}\n  answered by {} ({} failed)",
        names.join(", "),
        failed
    )
}

fn cluster_ip(store: &ServiceStore) -> Result<String> {
    store
        .get("default", "kubia")?
        .and_then(|s| s.spec?.cluster_ip)
        .context("no Service kubia on the node")
}

/// Waits until the Service's ready endpoints are `want` (pod IPs).
fn wait_endpoints(services: &ServiceNode, want: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = services
            .views()
            .iter()
            .filter(|v| v.service.metadata.name.as_deref() == Some("kubia"))
            .flat_map(|v| v.slices.clone())
            .flat_map(|s| s.endpoints)
            .filter(|e| {
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
            })
            .count();
        if ready == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the Service has {ready} ready endpoints, not {want}, after 20s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn apply_service(
    store: &ServiceStore,
    text: &str,
    source: &str,
) -> Result<String> {
    let svc: Service = lab04::manifest::parse_service(text)?;
    let done = store.apply(&[svc], source)?;
    Ok(done
        .iter()
        .map(|(name, how)| format!("service/{name} {how}"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Mounts under `work` and processes rooted or running there: what a
/// node that stopped must not leave (its namespaces go with its mounts,
/// its rules and addresses with its namespace).
fn leftovers(work: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let path = work.to_string_lossy();
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&*path))
            .map(|l| format!("mount: {l}")),
    );
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let root =
            std::fs::read_link(entry.path().join("root")).unwrap_or_default();
        if root.starts_with(work) {
            found.push(format!(
                "process {}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

pub fn run(args: Args) -> Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the demo makes a node (network namespace, mounts, cgroups, rules): run it with sudo"
        );
    }
    let work = tempfile::Builder::new()
        .prefix("kubelings-demo-")
        .tempdir()?;
    let home = Home::at(work.path().join("home"));
    chapters::images::build_all(&home, work.path())?;
    let dir = NodeDir::at(&work.path().join("node"), "node-1");
    let config = NodeConfig {
        name: "node-1".into(),
        cidr: lab03::ipam::node_cidr(1),
        backoff_base_ms: 10_000,
        proxy: args.proxy,
    };
    let mode = match args.proxy {
        ProxyMode::Userspace => "userspace",
        ProxyMode::Nftables => "nftables",
    };
    step(
        1,
        &format!("start a node with the {mode} proxy and a DNS server"),
    );
    let running = Running::start_with(dir.clone(), config, &home, true)?;
    let node = running.node.clone();
    let services: Arc<ServiceNode> = running
        .services
        .clone()
        .context("a node without Services")?;
    let store = ServiceStore::of(&dir.root);
    running.apply("client", &client_pod("client"))?;
    for name in PODS {
        running.apply(name, &kubia_pod(name))?;
    }
    say("pods: client (busybox), kubia-1, kubia-2, kubia-3 (app=kubia)");

    for name in ["client"].iter().chain(PODS.iter()) {
        node.wait_for(name, Duration::from_secs(30), |v| {
            lab04::endpoints::pod_ready(&v.pod)
        })?;
    }

    step(2, "the book's Service: a ClusterIP in front of app=kubia");
    say(&apply_service(&store, SERVICE, "kubia-svc.yaml")?);
    let ip = cluster_ip(&store)?;
    wait_endpoints(&services, 3)?;
    say(&format!("ClusterIP {ip}, 3 ready endpoints"));

    step(3, "the client reaches every pod through the ClusterIP");
    let url = format!("http://{ip}/");
    say(&summary(&url, 30, &hits(&node, &url, 30)?));

    step(4, "and through the Service's name in the cluster's DNS");
    let name_url = "http://kubia.default.svc.cluster.local/";
    say(&summary(name_url, 30, &hits(&node, name_url, 30)?));
    let (lookup, _) = node.exec_sync_within(
        "client",
        "main",
        &["nslookup", "kubia"],
        EXEC_TIMEOUT,
    )?;
    // busybox asks under every search domain; the first found is the answer.
    let answer = lookup
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .take(2)
        .map(|l| l.replace('\t', " "))
        .collect::<Vec<_>>()
        .join("\n");
    say(&format!(
        "nslookup kubia (search path default.svc.cluster.local):\n{answer}"
    ));

    step(
        5,
        "environment variables: only for Services older than the container",
    );
    let (env, _) = node.exec_sync_within(
        "client",
        "main",
        &["sh", "-c", "env | grep ^KUBIA_"],
        EXEC_TIMEOUT,
    )?;
    say(&format!(
        "client (started before the Service): {}",
        if env.trim().is_empty() {
            "no KUBIA_ variables"
        } else {
            env.trim()
        }
    ));
    running.apply("client-2", &client_pod("client-2"))?;
    node.wait_for("client-2", Duration::from_secs(30), |v| {
        lab04::endpoints::pod_ready(&v.pod)
    })?;
    let (env, _) = node.exec_sync_within(
        "client-2",
        "main",
        &["sh", "-c", "env | grep ^KUBIA_SERVICE"],
        EXEC_TIMEOUT,
    )?;
    say(&format!("client-2 (started after it):\n{}", env.trim()));

    step(6, "sessionAffinity: ClientIP pins the client to one pod");
    say(&apply_service(
        &store,
        AFFINITY,
        "kubia-svc-client-ip.yaml",
    )?);
    // The proxy picks the change up at its next sync.
    std::thread::sleep(Duration::from_millis(600));
    let pinned = hits(&node, &url, 30)?;
    say(&format!(
        "{} pod(s) answered {} requests",
        pinned.0.len(),
        30 - pinned.1
    ));
    say(&apply_service(&store, SERVICE, "kubia-svc.yaml")?);
    std::thread::sleep(Duration::from_millis(600));

    step(
        7,
        "kubia-2 fails its readiness probe: no traffic until it passes",
    );
    let pod_ip = |name: &str| -> Result<String> {
        node.pod(name)
            .and_then(|v| v.pod.status?.pod_ip)
            .with_context(|| format!("{name} has no IP"))
    };
    let set_ready = |value: &str| -> Result<()> {
        let target = format!("http://{}:8080/ready", pod_ip("kubia-2")?);
        node.exec_sync_within(
            "client",
            "main",
            &["wget", "-q", "-O-", "--post-data", value, &target],
            EXEC_TIMEOUT,
        )?;
        Ok(())
    };
    set_ready("false")?;
    wait_endpoints(&services, 2)?;
    say("kubia-2 not ready: its endpoint is ready=false");
    say(&summary(&url, 30, &hits(&node, &url, 30)?));
    set_ready("true")?;
    wait_endpoints(&services, 3)?;
    say("kubia-2 ready again");
    say(&summary(&url, 30, &hits(&node, &url, 30)?));

    step(
        8,
        "kubia-3 is deleted: its endpoint leaves, no request fails",
    );
    std::fs::remove_file(dir.manifest("kubia-3"))?;
    wait_endpoints(&services, 2)?;
    say(&summary(&url, 30, &hits(&node, &url, 30)?));
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.pod("kubia-3").is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    say(&format!(
        "the ClusterIP is still {}: {}",
        ip,
        cluster_ip(&store)? == ip
    ));

    step(
        9,
        "stop the node: pods, the proxy's rules, the DNS server, the network",
    );
    running.shutdown()?;
    let left = leftovers(work.path());
    if !left.is_empty() {
        bail!("the node left behind:\n{}", left.join("\n"));
    }
    say("nothing left: no rule, address, namespace, mount, cgroup or process");
    Ok(0)
}
