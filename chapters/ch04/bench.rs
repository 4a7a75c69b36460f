//! `ch04 bench`: (a) short HTTP requests to kubia from inside the node's
//! network namespace, straight to the pods' IPs and through each proxy,
//! in the same run: requests per second and latency percentiles; (b) how
//! long the nftables proxy takes to program 10, 1000 and 5000 Services of
//! ten endpoints: the whole table, then one endpoint's change. Bounded in
//! count and time; everything runs in namespaces the benchmark makes.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chapters::layout::{NodeConfig, NodeDir};
use chapters::running::Running;
use chapters::service_node::ProxyMode;
use chapters::services::ServiceStore;
use lab02::home::Home;

#[derive(clap::Args)]
pub struct Args {
    /// Requests per target (each of direct, userspace, nftables).
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(100..=100_000))]
    requests: u64,
    /// Clients sending at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    concurrency: u64,
    /// Service counts for the rule-programming part.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,5000")]
    services: Vec<usize>,
    /// Also write the tables into FILE.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
}

const PODS: [&str; 3] = ["kubia-1", "kubia-2", "kubia-3"];
/// No target takes longer than this, however many requests are left.
const TIME_CAP: Duration = Duration::from_secs(20);

/// What one target's requests measured.
#[derive(Debug, Clone)]
pub struct Load {
    pub target: String,
    pub failed: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

// ANCHOR: request
/// One short request, as a browser without keep-alive makes it: connect,
/// send, read the whole answer until kubia closes.
fn request(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: kubia\r\n\r\n")?;
    let mut answer = Vec::with_capacity(256);
    s.read_to_end(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200"));
    }
    Ok(())
}
// ANCHOR_END: request

/// `total` requests from `concurrency` threads, each taking the next of
/// `targets` in turn. Runs on the calling thread's network namespace
/// (threads inherit it).
fn load(
    name: &str,
    targets: &[SocketAddr],
    total: u64,
    concurrency: u64,
) -> Load {
    let started = Instant::now();
    let per_thread = total / concurrency;
    let results: Vec<(Vec<Duration>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|t| {
                scope.spawn(move || {
                    let mut times = Vec::with_capacity(per_thread as usize);
                    let mut failed = 0;
                    for i in 0..per_thread {
                        if started.elapsed() > TIME_CAP {
                            break;
                        }
                        let addr = targets[((t + i) as usize) % targets.len()];
                        let t0 = Instant::now();
                        match request(addr) {
                            Ok(()) => times.push(t0.elapsed()),
                            Err(_) => failed += 1,
                        }
                    }
                    (times, failed)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let elapsed = started.elapsed();
    let mut times: Vec<Duration> =
        results.iter().flat_map(|(t, _)| t.clone()).collect();
    let failed = results.iter().map(|(_, f)| f).sum();
    times.sort();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Load {
        target: name.to_string(),
        failed,
        per_second: times.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn kubia_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: kubia\n\
         spec:\n  containers:\n  - name: kubia\n    image: kubia:v1\n"
    )
}

/// A node with `mode`'s proxy and kubia's three pods behind a Service:
/// direct, then through the proxy.
fn through(
    mode: ProxyMode,
    home: &Home,
    work: &std::path::Path,
    args: &Args,
) -> Result<(Load, Load)> {
    let name = format!("{mode:?}").to_lowercase();
    let dir = NodeDir::at(&work.join(&name), "bench");
    let config = NodeConfig {
        name: "bench".into(),
        cidr: lab03::ipam::node_cidr(1),
        backoff_base_ms: 10_000,
        proxy: mode,
    };
    let running = Running::start_with(dir.clone(), config, home, true)?;
    for pod in PODS {
        running.apply(pod, &kubia_pod(pod))?;
    }
    let store = ServiceStore::of(&dir.root);
    let svc = lab04::manifest::parse_service(include_str!(
        "../../labs/lab04-services/tests/services/kubia-svc.yaml"
    ))?;
    store.apply(&[svc], "kubia-svc.yaml")?;
    let mut pods = Vec::new();
    for pod in PODS {
        let view =
            running.node.wait_for(pod, Duration::from_secs(30), |v| {
                lab04::endpoints::pod_ready(&v.pod)
            })?;
        let ip = view
            .pod
            .status
            .and_then(|s| s.pod_ip)
            .context("a pod without an IP")?;
        pods.push(SocketAddr::new(ip.parse()?, 8080));
    }
    let services = running
        .services
        .clone()
        .context("a node without Services")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let cluster_ip = loop {
        let table = services.table();
        let ready = table.services.iter().find_map(|(id, info)| {
            (id.name == "kubia" && table.usable(id).len() == 3)
                .then_some(info.cluster_ip)
        });
        if let Some(ip) = ready {
            break ip;
        }
        if Instant::now() > deadline {
            bail!("the Service did not get its three endpoints");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let network = running.node.backend().network().context("no network")?;
    let (n, c) = (args.requests, args.concurrency);
    let vip = [SocketAddr::from((cluster_ip, 80))];
    let results = network.run_in(|| {
        // Warm up: ARP entries, the proxy's first connections.
        let _ = load("warm-up", &pods, 60, 3);
        let direct = load("direct to the pods' IPs", &pods, n, c);
        let proxied = load(&format!("through {name}"), &vip, n, c);
        (direct, proxied)
    })?;
    running.shutdown()?;
    Ok(results)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The request table.
pub fn load_table(
    rows: &[(Load, Load)],
    args_requests: u64,
    concurrency: u64,
) -> String {
    let mut out = format!(
        "short HTTP requests to kubia, {args_requests} per target, {concurrency} at once\n"
    );
    let _ = writeln!(
        out,
        "{:<28}{:>10}{:>11}{:>11}{:>11}",
        "target", "req/s", "p50", "p99", "vs direct"
    );
    for (direct, proxied) in rows {
        for (l, ratio) in [
            (direct, None),
            (proxied, Some(proxied.per_second / direct.per_second)),
        ] {
            let vs =
                ratio.map_or(String::new(), |r| format!("{:.0}%", r * 100.0));
            let _ = writeln!(
                out,
                "{:<28}{:>10.0}{:>11}{:>11}{:>11}",
                l.target,
                l.per_second,
                ms(l.p50),
                ms(l.p99),
                vs
            );
            if l.failed > 0 {
                let _ = writeln!(out, "  ({} failed)", l.failed);
            }
        }
    }
    out
}

/// The rule-programming table.
pub fn rules_table(rows: &[lab04::proxy::nftables::bench::BenchRow]) -> String {
    let mut out = String::from(
        "nftables proxy: programming the kernel (one nft -f each)\n",
    );
    let _ = writeln!(
        out,
        "{:<10}{:>10}{:>13}{:>16}{:>11}",
        "services", "endpoints", "full sync", "one endpoint", "text"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<10}{:>10}{:>13}{:>16}{:>8} KiB",
            r.services,
            r.services * r.endpoints_per_service,
            ms(r.full_sync),
            ms(r.endpoint_change),
            r.full_bytes / 1024
        );
    }
    out
}

pub fn run(args: Args) -> Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the benchmark makes nodes (network namespaces, rules): run it with sudo");
    }
    let work = tempfile::Builder::new()
        .prefix("kubelings-bench-")
        .tempdir()?;
    let home = Home::at(work.path().join("home"));
    chapters::images::build_all(&home, work.path())?;
    let mut rows = Vec::new();
    for mode in [ProxyMode::Nftables, ProxyMode::Userspace] {
        eprintln!("bench: {mode:?} node");
        rows.push(through(mode, &home, work.path(), &args)?);
    }
    let mut text = load_table(&rows, args.requests, args.concurrency);
    eprintln!("bench: programming {:?} Services", args.services);
    let rules = lab04::proxy::nftables::bench::bench(&args.services)
        .map_err(|e| anyhow::anyhow!("the nftables benchmark: {e}"))?;
    text.push('\n');
    text += &rules_table(&rules);
    print!("{text}");
    if let Some(path) = &args.save {
        std::fs::write(path, &text)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(0)
}
