//! A node run inside this process (the demos', `run`'s and the
//! benchmarks'), its manifest directory looked at in the background, and,
//! with Services, chapter 4's part synced beside it. Dropped, it stops
//! every pod and removes the node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use lab02::home::Home;

use crate::layout::{NodeConfig, NodeDir};
use crate::node::{Node, POLL};
use crate::service_node::ServiceNode;

/// A running node whose manifest directory is looked at in the
/// background, stopped (every pod, its network) when dropped.
pub struct Running {
    pub node: Arc<Node>,
    /// Chapter 4's Services, proxy and DNS, when started with them.
    pub services: Option<Arc<ServiceNode>>,
    stop: Arc<AtomicBool>,
    syncer: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(
        dir: NodeDir,
        config: NodeConfig,
        images: &Home,
    ) -> Result<Running> {
        Running::start_with(dir, config, images, false)
    }

    /// With `services`, the node also keeps Services and runs the proxy
    /// its config names (and the DNS server).
    pub fn start_with(
        dir: NodeDir,
        config: NodeConfig,
        images: &Home,
        services: bool,
    ) -> Result<Running> {
        dir.write_config(&config)?;
        let service_node = services
            .then(|| Arc::new(ServiceNode::new(&dir.root, &config.name)));
        let environment = service_node
            .clone()
            .map(|s| s as Arc<dyn lab03::kubelet::PodEnvironment>);
        let proxy = config.proxy;
        let node =
            Arc::new(Node::start_with(dir, config, images, environment)?);
        if let Some(s) = &service_node {
            let network = node.backend().network().ok_or_else(|| {
                anyhow::anyhow!("this node has no network namespace")
            })?;
            if let Err(e) = s.start(proxy, &network) {
                let _ = node.stop();
                return Err(e);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let syncer = {
            let (node, stop) = (node.clone(), stop.clone());
            let services = service_node.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(problems) = node.sync() {
                        for p in problems {
                            eprintln!("node: {p}");
                        }
                    }
                    if let Some(s) = &services {
                        let pods: Vec<_> =
                            node.pods().into_iter().map(|v| v.pod).collect();
                        match s.sync(&pods) {
                            Ok(problems) => problems
                                .iter()
                                .for_each(|p| eprintln!("node: {p}")),
                            Err(e) => eprintln!("node: Services: {e:#}"),
                        }
                    }
                    std::thread::sleep(POLL);
                }
            })
        };
        Ok(Running {
            node,
            services: service_node,
            stop,
            syncer: Some(syncer),
        })
    }

    /// Writes a manifest into the node's directory (what `apply` does).
    pub fn apply(&self, name: &str, text: &str) -> Result<()> {
        crate::commands::check(text, name)?;
        crate::layout::write_atomically(
            &self.node.dir.manifest(name),
            text.as_bytes(),
        )
    }

    pub fn shutdown(mut self) -> Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
            let proxy = match &self.services {
                Some(s) => s.shutdown(),
                None => Ok(()),
            };
            return self.node.stop().and(proxy);
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            eprintln!("stop the node: {e:#}");
        }
    }
}
