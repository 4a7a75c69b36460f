//! `ch05 bench sched`: scheduler_perf's SchedulingBasic shape (5000
//! nodes of 4 CPU / 32Gi / 110 pods, 1000 pods placed first, 10,000
//! pods of 100m / 500Mi to schedule), (a) the algorithm alone in memory,
//! (b) through our API server in this process (HTTPS, tokens, the
//! embedded store): nodes and pods created first, then the scheduler
//! started, timed until a watch has seen the last binding.

use std::future::IntoFuture;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lab02::registry::tls::TlsListener;
use lab05::apiserver::{ApiServer, Options};
use lab05::auth::tls::Ca;
use lab05::auth::{Role, TokenFile, TokenGuard};
use lab05::client::{Client, ClientConfig};
use lab05::scheduler::bench::{
    create_all, in_memory, perf_node, perf_pod, through_api, Throughput,
};
use lab05::store::embedded::EmbeddedStore;

/// The issue's figures (smaller ones only to try the command out).
pub struct Shape {
    pub nodes: usize,
    pub placed: usize,
    pub pods: usize,
}
/// kube-scheduler's threshold for SchedulingBasic/5000Nodes_10000Pods.
const UPSTREAM: f64 = 680.0;

pub fn run(shape: Shape, save: Option<&Path>) -> anyhow::Result<()> {
    let Shape {
        nodes,
        placed,
        pods,
    } = shape;
    let mut table = String::new();
    let mut line = |l: String| {
        println!("{l}");
        table.push_str(&l);
        table.push('\n');
    };
    line(format!(
        "{nodes} nodes of 4 CPU/32Gi/110 pods, {placed} pods placed, {pods} to place"
    ));
    line(format!("{:<34} {:>10} {:>12}", "", "pods/s", "time"));
    let memory = in_memory(nodes, placed, pods)?;
    line(row("algorithm alone, in memory", &memory, pods));

    let scratch = tempfile::Builder::new()
        .prefix("ch05-bench-sched-")
        .tempdir()
        .context("making a scratch directory")?;
    let dir = scratch.path();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let url = runtime.block_on(serve(dir))?;
    let admin = TokenFile::open(dir)?.issue(&Role::Admin)?;
    let ca = Ca::load_or_create(dir)?;
    let client = Client::new(ClientConfig {
        server: url,
        ca_pem: Some(ca.cert_pem().as_bytes().to_vec()),
        token: Some(admin),
    })?;
    create_all(&client, None, nodes, 16, |i| {
        perf_node(&format!("node-{i}"))
    })?;
    // Placed pods are created bound, round the nodes.
    create_all(&client, Some("default"), placed, 16, |i| {
        perf_pod(
            "default",
            &format!("init-{i}"),
            Some(&format!("node-{}", i % nodes)),
        )
    })?;
    create_all(&client, Some("default"), pods, 16, |i| {
        perf_pod("default", &format!("pod-{i}"), None)
    })?;
    let api = through_api(&client, "default", pods, Duration::from_secs(600))?;
    line(row("through the API server (HTTPS)", &api, pods));
    line(format!(
        "{:<34} {:>10}",
        "kube-scheduler's threshold",
        format!("{UPSTREAM:.0}/s")
    ));
    drop(client);
    runtime.shutdown_timeout(Duration::from_secs(2));
    if let Some(path) = save {
        std::fs::write(path, &table)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn row(what: &str, t: &Throughput, pods: usize) -> String {
    format!(
        "{:<34} {:>10} {:>12}",
        format!("{what}{}", if t.pods < pods { " (incomplete)" } else { "" }),
        format!("{:.0}/s", t.per_second()),
        format!("{:.2} s", t.elapsed.as_secs_f64())
    )
}

/// The API server over an embedded store in `dir`, HTTPS on a free
/// loopback port, until the runtime ends; its URL.
async fn serve(dir: &Path) -> anyhow::Result<String> {
    let ca = Ca::load_or_create(dir)?;
    let mut tokens = TokenFile::open(dir)?;
    tokens.issue(&Role::Scheduler)?;
    let guard = Arc::new(TokenGuard::new(TokenFile::open(dir)?));
    let store = Arc::new(EmbeddedStore::open(&dir.join("store"))?);
    let server = ApiServer::new(store, guard, Options::default())
        .await
        .map_err(|e| anyhow::anyhow!("starting the API server: {e}"))?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = tcp.local_addr()?.port();
    let listener = TlsListener::new(tcp, ca.server_config(&[])?)?;
    tokio::spawn(axum::serve(listener, server.router()).into_future());
    Ok(format!("https://127.0.0.1:{port}"))
}
