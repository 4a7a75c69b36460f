//! A node's static pods: the kubelet's `staticPodPath` model. The manifest
//! directory is the truth; the node looks at it every so often, starts
//! what appeared, stops what went away, and replaces what changed. There
//! is no API server yet (chapter 5 brings one), so nobody else can ask
//! this node to run anything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use crate::backend::{Backend, Settings};
use crate::layout::{NodeConfig, NodeDir};
use crate::protocol::PodView;

/// How often the node looks at its manifest directory (the kubelet's
/// `fileCheckFrequency` is 20 s; ours is short since `apply` is the only
/// way in).
pub const POLL: Duration = Duration::from_millis(200);

/// A manifest as the node runs it: the pod, and what it was made from.
struct Applied {
    namespace: String,
    name: String,
    digest: String,
}

impl Applied {
    fn new(namespace: String, name: String, digest: String) -> Applied {
        Applied {
            namespace,
            name,
            digest,
        }
    }
}

/// Parsed manifests by file: the pod and its digest.
type Manifests = BTreeMap<PathBuf, (Pod, String)>;

pub struct Node {
    pub dir: NodeDir,
    pub config: NodeConfig,
    backend: Box<dyn Backend>,
    /// By manifest file name.
    applied: Mutex<BTreeMap<PathBuf, Applied>>,
}

// ANCHOR: static_pod
/// Turns a manifest into the pod a node runs: the kubelet gives a static
/// pod the namespace `default` when it has none, a uid made from the
/// manifest and the node's name (so the same file on a restarted node is
/// the same pod, which lets it adopt what still runs), and its own name
/// as `spec.nodeName`.
pub fn static_pod(text: &str, node: &str) -> Result<(Pod, String)> {
    let mut pod = lab03::manifest::parse_pod(text)?;
    let digest = digest_hex(&format!("{node}\n{text}"));
    let meta = &mut pod.metadata;
    meta.namespace.get_or_insert_with(|| "default".into());
    meta.uid.get_or_insert_with(|| uuid_of(&digest));
    let now = std::time::SystemTime::now();
    meta.creation_timestamp.get_or_insert(Time(now.into()));
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
    }
    Ok((pod, digest))
}
// ANCHOR_END: static_pod

/// SHA-256 of `text`, in hex.
pub fn digest_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A uid in a UUID's shape, from a hex digest (the node has no API server
/// to hand uids out).
pub fn uuid_of(d: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &d[..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

impl Node {
    /// Starts the node's parts (network, runtime, pod workers).
    pub fn start(
        dir: NodeDir,
        config: NodeConfig,
        images: &lab02::home::Home,
    ) -> Result<Node> {
        Node::start_with(dir, config, images, None)
    }

    /// Starts the node with what its pods learn of the cluster.
    pub fn start_with(
        dir: NodeDir,
        config: NodeConfig,
        images: &lab02::home::Home,
        environment: Option<std::sync::Arc<dyn lab03::kubelet::PodEnvironment>>,
    ) -> Result<Node> {
        let settings = Settings {
            environment,
            name: config.name.clone(),
            cidr: config.cidr,
            dir: dir.root.clone(),
            images: images.clone(),
            backoff_base: Duration::from_millis(config.backoff_base_ms),
        };
        let backend = crate::backend::start(&settings)?;
        Ok(Node {
            dir,
            config,
            backend,
            applied: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The manifests in the directory, parsed, by file; and what could
    /// not be read (it was checked by `apply`, so somebody else wrote it).
    fn read(&self) -> Result<(Manifests, Vec<String>)> {
        let mut problems = Vec::new();
        let mut seen = BTreeMap::new();
        for entry in std::fs::read_dir(self.dir.manifests())? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // The kubelet skips dot files (our atomic writes' temporaries).
            let yaml =
                [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
            if name.starts_with('.') || !yaml {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match static_pod(&text, &self.config.name) {
                Ok(pod) => {
                    seen.insert(path, pod);
                }
                Err(e) => problems.push(format!("{}: {e:#}", path.display())),
            }
        }
        Ok((seen, problems))
    }

    // ANCHOR: sync
    /// One look at the manifest directory: stop the gone and the changed,
    /// then start the new (a changed one is replaced).
    pub fn sync(&self) -> Result<Vec<String>> {
        let (seen, mut problems) = self.read()?;
        let mut applied =
            self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<PathBuf> = applied
            .iter()
            .filter(|(path, a)| {
                seen.get(*path).is_none_or(|(_, d)| *d != a.digest)
            })
            .map(|(path, _)| path.clone())
            .collect();
        for a in gone.iter().filter_map(|path| applied.remove(path)) {
            if let Err(e) = self.backend.remove(&a.namespace, &a.name) {
                problems.push(format!("delete {}: {e:#}", a.name));
            }
        }
        for (path, (pod, digest)) in seen {
            if applied.contains_key(&path) {
                continue;
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            if applied
                .values()
                .any(|a| a.name == name && a.namespace == namespace)
            {
                let file = path.display();
                problems.push(format!("{file}: pod {name:?} already runs"));
                continue;
            }
            match self.backend.add(pod) {
                Ok(()) => {
                    applied.insert(path, Applied::new(namespace, name, digest));
                }
                Err(e) => problems.push(format!("start {name}: {e:#}")),
            }
        }
        Ok(problems)
    }
    // ANCHOR_END: sync

    pub fn pods(&self) -> Vec<PodView> {
        self.backend.pods()
    }

    pub fn pod(&self, name: &str) -> Option<PodView> {
        self.pods()
            .into_iter()
            .find(|p| p.pod.metadata.name.as_deref() == Some(name))
    }

    /// Waits until `ready` holds for the pod, syncing the directory
    /// meanwhile.
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        mut ready: impl FnMut(&PodView) -> bool,
    ) -> Result<PodView> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(view) = self.pod(name).filter(|v| ready(v)) {
                return Ok(view);
            }
            if Instant::now() > deadline {
                let state = self.pod(name).map(|v| {
                    let row = crate::printers::pod_row(
                        &v.pod,
                        std::time::SystemTime::now(),
                    );
                    row.status
                });
                bail!("pod {name}: still {state:?} after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `cmd` in a container and collects its output (what the demo
    /// and `exec` without a terminal use).
    pub fn exec_sync(
        &self,
        pod: &str,
        container: &str,
        cmd: &[&str],
    ) -> Result<(String, i32)> {
        self.exec_sync_within(pod, container, cmd, Duration::from_secs(10))
    }

    /// As [`Node::exec_sync`], killed after `timeout`.
    pub fn exec_sync_within(
        &self,
        pod: &str,
        container: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<(String, i32)> {
        let id = self.backend.container_id("default", pod, Some(container))?;
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let out = self
            .backend
            .runtime()?
            .exec_sync(&id, &cmd, timeout)
            .with_context(|| format!("exec in {pod}/{container}"))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text += &String::from_utf8_lossy(&out.stderr);
        Ok((text, out.exit_code))
    }

    /// Stops every pod and removes the node.
    pub fn stop(&self) -> Result<()> {
        self.backend.shutdown()
    }
}
