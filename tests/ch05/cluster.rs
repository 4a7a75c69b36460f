//! The fixture of the tests that run a whole cluster (`ch05_cluster.rs`,
//! `ch05_manifests.rs`): `ch05` and kubectl with a cluster's home, killed
//! after a limit, and what `ch05 down` must leave behind: nothing.
//! (Each test uses part of it.)
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn ch05() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ch05"))
}

/// Runs `program args…` with `KUBELINGS_HOME=home`, killed after `limit`.
pub fn run(
    program: &Path,
    args: &[&str],
    home: &Path,
    limit: Duration,
) -> Output {
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

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The pids (with start times) the state file records, supervisor first.
pub fn recorded(home: &Path) -> Vec<(u32, u64)> {
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
pub fn alive((pid, start): (u32, u64)) -> bool {
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
pub fn cgroups_beneath_ours() -> BTreeSet<PathBuf> {
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

pub fn nsfs_mounts_under(dir: &Path) -> Vec<PathBuf> {
    lab03::network::find_leftovers(dir).expect("the mount table")
}

/// kubectl `args` against the cluster in `home`: its stdout, or a panic
/// that shows what it said.
pub fn kubectl(home: &Path, args: &[&str]) -> String {
    let out = run(Path::new("kubectl"), args, home, Duration::from_secs(60));
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl get pods -l selector` through a jsonpath `template` of one
/// line per pod: the fields of each line, split at `|`.
pub fn pod_rows(
    home: &Path,
    selector: &str,
    template: &str,
) -> Vec<Vec<String>> {
    let template = format!("{{range .items[*]}}{template}{{\"\\n\"}}{{end}}");
    kubectl(
        home,
        &[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            &format!("jsonpath={template}"),
        ],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| l.split('|').map(str::to_string).collect())
    .collect()
}

/// Polls `check` every 200 ms until it answers `Some`, or panics naming
/// `what` and the last thing seen after `limit`.
pub fn wait_until<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) if Instant::now() > deadline => {
                panic!("{what}: not within {limit:?}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `ch05 up --nodes 2 --port 0 --fast` in `home`, taken down again when
/// dropped: on success and on a failed assertion alike.
pub struct Up<'a>(&'a Path);

impl<'a> Up<'a> {
    pub fn two_nodes(home: &'a Path) -> Up<'a> {
        Up::two_nodes_on(home, "embedded")
    }

    /// The same over `store`: `embedded` or `etcd`.
    pub fn two_nodes_on(home: &'a Path, store: &str) -> Up<'a> {
        let up = run(
            &ch05(),
            &[
                "up", "--nodes", "2", "--port", "0", "--fast", "--store", store,
            ],
            home,
            Duration::from_secs(180),
        );
        let guard = Up(home);
        assert!(up.status.success(), "ch05 up: {}", text(&up));
        guard
    }
}

impl Drop for Up<'_> {
    fn drop(&mut self) {
        let down = run(&ch05(), &["down"], self.0, Duration::from_secs(120));
        if !down.status.success() && !std::thread::panicking() {
            panic!("ch05 down: {}", text(&down));
        }
    }
}
