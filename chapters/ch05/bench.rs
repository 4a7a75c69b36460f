//! `ch05 bench api`: the store's durable writes, embedded against etcd
//! on the same disk in the same run, then the API server under load:
//! pods created by concurrent clients, a list of all of them, watchers
//! that must each see every new pod, and the server's memory.
//! `ch05 bench sched` (bench_sched.rs): the scheduler; `ch05 bench
//! cluster` (bench_cluster.rs): a cluster's start and its pods' startup.
//!
//! Figures are printed (and saved with `--save`), never asserted.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lab05::auth::tls::CA_CERT;
use lab05::auth::{Role, TokenFile};
use lab05::bench::{self as api_bench, Delivery, Rate};
use lab05::client::{Client, ClientConfig};
use lab05::store::bench::{bench_writes, WriteFigures};
use lab05::store::embedded::EmbeddedStore;
use lab05::store::{EtcdProcess, EtcdStore, Store};

use crate::data;

#[path = "bench_sched.rs"]
mod sched;

#[path = "bench_cluster.rs"]
mod cluster;

#[derive(clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum, default_value = "api")]
    what: What,
    /// Pods to create (the issue's figure: 10,000); for `sched`, pods to
    /// schedule.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent clients creating them.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Watchers that must each see every pod.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes per store measurement.
    #[arg(long, default_value_t = 2_000)]
    writes: usize,
    /// Leave etcd out (where it is not installed).
    #[arg(long)]
    no_etcd: bool,
    /// Nodes for `sched` (scheduler_perf's figure: 5000; the placed pods
    /// are a fifth of --pods).
    #[arg(long, default_value_t = 5000, hide = true)]
    nodes: usize,
    /// For `cluster`: the nodes of `ch05 up`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    cluster_nodes: u8,
    /// For `cluster`: the pods created at once.
    #[arg(long, default_value_t = 100)]
    startup_pods: usize,
    /// Also write the table to FILE (the book's copy).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum What {
    /// The store and the API server.
    Api,
    /// The scheduler: scheduler_perf's SchedulingBasic shape, in memory
    /// and through the API server.
    Sched,
    /// A cluster: `ch05 up` until kubia answers, and pod startup latency.
    Cluster,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.what == What::Cluster {
        return cluster::run_bench(
            args.cluster_nodes,
            args.startup_pods,
            args.save.as_deref(),
        );
    }
    if args.what == What::Sched {
        let shape = sched::Shape {
            nodes: args.nodes,
            placed: args.pods / 10,
            pods: args.pods,
        };
        return sched::run(shape, args.save.as_deref());
    }
    let scratch = tempfile::Builder::new()
        .prefix("ch05-bench-")
        .tempdir()
        .context("making a scratch directory")?;
    let mut table = String::new();
    let mut line = |l: String| {
        println!("{l}");
        table.push_str(&l);
        table.push('\n');
    };

    line("store: durable writes (fsync), same disk, same run".into());
    line(format!(
        "{:<10} {:>8} {:>12} {:>10} {:>10}",
        "store", "writers", "writes/s", "p50", "p99"
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut rates: Vec<(String, usize, f64)> = Vec::new();
    for writers in [1, 16] {
        // One writer is latency-bound: fewer writes keep the run short.
        let writes = if writers == 1 {
            args.writes / 4
        } else {
            args.writes
        };
        let dir = scratch.path().join(format!("embedded-{writers}"));
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir)?);
        let f = runtime.block_on(bench_writes(store, writers, writes))?;
        line(store_row("embedded", &f));
        rates.push(("embedded".into(), writers, f.writes_per_sec));
        if !args.no_etcd {
            let etcd = EtcdProcess::start(
                &scratch.path().join(format!("etcd-{writers}")),
            )
            .context("starting etcd (--no-etcd to leave it out)")?;
            let store: Arc<dyn Store> =
                Arc::new(EtcdStore::connect(etcd.endpoint())?);
            let f = runtime.block_on(bench_writes(store, writers, writes))?;
            line(store_row("etcd", &f));
            rates.push(("etcd".into(), writers, f.writes_per_sec));
        }
    }
    for writers in [1, 16] {
        let of = |name: &str| {
            rates
                .iter()
                .find(|(n, w, _)| n == name && *w == writers)
                .map(|r| r.2)
        };
        if let (Some(e), Some(d)) = (of("embedded"), of("etcd")) {
            line(format!(
                "embedded/etcd at {writers} writer(s): {:.2}x",
                e / d.max(1e-9)
            ));
        }
    }
    drop(runtime);

    let server = Server::start(&scratch.path().join("api"))?;
    let client = server.client()?;
    line(String::new());
    line(format!(
        "API server (embedded store, HTTPS, {} clients)",
        args.clients
    ));
    let created = api_bench::create_pods(
        &client,
        "default",
        "create",
        args.pods,
        args.clients,
    )?;
    line(rate_row(&format!("create {} pods", args.pods), &created));
    let (listed, count) = api_bench::list_pods(&client, "default", 5)?;
    line(format!(
        "{:<28} {:>10} {:>10}",
        format!("list {count} pods (best of 5)"),
        "",
        ms(listed)
    ));
    let (rss, _) = lab05::bench::memory_kib(server.pid()).unwrap_or((0, 0));
    line(format!(
        "{:<28} {:>10}",
        format!("server memory, {count} pods"),
        format!("{} MiB", rss / 1024)
    ));
    let (rate, delivery) = api_bench::watch_delivery(
        &client,
        "kube-public",
        "watched",
        args.watchers,
        args.pods,
        args.clients,
        Duration::from_secs(300),
    )?;
    line(rate_row(
        &format!("create {} pods, watched", args.pods),
        &rate,
    ));
    line(delivery_row(&delivery));
    line(format!(
        "{:<28} {:>10} {:>10} {:>10}",
        "  the same, from each ack",
        "",
        format!("p50 {}", ms(delivery.after_ack_p50)),
        format!("p99 {}", ms(delivery.after_ack_p99))
    ));
    let (rss, hwm) = lab05::bench::memory_kib(server.pid()).unwrap_or((0, 0));
    line(format!(
        "{:<28} {:>10} {:>10}",
        format!("server memory, {} pods", count + args.pods),
        format!("{} MiB", rss / 1024),
        format!("peak {} MiB", hwm / 1024)
    ));
    drop(server);
    if let Some(path) = &args.save {
        std::fs::write(path, &table)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn store_row(name: &str, f: &WriteFigures) -> String {
    format!(
        "{:<10} {:>8} {:>12.0} {:>10} {:>10}",
        name,
        f.writers,
        f.writes_per_sec,
        ms(f.p50),
        ms(f.p99)
    )
}

fn rate_row(what: &str, r: &Rate) -> String {
    format!(
        "{:<28} {:>10} {:>10} {:>10}",
        what,
        format!("{:.0}/s", r.per_second()),
        format!("p50 {}", ms(r.p50)),
        format!("p99 {}", ms(r.p99))
    )
}

fn delivery_row(d: &Delivery) -> String {
    format!(
        "{:<28} {:>10} {:>10} {:>10}",
        format!("{} watchers, lost {}", d.watchers, d.lost()),
        format!("{} seen", d.received),
        format!("p50 {}", ms(d.p50)),
        format!("p99 {}", ms(d.p99))
    )
}

/// `ch05 apiserver` as a child of this process, on a free port, with its
/// data in a scratch directory; stopped when dropped (its stdin closes,
/// and it is killed if it lingers).
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("finding ch05 itself")?;
        let mut child = Command::new(exe)
            .args(["apiserver", "--listen", "127.0.0.1:0", "--stop-with-stdin"])
            .arg("--data")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting ch05 apiserver")?;
        let stdout = child.stdout.take().context("the server's output")?;
        let server = Server {
            child,
            dir: dir.to_path_buf(),
        };
        // Its output is read to the end in a thread of its own: a server
        // whose stdout closed would fail at its next line.
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if l.contains("listens on") {
                    let _ = ready.send(());
                }
            }
        });
        match started.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => Ok(server),
            Err(_) => {
                bail!("ch05 apiserver did not start (its errors are above)")
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin's client, as the server's kubeconfig says.
    fn client(&self) -> anyhow::Result<Client> {
        let token = TokenFile::open(&self.dir)?.issue(&Role::Admin)?;
        let ca = std::fs::read(self.dir.join(CA_CERT))
            .context("the server's CA certificate")?;
        Ok(Client::new(ClientConfig {
            server: data::url(&self.dir),
            ca_pem: Some(ca),
            token: Some(token),
        })?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing stdin asks it to stop; then make sure.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
