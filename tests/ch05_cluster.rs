//! `ch05 up --nodes 2` as root: the real kubectl sees the nodes Ready,
//! a node reaches the API server on the cluster network, a node stopped
//! and started again, and `ch05 down` leaves nothing: no process, no
//! network namespace, no listening socket, no cgroup beneath ours.
//!
//! Until `ch05 node-agent` exists the nodes cannot become Ready: the test
//! then says so and checks the rest (the control plane, the network,
//! `ssh`, `down`).
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lab01::probe::{require, require_program, Privilege};

fn ch05() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ch05"))
}

/// Runs `program args…` with `KUBELINGS_HOME=home`, killed after `limit`.
fn run(program: &Path, args: &[&str], home: &Path, limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env("KUBELINGS_HOME", home)
        .env(
            "KUBECONFIG",
            home.join("cluster/control-plane/admin.kubeconfig"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    // Pipes are read on threads, so a long answer cannot stall the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} did not finish within {limit:?}",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The pids (with start times) the state file records, supervisor first.
fn recorded(home: &Path) -> Vec<(u32, u64)> {
    let path = home.join("cluster/state.json");
    let text = std::fs::read_to_string(&path).expect("the state file");
    let state: serde_json::Value =
        serde_json::from_str(&text).expect("its JSON");
    let id = |v: &serde_json::Value| {
        (
            v["pid"].as_u64().expect("pid") as u32,
            v["start_time"].as_u64().expect("start_time"),
        )
    };
    let mut ids = vec![id(&state["supervisor"])];
    for c in state["components"].as_array().expect("components") {
        ids.push(id(&c["process"]));
    }
    ids
}

/// Whether process `pid` that started at `start` still runs.
fn alive((pid, start): (u32, u64)) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.first() != Some(&"Z")
        && fields.get(19).and_then(|s| s.parse().ok()) == Some(start)
}

/// The cgroup directories beneath this process's own, in every hierarchy
/// where it is not the root (the root's belong to everybody).
fn cgroups_beneath_ours() -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let Ok(table) = std::fs::read_to_string("/proc/self/cgroup") else {
        return found;
    };
    for line in table.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if path == "/" {
            continue;
        }
        let mount = match controllers {
            "" => PathBuf::from("/sys/fs/cgroup"),
            c => PathBuf::from("/sys/fs/cgroup")
                .join(c.trim_start_matches("name=")),
        };
        let mut stack = vec![mount.join(path.trim_start_matches('/'))];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    found.insert(e.path());
                    stack.push(e.path());
                }
            }
        }
    }
    found
}

fn nsfs_mounts_under(dir: &Path) -> Vec<PathBuf> {
    lab03::network::find_leftovers(dir).expect("the mount table")
}

#[test]
fn up_kubectl_nodes_ssh_stop_start_down() {
    if !require(Privilege::Root) || !require_program("kubectl") {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let ch05 = ch05();
    let has_agent = run(
        &ch05,
        &["node-agent", "--help"],
        home,
        Duration::from_secs(10),
    )
    .status
    .success();
    if !has_agent {
        eprintln!("ch05 has no node-agent yet: the nodes cannot become Ready, only the rest is checked");
    }
    let cgroups_before = cgroups_beneath_ours();
    let wait = if has_agent { "60" } else { "3" };
    let up = run(
        &ch05,
        &["up", "--nodes", "2", "--port", "0", "--wait", wait],
        home,
        Duration::from_secs(180),
    );
    let ids = recorded(home);
    let url =
        std::fs::read_to_string(home.join("cluster/control-plane/server-url"))
            .expect("the server's URL");
    let port: u16 = url
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let kubectl = Path::new("kubectl");
    if has_agent {
        assert!(up.status.success(), "ch05 up: {}", text(&up));
        assert!(text(&up).contains("export KUBECONFIG="), "{}", text(&up));
        let nodes =
            run(kubectl, &["get", "nodes"], home, Duration::from_secs(30));
        let table = text(&nodes);
        for node in ["node-1", "node-2"] {
            let row = table
                .lines()
                .find(|l| l.starts_with(node))
                .unwrap_or_else(|| panic!("{table}"));
            assert_eq!(row.split_whitespace().nth(1), Some("Ready"), "{table}");
        }
    } else {
        assert!(
            !up.status.success(),
            "ch05 up without node agents: {}",
            text(&up)
        );
    }
    let info = run(kubectl, &["cluster-info"], home, Duration::from_secs(30));
    assert!(
        text(&info).contains(&format!("https://127.0.0.1:{port}")),
        "{}",
        text(&info)
    );
    // From node-1's namespace, with node-1's own kubeconfig: the API
    // server's second listener, its address in the certificate.
    let node_config = home.join("cluster/control-plane/node-1.kubeconfig");
    let node_config = node_config.to_str().expect("utf-8");
    let from_node = run(
        &ch05,
        &[
            "ssh",
            "node-1",
            "--",
            "kubectl",
            "--kubeconfig",
            node_config,
            "get",
            "--raw",
            "/version",
        ],
        home,
        Duration::from_secs(30),
    );
    assert!(from_node.status.success(), "{}", text(&from_node));
    assert!(
        text(&from_node).contains("gitVersion"),
        "{}",
        text(&from_node)
    );
    let config =
        std::fs::read_to_string(node_config).expect("node-1's kubeconfig");
    assert!(config.contains("https://198.18.0.254:6443"), "{config}");
    // stop-node takes node-2 off the network, start-node brings it back.
    let stop = run(
        &ch05,
        &["stop-node", "node-2"],
        home,
        Duration::from_secs(60),
    );
    assert!(stop.status.success(), "{}", text(&stop));
    let ssh = run(
        &ch05,
        &["ssh", "node-2", "--", "true"],
        home,
        Duration::from_secs(10),
    );
    assert!(!ssh.status.success(), "node-2 is stopped: {}", text(&ssh));
    let start = run(
        &ch05,
        &["start-node", "node-2"],
        home,
        Duration::from_secs(60),
    );
    assert!(start.status.success(), "{}", text(&start));
    let ssh = run(
        &ch05,
        &["ssh", "node-2", "--", "true"],
        home,
        Duration::from_secs(10),
    );
    assert!(ssh.status.success(), "{}", text(&ssh));
    let status = run(&ch05, &["status"], home, Duration::from_secs(30));
    let shown = text(&status);
    assert!(shown.contains("apiserver"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("node-2") && l.contains("running"))
            || !has_agent,
        "{shown}"
    );
    let logs =
        run(&ch05, &["logs", "apiserver"], home, Duration::from_secs(10));
    assert!(
        text(&logs).contains("the API server listens on"),
        "{}",
        text(&logs)
    );
    let ids_now = recorded(home);

    let down = run(&ch05, &["down"], home, Duration::from_secs(120));
    assert!(down.status.success(), "{}", text(&down));
    for id in ids.iter().chain(&ids_now) {
        assert!(!alive(*id), "process {} outlived ch05 down", id.0);
    }
    assert_eq!(
        nsfs_mounts_under(home),
        Vec::<PathBuf>::new(),
        "namespaces left"
    );
    assert!(!home.join("cluster/network").exists());
    assert!(
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(500)
        )
        .is_err(),
        "something still listens on 127.0.0.1:{port}"
    );
    let cgroups_after = cgroups_beneath_ours();
    let left: Vec<_> = cgroups_after.difference(&cgroups_before).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let again = run(&ch05, &["status"], home, Duration::from_secs(10));
    assert!(
        text(&again).contains("no cluster is up"),
        "{}",
        text(&again)
    );
}
