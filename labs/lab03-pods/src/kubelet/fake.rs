//! An in-memory runtime: [`RuntimeService`] and [`ImageService`] with no
//! processes behind them, for testing the node agent anywhere, fast.
//!
//! Tests script it: which images the store holds or a pull would find,
//! how long each container runs and how it ends (an exit code, an OOM
//! kill), what an exec answers, which creations fail. Exits happen on the
//! clock the fake is given: a container scripted to run five seconds has
//! exited once the clock reads five seconds past its start, and the fake
//! then sends its `Stopped` event. Every call is logged for tests that
//! check the order of things (`calls`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::backoff::{go_duration, Clock};
use crate::cri::*;

/// How a scripted container instance ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exits with this code.
    Code(i32),
    /// The OOM killer ends it (SIGKILL: 137, reason `OOMKilled`).
    Oom,
}

/// What an exec answers, from the command.
pub type ExecFn = Arc<dyn Fn(&[String]) -> CriResult<ExecSyncResponse> + Send + Sync>;

struct FakeSandbox {
    config: PodSandboxConfig,
    state: PodSandboxState,
    created_at: SystemTime,
    ip: Ipv4Addr,
}

struct FakeContainer {
    sandbox_id: String,
    config: ContainerConfig,
    log_directory: PathBuf,
    state: ContainerState,
    created_at: SystemTime,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    exit_code: Option<i32>,
    reason: String,
    /// When it ends by itself, if scripted.
    ends: Option<(Duration, Exit)>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    sandboxes: BTreeMap<String, FakeSandbox>,
    containers: BTreeMap<String, FakeContainer>,
    subscribers: Vec<Sender<ContainerEvent>>,
    images: BTreeMap<String, Image>,
    pullable: BTreeSet<String>,
    runs: HashMap<String, Vec<(Duration, Exit)>>,
    exec: HashMap<String, ExecFn>,
    create_errors: HashMap<String, String>,
    ignore_sigterm: HashSet<String>,
    calls: Vec<String>,
}

/// The fake runtime.
pub struct FakeRuntime {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

/// A stable fake digest for an image reference.
pub fn fake_digest(reference: &str) -> String {
    // FNV-1a, spread over 64 hex digits: stable, and not a real digest.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in reference.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("sha256:{h:016x}{h:016x}{h:016x}{h:016x}")
}

impl FakeRuntime {
    /// An empty runtime on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<FakeRuntime> {
        Arc::new(FakeRuntime {
            clock,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts an image in the store.
    pub fn add_image(&self, reference: &str) {
        let image = Image {
            id: fake_digest(reference),
            repo_tags: vec![reference.to_string()],
            size: 1 << 20,
        };
        self.lock().images.insert(reference.to_string(), image);
    }

    /// Makes a pull of `reference` succeed (it is in some registry).
    pub fn add_pullable(&self, reference: &str) {
        self.lock().pullable.insert(reference.to_string());
    }

    /// Each instance of containers named `name` runs `runs[n]` (the n-th
    /// start; the last one repeats): for the duration, then ends so.
    pub fn script(&self, name: &str, runs: &[(Duration, Exit)]) {
        self.lock().runs.insert(name.to_string(), runs.to_vec());
    }

    /// What exec in containers named `name` answers.
    pub fn on_exec(&self, name: &str, f: ExecFn) {
        self.lock().exec.insert(name.to_string(), f);
    }

    /// Creating containers named `name` fails with `message`
    /// (`None`: creating works again).
    pub fn fail_create(&self, name: &str, message: Option<&str>) {
        let mut s = self.lock();
        match message {
            Some(m) => s.create_errors.insert(name.to_string(), m.to_string()),
            None => s.create_errors.remove(name),
        };
    }

    /// Containers named `name` ignore SIGTERM: a stop kills them after its
    /// grace period (exit 137 instead of 143).
    pub fn ignore_sigterm(&self, name: &str) {
        self.lock().ignore_sigterm.insert(name.to_string());
    }

    /// Ends the running containers named `name` now.
    pub fn exit(&self, name: &str, how: Exit) {
        let now = self.clock.now();
        let mut s = self.lock();
        let ids: Vec<String> = s
            .containers
            .iter()
            .filter(|(_, c)| c.config.metadata.name == name && c.state == ContainerState::Running)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            finish(&mut s, &id, now, how);
        }
    }

    /// The calls so far, one line each: `start_container web#1`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// How many sandboxes and containers it holds.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.sandboxes.len(), s.containers.len())
    }

    /// Applies the scripted exits that are due by now.
    fn tick(&self) -> MutexGuard<'_, State> {
        let now = self.clock.now();
        let mut s = self.lock();
        let due: Vec<(String, SystemTime, Exit)> = s
            .containers
            .iter()
            .filter(|(_, c)| c.state == ContainerState::Running)
            .filter_map(|(id, c)| {
                let (after, how) = c.ends?;
                let at = c.started_at? + after;
                (at <= now).then(|| (id.clone(), at, how))
            })
            .collect();
        for (id, at, how) in due {
            finish(&mut s, &id, at, how);
        }
        s
    }
}

/// Container `id`, which exec needs running.
fn running<'a>(s: &'a State, id: &str) -> CriResult<&'a FakeContainer> {
    let c = s
        .containers
        .get(id)
        .ok_or_else(|| not_found("container", id))?;
    if c.state != ContainerState::Running {
        return Err(CriError::WrongState {
            kind: "container",
            id: id.to_string(),
            state: format!("{:?}", c.state),
            wanted: "Running",
        });
    }
    Ok(c)
}

fn name_of(c: &FakeContainer) -> String {
    format!("{}#{}", c.config.metadata.name, c.config.metadata.attempt)
}

fn send(
    s: &mut State,
    container_id: &str,
    sandbox_id: &str,
    kind: ContainerEventType,
    at: SystemTime,
) {
    let event = ContainerEvent {
        container_id: container_id.to_string(),
        sandbox_id: sandbox_id.to_string(),
        kind,
        at,
    };
    s.subscribers.retain(|tx| tx.send(event.clone()).is_ok());
}

fn finish(s: &mut State, id: &str, at: SystemTime, how: Exit) {
    let Some(c) = s.containers.get_mut(id) else {
        return;
    };
    c.state = ContainerState::Exited;
    c.finished_at = Some(at);
    let (code, reason) = match how {
        Exit::Code(code) => (code, if code == 0 { "Completed" } else { "Error" }),
        Exit::Oom => (137, "OOMKilled"),
    };
    c.exit_code = Some(code);
    c.reason = reason.to_string();
    let sandbox = c.sandbox_id.clone();
    send(s, id, &sandbox, ContainerEventType::Stopped, at);
}

fn not_found(kind: &'static str, id: &str) -> CriError {
    CriError::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl RuntimeService for FakeRuntime {
    fn version(&self) -> VersionResponse {
        VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "0.1.0".into(),
            runtime_api_version: "v1".into(),
        }
    }

    fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> CriResult<String> {
        let now = self.clock.now();
        let mut s = self.lock();
        s.next_id += 1;
        let n = s.next_id;
        let id = format!("sandbox{n}");
        // Pod IPs as node 1 hands them out, in its pod range.
        let ip = Ipv4Addr::new(198, 18, 1, (1 + s.sandboxes.len() % 250) as u8 + 1);
        s.calls
            .push(format!("run_pod_sandbox {}", config.metadata.name));
        s.sandboxes.insert(
            id.clone(),
            FakeSandbox {
                config: config.clone(),
                state: PodSandboxState::Ready,
                created_at: now,
                ip,
            },
        );
        Ok(id)
    }

    fn stop_pod_sandbox(&self, id: &str) -> CriResult<()> {
        let now = self.clock.now();
        let mut s = self.tick();
        let name = s
            .sandboxes
            .get(id)
            .map(|b| b.config.metadata.name.clone())
            .ok_or_else(|| not_found("sandbox", id))?;
        s.calls.push(format!("stop_pod_sandbox {name}"));
        let running: Vec<String> = s
            .containers
            .iter()
            .filter(|(_, c)| c.sandbox_id == id && c.state == ContainerState::Running)
            .map(|(cid, _)| cid.clone())
            .collect();
        for cid in running {
            finish(&mut s, &cid, now, Exit::Code(137));
        }
        if let Some(b) = s.sandboxes.get_mut(id) {
            b.state = PodSandboxState::NotReady;
        }
        Ok(())
    }

    fn remove_pod_sandbox(&self, id: &str) -> CriResult<()> {
        let mut s = self.lock();
        let Some(b) = s.sandboxes.remove(id) else {
            return Ok(());
        };
        s.calls
            .push(format!("remove_pod_sandbox {}", b.config.metadata.name));
        s.containers.retain(|_, c| c.sandbox_id != id);
        Ok(())
    }

    fn pod_sandbox_status(&self, id: &str) -> CriResult<PodSandboxStatus> {
        let s = self.lock();
        let b = s
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        Ok(PodSandboxStatus {
            id: id.to_string(),
            metadata: b.config.metadata.clone(),
            state: b.state,
            created_at: b.created_at,
            ip: Some(b.ip),
            pid: None,
            labels: b.config.labels.clone(),
            annotations: b.config.annotations.clone(),
        })
    }

    fn list_pod_sandbox(&self, filter: &PodSandboxFilter) -> CriResult<Vec<PodSandbox>> {
        let s = self.lock();
        Ok(s.sandboxes
            .iter()
            .filter(|(id, b)| filter.matches(id, b.state, &b.config.labels))
            .map(|(id, b)| PodSandbox {
                id: id.clone(),
                metadata: b.config.metadata.clone(),
                state: b.state,
                created_at: b.created_at,
                labels: b.config.labels.clone(),
                annotations: b.config.annotations.clone(),
            })
            .collect())
    }

    fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> CriResult<String> {
        let now = self.clock.now();
        let mut s = self.lock();
        let name = &config.metadata.name;
        s.calls.push(format!(
            "create_container {name}#{}",
            config.metadata.attempt
        ));
        match s.sandboxes.get(sandbox_id) {
            None => return Err(not_found("sandbox", sandbox_id)),
            Some(b) if b.state != PodSandboxState::Ready => {
                return Err(CriError::WrongState {
                    kind: "sandbox",
                    id: sandbox_id.to_string(),
                    state: "NotReady".into(),
                    wanted: "Ready",
                })
            }
            Some(_) => {}
        }
        if let Some(m) = s.create_errors.get(name) {
            return Err(CriError::InvalidArgument(m.clone()));
        }
        if !s.images.contains_key(&config.image) {
            return Err(CriError::Image {
                image: config.image.clone(),
                message: "not in the store".into(),
            });
        }
        let runs = s.runs.get(name).cloned().unwrap_or_default();
        let ends = runs
            .get(config.metadata.attempt as usize)
            .or(runs.last())
            .copied();
        s.next_id += 1;
        let id = format!("{name}{}", s.next_id);
        s.containers.insert(
            id.clone(),
            FakeContainer {
                sandbox_id: sandbox_id.to_string(),
                config: config.clone(),
                log_directory: sandbox_config.log_directory.clone(),
                state: ContainerState::Created,
                created_at: now,
                started_at: None,
                finished_at: None,
                exit_code: None,
                reason: String::new(),
                ends,
            },
        );
        send(&mut s, &id, sandbox_id, ContainerEventType::Created, now);
        Ok(id)
    }

    fn start_container(&self, id: &str) -> CriResult<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let c = s
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("container", id))?;
        if c.state != ContainerState::Created {
            return Err(CriError::WrongState {
                kind: "container",
                id: id.to_string(),
                state: format!("{:?}", c.state),
                wanted: "Created",
            });
        }
        c.state = ContainerState::Running;
        c.started_at = Some(now);
        let (line, sandbox) = (
            format!("start_container {}", name_of(c)),
            c.sandbox_id.clone(),
        );
        s.calls.push(line);
        send(&mut s, id, &sandbox, ContainerEventType::Started, now);
        Ok(())
    }

    fn stop_container(&self, id: &str, timeout: Duration) -> CriResult<()> {
        let now = self.clock.now();
        let mut s = self.tick();
        let c = s
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        let line = format!("stop_container {} {}", name_of(c), go_duration(timeout));
        let ignores = s.ignore_sigterm.contains(&c.config.metadata.name);
        let running = c.state == ContainerState::Running;
        s.calls.push(line);
        if running {
            // 128 + SIGTERM, or + SIGKILL once the grace ran out.
            let code = if ignores { 137 } else { 143 };
            finish(&mut s, id, now, Exit::Code(code));
        }
        Ok(())
    }

    fn remove_container(&self, id: &str) -> CriResult<()> {
        let mut s = self.lock();
        if let Some(c) = s.containers.remove(id) {
            let line = format!("remove_container {}", name_of(&c));
            s.calls.push(line);
        }
        Ok(())
    }

    fn container_status(&self, id: &str) -> CriResult<ContainerStatus> {
        let s = self.tick();
        let c = s
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        let image = s.images.get(&c.config.image);
        Ok(ContainerStatus {
            id: id.to_string(),
            sandbox_id: c.sandbox_id.clone(),
            metadata: c.config.metadata.clone(),
            state: c.state,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: image.map(|i| i.id.clone()).unwrap_or_default(),
            reason: c.reason.clone(),
            message: String::new(),
            pid: None,
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            log_path: c.log_directory.join(&c.config.log_path),
        })
    }

    fn list_containers(&self, filter: &ContainerFilter) -> CriResult<Vec<ContainerInfo>> {
        let s = self.tick();
        Ok(s.containers
            .iter()
            .filter(|(id, c)| filter.matches(id, &c.sandbox_id, c.state, &c.config.labels))
            .map(|(id, c)| ContainerInfo {
                id: id.clone(),
                sandbox_id: c.sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: fake_digest(&c.config.image),
                state: c.state,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            })
            .collect())
    }

    fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        _timeout: Duration,
    ) -> CriResult<ExecSyncResponse> {
        let f = {
            let mut s = self.tick();
            let c = running(&s, id)?;
            let name = c.config.metadata.name.clone();
            let line = format!("exec_sync {} {}", name_of(c), cmd.join(" "));
            s.calls.push(line);
            s.exec.get(&name).cloned()
        };
        match f {
            // Called without the lock: a script may call back in.
            Some(f) => f(cmd),
            None => Ok(ExecSyncResponse {
                stdout: Vec::new(),
                stderr: Vec::new(),
                exit_code: 0,
            }),
        }
    }

    /// Runs the command on the host, in no container at all: a stand-in
    /// that lets the streams of `kubectl exec` be tested without root.
    fn exec(&self, id: &str, request: &ExecRequest) -> CriResult<ExecSession> {
        use std::os::unix::process::ExitStatusExt;
        use std::process::{Command, Stdio};
        {
            let mut s = self.tick();
            let c = running(&s, id)?;
            let line = format!("exec {} {}", name_of(c), request.cmd.join(" "));
            s.calls.push(line);
        }
        if request.tty {
            return Err(CriError::InvalidArgument(
                "the fake runtime has no terminals".into(),
            ));
        }
        let (program, args) = request
            .cmd
            .split_first()
            .ok_or_else(|| CriError::InvalidArgument("an empty command".into()))?;
        let piped = |wanted: bool| {
            if wanted {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(piped(request.stdin))
            .stdout(piped(request.stdout))
            .stderr(piped(request.stderr))
            .spawn()
            .map_err(|e| CriError::InvalidArgument(format!("{program}: {e}")))?;
        Ok(ExecSession {
            pid: child.id() as i32,
            stdin: child.stdin.take().map(OwnedFd::from),
            stdout: child.stdout.take().map(OwnedFd::from),
            stderr: child.stderr.take().map(OwnedFd::from),
            wait: Box::new(move || {
                let status = child.wait()?;
                Ok(status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
            }),
        })
    }

    fn events(&self) -> Receiver<ContainerEvent> {
        let (tx, rx) = channel();
        self.lock().subscribers.push(tx);
        rx
    }
}

impl ImageService for FakeRuntime {
    fn list_images(&self) -> CriResult<Vec<Image>> {
        Ok(self.lock().images.values().cloned().collect())
    }

    fn image_status(&self, image: &str) -> CriResult<Option<Image>> {
        Ok(self.lock().images.get(image).cloned())
    }

    fn pull_image(&self, image: &str) -> CriResult<String> {
        let mut s = self.lock();
        s.calls.push(format!("pull_image {image}"));
        if !s.pullable.contains(image) {
            return Err(CriError::Image {
                image: image.to_string(),
                message: "not found in any registry the node knows".into(),
            });
        }
        drop(s);
        self.add_image(image);
        Ok(fake_digest(image))
    }

    fn remove_image(&self, image: &str) -> CriResult<()> {
        self.lock().images.remove(image);
        Ok(())
    }
}
