//! The node on Linux: h3's network, h4's runtime, h5's pod workers, and
//! the loop that steps the workers (see [`crate::backend`]).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use lab03::backoff::BackoffPolicy;
use lab03::cri::{ImageService, RuntimeService};
use lab03::kubelet::{NodeLayout, PodWorker, WorkerOptions};
use lab03::network::NodeNetwork;
use lab03::runtime::{LinuxRuntime, NetworkError, RuntimeConfig};

use crate::backend::{Backend, Settings};
use crate::protocol::PodView;

/// The node's network as the runtime's pod network plugin (what CNI is
/// to containerd).
struct Plugin(Arc<NodeNetwork>);

impl lab03::runtime::PodNetwork for Plugin {
    fn attach(
        &self,
        uid: &str,
        netns: &Path,
    ) -> Result<std::net::Ipv4Addr, NetworkError> {
        Ok(self.0.attach(uid, netns)?.ip)
    }
    fn detach(&self, uid: &str) -> Result<(), NetworkError> {
        self.0.detach(uid)?;
        Ok(())
    }
}

/// What wakes the loop.
enum Wake {
    /// A runtime event for this sandbox.
    Sandbox(String),
    /// A job of this pod (by uid) finished.
    Pod(String),
    /// Something changed the set of workers.
    Changed,
    Stop,
}

#[derive(Default)]
struct Workers {
    by_uid: BTreeMap<String, PodWorker>,
    /// When each asked to be synced again.
    due: BTreeMap<String, SystemTime>,
}

struct Shared {
    workers: Mutex<Workers>,
    /// Signalled after each round of syncs (removals wait on it).
    synced: Condvar,
}

pub struct Linux {
    network: Arc<NodeNetwork>,
    /// Taken (and so dropped, which removes the node's cgroup) by
    /// `shutdown`.
    runtime: Mutex<Option<Arc<LinuxRuntime>>>,
    options: WorkerOptions,
    shared: Arc<Shared>,
    wake: Sender<Wake>,
    driver: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Starts a node: the network (found again if a killed node left it), the
/// runtime (which cleans up what a killed predecessor left), the loop.
pub fn start(settings: &Settings) -> Result<Box<dyn Backend>> {
    let dir = &settings.dir;
    let network =
        NodeNetwork::open_or_create(dir, &settings.name, settings.cidr)
            .with_context(|| format!("node {}: its network", settings.name))?;
    let network = Arc::new(network);
    let config =
        RuntimeConfig::new(dir.join("runtime"), settings.images.clone())
            .network(Arc::new(Plugin(network.clone())));
    let runtime = Arc::new(LinuxRuntime::new(config).context("the runtime")?);
    let (wake, rx) = channel();
    let mut options =
        WorkerOptions::new(NodeLayout::under(&dir.join("kubelet")));
    options.backoff = BackoffPolicy {
        initial: settings.backoff_base,
        ..BackoffPolicy::KUBELET
    };
    options.host_ip = Some(network.gateway());
    options.environment = settings.environment.clone();
    {
        let wake = wake.clone();
        options.waker = Arc::new(move |uid: &str| {
            let _ = wake.send(Wake::Pod(uid.to_string()));
        });
        // httpGet and tcpSocket probes come from the node, as the
        // kubelet's do: from inside the node's network namespace.
        let net = network.clone();
        options.connector =
            Arc::new(move |addr: SocketAddr, timeout: Duration| {
                net.run_in(|| TcpStream::connect_timeout(&addr, timeout))
                    .map_err(std::io::Error::other)?
            });
    }
    let shared = Arc::new(Shared {
        workers: Mutex::new(Workers::default()),
        synced: Condvar::new(),
    });
    let events = runtime.events();
    {
        let wake = wake.clone();
        std::thread::spawn(move || forward(events, wake));
    }
    let driver = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("node-sync".into())
            .spawn(move || drive(&shared, rx))?
    };
    Ok(Box::new(Linux {
        network,
        runtime: Mutex::new(Some(runtime)),
        options,
        shared,
        wake,
        driver: Mutex::new(Some(driver)),
    }))
}

fn forward(events: Receiver<lab03::cri::ContainerEvent>, wake: Sender<Wake>) {
    for e in events {
        if wake.send(Wake::Sandbox(e.sandbox_id)).is_err() {
            return;
        }
    }
}

// ANCHOR: drive
/// The sync loop: waits for a reason, syncs the workers it concerns.
fn drive(shared: &Shared, rx: Receiver<Wake>) {
    const RELIST: Duration = Duration::from_secs(1);
    let mut last_all = SystemTime::now();
    loop {
        let next = {
            let w = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
            w.due.values().min().copied()
        };
        let now = SystemTime::now();
        let wait = next
            .map(|t| t.duration_since(now).unwrap_or_default())
            .unwrap_or(RELIST)
            .min(RELIST);
        let first = match rx.recv_timeout(wait) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(w) => Some(w),
            Err(RecvTimeoutError::Timeout) => None,
        };
        // Whatever else has come meanwhile is handled in the same round.
        let mut wakes: Vec<Wake> = first.into_iter().collect();
        while let Ok(w) = rx.try_recv() {
            if matches!(w, Wake::Stop) {
                return;
            }
            wakes.push(w);
        }
        let mut w = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        let all = now.duration_since(last_all).unwrap_or_default() >= RELIST
            || wakes.iter().any(|w| matches!(w, Wake::Changed));
        if all {
            last_all = now;
        }
        let uids: Vec<String> = w.by_uid.keys().cloned().collect();
        for uid in uids {
            let Workers { by_uid, due } = &mut *w;
            let Some(worker) = by_uid.get_mut(&uid) else {
                continue;
            };
            let named = wakes.iter().any(|k| match k {
                Wake::Pod(u) => *u == uid,
                Wake::Sandbox(s) => worker.sandbox_id() == Some(s.as_str()),
                _ => false,
            });
            let is_due = due.get(&uid).is_some_and(|t| *t <= now);
            if !(all || named || is_due) {
                continue;
            }
            match worker.sync() {
                Some(t) => due.insert(uid.clone(), t),
                None => due.remove(&uid),
            };
        }
        shared.synced.notify_all();
    }
}
// ANCHOR_END: drive

fn event_of(pod: &Pod, e: &lab03::kubelet::PodEvent) -> Event {
    Event {
        metadata: ObjectMeta::default(),
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            field_path: e.field_path.clone(),
            ..Default::default()
        },
        type_: Some(e.type_.as_str().to_string()),
        reason: Some(e.reason.clone()),
        message: Some(e.message.clone()),
        count: Some(e.count as i32),
        first_timestamp: Some(Time(e.first_at.into())),
        last_timestamp: Some(Time(e.last_at.into())),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: None,
        }),
        ..Default::default()
    }
}

impl Linux {
    fn rt(&self) -> Result<Arc<LinuxRuntime>> {
        let rt = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
        rt.clone().context("the node is shut down")
    }

    fn find_uid(
        &self,
        w: &Workers,
        namespace: &str,
        name: &str,
    ) -> Option<String> {
        w.by_uid
            .iter()
            .find(|(_, k)| {
                let m = &k.pod().metadata;
                m.name.as_deref() == Some(name)
                    && m.namespace.as_deref() == Some(namespace)
            })
            .map(|(uid, _)| uid.clone())
    }

    /// Terminates a worker and waits until it is done; then forgets it.
    fn terminate(&self, uid: &str, grace: Option<Duration>) -> Result<()> {
        {
            let mut w = self
                .shared
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(worker) = w.by_uid.get_mut(uid) {
                worker.terminate(grace);
            }
        }
        let _ = self.wake.send(Wake::Pod(uid.to_string()));
        let mut w = self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            match w.by_uid.get(uid) {
                None => return Ok(()),
                Some(worker) if worker.is_terminated() => {
                    w.by_uid.remove(uid);
                    w.due.remove(uid);
                    return Ok(());
                }
                Some(_) => {}
            }
            if std::time::Instant::now() > deadline {
                bail!("pod {uid} did not stop");
            }
            let (guard, _) = self
                .shared
                .synced
                .wait_timeout(w, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner());
            w = guard;
        }
    }
}

impl Backend for Linux {
    fn network(&self) -> Option<Arc<NodeNetwork>> {
        Some(self.network.clone())
    }

    fn add(&self, pod: Pod) -> Result<()> {
        let uid = pod.metadata.uid.clone().context("a pod without a uid")?;
        let rt = self.rt()?;
        let runtime: Arc<dyn RuntimeService> = rt.clone();
        let images: Arc<dyn ImageService> = rt;
        let worker =
            PodWorker::new(pod, runtime, images, self.options.clone())?;
        let mut w = self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        w.by_uid.insert(uid, worker);
        drop(w);
        let _ = self.wake.send(Wake::Changed);
        Ok(())
    }

    fn remove(&self, namespace: &str, name: &str) -> Result<()> {
        let uid = {
            let w = self
                .shared
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.find_uid(&w, namespace, name)
        };
        match uid {
            Some(uid) => self.terminate(&uid, None),
            None => Ok(()),
        }
    }

    fn pods(&self) -> Vec<PodView> {
        let w = self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        w.by_uid
            .values()
            .map(|k| {
                let pod = k.pod_with_status();
                let m = &pod.metadata;
                let log_dir = lab03::logs::pod_log_dir(
                    &self.options.layout.log_root,
                    m.namespace.as_deref().unwrap_or("default"),
                    m.name.as_deref().unwrap_or_default(),
                    k.uid(),
                );
                let events = k
                    .events()
                    .list()
                    .iter()
                    .map(|e| event_of(&pod, e))
                    .collect();
                PodView {
                    pod,
                    events,
                    log_dir,
                }
            })
            .collect()
    }

    fn container_id(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<String> {
        let w = self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let uid = self
            .find_uid(&w, namespace, pod)
            .with_context(|| format!("pods {pod:?} not found"))?;
        let worker = &w.by_uid[&uid];
        let name = match container {
            Some(c) => c.to_string(),
            None => worker
                .pod()
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
                .context("a pod without containers")?,
        };
        let (current, _) = worker.container_ids(&name).with_context(|| {
            format!("container {name} is not valid for pod {pod}")
        })?;
        let id = current.with_context(|| {
            format!("container {name:?} in pod {pod:?} is not running")
        })?;
        Ok(id.to_string())
    }

    fn runtime(&self) -> Result<Arc<dyn RuntimeService>> {
        Ok(self.rt()?)
    }

    fn shutdown(&self) -> Result<()> {
        let uids: Vec<String> = {
            let w = self
                .shared
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            w.by_uid.keys().cloned().collect()
        };
        // Every pod at once, each with its own grace period.
        {
            let mut w = self
                .shared
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for worker in w.by_uid.values_mut() {
                worker.terminate(None);
            }
        }
        let mut result = Ok(());
        for uid in &uids {
            if let Err(e) = self.terminate(uid, None) {
                result = Err(e);
            }
        }
        let _ = self.wake.send(Wake::Stop);
        if let Some(t) =
            self.driver.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = t.join();
        }
        // Whatever the workers left (nothing, normally), then the runtime
        // itself (dropping it removes the node's cgroup), then the network.
        let rt = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            for s in rt.list_pod_sandbox(&Default::default())? {
                let _ = rt.stop_pod_sandbox(&s.id);
                let _ = rt.remove_pod_sandbox(&s.id);
            }
            let dir = rt.config().state_dir.parent().map(Path::to_path_buf);
            drop(rt);
            if let Some(dir) = dir {
                let _ = &self.network;
                NodeNetwork::remove(&dir)?;
            }
        }
        result
    }
}
