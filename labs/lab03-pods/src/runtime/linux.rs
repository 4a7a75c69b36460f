//! [`LinuxRuntime`]: the CRI's RuntimeService on lab01 and lab02.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use lab01::{ContainerSpec, ExitStatus, Stdio};
use lab02::home::Home;
use lab02::layout::ImageStore;

use super::cgroups::CgroupTree;
use super::engine::EngineHandle;
use super::rootfs::RootfsMounts;
use super::{sandbox, state, PodNetwork};
use crate::cri::*;
use crate::logs::{LogWriter, Stream, MAX_LINE};
use crate::SystemClock;

/// What a [`LinuxRuntime`] needs.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Where the runtime records its sandboxes and containers (and mounts
    /// their root filesystems): one directory per node.
    pub state_dir: PathBuf,
    /// The `$KUBELINGS_HOME` whose image store and layer cache the
    /// containers' images come from.
    pub images: Home,
    /// The node's cgroup, a directory beneath this process's own; the
    /// sandboxes' `cgroup_parent`s are relative to it.
    pub cgroup_name: String,
    /// The pod network; without one, pods have loopback only and no IP.
    pub network: Option<Arc<dyn PodNetwork>>,
    /// Where an image named without a registry (`kubia:v1`) is pulled
    /// from (`198.18.0.254:5000`): a cluster's registry, as containerd's
    /// mirror for Docker Hub. `None`: such an image must be in the store.
    pub mirror: Option<String>,
}

impl RuntimeConfig {
    /// A runtime recording into `state_dir`, running images of `images`,
    /// in a node cgroup named after the state directory, without network.
    pub fn new(state_dir: impl Into<PathBuf>, images: Home) -> RuntimeConfig {
        let state_dir = state_dir.into();
        let cgroup_name = format!(
            "kubelings-node-{:016x}",
            fnv(state_dir.as_os_str().as_encoded_bytes())
        );
        RuntimeConfig {
            state_dir,
            images,
            cgroup_name,
            network: None,
            mirror: None,
        }
    }

    pub fn network(mut self, network: Arc<dyn PodNetwork>) -> RuntimeConfig {
        self.network = Some(network);
        self
    }

    pub fn mirror(mut self, registry: impl Into<String>) -> RuntimeConfig {
        self.mirror = Some(registry.into());
        self
    }

    pub fn cgroup_name(mut self, name: impl Into<String>) -> RuntimeConfig {
        self.cgroup_name = name.into();
        self
    }
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("state_dir", &self.state_dir)
            .field("images", &self.images.root())
            .field("cgroup_name", &self.cgroup_name)
            .field("network", &self.network.is_some())
            .field("mirror", &self.mirror)
            .finish()
    }
}

/// FNV-1a: a stable short name from a path.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) struct SandboxRec {
    pub config: PodSandboxConfig,
    pub state: PodSandboxState,
    pub created_at: SystemTime,
    pub ip: Option<Ipv4Addr>,
    /// While the pause runs (and is not yet reaped).
    pub pause_pid: Option<i32>,
    pub pod_cgroup: String,
    pub pause_cgroup: String,
    pub dir: PathBuf,
    pub networked: bool,
}

pub(crate) struct ContainerRec {
    pub sandbox_id: String,
    pub config: ContainerConfig,
    pub state: ContainerState,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub exit_code: Option<i32>,
    pub reason: String,
    pub message: String,
    pub image_ref: String,
    pub log_path: PathBuf,
    /// What starting it runs (prepared by create).
    pub spec: ContainerSpec,
    pub process: Option<lab01::Container>,
    pub rootfs: Option<RootfsMounts>,
    pub cgroup: String,
    pub pid: Option<i32>,
}

#[derive(Default)]
pub(crate) struct Tables {
    pub sandboxes: HashMap<String, SandboxRec>,
    pub containers: HashMap<String, ContainerRec>,
}

/// What the runtime's threads share.
pub(crate) struct Inner {
    pub config: RuntimeConfig,
    pub store: ImageStore,
    pub cgroups: CgroupTree,
    pub tables: Mutex<Tables>,
    /// Signalled whenever a container or a pause ends.
    pub changed: Condvar,
    subscribers: Mutex<Vec<Sender<ContainerEvent>>>,
    pub engine: EngineHandle,
    _lock: state::StateLock,
}

/// The CRI runtime of a node on Linux. Dropping it stops and removes
/// every sandbox and container it runs.
pub struct LinuxRuntime {
    inner: Arc<Inner>,
}

fn internal<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    context: impl Into<String>,
) -> impl FnOnce(E) -> CriError {
    let context = context.into();
    move |e| CriError::Internal {
        context,
        source: e.into(),
    }
}

fn not_found(kind: &'static str, id: &str) -> CriError {
    CriError::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// How long stopping waits for the kernel after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl LinuxRuntime {
    // ANCHOR: new
    /// Opens the node's state directory (one runtime at a time: it is
    /// locked), cleans up what a predecessor that died left there (its
    /// processes, mounts, cgroups and pod network attachments), and starts
    /// the runtime's thread.
    pub fn new(config: RuntimeConfig) -> CriResult<LinuxRuntime> {
        // Links in the constructor that turns this program into a pause.
        super::pause::touch_pause_hook();
        let lock = state::StateLock::acquire(&config.state_dir)?;
        let store =
            ImageStore::open(&config.images.images()).map_err(internal("open the image store"))?;
        let cgroups =
            CgroupTree::open(&config.cgroup_name).map_err(internal("make the node's cgroup"))?;
        state::clean_up(&config.state_dir, &cgroups, config.network.as_deref());
        let mut failed = None;
        let inner = Arc::new_cyclic(|weak| {
            let engine = EngineHandle::start(weak.clone()).unwrap_or_else(|e| {
                failed = Some(e);
                EngineHandle::dead()
            });
            Inner {
                config,
                store,
                cgroups,
                tables: Mutex::new(Tables::default()),
                changed: Condvar::new(),
                subscribers: Mutex::new(Vec::new()),
                engine,
                _lock: lock,
            }
        });
        if let Some(e) = failed {
            return Err(internal("start the runtime's thread")(e));
        }
        Ok(LinuxRuntime { inner })
    }
    // ANCHOR_END: new

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The cgroup directories of a container (one per hierarchy): where
    /// its processes are, for tests and for `ch03`'s memory figures.
    pub fn container_cgroup_dirs(&self, id: &str) -> CriResult<Vec<PathBuf>> {
        let tables = self.inner.lock();
        let rec = tables
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        Ok(self.inner.cgroups.dirs(&rec.cgroup))
    }

    /// The pod cgroup's directories of a sandbox.
    pub fn sandbox_cgroup_dirs(&self, id: &str) -> CriResult<Vec<PathBuf>> {
        let tables = self.inner.lock();
        let rec = tables
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        Ok(self.inner.cgroups.dirs(&rec.pod_cgroup))
    }

    /// Every process of the sandbox, its pause and all its containers'
    /// (for memory figures: the PSS of these is what a pod costs).
    pub fn sandbox_processes(&self, id: &str) -> CriResult<Vec<i32>> {
        let tables = self.inner.lock();
        let rec = tables
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        Ok(self.inner.cgroups.procs(&rec.pod_cgroup))
    }

    /// Stops and removes everything, then ends the runtime's thread.
    fn shut_down(&self) {
        let ids: Vec<String> = self.inner.lock().sandboxes.keys().cloned().collect();
        for id in ids {
            let _ = self.remove_pod_sandbox(&id);
        }
        let orphans: Vec<String> = self.inner.lock().containers.keys().cloned().collect();
        for id in orphans {
            let _ = self.remove_container(&id);
        }
        self.inner.engine.stop();
        let inner = &self.inner;
        state::clean_up(
            &inner.config.state_dir,
            &inner.cgroups,
            inner.config.network.as_deref(),
        );
        let _ = inner.cgroups.remove_tree("");
    }
}

impl Drop for LinuxRuntime {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, container_id: &str, sandbox_id: &str, kind: ContainerEventType) {
        let event = ContainerEvent {
            container_id: container_id.to_string(),
            sandbox_id: sandbox_id.to_string(),
            kind,
            at: SystemTime::now(),
        };
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        // A subscriber that hung up is forgotten.
        subs.retain(|tx| tx.send(event.clone()).is_ok());
    }

    // ANCHOR: container_ended
    /// On the engine thread, when a container's init has ended: reap it,
    /// kill what it left in its cgroup, and record how it ended.
    pub(crate) fn container_ended(&self, id: &str) {
        let (process, cgroup) = {
            let mut tables = self.lock();
            let Some(rec) = tables.containers.get_mut(id) else {
                return;
            };
            (rec.process.take(), rec.cgroup.clone())
        };
        let status = process.map(|mut c| c.wait());
        // Without a PID namespace of its own, the container's other
        // processes outlive its init: they go too.
        let leftovers = self.cgroups.kill_all(&cgroup);
        let oom = self.cgroups.oom_kills(&cgroup) > 0;
        let (code, reason, message) = match status {
            Some(Ok(status)) => {
                let code = status.code();
                let reason = match status {
                    ExitStatus::OomKilled => "OOMKilled",
                    _ if oom && code != 0 => "OOMKilled",
                    _ if code == 0 => "Completed",
                    _ => "Error",
                };
                (code, reason, String::new())
            }
            Some(Err(e)) => (128 + libc::SIGKILL, "Error", e.to_string()),
            None => (
                128 + libc::SIGKILL,
                "Error",
                "no process to wait for".into(),
            ),
        };
        let message = match leftovers {
            Err(e) => format!("{message} (and: {e})"),
            Ok(()) => message,
        };
        let sandbox = {
            let mut tables = self.lock();
            let Some(rec) = tables.containers.get_mut(id) else {
                return;
            };
            rec.state = ContainerState::Exited;
            rec.exit_code = Some(code);
            rec.reason = reason.to_string();
            rec.message = message.trim().to_string();
            rec.finished_at = Some(SystemTime::now());
            rec.pid = None;
            rec.sandbox_id.clone()
        };
        self.changed.notify_all();
        self.emit(id, &sandbox, ContainerEventType::Stopped);
    }
    // ANCHOR_END: container_ended

    /// On the engine thread, when a sandbox's pause has ended (and been
    /// reaped).
    pub(crate) fn pause_ended(&self, id: &str) {
        let mut tables = self.lock();
        if let Some(rec) = tables.sandboxes.get_mut(id) {
            rec.pause_pid = None;
            rec.state = PodSandboxState::NotReady;
        }
        drop(tables);
        self.changed.notify_all();
    }

    /// Waits until `done` holds for the tables, or `deadline`.
    fn wait_for(&self, deadline: Instant, done: impl Fn(&Tables) -> bool) -> bool {
        let mut tables = self.lock();
        loop {
            if done(&tables) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            tables = self
                .changed
                .wait_timeout(tables, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A new random id: 32 hex digits.
fn new_id() -> CriResult<String> {
    let mut bytes = [0u8; 16];
    let mut urandom = std::fs::File::open("/dev/urandom").map_err(internal("open /dev/urandom"))?;
    std::io::Read::read_exact(&mut urandom, &mut bytes).map_err(internal("read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The pod cgroup a sandbox asks for, relative to the node's, checked.
fn pod_cgroup(config: &PodSandboxConfig) -> CriResult<String> {
    let rel = if config.cgroup_parent.is_empty() {
        format!("kubepods/besteffort/pod{}", config.metadata.uid)
    } else {
        config.cgroup_parent.trim_matches('/').to_string()
    };
    let plain = |p: &str| !p.is_empty() && p != "." && p != "..";
    if rel.is_empty() || !rel.split('/').all(plain) {
        return Err(CriError::InvalidArgument(format!(
            "cgroup_parent {:?}: a relative path without '..'",
            config.cgroup_parent
        )));
    }
    Ok(rel)
}

fn pipe() -> CriResult<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(internal("make a pipe"))
}

impl RuntimeService for LinuxRuntime {
    fn version(&self) -> VersionResponse {
        VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "kubelings".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }
    }

    // ANCHOR: run_pod_sandbox
    fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> CriResult<String> {
        let inner = &self.inner;
        let options = config.namespace_options;
        let hostname = if config.hostname.is_empty() {
            config.metadata.name.clone()
        } else {
            config.hostname.clone()
        };
        if options.network == NamespaceMode::Pod {
            lab01::namespaces::check_hostname(&hostname)
                .map_err(|e| CriError::InvalidArgument(format!("hostname {hostname:?}: {e}")))?;
        }
        let id = new_id()?;
        let pod_cgroup = pod_cgroup(config)?;
        let pause_cgroup = format!("{pod_cgroup}/sandbox-{id}");
        let dir = inner.config.state_dir.join("sandboxes").join(&id);
        std::fs::create_dir_all(&dir).map_err(internal(format!("create {}", dir.display())))?;
        state::save_sandbox(&dir, &state::SandboxFile::new(&id, config, &pod_cgroup))?;
        inner.lock().sandboxes.insert(
            id.clone(),
            SandboxRec {
                config: config.clone(),
                state: PodSandboxState::NotReady,
                created_at: SystemTime::now(),
                ip: None,
                pause_pid: None,
                pod_cgroup: pod_cgroup.clone(),
                pause_cgroup: pause_cgroup.clone(),
                dir: dir.clone(),
                networked: false,
            },
        );
        match self.set_up_sandbox(&id, &hostname, options) {
            Ok(()) => Ok(id),
            Err(e) => {
                // Nothing half-made stays: pause, network, cgroups, files.
                let _ = self.remove_pod_sandbox(&id);
                Err(e)
            }
        }
    }
    // ANCHOR_END: run_pod_sandbox

    fn stop_pod_sandbox(&self, id: &str) -> CriResult<()> {
        let inner = &self.inner;
        let containers: Vec<String> = {
            let tables = inner.lock();
            if !tables.sandboxes.contains_key(id) {
                return Err(not_found("sandbox", id));
            }
            tables
                .containers
                .iter()
                .filter(|(_, c)| c.sandbox_id == id)
                .map(|(cid, _)| cid.clone())
                .collect()
        };
        for cid in containers {
            self.stop_container(&cid, Duration::ZERO)?;
        }
        let (pause, networked, uid) = {
            let mut tables = inner.lock();
            let Some(rec) = tables.sandboxes.get_mut(id) else {
                return Ok(());
            };
            rec.state = PodSandboxState::NotReady;
            let networked = std::mem::take(&mut rec.networked);
            (rec.pause_pid, networked, rec.config.metadata.uid.clone())
        };
        if let Some(pid) = pause {
            // Not reaped yet (the engine clears the pid when it reaps), so
            // the pid is still the pause's.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let reaped = inner.wait_for(Instant::now() + KILL_WAIT, |t| {
                t.sandboxes.get(id).is_none_or(|s| s.pause_pid.is_none())
            });
            if !reaped {
                return Err(CriError::DeadlineExceeded(KILL_WAIT));
            }
        }
        if networked {
            if let Some(network) = &inner.config.network {
                network
                    .detach(&uid)
                    .map_err(|e| internal(format!("detach pod {uid} from the network"))(e))?;
            }
        }
        Ok(())
    }

    fn remove_pod_sandbox(&self, id: &str) -> CriResult<()> {
        if !self.inner.lock().sandboxes.contains_key(id) {
            return Ok(());
        }
        self.stop_pod_sandbox(id)?;
        let containers: Vec<String> = {
            let tables = self.inner.lock();
            tables
                .containers
                .iter()
                .filter(|(_, c)| c.sandbox_id == id)
                .map(|(cid, _)| cid.clone())
                .collect()
        };
        for cid in containers {
            self.remove_container(&cid)?;
        }
        let Some(rec) = self.inner.lock().sandboxes.remove(id) else {
            return Ok(());
        };
        let cgroups = &self.inner.cgroups;
        cgroups
            .remove_tree(&rec.pod_cgroup)
            .map_err(internal(format!(
                "remove the pod cgroup {}",
                rec.pod_cgroup
            )))?;
        // The QoS class's and kubepods' cgroups go when no pod uses them.
        let mut parent = Path::new(&rec.pod_cgroup).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            cgroups.remove_if_unused(&p.to_string_lossy());
            parent = p.parent();
        }
        super::rootfs::remove_unmounted(&rec.dir);
        Ok(())
    }

    fn pod_sandbox_status(&self, id: &str) -> CriResult<PodSandboxStatus> {
        let tables = self.inner.lock();
        let rec = tables
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        Ok(PodSandboxStatus {
            id: id.to_string(),
            metadata: rec.config.metadata.clone(),
            state: rec.state,
            created_at: rec.created_at,
            ip: rec.ip,
            pid: rec.pause_pid,
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
        })
    }

    fn list_pod_sandbox(&self, filter: &PodSandboxFilter) -> CriResult<Vec<PodSandbox>> {
        let tables = self.inner.lock();
        let mut list: Vec<PodSandbox> = tables
            .sandboxes
            .iter()
            .filter(|(id, rec)| filter.matches(id, rec.state, &rec.config.labels))
            .map(|(id, rec)| PodSandbox {
                id: id.clone(),
                metadata: rec.config.metadata.clone(),
                state: rec.state,
                created_at: rec.created_at,
                labels: rec.config.labels.clone(),
                annotations: rec.config.annotations.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> CriResult<String> {
        let id = new_id()?;
        let rec = self.prepare_container(&id, sandbox_id, config, sandbox_config)?;
        self.inner.lock().containers.insert(id.clone(), rec);
        self.inner
            .emit(&id, sandbox_id, ContainerEventType::Created);
        Ok(id)
    }

    fn start_container(&self, id: &str) -> CriResult<()> {
        match self.launch(id) {
            Ok(_) => Ok(()),
            Err((e, sandbox)) => {
                if let Some(sandbox) = sandbox {
                    let mut tables = self.inner.lock();
                    if let Some(rec) = tables.containers.get_mut(id) {
                        // containerd's way: the container is over, with why.
                        rec.state = ContainerState::Exited;
                        rec.exit_code = Some(128);
                        rec.reason = "StartError".into();
                        rec.message = e.to_string();
                        rec.finished_at = Some(SystemTime::now());
                    }
                    drop(tables);
                    self.inner.emit(id, &sandbox, ContainerEventType::Stopped);
                }
                Err(e)
            }
        }
    }

    // ANCHOR: stop_container
    fn stop_container(&self, id: &str, timeout: Duration) -> CriResult<()> {
        let inner = &self.inner;
        let running = |t: &Tables| {
            t.containers
                .get(id)
                .is_some_and(|c| c.state == ContainerState::Running)
        };
        let cgroup = {
            let tables = inner.lock();
            let rec = tables
                .containers
                .get(id)
                .ok_or_else(|| not_found("container", id))?;
            if rec.state != ContainerState::Running {
                return Ok(());
            }
            if !timeout.is_zero() {
                // Init passes it on to the command.
                if let Some(process) = &rec.process {
                    let _ = process.signal(nix::sys::signal::Signal::SIGTERM);
                }
            }
            rec.cgroup.clone()
        };
        let grace = Instant::now() + timeout;
        if !timeout.is_zero() && inner.wait_for(grace, |t| !running(t)) {
            return Ok(());
        }
        // The grace period is over: every process of the container, not
        // just its init, gets SIGKILL.
        let what = format!("kill the processes of container {id}");
        inner.cgroups.kill_all(&cgroup).map_err(internal(what))?;
        if inner.wait_for(Instant::now() + KILL_WAIT, |t| !running(t)) {
            Ok(())
        } else {
            Err(CriError::DeadlineExceeded(KILL_WAIT))
        }
    }
    // ANCHOR_END: stop_container

    fn remove_container(&self, id: &str) -> CriResult<()> {
        if !self.inner.lock().containers.contains_key(id) {
            return Ok(());
        }
        self.stop_container(id, Duration::ZERO)?;
        let Some(mut rec) = self.inner.lock().containers.remove(id) else {
            return Ok(());
        };
        if let Some(mut rootfs) = rec.rootfs.take() {
            rootfs.unmount();
        }
        drop(rec.process.take());
        self.inner
            .cgroups
            .remove_tree(&rec.cgroup)
            .map_err(internal(format!("remove the cgroup of container {id}")))?;
        let dir = self.inner.config.state_dir.join("containers").join(id);
        super::rootfs::remove_unmounted(&dir);
        self.inner
            .emit(id, &rec.sandbox_id, ContainerEventType::Deleted);
        Ok(())
    }

    fn container_status(&self, id: &str) -> CriResult<ContainerStatus> {
        let tables = self.inner.lock();
        let rec = tables
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        Ok(ContainerStatus {
            id: id.to_string(),
            sandbox_id: rec.sandbox_id.clone(),
            metadata: rec.config.metadata.clone(),
            state: rec.state,
            created_at: rec.created_at,
            started_at: rec.started_at,
            finished_at: rec.finished_at,
            exit_code: rec.exit_code,
            image: rec.config.image.clone(),
            image_ref: rec.image_ref.clone(),
            reason: rec.reason.clone(),
            message: rec.message.clone(),
            pid: rec.pid,
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
            log_path: rec.log_path.clone(),
        })
    }

    fn list_containers(&self, filter: &ContainerFilter) -> CriResult<Vec<ContainerInfo>> {
        let tables = self.inner.lock();
        let mut list: Vec<ContainerInfo> = tables
            .containers
            .iter()
            .filter(|(id, rec)| filter.matches(id, &rec.sandbox_id, rec.state, &rec.config.labels))
            .map(|(id, rec)| ContainerInfo {
                id: id.clone(),
                sandbox_id: rec.sandbox_id.clone(),
                metadata: rec.config.metadata.clone(),
                image: rec.config.image.clone(),
                image_ref: rec.image_ref.clone(),
                state: rec.state,
                created_at: rec.created_at,
                labels: rec.config.labels.clone(),
                annotations: rec.config.annotations.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> CriResult<ExecSyncResponse> {
        super::exec::exec_sync(self, id, cmd, timeout)
    }

    fn exec(&self, id: &str, request: &ExecRequest) -> CriResult<ExecSession> {
        super::exec::exec(self, id, request)
    }

    fn events(&self) -> Receiver<ContainerEvent> {
        let (tx, rx) = mpsc::channel();
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }
}

impl LinuxRuntime {
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The pause, its cgroup, the pod network and the pod's files.
    fn set_up_sandbox(&self, id: &str, hostname: &str, options: NamespaceOption) -> CriResult<()> {
        let inner = &self.inner;
        let (pod_cgroup, pause_cgroup, dir, config) = {
            let tables = inner.lock();
            let rec = tables
                .sandboxes
                .get(id)
                .ok_or_else(|| not_found("sandbox", id))?;
            (
                rec.pod_cgroup.clone(),
                rec.pause_cgroup.clone(),
                rec.dir.clone(),
                rec.config.clone(),
            )
        };
        inner
            .cgroups
            .create(&pod_cgroup)
            .map_err(internal(format!("make the pod cgroup {pod_cgroup}")))?;
        let dirs = inner
            .cgroups
            .create(&pause_cgroup)
            .map_err(internal(format!("make the sandbox cgroup {pause_cgroup}")))?;
        let flags = sandbox::sandbox_clone_flags(&options);
        let name = (options.network == NamespaceMode::Pod).then(|| hostname.to_string());
        let sandbox = id.to_string();
        let weak = Arc::downgrade(inner);
        let proc = (options.pid == NamespaceMode::Pod).then(|| dir.join("proc"));
        let pid = inner.engine.call(move |engine| -> CriResult<i32> {
            let pause = super::pause::spawn(flags, name.as_deref(), proc.as_deref(), &dirs)
                .map_err(internal("start the sandbox's pause"))?;
            let pid = pause.pid;
            if let Some(inner) = weak.upgrade() {
                if let Some(rec) = inner.lock().sandboxes.get_mut(&sandbox) {
                    rec.pause_pid = Some(pid);
                }
            }
            engine.watch_pause(&sandbox, pid, pause.pidfd)?;
            Ok(pid)
        })??;
        let mut ip = None;
        if options.network == NamespaceMode::Pod {
            if let Some(network) = &inner.config.network {
                let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
                if let Some(rec) = inner.lock().sandboxes.get_mut(id) {
                    rec.networked = true;
                }
                let uid = &config.metadata.uid;
                ip = Some(
                    network
                        .attach(uid, &netns)
                        .map_err(|e| internal(format!("attach pod {uid} to the network"))(e))?,
                );
            }
        }
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(internal(format!("write {}", path.display())))
        };
        write("hosts", sandbox::hosts_file(ip, hostname))?;
        write("hostname", format!("{hostname}\n"))?;
        write(
            "resolv.conf",
            sandbox::resolv_conf(config.dns_config.as_ref()),
        )?;
        let mut tables = inner.lock();
        let rec = tables
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        rec.ip = ip;
        if rec.pause_pid.is_none() {
            return Err(CriError::Internal {
                context: format!("sandbox {id}"),
                source: "its pause ended while it was being set up".into(),
            });
        }
        rec.state = PodSandboxState::Ready;
        Ok(())
    }

    // ANCHOR: prepare_container
    /// What create_container does: the root filesystem from the image,
    /// the pod's files and volumes mounted into it, and the lab01 spec
    /// that joins the sandbox.
    fn prepare_container(
        &self,
        id: &str,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> CriResult<ContainerRec> {
        let inner = &self.inner;
        let (pause, options, pod_cgroup, sandbox_dir, hostname, log_dir) = {
            let tables = inner.lock();
            let sb = tables
                .sandboxes
                .get(sandbox_id)
                .ok_or_else(|| not_found("sandbox", sandbox_id))?;
            let wrong = |state: &str| CriError::WrongState {
                kind: "sandbox",
                id: sandbox_id.to_string(),
                state: state.to_string(),
                wanted: "Ready",
            };
            let pause = match (sb.state, sb.pause_pid) {
                (PodSandboxState::Ready, Some(pid)) => pid,
                _ => return Err(wrong("NotReady")),
            };
            let taken = tables.containers.values().any(|c| {
                c.sandbox_id == sandbox_id
                    && c.config.metadata.name == config.metadata.name
                    && c.config.metadata.attempt == config.metadata.attempt
            });
            if taken {
                return Err(CriError::InvalidArgument(format!(
                    "the name {:?} (attempt {}) is already in use in sandbox {sandbox_id}",
                    config.metadata.name, config.metadata.attempt
                )));
            }
            let hostname = std::fs::read_to_string(sb.dir.join("hostname")).unwrap_or_default();
            let log_dir = if sb.config.log_directory.as_os_str().is_empty() {
                sandbox_config.log_directory.clone()
            } else {
                sb.config.log_directory.clone()
            };
            (
                pause,
                sb.config.namespace_options,
                sb.pod_cgroup.clone(),
                sb.dir.clone(),
                hostname.trim().to_string(),
                log_dir,
            )
        };
        if config.metadata.name.is_empty() {
            return Err(CriError::InvalidArgument(
                "the container has no name".into(),
            ));
        }
        let dir = inner.config.state_dir.join("containers").join(id);
        std::fs::create_dir_all(&dir).map_err(internal(format!("create {}", dir.display())))?;
        let made = (|| {
            state::save_container(&dir, &state::ContainerFile::new(id, sandbox_id))?;
            let (mut rootfs, exec, image_ref) = super::rootfs::mount_image(
                &inner.config.images,
                &inner.store,
                &config.image,
                &dir,
            )?;
            for file in ["hosts", "hostname", "resolv.conf"] {
                rootfs.bind(&sandbox_dir.join(file), &format!("/etc/{file}"), false)?;
            }
            rootfs.bind_all(&config.mounts)?;
            let mut spec =
                container_spec(&exec, rootfs.path(), config, &hostname, pause, &options)?;
            if options.pid == NamespaceMode::Pod {
                spec.proc_source = Some(sandbox_dir.join("proc"));
            }
            Ok::<_, CriError>((rootfs, spec, image_ref))
        })();
        let (rootfs, spec, image_ref) = match made {
            Ok(made) => made,
            Err(e) => {
                super::rootfs::remove_unmounted(&dir);
                return Err(e);
            }
        };
        Ok(ContainerRec {
            sandbox_id: sandbox_id.to_string(),
            config: config.clone(),
            state: ContainerState::Created,
            created_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: String::new(),
            message: String::new(),
            image_ref,
            log_path: log_dir.join(&config.log_path),
            spec,
            process: None,
            rootfs: Some(rootfs),
            cgroup: format!("{pod_cgroup}/{id}"),
            pid: None,
        })
    }
    // ANCHOR_END: prepare_container

    // ANCHOR: launch
    /// What start_container does. On failure also says which sandbox the
    /// container was in, if it got that far.
    fn launch(&self, id: &str) -> Result<String, (CriError, Option<String>)> {
        let inner = &self.inner;
        let (spec, cgroup, resources, log_path, sandbox) = {
            let tables = inner.lock();
            let rec = tables
                .containers
                .get(id)
                .ok_or_else(|| (not_found("container", id), None))?;
            if rec.state != ContainerState::Created {
                let state = format!("{:?}", rec.state);
                let e = CriError::WrongState {
                    kind: "container",
                    id: id.to_string(),
                    state,
                    wanted: "Created",
                };
                return Err((e, None));
            }
            (
                rec.spec.clone(),
                rec.cgroup.clone(),
                rec.config.resources,
                rec.log_path.clone(),
                rec.sandbox_id.clone(),
            )
        };
        let failed = |e: CriError| (e, Some(sandbox.clone()));
        let dirs = inner
            .cgroups
            .create(&cgroup)
            .map_err(internal(format!("make the container cgroup {cgroup}")))
            .map_err(failed)?;
        inner
            .cgroups
            .apply(&cgroup, &resources)
            .map_err(internal(format!("set the resources of {cgroup}")))
            .map_err(failed)?;
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(internal(format!("create {}", parent.display())))
                .map_err(failed)?;
        }
        // A new attempt gets a new file; the last one's stays (`--previous`).
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(internal(format!("open the log {}", log_path.display())))
            .map_err(failed)?;
        let log = Arc::new(LogWriter::new(file, SystemClock, MAX_LINE));
        let (out_read, out_write) = pipe().map_err(failed)?;
        let (err_read, err_write) = pipe().map_err(failed)?;
        let devnull = std::fs::File::open("/dev/null")
            .map_err(internal("open /dev/null"))
            .map_err(failed)?;
        let spec = spec
            .stdio(
                Stdio::Fd(devnull.as_raw_fd()),
                Stdio::Fd(out_write.as_raw_fd()),
                Stdio::Fd(err_write.as_raw_fd()),
            )
            .cgroup_dirs(dirs);
        let weak = Arc::downgrade(inner);
        let container = id.to_string();
        let sandbox_id = sandbox.clone();
        let started = inner.engine.call(move |engine| -> CriResult<()> {
            let spawned = lab01::Container::spawn(&spec);
            // Only the container may hold the write ends now, so its exit
            // ends the streams.
            drop((out_write, err_write, devnull));
            let process = spawned.map_err(|e| CriError::Internal {
                context: format!("start container {container}"),
                source: Box::new(e),
            })?;
            let status = process
                .status_fd()
                .try_clone_to_owned()
                .map_err(internal("copy a descriptor"))?;
            let pid = process.pid();
            let Some(inner) = weak.upgrade() else {
                return Ok(());
            };
            {
                let mut tables = inner.lock();
                let rec = tables
                    .containers
                    .get_mut(&container)
                    .ok_or_else(|| not_found("container", &container))?;
                rec.process = Some(process);
                rec.state = ContainerState::Running;
                rec.pid = Some(pid);
                rec.started_at = Some(SystemTime::now());
            }
            engine.watch_log(&container, Stream::Stdout, out_read, log.clone())?;
            engine.watch_log(&container, Stream::Stderr, err_read, log)?;
            engine.watch_exit(&container, status)?;
            // Here, on the thread that reports its exit: Started always
            // comes before Stopped.
            inner.emit(&container, &sandbox_id, ContainerEventType::Started);
            Ok(())
        });
        match started {
            Ok(Ok(())) => Ok(sandbox),
            Ok(Err(e)) | Err(e) => {
                let _ = inner.cgroups.remove_tree(&cgroup);
                Err(failed(e))
            }
        }
    }
    // ANCHOR_END: launch
}

// ANCHOR: container_spec
/// The lab01 container a CRI container config describes: the image's
/// ENTRYPOINT and CMD unless the pod's `command` and `args` replace them
/// (as the kubelet does), the image's environment then the pod's, the
/// pod's namespaces joined and its own mount, cgroup (and maybe PID)
/// namespaces made.
fn container_spec(
    exec: &lab02::spec::ExecConfig,
    rootfs: &Path,
    config: &ContainerConfig,
    hostname: &str,
    pause: i32,
    options: &NamespaceOption,
) -> CriResult<ContainerSpec> {
    let mut args = if config.command.is_empty() {
        exec.entrypoint.clone().unwrap_or_default()
    } else {
        config.command.clone()
    };
    if !config.args.is_empty() {
        args.extend(config.args.iter().cloned());
    } else if config.command.is_empty() {
        args.extend(exec.cmd.clone().unwrap_or_default());
    }
    let mut spec = lab02::run::container_spec_from(exec, rootfs, Some(args)).map_err(|e| {
        CriError::InvalidArgument(format!("container {:?}: {e}", config.metadata.name))
    })?;
    let mut env = spec.env.clone();
    let mut set = |name: &str, value: &str| {
        env.retain(|v| v.split_once('=').map(|(n, _)| n) != Some(name));
        env.push(format!("{name}={value}"));
    };
    set("HOSTNAME", hostname);
    for (name, value) in &config.envs {
        set(name, value);
    }
    spec.env = env;
    if let Some(dir) = config.working_dir.as_ref().filter(|d| !d.is_empty()) {
        spec.cwd = dir.clone();
    }
    spec.hostname = None;
    spec.namespaces = sandbox::own_namespaces(options);
    spec.join = Vec::new();
    for (kind, path) in sandbox::sandbox_joins(pause, options) {
        spec = spec.join(kind, path);
    }
    Ok(spec)
}
// ANCHOR_END: container_spec
