//! The kubelet's pod logic against the fake runtime: configs, restarts
//! with back-off, init containers, probes, termination, status and
//! events. A FakeClock drives everything, so minutes of back-off and
//! probing take no time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use lab03::backoff::{Clock, FakeClock};
use lab03::cri::{ExecSyncResponse, NamespaceMode, RuntimeService};
use lab03::kubelet::config::{container_config, sandbox_config, NodeLayout};
use lab03::kubelet::events::describe;
use lab03::kubelet::fake::{Exit, FakeRuntime};
use lab03::kubelet::probe::{decide, Decision, Run, Thresholds};
use lab03::kubelet::{PodWorker, WorkerOptions};

const SECOND: Duration = Duration::from_secs(1);

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn pod(yaml: &str) -> Pod {
    let mut pod = lab03::manifest::parse_pod(yaml).expect("test pod parses");
    pod.metadata.uid = Some("0a1b2c3d-uid".into());
    pod.metadata.namespace = Some("default".into());
    pod
}

/// A node of one pod on the fake runtime.
struct Node {
    clock: Arc<FakeClock>,
    rt: Arc<FakeRuntime>,
    dir: tempfile::TempDir,
    w: PodWorker,
}

impl Node {
    fn new(yaml: &str) -> Node {
        Node::with(yaml, |_| {})
    }

    fn with(yaml: &str, tune: impl FnOnce(&mut WorkerOptions)) -> Node {
        let clock = Arc::new(FakeClock::at(start()));
        let rt = FakeRuntime::new(clock.clone());
        for image in ["kubia", "busybox"] {
            rt.add_image(image);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = WorkerOptions::inline(NodeLayout::under(dir.path()), clock.clone());
        opts.host_ip = Some("198.18.1.1".parse().expect("an IP"));
        tune(&mut opts);
        let w = PodWorker::new(pod(yaml), rt.clone(), rt.clone(), opts).expect("a worker");
        Node { clock, rt, dir, w }
    }

    /// Syncs, then moves the clock a second and syncs again, `secs` times.
    fn run(&mut self, secs: u64) {
        self.w.sync();
        for _ in 0..secs {
            self.clock.advance(SECOND);
            self.w.sync();
        }
    }

    fn status(&self, name: &str) -> ContainerStatus {
        let s = self.w.status();
        s.init_container_statuses
            .into_iter()
            .flatten()
            .chain(s.container_statuses.into_iter().flatten())
            .find(|c| c.name == name)
            .expect("a status for the container")
    }

    /// `running`, `waiting:Reason` or `terminated:Reason`.
    fn state(&self, name: &str) -> String {
        let s = self.status(name).state.expect("a state");
        if s.running.is_some() {
            "running".into()
        } else if let Some(w) = s.waiting {
            format!("waiting:{}", w.reason.unwrap_or_default())
        } else if let Some(t) = s.terminated {
            format!("terminated:{}", t.reason.unwrap_or_default())
        } else {
            "none".into()
        }
    }

    fn phase(&self) -> String {
        self.w.status().phase.unwrap_or_default()
    }

    fn condition(&self, kind: &str) -> String {
        self.w
            .status()
            .conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == kind)
            .map(|c| c.status)
            .unwrap_or_default()
    }

    fn starts(&self) -> Vec<String> {
        self.rt
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("start_container"))
            .collect()
    }

    fn describe(&self) -> String {
        describe(self.w.events(), self.clock.now())
    }
}

const ONE: &str = "
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  restartPolicy: RESTART
  containers:
  - {name: crash, image: busybox}
";

fn one(policy: &str) -> Node {
    Node::new(&ONE.replace("RESTART", policy))
}

#[test]
fn configs_from_a_pod() {
    let pod = pod(include_str!("pods/kubia-two-containers.yaml"));
    let layout = NodeLayout::under(std::path::Path::new("/node"));
    let sandbox = sandbox_config(&pod, &layout, 0).expect("a sandbox config");
    assert_eq!(sandbox.hostname, "kubia-pair");
    assert_eq!(
        sandbox.log_directory,
        std::path::Path::new("/node/logs/default_kubia-pair_0a1b2c3d-uid")
    );
    // kubia has requests below its limits: Burstable.
    assert_eq!(sandbox.cgroup_parent, "kubepods/burstable/pod0a1b2c3d-uid");
    assert_eq!(sandbox.namespace_options.pid, NamespaceMode::Container);
    assert_eq!(sandbox.labels["app"], "kubia");
    assert_eq!(sandbox.labels["io.kubernetes.pod.uid"], "0a1b2c3d-uid");
    let spec = pod.spec.as_ref().expect("a spec");
    let kubia = container_config(&pod, &spec.containers[0], 2, &layout).expect("a config");
    assert_eq!(kubia.log_path, std::path::Path::new("kubia/2.log"));
    assert_eq!(kubia.labels["io.kubernetes.container.name"], "kubia");
    assert_eq!(kubia.resources.cpu_shares, 102);
    assert_eq!(kubia.resources.cpu_quota, 50_000);
    assert_eq!(kubia.resources.memory_limit_in_bytes, 64 << 20);
    let fetcher = container_config(&pod, &spec.containers[1], 0, &layout).expect("a config");
    assert_eq!(fetcher.command[0], "sh");
    // Both mount the one emptyDir directory of the pod.
    assert_eq!(kubia.mounts[0].host_path, fetcher.mounts[0].host_path);
    assert_eq!(
        fetcher.mounts[0].host_path,
        std::path::Path::new("/node/pods/0a1b2c3d-uid/volumes/kubernetes.io~empty-dir/shared")
    );
    assert_eq!(fetcher.mounts[0].container_path, "/out");

    let mut shared = pod.clone();
    let spec = shared.spec.as_mut().expect("a spec");
    spec.share_process_namespace = Some(true);
    spec.hostname = Some("box".into());
    let sandbox = sandbox_config(&shared, &layout, 0).expect("a sandbox config");
    assert_eq!(sandbox.namespace_options.pid, NamespaceMode::Pod);
    assert_eq!(sandbox.hostname, "box");
}

#[test]
fn back_off_over_repeated_crashes() {
    let mut n = one("Always");
    // Nine runs of a second, then one of eleven minutes, then short ones.
    let mut runs = vec![(SECOND, Exit::Code(1)); 9];
    runs.push((Duration::from_secs(660), Exit::Code(1)));
    runs.push((SECOND, Exit::Code(1)));
    n.rt.script("crash", &runs);
    let mut starts = Vec::new();
    let mut seen = 0;
    let mut waiting_message = None;
    n.w.sync();
    for _ in 0..3000 {
        let s = n.status("crash");
        if s.restart_count + 1 != seen {
            seen = s.restart_count + 1;
            starts.push(
                n.clock
                    .now()
                    .duration_since(start())
                    .unwrap_or_default()
                    .as_secs(),
            );
        }
        if s.restart_count == 3 && waiting_message.is_none() {
            if let Some(w) = s.state.and_then(|s| s.waiting) {
                waiting_message = w.message;
            }
        }
        n.clock.advance(SECOND);
        n.w.sync();
    }
    // Each run is a second: the gaps after the first, immediate, restart
    // are the delays, 10 s doubling to the 5 min cap.
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0] - 1).collect();
    assert_eq!(gaps[..9], [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    // The eleven-minute run outlived the reset time: restarted at once
    // (the gap is its run, less the second the others ran).
    assert_eq!(gaps[9], 660 - 1);
    assert_eq!(
        waiting_message.as_deref(),
        Some("back-off 40s restarting failed container=crash pod=crash_default(0a1b2c3d-uid)")
    );
    let last = n.status("crash").last_state.and_then(|s| s.terminated);
    assert_eq!(last.map(|t| t.exit_code), Some(1));
}

#[test]
fn each_restart_policy() {
    for (policy, how, restarts, phase) in [
        ("Always", Exit::Code(0), true, "Running"),
        ("Always", Exit::Code(1), true, "Running"),
        ("OnFailure", Exit::Code(0), false, "Succeeded"),
        ("OnFailure", Exit::Code(1), true, "Running"),
        ("Never", Exit::Code(0), false, "Succeeded"),
        ("Never", Exit::Code(1), false, "Failed"),
    ] {
        let mut n = one(policy);
        n.rt.script("crash", &[(Duration::from_secs(5), how)]);
        n.run(7);
        let s = n.status("crash");
        assert_eq!(s.restart_count > 0, restarts, "{policy} {how:?}");
        assert_eq!(n.phase(), phase, "{policy} {how:?}");
    }
}

#[test]
fn completed_error_and_oomkilled() {
    for (how, reason, code) in [
        (Exit::Code(0), "Completed", 0),
        (Exit::Code(2), "Error", 2),
        (Exit::Oom, "OOMKilled", 137),
    ] {
        let mut n = one("Never");
        n.rt.script("crash", &[(Duration::from_secs(2), how)]);
        n.run(3);
        assert_eq!(n.state("crash"), format!("terminated:{reason}"));
        let t = n
            .status("crash")
            .state
            .and_then(|s| s.terminated)
            .expect("terminated");
        assert_eq!(t.exit_code, code);
        assert_eq!(t.started_at.map(|t| t.0), Some(start().into()));
        assert!(!n.status("crash").ready);
    }
}

const INIT: &str = "
apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  restartPolicy: RESTART
  initContainers:
  - {name: fetch, image: busybox}
  - {name: prepare, image: busybox}
  containers:
  - {name: web, image: kubia}
";

#[test]
fn init_containers_run_in_order() {
    let mut n = Node::new(&INIT.replace("RESTART", "Always"));
    n.rt.script("fetch", &[(Duration::from_secs(2), Exit::Code(0))]);
    // prepare fails once, then succeeds.
    n.rt.script(
        "prepare",
        &[
            (Duration::from_secs(2), Exit::Code(1)),
            (Duration::from_secs(2), Exit::Code(0)),
        ],
    );
    n.w.sync();
    assert_eq!(n.state("web"), "waiting:PodInitializing");
    assert_eq!(n.phase(), "Pending");
    assert_eq!(n.condition("Initialized"), "False");
    n.run(10);
    assert_eq!(
        n.starts(),
        [
            "start_container fetch#0",
            "start_container prepare#0",
            "start_container prepare#1",
            "start_container web#0"
        ]
    );
    assert_eq!(n.state("fetch"), "terminated:Completed");
    assert_eq!(n.status("prepare").restart_count, 1);
    assert_eq!(n.state("web"), "running");
    assert_eq!(n.phase(), "Running");
    assert_eq!(n.condition("Initialized"), "True");
    assert_eq!(n.condition("Ready"), "True");

    // Under Never, a failed init container fails the pod.
    let mut n = Node::new(&INIT.replace("RESTART", "Never"));
    n.rt.script("prepare", &[(SECOND, Exit::Code(1))]);
    n.rt.script("fetch", &[(SECOND, Exit::Code(0))]);
    n.run(10);
    assert_eq!(n.phase(), "Failed");
    assert!(
        n.starts().iter().all(|s| !s.contains("web")),
        "{:?}",
        n.starts()
    );
}

const PROBED: &str = "
apiVersion: v1
kind: Pod
metadata: {name: kubia-liveness}
spec:
  containers:
  - name: kubia
    image: kubia
    PROBES
";

fn exec_answers(rt: &FakeRuntime, name: &str, f: impl Fn(&str) -> bool + Send + Sync + 'static) {
    rt.on_exec(
        name,
        Arc::new(move |cmd: &[String]| {
            let ok = f(&cmd.join(" "));
            Ok(ExecSyncResponse {
                stdout: if ok {
                    Vec::new()
                } else {
                    b"cat: /tmp/healthy: No such file\n".to_vec()
                },
                stderr: Vec::new(),
                exit_code: if ok { 0 } else { 1 },
            })
        }),
    );
}

#[test]
fn liveness_restarts_after_the_failure_threshold() {
    let probes = "livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      initialDelaySeconds: 5
      periodSeconds: 10
      failureThreshold: 3";
    let mut n = Node::new(&PROBED.replace("PROBES", probes));
    let tries = Arc::new(AtomicU32::new(0));
    let t = tries.clone();
    // Healthy for two tries, then never again.
    exec_answers(&n.rt, "kubia", move |_| {
        t.fetch_add(1, Ordering::SeqCst) < 2
    });
    // Tries at 5, 15 pass; 25, 35 fail: still under the threshold.
    n.run(35);
    assert_eq!(n.status("kubia").restart_count, 0);
    assert_eq!(tries.load(Ordering::SeqCst), 4);
    // The third failure in a row, at 45, restarts it.
    n.run(10);
    let s = n.status("kubia");
    assert_eq!(s.restart_count, 1);
    assert_eq!(n.state("kubia"), "running");
    let last = s
        .last_state
        .and_then(|l| l.terminated)
        .expect("a last state");
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (143, Some("Error"))
    );
    let calls = n.rt.calls();
    assert!(
        calls.contains(&"stop_container kubia#0 30s".to_string()),
        "{calls:?}"
    );
    let text = n.describe();
    assert!(
        text.contains("Container kubia failed liveness probe, will be restarted"),
        "{text}"
    );
    assert!(
        text.contains("Liveness probe failed: cat: /tmp/healthy: No such file"),
        "{text}"
    );
}

/// The book's unhealthy kubia: 200 for five requests, then 500.
fn unhealthy_kubia() -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let served = Arc::new(AtomicU32::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(SECOND));
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let answer = if n > 5 {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (addr, served)
}

#[test]
fn unhealthy_kubia_is_restarted() {
    let (server, served) = unhealthy_kubia();
    let probes = "livenessProbe:
      httpGet: {path: /, port: 8080}
      initialDelaySeconds: 15";
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let mut n = Node::with(&PROBED.replace("PROBES", probes), |o| {
        // The pod's IP lives in the node's network; here the connector
        // takes the probe to the loopback server instead.
        o.connector = Arc::new(move |addr: SocketAddr, timeout: Duration| {
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(addr);
            TcpStream::connect_timeout(&server, timeout)
        });
    });
    // Tries at 15, 25, …: five pass, the next three fail (65, 75, 85).
    n.run(84);
    assert_eq!(n.status("kubia").restart_count, 0);
    n.run(1);
    assert_eq!(n.status("kubia").restart_count, 1);
    assert_eq!(served.load(Ordering::SeqCst), 8);
    let first = asked.lock().unwrap_or_else(|e| e.into_inner())[0];
    assert_eq!(first.to_string(), "198.18.1.2:8080");
    n.run(5);
    insta::assert_snapshot!("liveness_restart_events", n.describe());
    insta::assert_yaml_snapshot!("liveness_restart_status", n.status("kubia"));
}

/// What changed since the last look: the container's state line, and each
/// event that happened again.
fn story(n: &Node, seen: &mut Vec<(String, u32)>, last: &mut String, out: &mut String) {
    let at = n
        .clock
        .now()
        .duration_since(start())
        .unwrap_or_default()
        .as_secs();
    let s = n.status("kubia");
    let line = format!(
        "kubia {}, restartCount {}, ready {}",
        n.state("kubia"),
        s.restart_count,
        s.ready
    );
    let mut new = Vec::new();
    for e in n.w.events().list() {
        let key = format!("{} {}: {}", e.type_.as_str(), e.reason, e.message);
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, count)) if *count == e.count => {}
            Some((_, count)) => {
                *count = e.count;
                new.push(e);
            }
            None => {
                seen.push((key, e.count));
                new.push(e);
            }
        }
    }
    new.sort_by_key(|e| e.seq);
    if line != *last || !new.is_empty() {
        out.push_str(&format!("{at:>3}s  {line}\n"));
        for e in new {
            out.push_str(&format!("      {} {}:\n", e.type_.as_str(), e.reason));
            out.push_str(&format!("        {}\n", e.message));
        }
        *last = line;
    }
}

#[test]
fn unhealthy_kubia_story() {
    let (server, _) = unhealthy_kubia();
    let probes = "livenessProbe:
      httpGet: {path: /, port: 8080}
      initialDelaySeconds: 15";
    let mut n = Node::with(&PROBED.replace("PROBES", probes), |o| {
        o.connector = Arc::new(move |_: SocketAddr, timeout: Duration| {
            TcpStream::connect_timeout(&server, timeout)
        });
    });
    let (mut seen, mut last, mut out) = (Vec::new(), String::new(), String::new());
    n.w.sync();
    story(&n, &mut seen, &mut last, &mut out);
    for _ in 0..90 {
        n.clock.advance(SECOND);
        n.w.sync();
        story(&n, &mut seen, &mut last, &mut out);
    }
    insta::assert_snapshot!("unhealthy_kubia_story", out);
}

#[test]
fn tcp_socket_probe_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let server = listener.local_addr().expect("its address");
    let open = Arc::new(AtomicBool::new(true));
    let up = open.clone();
    let probes = "readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
      failureThreshold: 1";
    let mut n = Node::with(&PROBED.replace("PROBES", probes), |o| {
        o.connector = Arc::new(move |_: SocketAddr, timeout: Duration| {
            if up.load(Ordering::SeqCst) {
                TcpStream::connect_timeout(&server, timeout)
            } else {
                Err(std::io::ErrorKind::ConnectionRefused.into())
            }
        });
    });
    n.run(1);
    assert!(n.status("kubia").ready);
    open.store(false, Ordering::SeqCst);
    n.run(1);
    assert!(!n.status("kubia").ready);
    let text = n.describe();
    assert!(
        text.contains(
            "Readiness probe failed: dial tcp 198.18.1.2:8080: connect: connection refused"
        ),
        "{text}"
    );
    drop(listener);
}

#[test]
fn readiness_flips_ready() {
    let probes = "readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 5
      successThreshold: 2
      failureThreshold: 3";
    let mut n = Node::new(&PROBED.replace("PROBES", probes));
    let ok = Arc::new(AtomicBool::new(true));
    let flag = ok.clone();
    exec_answers(&n.rt, "kubia", move |_| flag.load(Ordering::SeqCst));
    n.w.sync();
    // One success is not yet two: not ready, the pod not Ready.
    assert!(!n.status("kubia").ready);
    assert_eq!(n.condition("Ready"), "False");
    assert_eq!(n.phase(), "Running");
    n.run(5);
    assert!(n.status("kubia").ready);
    assert_eq!(n.condition("Ready"), "True");
    assert_eq!(n.condition("ContainersReady"), "True");
    ok.store(false, Ordering::SeqCst);
    n.run(10);
    assert!(
        n.status("kubia").ready,
        "two failures are under the threshold"
    );
    n.run(5);
    assert!(!n.status("kubia").ready);
    assert_eq!(n.condition("Ready"), "False");
    // Readiness never restarts anything.
    n.run(60);
    assert_eq!(n.status("kubia").restart_count, 0);
}

#[test]
fn startup_gates_liveness() {
    let probes = "startupProbe:
      exec: {command: [cat, /started]}
      periodSeconds: 5
      failureThreshold: 10
    livenessProbe:
      exec: {command: [cat, /alive]}
      periodSeconds: 5";
    let mut n = Node::new(&PROBED.replace("PROBES", probes));
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    exec_answers(&n.rt, "kubia", move |cmd| {
        cmd != "cat /started" || flag.load(Ordering::SeqCst)
    });
    n.run(20);
    let s = n.status("kubia");
    assert_eq!((s.started, s.ready), (Some(false), false));
    assert!(
        n.rt.calls().iter().all(|c| !c.contains("/alive")),
        "liveness ran before startup passed"
    );
    started.store(true, Ordering::SeqCst);
    n.run(5);
    let s = n.status("kubia");
    assert_eq!((s.started, s.ready), (Some(true), true));
    n.run(10);
    assert!(n.rt.calls().iter().any(|c| c.contains("/alive")));

    // A startup probe that never passes restarts the container.
    let mut n = Node::new(&PROBED.replace("PROBES", probes));
    exec_answers(&n.rt, "kubia", |cmd| cmd != "cat /started");
    n.run(50);
    assert_eq!(n.status("kubia").restart_count, 1);
    assert!(n
        .describe()
        .contains("Container kubia failed startup probe, will be restarted"));
}

#[test]
fn graceful_termination_in_order() {
    let yaml = "
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - {name: shared, emptyDir: {}}
  containers:
  - name: web
    image: kubia
    volumeMounts: [{name: shared, mountPath: /data}]
  - {name: stubborn, image: busybox}
";
    let mut n = Node::new(yaml);
    n.rt.ignore_sigterm("stubborn");
    n.run(3);
    let volume = n
        .dir
        .path()
        .join("pods/0a1b2c3d-uid/volumes/kubernetes.io~empty-dir/shared");
    assert!(volume.is_dir());
    n.rt.clear_calls();
    n.w.terminate(None);
    n.w.sync();
    assert!(n.w.is_terminated());
    assert_eq!(
        n.rt.calls(),
        [
            "stop_container web#0 5s",
            "stop_container stubborn#0 5s",
            "stop_pod_sandbox pair",
            "remove_pod_sandbox pair",
        ]
    );
    let code = |name: &str| {
        n.status(name)
            .state
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code)
    };
    assert_eq!((code("web"), code("stubborn")), (Some(143), Some(137)));
    assert_eq!(n.rt.counts(), (0, 0));
    assert!(!volume.exists());
    assert!(n.describe().contains("Stopping container stubborn"));
    // Deleted, both containers ended by signals: Failed.
    assert_eq!(n.phase(), "Failed");
}

#[test]
fn a_missing_image_backs_off_until_pulled() {
    let yaml = "
apiVersion: v1
kind: Pod
metadata: {name: pull}
spec:
  containers:
  - {name: app, image: registry.example/app:1}
";
    let mut n = Node::new(yaml);
    n.w.sync();
    assert_eq!(n.state("app"), "waiting:ErrImagePull");
    n.run(1);
    assert_eq!(n.state("app"), "waiting:ImagePullBackOff");
    let waiting = n
        .status("app")
        .state
        .and_then(|s| s.waiting)
        .expect("waiting");
    assert_eq!(
        waiting.message.as_deref(),
        Some("Back-off pulling image \"registry.example/app:1\"")
    );
    assert_eq!(n.phase(), "Pending");
    n.rt.add_pullable("registry.example/app:1");
    n.run(10);
    assert_eq!(n.state("app"), "running");
    let text = n.describe();
    assert!(
        text.contains("Failed to pull image \"registry.example/app:1\": image"),
        "{text}"
    );
    assert!(
        text.contains("Successfully pulled image \"registry.example/app:1\" in 0s"),
        "{text}"
    );
    assert!(n.status("app").image_id.starts_with("sha256:"));
}

#[test]
fn create_container_error_says_why() {
    let mut n = one("Always");
    let why = "exec: \"/app.js\": stat /app.js: no such file or directory";
    n.rt.fail_create("crash", Some(why));
    n.w.sync();
    assert_eq!(n.state("crash"), "waiting:CreateContainerError");
    let waiting = n
        .status("crash")
        .state
        .and_then(|s| s.waiting)
        .expect("waiting");
    assert!(waiting.message.unwrap_or_default().contains(why));
    n.rt.fail_create("crash", None);
    n.run(10);
    assert_eq!(n.state("crash"), "running");
    assert_eq!(n.status("crash").restart_count, 0);
}

#[test]
fn status_of_a_running_pair() {
    let mut n = Node::new(include_str!("pods/kubia-two-containers.yaml"));
    n.run(2);
    insta::assert_yaml_snapshot!("running_pair_status", n.w.status());
    insta::assert_snapshot!("running_pair_events", n.describe());
}

#[test]
fn runtime_events_name_the_sandbox() {
    let mut n = one("Always");
    let events = n.rt.events();
    n.w.sync();
    let sandbox = n.w.sandbox_id().expect("a sandbox").to_string();
    n.rt.exit("crash", Exit::Code(3));
    let got: Vec<_> = events.try_iter().collect();
    assert!(got.iter().all(|e| e.sandbox_id == sandbox));
    assert!(got
        .iter()
        .any(|e| e.kind == lab03::cri::ContainerEventType::Stopped));
    n.w.sync();
    assert_eq!(n.status("crash").restart_count, 1);
}

// The exercise's own tests: only `decide`, nothing later in the book.

#[test]
fn the_decision_needs_failures_in_a_row() {
    let t = Thresholds {
        success: 1,
        failure: 3,
    };
    let mut run = Run::default();
    let got: Vec<Decision> = [true, false, false, true, false, false, false, false]
        .into_iter()
        .map(|ok| decide(&mut run, ok, t))
        .collect();
    use Decision::*;
    assert_eq!(
        got,
        [Pass, Unchanged, Unchanged, Pass, Unchanged, Unchanged, Fail, Fail]
    );
    assert_eq!(
        run,
        Run {
            last: Some(false),
            count: 4
        }
    );
}

#[test]
fn the_decision_needs_successes_in_a_row() {
    let t = Thresholds {
        success: 2,
        failure: 1,
    };
    let mut run = Run::default();
    use Decision::*;
    let got: Vec<Decision> = [true, true, false, true, false, true, true]
        .into_iter()
        .map(|ok| decide(&mut run, ok, t))
        .collect();
    assert_eq!(
        got,
        [Unchanged, Pass, Fail, Unchanged, Fail, Unchanged, Pass]
    );
    let mut run = Run::default();
    assert_eq!(decide(&mut run, false, Thresholds::default()), Unchanged);
    assert_eq!(
        run,
        Run {
            last: Some(false),
            count: 1
        }
    );
}

#[test]
fn workers_move_between_threads_and_jobs_run_on_them() {
    fn send<T: Send>() {}
    send::<PodWorker>();
    // With a thread per job, the waker says when to sync again.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = std::sync::Mutex::new(tx);
    let mut n = Node::with(ONE.replace("RESTART", "Always").as_str(), |o| {
        o.spawner = Arc::new(lab03::kubelet::jobs::Threads);
        o.waker = Arc::new(move |uid: &str| {
            let _ = tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(uid.to_string());
        });
    });
    n.w.sync();
    assert_eq!(n.state("crash"), "running");
    n.w.terminate(Some(SECOND));
    n.w.sync();
    let mut woken = 0;
    while !n.w.is_terminated() {
        let uid = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a job's waker");
        assert_eq!(uid, "0a1b2c3d-uid");
        woken += 1;
        n.w.sync();
    }
    if woken == 0 {
        // The stop was quick enough to be seen in the same sync; its
        // waker still ran.
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the stop's waker");
    }
    assert_eq!(n.rt.counts(), (0, 0));
}

#[test]
fn pull_policy_never_does_not_pull() {
    let yaml = "
apiVersion: v1
kind: Pod
metadata: {name: local}
spec:
  containers:
  - {name: app, image: only-local, imagePullPolicy: Never}
";
    let mut n = Node::new(yaml);
    n.run(30);
    assert_eq!(n.state("app"), "waiting:ErrImageNeverPull");
    assert!(n.rt.calls().iter().all(|c| !c.starts_with("pull_image")));
    n.rt.add_image("only-local");
    n.run(10);
    assert_eq!(n.state("app"), "running");
}

#[test]
fn a_node_drives_many_workers() {
    let clock = Arc::new(FakeClock::at(start()));
    let rt = FakeRuntime::new(clock.clone());
    rt.add_image("busybox");
    rt.script("crash", &[(Duration::from_secs(3), Exit::Code(1))]);
    let dir = tempfile::tempdir().expect("temp dir");
    let events = rt.events();
    let mut node = lab03::kubelet::Workers::new();
    for i in 0..200 {
        let mut p = pod(&ONE.replace("RESTART", "Always"));
        p.metadata.name = Some(format!("crash-{i}"));
        p.metadata.uid = Some(format!("uid-{i}"));
        let opts = WorkerOptions::inline(NodeLayout::under(dir.path()), clock.clone());
        node.add(PodWorker::new(p, rt.clone(), rt.clone(), opts).expect("a worker"));
    }
    assert_eq!(rt.counts(), (200, 200));
    // Every crash comes back as an event that syncs just its pod.
    for _ in 0..4 {
        clock.advance(SECOND);
        let _ = rt.list_containers(&Default::default());
        for e in events.try_iter() {
            node.handle(&e);
        }
        node.tick(clock.now(), false);
    }
    let restarted = node
        .iter()
        .filter(|w| {
            let s = w.status().container_statuses.unwrap_or_default();
            s.first().is_some_and(|c| c.restart_count == 1)
        })
        .count();
    assert_eq!(restarted, 200);
    for i in 0..200 {
        node.terminate(&format!("uid-{i}"), None);
    }
    assert_eq!(node.tick(clock.now(), false).len(), 200);
    assert!(node.is_empty());
    assert_eq!(rt.counts(), (0, 0));
}
