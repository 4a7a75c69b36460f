//! `ch05 apiserver`: the API server over a store, with HTTPS and bearer
//! tokens, until SIGINT or SIGTERM.
//!
//! At start it makes (once) the cluster's CA and the tokens of the
//! cluster's identities, a server certificate for this start, and
//! `DIR/admin.kubeconfig`; with `--store etcd` and no endpoints it runs
//! an etcd of its own, stopped with it.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lab05::apiserver::admission::TolerationSeconds;
use lab05::apiserver::guard::Guard;
use lab05::apiserver::server::{ApiServer, Options};
use lab05::auth::tls::Ca;
use lab05::auth::{Role, TokenFile, TokenGuard};
use lab05::store::embedded::EmbeddedStore;
use lab05::store::Store;
use lab05::store::{EtcdProcess, EtcdStore};
use tokio::signal::unix::{signal, SignalKind};

use crate::{data, kubeconfig};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    /// Our own store, in DIR/store.
    Embedded,
    /// etcd: --etcd-endpoints, or one started here with its data in
    /// DIR/etcd.
    Etcd,
}

#[derive(clap::Args)]
pub struct Args {
    /// Where the objects are kept.
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// A running etcd's client URLs (the first is used), for --store etcd.
    #[arg(long, value_delimiter = ',', value_name = "URL,...")]
    etcd_endpoints: Vec<String>,
    /// The control plane's data directory (store, CA, tokens,
    /// kubeconfigs). Default: $KUBELINGS_HOME/control-plane.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The loopback address and port to serve (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:6443", value_parser = loopback)]
    listen: SocketAddr,
    /// Also serve ADDR:PORT inside the network namespace at PATH (a bind
    /// mount, or /proc/PID/ns/net), with the same router: the cluster
    /// network's side (198.18.0.0/15 addresses only). Its address goes
    /// into the server certificate.
    #[arg(long, value_name = "PATH=ADDR:PORT", value_parser = netns_listen)]
    listen_netns: Option<NetnsListen>,
    /// Serve HTTPS (the default).
    #[arg(long, overrides_with = "no_tls")]
    tls: bool,
    /// Serve plain HTTP (a request with no token is the admin: kubectl
    /// sends none without TLS).
    #[arg(long, overrides_with = "tls")]
    no_tls: bool,
    /// Another name or address for the server certificate (repeatable).
    #[arg(long = "tls-san", value_name = "NAME")]
    tls_sans: Vec<String>,
    /// Issue tokens for nodes node-1 … node-N at start (more with
    /// `ch05 kubeconfig --user node:NAME`, while it runs).
    #[arg(long, default_value_t = 0, value_name = "N")]
    nodes: u32,
    /// How long new pods tolerate a node that is not ready
    /// (DefaultTolerationSeconds admission; kube-apiserver's 300).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    default_not_ready_toleration_seconds: i64,
    /// How long new pods tolerate a node that stopped reporting.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    default_unreachable_toleration_seconds: i64,
    /// Compact the store every SECONDS, keeping one interval of history
    /// (kube-apiserver: 5 minutes). For tests of 410 Gone.
    #[arg(long, hide = true, value_name = "SECONDS")]
    compact_interval: Option<u64>,
    /// Stop when standard input closes too (a test's server ends with the
    /// test process, however that ends).
    #[arg(long, hide = true)]
    stop_with_stdin: bool,
}

/// Servers here bind loopback only: nothing outside this computer
/// reaches them.
fn loopback(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| "not an address:port (e.g. 127.0.0.1:6443)".to_string())?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: the API server listens on \
             127.0.0.1 (or ::1) only",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// `--listen-netns PATH=ADDR:PORT`.
#[derive(Clone, Debug)]
pub struct NetnsListen {
    netns: PathBuf,
    addr: SocketAddr,
}

fn netns_listen(text: &str) -> Result<NetnsListen, String> {
    let (path, addr) = text
        .rsplit_once('=')
        .ok_or_else(|| "expected PATH=ADDR:PORT".to_string())?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an address:port"))?;
    let cluster = lab03::ipam::BENCHMARK_BLOCK;
    match addr.ip() {
        std::net::IpAddr::V4(ip) if cluster.contains(ip) => {}
        ip => {
            return Err(format!(
                "{ip} is not in {cluster}, the cluster network's block"
            ))
        }
    }
    Ok(NetnsListen {
        netns: PathBuf::from(path),
        addr,
    })
}

// ANCHOR: netns_listener
/// A listening socket made inside another network namespace: a thread
/// enters it and binds, and the socket stays in that namespace wherever
/// it is used afterwards, so this process's runtime serves it as it
/// serves its own.
fn listen_in(at: &NetnsListen) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = at.addr;
    let listener = lab03::network::run_in(&at.netns, move || {
        std::net::TcpListener::bind(addr)
    })
    .with_context(|| format!("entering {}", at.netns.display()))?
    .with_context(|| {
        format!("cannot listen on {addr} in {}", at.netns.display())
    })?;
    listener.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(listener)?)
}
// ANCHOR_END: netns_listener

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

/// The store, and the etcd we started for it (stopped on drop, after the
/// store).
struct Backend {
    store: Arc<dyn Store>,
    _etcd: Option<EtcdProcess>,
    what: String,
}

fn open_store(args: &Args, dir: &Path) -> anyhow::Result<Backend> {
    Ok(match args.store {
        StoreKind::Embedded => {
            let path = dir.join("store");
            let store = EmbeddedStore::open(&path).with_context(|| {
                format!("opening the store in {}", path.display())
            })?;
            Backend {
                store: Arc::new(store),
                _etcd: None,
                what: format!("embedded, in {}", path.display()),
            }
        }
        StoreKind::Etcd => match args.etcd_endpoints.first() {
            Some(endpoint) => Backend {
                store: Arc::new(
                    EtcdStore::connect(endpoint)
                        .with_context(|| format!("etcd at {endpoint}"))?,
                ),
                _etcd: None,
                what: format!("etcd at {endpoint}"),
            },
            None => {
                let path = dir.join("etcd");
                let etcd = EtcdProcess::start(&path)
                    .context("starting etcd (--etcd-endpoints for yours)")?;
                let endpoint = etcd.endpoint().to_string();
                Backend {
                    store: Arc::new(EtcdStore::connect(&endpoint)?),
                    what: format!(
                        "etcd at {endpoint} (pid {}, data in {})",
                        etcd.pid(),
                        path.display()
                    ),
                    _etcd: Some(etcd),
                }
            }
        },
    })
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let dir = data::dir(args.data.clone());
    data::create(&dir)?;
    let tls = !args.no_tls;

    let tokens = issue_identities(&dir, args.nodes)?;
    let mut sans = args.tls_sans.clone();
    if let Some(at) = &args.listen_netns {
        sans.push(at.addr.ip().to_string());
    }
    let tls_config = if tls {
        Some(Ca::load_or_create(&dir)?.server_config(&sans)?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let second = match &args.listen_netns {
        Some(at) => Some((listen_in(at)?, at)),
        None => None,
    };
    let backend = open_store(&args, &dir)?;
    let guard: Arc<dyn Guard> = if tls {
        Arc::new(TokenGuard::new(tokens))
    } else {
        Arc::new(TokenGuard::insecure(tokens))
    };
    let options = Options {
        advertise_address: addr.to_string(),
        toleration_seconds: TolerationSeconds {
            not_ready: args.default_not_ready_toleration_seconds,
            unreachable: args.default_unreachable_toleration_seconds,
        },
        // Nodes are reached where they are: on the cluster network.
        node_netns: args.listen_netns.as_ref().map(|at| at.netns.clone()),
        ..Options::default()
    };
    let server = ApiServer::new(backend.store.clone(), guard, options)
        .await
        .map_err(|e| anyhow::anyhow!("starting the API server: {e}"))?;

    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    data::save_url(&dir, &url)?;
    let admin = dir.join("admin.kubeconfig");
    kubeconfig::write(&dir, &Role::Admin, &admin)?;
    println!("ch05: the API server listens on {url}");
    if let Some((listener, at)) = &second {
        println!(
            "ch05: and on {scheme}://{} in the network namespace {}",
            listener.local_addr()?,
            at.netns.display()
        );
    }
    println!("ch05: store: {}", backend.what);
    println!("export KUBECONFIG={}", admin.display());
    if !tls {
        eprintln!(
            "ch05: plain HTTP: kubectl sends no token over it, so a request \
             without one is the admin"
        );
    }

    let compactor = args
        .compact_interval
        .map(|s| tokio::spawn(compact_every(backend.store.clone(), s)));
    let stdin_closed = Arc::new(tokio::sync::Notify::new());
    if args.stop_with_stdin {
        let notify = stdin_closed.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            notify.notify_one();
        });
    }
    // ANCHOR: serve
    // One router, each listener served by it: the same server answers
    // in both namespaces.
    let router = server.router();
    let stop = stdin_closed.notified();
    let second = second.map(|(listener, _)| listener);
    let serving = async {
        let first = serve_on(listener, router.clone(), tls_config.clone());
        match second {
            Some(other) => {
                let other = serve_on(other, router, tls_config);
                tokio::try_join!(first, other).map(drop)
            }
            None => first.await,
        }
    };
    let served = until_signal(serving, stop).await;
    // ANCHOR_END: serve
    if let Some(task) = compactor {
        task.abort();
    }
    drop(server);
    drop(backend);
    served
}

/// Serves `router` on `listener`, over TLS with `tls`.
async fn serve_on(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            let listener =
                lab02::registry::tls::TlsListener::new(listener, config)?;
            axum::serve(listener, router).into_future().await
        }
        None => axum::serve(listener, router).into_future().await,
    }
}

// ANCHOR: identities
/// The tokens of the cluster's components: the admin, the scheduler, the
/// controller manager and `nodes` node agents, each issued once and kept
/// in the data directory.
fn issue_identities(dir: &Path, nodes: u32) -> anyhow::Result<TokenFile> {
    let mut tokens = TokenFile::open(dir)?;
    let mut roles = vec![Role::Admin, Role::Scheduler, Role::ControllerManager];
    roles.extend((1..=nodes).map(|i| Role::Node(format!("node-{i}"))));
    for role in &roles {
        tokens.issue(role)?;
    }
    Ok(tokens)
}
// ANCHOR_END: identities

/// Runs the server until SIGINT or SIGTERM (or `stop`).
async fn until_signal<F, S>(server: F, stop: S) -> anyhow::Result<()>
where
    F: std::future::Future<Output = std::io::Result<()>>,
    S: std::future::Future<Output = ()>,
{
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("serving"),
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = stop => {}
    }
    // Watches never end by themselves: requests in flight are cut off,
    // as kube-apiserver's shutdown ends them.
    eprintln!("ch05: stopping");
    Ok(())
}

/// kube-apiserver's compaction: every interval, forget history older than
/// the revision the store had one interval ago.
async fn compact_every(store: Arc<dyn Store>, seconds: u64) {
    let interval = Duration::from_secs(seconds.max(1));
    let mut previous = None;
    loop {
        tokio::time::sleep(interval).await;
        if let Some(rev) = previous {
            if let Err(e) = store.compact(rev).await {
                eprintln!("ch05: compacting at {rev}: {e}");
            }
        }
        previous = store.revision().await.ok();
    }
}
