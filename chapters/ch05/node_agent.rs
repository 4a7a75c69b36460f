//! `ch05 node-agent`: one node's agent (our kubelet) against the API
//! server named by `--kubeconfig`, until Ctrl-C or SIGTERM.
//!
//! It runs in the network namespace it was started in: `ch05 up` starts
//! one inside each node's namespace, whose `eth0` is on the cluster
//! network at `--node-ip`. With the real runtime (root) it makes the
//! node's pod bridge there, for pods in `--pod-cidr`; with
//! `--fake-runtime` (lab03's in-memory runtime) nothing runs, yet the
//! Node, its Lease and its pods' status are all real API objects.
//!
//! Containers die with the agent: the runtime starts each one with a
//! parent-death signal, so nothing outlives a killed agent. Stopping it
//! stops its pods first, each with its grace period.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use lab02::home::Home;
use lab03::cri::{CriResult, Image, ImageService};
use lab03::ipam::Cidr;
use lab03::kubelet::fake::{fake_digest, FakeRuntime};
use lab05::client::{Client, ClientConfig};
use lab05::kubelet::{AgentConfig, Cri, NodeAgent};
use lab05::node_proxy::{NodeProxy, NodeProxyOptions, ProxyMode};

#[derive(clap::Args)]
pub struct Args {
    /// The node's name (its Node, its Lease, its identity node:NAME).
    #[arg(long)]
    name: String,
    /// Where the API server is and the node's token (`ch05 kubeconfig
    /// --user node:NAME` writes one).
    #[arg(long, value_name = "PATH")]
    kubeconfig: PathBuf,
    /// The node's pod network (spec.podCIDR): pods get their IPs here.
    #[arg(long, value_name = "CIDR")]
    pod_cidr: Cidr,
    /// The node's address on the cluster network: its InternalIP, where
    /// it serves container logs.
    #[arg(long, value_name = "IP")]
    node_ip: Ipv4Addr,
    /// Where the node keeps its runtime state, pods' logs and volumes.
    /// Default: $KUBELINGS_HOME/cluster/NAME.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Static pods' manifests (the kubelet's staticPodPath).
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// The port of the node's server (container logs), the kubelet's.
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// lab03's in-memory runtime: no root, no processes, every image
    /// pullable.
    #[arg(long)]
    fake_runtime: bool,
    /// How often the Lease is renewed, in seconds (its duration is 4x).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    lease_renew_interval: u64,
    /// The node's Service proxy: nftables (kube-proxy's mode) or
    /// userspace (the first edition's).
    #[arg(long, default_value = "nftables")]
    proxy: ProxyMode,
    /// How often the manifest directory is read, in seconds.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    file_check_frequency: u64,
    /// The cluster's registry (HOST:PORT): images named without one
    /// (`kubia:v1`) are pulled from it into the node's own store,
    /// DATA/images. Without it, images come from $KUBELINGS_HOME's store.
    #[arg(long, value_name = "HOST:PORT")]
    registry: Option<String>,
}

/// The fake runtime's images, where every pull finds what it asks for.
struct AnyImage(Arc<FakeRuntime>);

impl ImageService for AnyImage {
    fn list_images(&self) -> CriResult<Vec<Image>> {
        self.0.list_images()
    }
    fn image_status(&self, image: &str) -> CriResult<Option<Image>> {
        self.0.image_status(image)
    }
    fn pull_image(&self, image: &str) -> CriResult<String> {
        self.0.add_image(image);
        Ok(fake_digest(image))
    }
    fn remove_image(&self, image: &str) -> CriResult<()> {
        self.0.remove_image(image)
    }
}

/// The node network as the runtime's pod network plugin.
struct Plugin(Arc<lab03::network::NodeNetwork>);

impl lab03::runtime::PodNetwork for Plugin {
    fn attach(
        &self,
        uid: &str,
        netns: &Path,
    ) -> Result<Ipv4Addr, lab03::runtime::NetworkError> {
        Ok(self.0.attach(uid, netns)?.ip)
    }
    fn detach(&self, uid: &str) -> Result<(), lab03::runtime::NetworkError> {
        self.0.detach(uid)?;
        Ok(())
    }
}

/// The real runtime on this node: the pod bridge in this namespace, the
/// runtime's state in DIR/runtime; with `--registry`, images pulled from
/// it into DIR/images, as a node of a real cluster pulls; else from
/// $KUBELINGS_HOME's store (pulled by their reference when missing).
fn linux_runtime(
    args: &Args,
    dir: &Path,
) -> anyhow::Result<(
    Cri,
    Arc<lab03::runtime::LinuxRuntime>,
    Arc<lab03::network::NodeNetwork>,
)> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the real runtime needs root (namespaces, cgroups, the pod \
             bridge); run as root, or with --fake-runtime"
        );
    }
    use lab03::network::NodeNetwork;
    // What a killed agent left, then this start's network.
    NodeNetwork::remove(dir).context("removing the last start's network")?;
    let network = NodeNetwork::create_here(dir, &args.name, args.pod_cidr)
        .context("the node's pod network")?;
    let network = Arc::new(network);
    let images = match &args.registry {
        Some(_) => Home::at(dir.join("images")),
        None => Home::from_env(),
    };
    let mut config =
        lab03::runtime::RuntimeConfig::new(dir.join("runtime"), images)
            .network(Arc::new(Plugin(network.clone())));
    if let Some(registry) = &args.registry {
        config = config.mirror(registry.clone());
    }
    let runtime = Arc::new(
        lab03::runtime::LinuxRuntime::new(config).context("the runtime")?,
    );
    Ok((Cri::of(runtime.clone()), runtime, network))
}

/// The node's proxy (`--proxy`) and its DNS server on the cluster DNS
/// address, made one of the node's own.
fn start_proxy(
    client: &Client,
    network: &lab03::network::NodeNetwork,
    args: &Args,
) -> anyhow::Result<Arc<NodeProxy>> {
    let dns = lab04::dns::dns_ip();
    if let Err(e) = network.add_local_address(dns) {
        // A node started again after a kill -9 has it already.
        if !e.to_string().contains("exists") {
            return Err(e).context("the cluster DNS address");
        }
    }
    let proxy = NodeProxy::start(
        client.clone(),
        NodeProxyOptions {
            mode: args.proxy,
            netns: network.netns_path().to_path_buf(),
            node_ip: args.node_ip,
            dns: Some((dns, 53).into()),
        },
    )
    .context("the node's proxy")?;
    Ok(Arc::new(proxy))
}

/// Waits for Ctrl-C or SIGTERM.
fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.data.clone().unwrap_or_else(|| {
        Home::from_env().root().join("cluster").join(&args.name)
    });
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("making {}", dir.display()))?;
    let client_config = ClientConfig::from_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let client = Client::new(client_config)?;
    let (cri, linux, what) = if args.fake_runtime {
        let fake = FakeRuntime::new(Arc::new(lab03::SystemClock));
        let cri = Cri {
            runtime: fake.clone(),
            images: Arc::new(AnyImage(fake)),
        };
        (cri, None, "the fake runtime")
    } else {
        let (cri, linux, network) = linux_runtime(&args, &dir)?;
        (cri, Some((linux, network)), "lab03's runtime")
    };
    let mut config = AgentConfig::new(
        &args.name,
        args.node_ip,
        &args.pod_cidr.to_string(),
        dir.clone(),
    );
    config.port = args.port;
    config.manifests = args.manifests.clone();
    config.renew_interval =
        Duration::from_secs(args.lease_renew_interval.max(1));
    config.lease_duration = config.renew_interval * 4;
    config.file_check_frequency =
        Duration::from_secs(args.file_check_frequency.max(1));
    // With real pods, the node's Services too: lab04's proxy and DNS,
    // fed by the API server, which also give pods their DNS settings
    // and Service variables.
    let proxy = match &linux {
        Some((_, network)) => {
            let proxy = start_proxy(&client, network, &args)?;
            config.environment = Some(proxy.clone());
            Some(proxy)
        }
        None => None,
    };
    let agent = NodeAgent::start(client, config, cri)?;
    let addr = agent
        .server_addr()
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    println!(
        "node {} registered with {}; pods in {} on {what}; logs served on {addr}",
        args.name,
        args.kubeconfig.display(),
        args.pod_cidr,
    );
    wait_for_signal()?;
    println!("node {}: stopping its pods", args.name);
    let stopped = agent.stop(Duration::from_secs(60));
    if let Some(proxy) = proxy {
        proxy.stop();
    }
    if let Some((runtime, network)) = linux {
        drop(runtime);
        drop(network);
        lab03::network::NodeNetwork::remove(&dir)
            .context("removing the node's pod network")?;
    }
    stopped?;
    Ok(())
}
