//! Where a node keeps what it has, under `$KUBELINGS_HOME/nodes/<name>/`:
//!
//! ```text
//! node.json      its name and pod CIDR
//! manifests/     the static pods it runs (the kubelet's staticPodPath)
//! daemon.pid     the supervising process, while it runs
//! control.sock   that process's control socket (JSON lines)
//! daemon.log     what it printed
//! runtime/       the runtime's state: sandboxes, containers
//! network/       the node's network namespace (a bind mount) and IPs
//! kubelet/       logs/<ns>_<pod>_<uid>/<container>/<n>.log, pods' volumes
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lab02::home::Home;
use lab03::ipam::Cidr;
use serde::{Deserialize, Serialize};

/// One node's directory.
#[derive(Debug, Clone)]
pub struct NodeDir {
    pub name: String,
    pub root: PathBuf,
}

/// What `node up` was told, kept for the commands after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    pub cidr: Cidr,
    /// The crash-loop back-off's first delay, in milliseconds (the
    /// kubelet's is 10 s; the demo and tests shorten it).
    pub backoff_base_ms: u64,
    /// The Services' proxy (chapter 4); older nodes' files have none.
    #[serde(default)]
    pub proxy: crate::service_node::ProxyMode,
}

impl NodeDir {
    /// The node `name` of `home`. Refuses names that are not DNS labels,
    /// since they become directory and interface names.
    pub fn of(home: &Home, name: &str) -> Result<NodeDir> {
        let problems = lab03::validate::dns_label_messages(name);
        if let Some(p) = problems.first() {
            bail!("node name {name:?}: {p}");
        }
        Ok(NodeDir {
            name: name.to_string(),
            root: home.root().join("nodes").join(name),
        })
    }

    /// A node in a directory of its own (a throwaway one).
    pub fn at(root: &Path, name: &str) -> NodeDir {
        NodeDir {
            name: name.to_string(),
            root: root.to_path_buf(),
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("node.json")
    }
    pub fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("daemon.log")
    }
    pub fn pod_logs(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// The manifest file of pod `name`.
    pub fn manifest(&self, name: &str) -> PathBuf {
        self.manifests().join(format!("{name}.yaml"))
    }

    pub fn read_config(&self) -> Result<NodeConfig> {
        let file = self.config_file();
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "node {} is not up (no {}): start it with `ch03 node up --name {}`",
                self.name,
                file.display(),
                self.name
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("read {}", file.display()))
    }

    pub fn write_config(&self, config: &NodeConfig) -> Result<()> {
        std::fs::create_dir_all(self.manifests())?;
        write_atomically(
            &self.config_file(),
            &serde_json::to_vec_pretty(config)?,
        )
    }

    /// The daemon's pid, if the pid file names a live process.
    pub fn live_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.pid_file()).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        // Signal 0 checks that the process exists without touching it.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).ok()?;
        // A recycled pid would be some other program: check it is a node's
        // process (`ch03` or `ch04`, both run the node; a rebuilt binary
        // shows as "(deleted)") serving this node.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        let exe = exe.to_string_lossy();
        let program = exe.trim_end_matches(" (deleted)").rsplit('/').next()?;
        let args = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = args.split(|b| *b == 0).collect();
        let serves =
            args.windows(2).any(|w| w == [&b"node"[..], &b"serve"[..]]);
        let named = args.contains(&self.name.as_bytes());
        (["ch03", "ch04"].contains(&program) && serves && named).then_some(pid)
    }
}

/// Writes `path` whole or not at all: a reader (the daemon polling the
/// manifest directory) never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file in no directory")?;
    let mut tmp = tempfile::NamedTempFile::with_prefix_in(".tmp-", dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
