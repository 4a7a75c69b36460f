//! The Linux CRI runtime: sandboxes, containers, logs, exec, events,
//! cleanup. Every test needs root and overlayfs; each runs its own
//! runtime (own state directory, own node cgroup) on one small busybox
//! image built once per test process.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lab01::namespaces::Namespace;
use lab01::probe::{self, Privilege};
use lab02::home::Home;
use lab02::layout::ImageStore;
use lab03::cri::*;
use lab03::runtime::sandbox::sandbox_joins;
use lab03::runtime::{LinuxRuntime, RuntimeConfig};

const IMAGE: &str = "busybox:runtime-test";

/// Root, overlayfs and busybox (the image is made of it), or a skip.
fn can_run() -> bool {
    if !probe::require(Privilege::Root) || !probe::require_program("busybox") {
        return false;
    }
    match lab02::unpack::overlay_available() {
        Ok(()) => true,
        Err(why) if probe::ci() => panic!("{}: {why}", probe::CI_SKIP_PANIC),
        Err(why) => {
            eprintln!("SKIP: {why}");
            false
        }
    }
}

/// A `$KUBELINGS_HOME` holding the test image, made once.
fn images() -> &'static Home {
    static HOME: OnceLock<(tempfile::TempDir, Home)> = OnceLock::new();
    &HOME
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("kubelings-runtime-images-")
                .tempdir()
                .expect("a temp dir");
            let home = Home::at(dir.path().join("home"));
            let context = dir.path().join("context");
            lab01::RootfsBuilder::new()
                .programs(["dd", "tr", "cat", "test", "printf", "seq"])
                .build(&context)
                .expect("a busybox rootfs");
            let dockerfile = "FROM scratch\nCOPY . /\nENV GREETING=hello\nCMD [\"sh\"]\n";
            std::fs::write(context.join("Dockerfile"), dockerfile).expect("a Dockerfile");
            let store = ImageStore::open(&home.images()).expect("a store");
            let steps = lab02::build::parse(dockerfile).expect("a Dockerfile that parses");
            lab02::build::build(&home, &store, &steps, &context, IMAGE, &mut |_| {})
                .expect("the test image");
            (dir, home)
        })
        .1
}

struct Node {
    rt: LinuxRuntime,
    dir: tempfile::TempDir,
}

impl Node {
    fn new(name: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("kubelings-runtime-")
            .tempdir()
            .expect("a temp dir");
        let config = RuntimeConfig::new(dir.path().join("state"), images().clone())
            .cgroup_name(format!("kubelings-test-{}-{name}", std::process::id()));
        let rt = LinuxRuntime::new(config).expect("a runtime");
        Node { rt, dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn sandbox_config(&self, name: &str) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            },
            hostname: name.into(),
            log_directory: self.dir.path().join("logs").join(name),
            cgroup_parent: format!("kubepods/burstable/poduid-{name}"),
            ..Default::default()
        }
    }

    fn sandbox(&self, name: &str) -> (String, PodSandboxConfig) {
        let config = self.sandbox_config(name);
        let id = self.rt.run_pod_sandbox(&config).expect("a sandbox");
        (id, config)
    }

    /// Creates and starts `script` (run by sh) in the sandbox.
    fn run(&self, sandbox: &(String, PodSandboxConfig), name: &str, script: &str) -> String {
        let config = container(name, script);
        self.run_config(sandbox, &config)
    }

    fn run_config(&self, sandbox: &(String, PodSandboxConfig), config: &ContainerConfig) -> String {
        let id = self
            .rt
            .create_container(&sandbox.0, config, &sandbox.1)
            .expect("create the container");
        self.rt.start_container(&id).expect("start the container");
        id
    }

    fn exec(&self, id: &str, script: &str) -> ExecSyncResponse {
        let cmd = ["sh", "-c", script].map(String::from);
        self.rt
            .exec_sync(id, &cmd, Duration::from_secs(10))
            .expect("exec")
    }

    /// Waits until the container has exited.
    fn wait_exited(&self, id: &str) -> ContainerStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.rt.container_status(id).expect("a status");
            if status.state == ContainerState::Exited {
                return status;
            }
            assert!(Instant::now() < deadline, "container {id} never exited");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn container(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: ContainerMetadata {
            name: name.into(),
            attempt: 0,
        },
        image: IMAGE.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: PathBuf::from(format!("{name}/0.log")),
        ..Default::default()
    }
}

fn ns(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

fn alive(pid: i32) -> bool {
    // A zombie is no process either: its /proc entry says so.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn mounts_beneath(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(String::from)
        .collect()
}

fn procs_in(dirs: &[PathBuf]) -> Vec<String> {
    dirs.iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| t.lines().map(String::from).collect::<Vec<_>>())
        .collect()
}

#[test]
fn sandbox_joins_net_uts_ipc_and_pid_when_shared() {
    let paths = |joins: Vec<(Namespace, PathBuf)>| -> Vec<String> {
        joins
            .into_iter()
            .map(|(k, p)| format!("{k} {}", p.display()))
            .collect()
    };
    let default = NamespaceOption::default();
    assert_eq!(
        paths(sandbox_joins(42, &default)),
        [
            "net /proc/42/ns/net",
            "uts /proc/42/ns/uts",
            "ipc /proc/42/ns/ipc"
        ]
    );
    let shared = NamespaceOption {
        pid: NamespaceMode::Pod,
        ..default
    };
    assert_eq!(
        paths(sandbox_joins(7, &shared)),
        [
            "net /proc/7/ns/net",
            "uts /proc/7/ns/uts",
            "ipc /proc/7/ns/ipc",
            "pid /proc/7/ns/pid"
        ]
    );
    let host = NamespaceOption {
        network: NamespaceMode::Node,
        ipc: NamespaceMode::Node,
        pid: NamespaceMode::Container,
    };
    assert!(
        sandbox_joins(7, &host).is_empty(),
        "hostNetwork joins nothing"
    );
}

#[test]
fn two_containers_share_one_sandbox() {
    if !can_run() {
        return;
    }
    let node = Node::new("share");
    let sandbox = node.sandbox("kubia-pod");
    let volume = node.dir.path().join("volume");
    std::fs::create_dir(&volume).expect("the emptyDir");
    let mut web = container("web", "sleep 300");
    let mut side = container("side", "sleep 300");
    for c in [&mut web, &mut side] {
        c.mounts.push(Mount {
            container_path: "/data".into(),
            host_path: volume.clone(),
            readonly: false,
        });
    }
    let a = node.run_config(&sandbox, &web);
    let b = node.run_config(&sandbox, &side);
    let pause = node
        .rt
        .pod_sandbox_status(&sandbox.0)
        .expect("status")
        .pid
        .expect("a pause");
    let pid = |id: &str| {
        node.rt
            .container_status(id)
            .expect("status")
            .pid
            .expect("a pid")
    };
    let (pa, pb) = (pid(&a), pid(&b));
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns(pa, kind), ns(pause, kind), "{kind} of web is the pod's");
        assert_eq!(ns(pb, kind), ns(pause, kind), "{kind} of side is the pod's");
    }
    assert_ne!(ns(pa, "mnt"), ns(pb, "mnt"), "each has its own mounts");
    assert_ne!(
        ns(pa, "net"),
        ns(std::process::id() as i32, "net"),
        "not the node's"
    );

    // What each container sees, as a reader would type it.
    let mut seen = String::new();
    let mut show = |who: &str, id: &str, script: &str| {
        let out = node.exec(id, script);
        let text = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        let prompt = format!("{who}$ {script}");
        match (text.is_empty(), text.contains('\n')) {
            (true, _) => seen.push_str(&format!("{prompt:<44}(exit code {})\n", out.exit_code)),
            (false, false) => seen.push_str(&format!("{prompt:<44}{text}\n")),
            (false, true) => seen.push_str(&format!("{prompt}\n{text}\n")),
        }
        out
    };
    show("web", &a, "hostname");
    show("side", &b, "cat /etc/hostname");
    show("web", &a, "echo shared > /data/x; touch /only-web");
    show("side", &b, "cat /data/x");
    let only = show("side", &b, "test -e /only-web");
    assert_eq!(only.exit_code, 1, "web's files are web's");
    let hosts = show("side", &b, "cat /etc/hosts");
    let hosts = String::from_utf8(hosts.stdout).expect("text");
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file."),
        "{hosts}"
    );
    let same = |kind: &str| {
        let (x, y) = (ns(pa, kind), ns(pb, kind));
        let verdict = if x == y && x == ns(pause, kind) {
            "the pod's, held by the pause"
        } else if x != y {
            "each container its own"
        } else {
            "shared, but not the pause's"
        };
        format!("{kind:<4} {verdict}\n")
    };
    for kind in ["net", "ipc", "uts", "pid", "mnt"] {
        seen.push_str(&same(kind));
    }
    insta::assert_snapshot!("two_containers", seen);
    assert_eq!(
        std::fs::read(volume.join("x")).expect("on the node"),
        b"shared\n"
    );
    node.rt.remove_pod_sandbox(&sandbox.0).expect("remove");
}

#[test]
fn a_shared_pid_namespace_shows_the_other_containers() {
    if !can_run() {
        return;
    }
    let node = Node::new("pidns");
    let mut config = node.sandbox_config("shared");
    config.namespace_options.pid = NamespaceMode::Pod;
    let id = node.rt.run_pod_sandbox(&config).expect("a sandbox");
    let sandbox = (id, config);
    let a = node.run(&sandbox, "a", "sleep 301");
    let _b = node.run(&sandbox, "b", "sleep 302");
    let ps = String::from_utf8(node.exec(&a, "ps -o pid,args").stdout).expect("text");
    assert!(ps.contains("sleep 302"), "a sees b's process:\n{ps}");
    assert!(
        ps.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("pause")),
        "the pause is PID 1:\n{ps}"
    );
}

#[test]
fn stop_with_a_grace_period_kills_children_too() {
    if !can_run() {
        return;
    }
    let node = Node::new("stop");
    let mut config = node.sandbox_config("stopper");
    // A shared PID namespace: the kernel does not end the command's
    // children when its init goes, so only the cgroup kill catches them.
    config.namespace_options.pid = NamespaceMode::Pod;
    let id = node.rt.run_pod_sandbox(&config).expect("a sandbox");
    let sandbox = (id, config);
    // Ignored signals stay ignored across exec: neither sleep hears SIGTERM.
    let stubborn = node.run(&sandbox, "stubborn", "trap '' TERM; sleep 300 & sleep 301");
    let polite = node.run(&sandbox, "polite", "exec sleep 302");
    let dirs = node
        .rt
        .container_cgroup_dirs(&stubborn)
        .expect("its cgroup");
    let deadline = Instant::now() + Duration::from_secs(5);
    while procs_in(&dirs).len() < 4 {
        assert!(
            Instant::now() < deadline,
            "init, sh and two sleeps never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pids: Vec<i32> = procs_in(&dirs)
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();

    let started = Instant::now();
    node.rt
        .stop_container(&polite, Duration::from_secs(10))
        .expect("stop");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM ended it"
    );
    assert_eq!(
        node.rt.container_status(&polite).expect("status").exit_code,
        Some(143)
    );

    let grace = Duration::from_millis(300);
    let started = Instant::now();
    node.rt.stop_container(&stubborn, grace).expect("stop");
    assert!(started.elapsed() >= grace, "it waited the grace period");
    let status = node.rt.container_status(&stubborn).expect("status");
    assert_eq!(status.state, ContainerState::Exited);
    assert_eq!(
        status.exit_code,
        Some(137),
        "SIGKILL after the grace period"
    );
    assert!(procs_in(&dirs).is_empty(), "nothing left in its cgroup");
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the stop");
    }
}

#[test]
fn exit_codes_and_oom_kills_are_reported() {
    if !can_run() {
        return;
    }
    let node = Node::new("exit");
    let sandbox = node.sandbox("exits");
    let ok = node.run(&sandbox, "ok", "true");
    let bad = node.run(&sandbox, "bad", "exit 3");
    let mut hungry = container("hungry", "dd if=/dev/zero of=/dev/null bs=64M count=1");
    hungry.resources.memory_limit_in_bytes = 16 << 20;
    let hungry = node.run_config(&sandbox, &hungry);
    let ok = node.wait_exited(&ok);
    assert_eq!((ok.exit_code, ok.reason.as_str()), (Some(0), "Completed"));
    assert!(ok.finished_at >= ok.started_at && ok.finished_at.is_some());
    let bad = node.wait_exited(&bad);
    assert_eq!((bad.exit_code, bad.reason.as_str()), (Some(3), "Error"));
    let hungry = node.wait_exited(&hungry);
    assert_eq!(
        (hungry.exit_code, hungry.reason.as_str()),
        (Some(137), "OOMKilled")
    );

    // A command the image lacks: the start fails, and says which.
    let missing = node
        .rt
        .create_container(
            &sandbox.0,
            &ContainerConfig {
                command: vec!["/no/such/program".into()],
                ..container("missing", "")
            },
            &sandbox.1,
        )
        .expect("create");
    let err = node
        .rt
        .start_container(&missing)
        .expect_err("no such program");
    assert!(err.to_string().contains("/no/such/program"), "{err}");
    let status = node.rt.container_status(&missing).expect("status");
    assert_eq!(status.reason, "StartError");
}

#[test]
fn logs_are_written_in_the_cri_format() {
    if !can_run() {
        return;
    }
    let node = Node::new("logs");
    let sandbox = node.sandbox("logger");
    let script = "echo out; echo err >&2; printf 'no newline'";
    let first = node.run(&sandbox, "talk", script);
    node.wait_exited(&first);
    let mut again = container("talk", "seq 1 20000");
    again.metadata.attempt = 1;
    again.log_path = "talk/1.log".into();
    let second = node.run_config(&sandbox, &again);
    let status = node.wait_exited(&second);

    let log0 = sandbox.1.log_directory.join("talk/0.log");
    let text = std::fs::read_to_string(&log0).expect("the first attempt's log stays");
    let records = lab03::logs::parse_log(&text).expect("CRI log lines");
    let mut shown: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.stream.as_str(),
                if r.partial { "P" } else { "F" },
                r.text
            )
        })
        .collect();
    // The two streams are two pipes: their order is not fixed.
    shown.sort();
    insta::assert_snapshot!("cri_log", shown.join("\n"));
    let first_line = text.lines().next().expect("a line");
    let time = first_line.split(' ').next().expect("a time");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{first_line}"
    );

    // A chatty container never blocks: every line is there, in order.
    let text = std::fs::read_to_string(&status.log_path).expect("the second log");
    let lines: Vec<String> = lab03::logs::parse_log(&text)
        .expect("CRI log lines")
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert_eq!(lines.len(), 20000);
    assert_eq!(lines[19999], "20000");
}

#[test]
fn exec_runs_inside_the_container() {
    if !can_run() {
        return;
    }
    let node = Node::new("exec");
    let sandbox = node.sandbox("exec-pod");
    let mut config = container("app", "sleep 300");
    config.envs.push(("COLOR".into(), "blue".into()));
    config.working_dir = Some("/tmp".into());
    let id = node.run_config(&sandbox, &config);
    let out = node.exec(
        &id,
        "echo $GREETING $COLOR $HOSTNAME; pwd; echo oops >&2; exit 4",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello blue exec-pod\n/tmp\n"
    );
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.exit_code, 4);
    // Its cgroup is the container's, its root the container's.
    let cgroup = node.exec(&id, "cat /proc/self/cgroup");
    let dirs = node.rt.container_cgroup_dirs(&id).expect("cgroup");
    assert!(!dirs.is_empty() && cgroup.exit_code == 0);
    assert_eq!(node.exec(&id, "test -e /bin/busybox").exit_code, 0);
    assert_eq!(
        node.exec(&id, &format!("test -e {}", node.state().display()))
            .exit_code,
        1
    );

    let cmd = ["sleep", "5"].map(String::from);
    let started = Instant::now();
    let err = node
        .rt
        .exec_sync(&id, &cmd, Duration::from_millis(200))
        .expect_err("a timeout");
    assert!(matches!(err, CriError::DeadlineExceeded(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Attached: stdin in, stdout out.
    let request = ExecRequest {
        cmd: vec!["tr".into(), "a-z".into(), "A-Z".into()],
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let session = node.rt.exec(&id, &request).expect("exec");
    let mut stdin = std::fs::File::from(session.stdin.expect("stdin"));
    stdin.write_all(b"ping\n").expect("write");
    drop(stdin);
    let mut output = String::new();
    std::fs::File::from(session.stdout.expect("stdout"))
        .read_to_string(&mut output)
        .expect("read");
    assert_eq!(output, "PING\n");
    assert_eq!((session.wait)().expect("wait"), 0);
}

#[test]
fn events_arrive_for_every_step() {
    if !can_run() {
        return;
    }
    let node = Node::new("events");
    let events = node.rt.events();
    let sandbox = node.sandbox("eventful");
    let id = node.run(&sandbox, "brief", "true");
    node.wait_exited(&id);
    node.rt.remove_container(&id).expect("remove");
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let event = events
            .recv_timeout(Duration::from_secs(10))
            .expect("an event");
        assert_eq!(
            (event.container_id.as_str(), event.sandbox_id.as_str()),
            (id.as_str(), sandbox.0.as_str())
        );
        kinds.push(event.kind);
    }
    use ContainerEventType::*;
    assert_eq!(kinds, [Created, Started, Stopped, Deleted]);
}

#[test]
fn nothing_is_left_after_remove() {
    if !can_run() {
        return;
    }
    let node = Node::new("remove");
    let sandbox = node.sandbox("leaver");
    let id = node.run(&sandbox, "c", "sleep 300");
    let pause = node
        .rt
        .pod_sandbox_status(&sandbox.0)
        .expect("status")
        .pid
        .expect("pause");
    let init = node
        .rt
        .container_status(&id)
        .expect("status")
        .pid
        .expect("init");
    let pod_dirs = node.rt.sandbox_cgroup_dirs(&sandbox.0).expect("cgroups");
    assert!(
        !mounts_beneath(&node.state()).is_empty(),
        "its rootfs is mounted"
    );
    assert!(pod_dirs.iter().all(|d| d.is_dir()));
    node.rt.stop_pod_sandbox(&sandbox.0).expect("stop");
    assert_eq!(
        node.rt
            .pod_sandbox_status(&sandbox.0)
            .expect("status")
            .state,
        PodSandboxState::NotReady
    );
    node.rt.remove_pod_sandbox(&sandbox.0).expect("remove");
    node.rt
        .remove_pod_sandbox(&sandbox.0)
        .expect("removing twice is fine");
    assert!(!alive(pause) && !alive(init), "its processes are gone");
    assert!(pod_dirs.iter().all(|d| !d.exists()), "its cgroups are gone");
    assert_eq!(mounts_beneath(&node.state()), Vec::<String>::new());
    assert!(node
        .rt
        .list_pod_sandbox(&Default::default())
        .expect("list")
        .is_empty());
    assert!(node
        .rt
        .list_containers(&Default::default())
        .expect("list")
        .is_empty());
}

/// The helper `a_killed_runtime_is_cleaned_up_by_the_next` runs in a
/// child process: a runtime with one pod, until it is killed.
#[test]
#[ignore = "run by a_killed_runtime_is_cleaned_up_by_the_next"]
fn crash_helper() {
    let Some(state) = std::env::var_os("KUBELINGS_CRASH_STATE") else {
        return;
    };
    let state = PathBuf::from(state);
    let config = RuntimeConfig::new(&state, images().clone())
        .cgroup_name(std::env::var("KUBELINGS_CRASH_CGROUP").expect("the cgroup name"));
    let rt = LinuxRuntime::new(config).expect("a runtime");
    let sandbox = PodSandboxConfig {
        metadata: PodSandboxMetadata {
            name: "doomed".into(),
            uid: "uid-doomed".into(),
            ..Default::default()
        },
        hostname: "doomed".into(),
        log_directory: state.join("logs"),
        ..Default::default()
    };
    let sid = rt.run_pod_sandbox(&sandbox).expect("a sandbox");
    let id = rt
        .create_container(&sid, &container("c", "sleep 300"), &sandbox)
        .expect("create");
    rt.start_container(&id).expect("start");
    let pause = rt
        .pod_sandbox_status(&sid)
        .expect("status")
        .pid
        .expect("pause");
    let init = rt.container_status(&id).expect("status").pid.expect("init");
    println!("READY {pause} {init}");
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_runtime_is_cleaned_up_by_the_next() {
    if !can_run() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("kubelings-runtime-")
        .tempdir()
        .expect("a temp dir");
    let state = dir.path().join("state");
    let cgroup = format!("kubelings-test-{}-crash", std::process::id());
    images();
    let mut child = std::process::Command::new(std::env::current_exe().expect("this test"))
        .args([
            "--exact",
            "crash_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KUBELINGS_CRASH_STATE", &state)
        .env("KUBELINGS_CRASH_CGROUP", &cgroup)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the helper");
    let stdout = child.stdout.take().expect("its stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // After libtest's "test crash_helper ... ".
            if let Some((_, rest)) = line.split_once("READY ") {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30));
    // kill -9: no destructor runs.
    let _ = child.kill();
    let _ = child.wait();
    let left_mounts = mounts_beneath(&state);

    // The next runtime cleans up, also when the helper failed.
    let config = RuntimeConfig::new(&state, images().clone()).cgroup_name(&cgroup);
    let rt = LinuxRuntime::new(config).expect("the next runtime");
    let ready = ready.expect("the helper's pod ran");
    let pids: Vec<i32> = ready.split(' ').filter_map(|p| p.parse().ok()).collect();
    assert!(!left_mounts.is_empty(), "the crash left mounts");
    assert_eq!(
        mounts_beneath(&state),
        Vec::<String>::new(),
        "no mount left"
    );
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the dead runtime still runs");
    }
    let leftovers: Vec<PathBuf> = lab01::cgroup::find_leftovers(&cgroup)
        .into_iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    assert_eq!(leftovers, Vec::<PathBuf>::new(), "no pod cgroup left");
    assert!(
        !state.join("sandboxes").exists()
            || std::fs::read_dir(state.join("sandboxes"))
                .expect("dir")
                .next()
                .is_none()
    );
    drop(rt);
    assert!(
        lab01::cgroup::find_leftovers(&cgroup).is_empty(),
        "the node cgroup went with it"
    );
}

#[test]
fn a_second_runtime_on_the_same_state_is_refused() {
    if !can_run() {
        return;
    }
    let node = Node::new("lock");
    let config = RuntimeConfig::new(node.state(), images().clone());
    let err = LinuxRuntime::new(config).err().expect("refused");
    assert!(
        err.to_string().contains("in use by another runtime"),
        "{err}"
    );
}

/// The PSS of a process in KiB, from /proc/PID/smaps_rollup.
fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A measurement, not a check: `cargo test -p lab03 --test runtime --
/// --ignored --nocapture measure_pods` prints the pod start time (sandbox
/// and one container, until its process runs) and the PSS the runtime
/// adds per idle pod (its pause and the container's init).
#[test]
#[ignore = "a measurement: run it by name"]
fn measure_pods() {
    if !can_run() {
        return;
    }
    let node = Node::new("measure");
    let n = 40;
    let mut starts = Vec::new();
    let mut pods = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        let sandbox = node.sandbox(&format!("pod-{i}"));
        let t1 = started.elapsed();
        let id = node
            .rt
            .create_container(&sandbox.0, &container("idle", "exec sleep 600"), &sandbox.1)
            .expect("create");
        let t2 = started.elapsed();
        node.rt.start_container(&id).expect("start");
        starts.push(started.elapsed());
        if i % 10 == 0 {
            println!(
                "sandbox {t1:?} create {:?} start {:?}",
                t2 - t1,
                started.elapsed() - t2
            );
        }
        pods.push((sandbox, id));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut pss = Vec::new();
    for (sandbox, id) in &pods {
        let pause = node
            .rt
            .pod_sandbox_status(&sandbox.0)
            .expect("status")
            .pid
            .expect("pause");
        let init = node
            .rt
            .container_status(id)
            .expect("status")
            .pid
            .expect("init");
        pss.push((pss_kib(pause), pss_kib(init)));
    }
    starts.sort();
    let median = starts[n / 2];
    let (pause, init): (u64, u64) = pss.iter().fold((0, 0), |(a, b), (p, i)| (a + p, b + i));
    println!(
        "{n} pods: start median {:.1} ms (min {:.1}, max {:.1}); PSS per pod: pause {} KiB + init {} KiB = {} KiB",
        median.as_secs_f64() * 1e3,
        starts[0].as_secs_f64() * 1e3,
        starts[n - 1].as_secs_f64() * 1e3,
        pause / n as u64,
        init / n as u64,
        (pause + init) / n as u64
    );
    let removing = Instant::now();
    for (i, (sandbox, _)) in pods.iter().enumerate() {
        let t = Instant::now();
        node.rt.stop_pod_sandbox(&sandbox.0).expect("stop");
        let stopped = t.elapsed();
        node.rt.remove_pod_sandbox(&sandbox.0).expect("remove");
        if i % 10 == 0 {
            println!("stop {stopped:?} remove {:?}", t.elapsed() - stopped);
        }
    }
    println!(
        "removed in {:.0} ms",
        removing.elapsed().as_secs_f64() * 1e3
    );
}
