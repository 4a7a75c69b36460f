//! `ch05 tour` as root, on both stores: every step's real output, as a
//! snapshot with only what varies redacted (names' random suffixes,
//! addresses, ages, how long things took, the home directory). Table
//! rows are sorted after redaction, since kubectl orders pods by their
//! random names. The tours run one at a time: each cluster's API server
//! listens on 127.0.0.1:6443.
//!
//! Beside each tour, the official Python client watches its pods
//! (`tests/python/watch_tour.py`), and what it saw is checked: every pod
//! the tour made, from its first state to its last, in order.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lab01::probe::{require, require_program, Privilege};

#[path = "ch05/python.rs"]
mod python;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The whole tour, with the slack a loaded 2-core machine needs.
const LIMIT: Duration = Duration::from_secs(600);

fn ch05() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ch05"))
}

/// Runs the tour in `home`; its output and whether it succeeded.
fn tour(home: &Path, store: &str) -> (String, bool) {
    let mut child = Command::new(ch05())
        .args(["tour", "--store", store])
        .env("KUBELINGS_HOME", home)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ch05 tour");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if t0.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    if status.is_none() {
        // Whatever the tour left, down takes away.
        let _ = Command::new(ch05())
            .arg("down")
            .env("KUBELINGS_HOME", home)
            .status();
        panic!("the tour did not end within {LIMIT:?}:\n{text}");
    }
    (text, status.is_some_and(|s| s.success()))
}

/// What varies from run to run, replaced; the shape kept.
fn redact(text: &str, home: &Path) -> String {
    let home = home.display().to_string();
    let rules: &[(&str, &str)] = &[
        // Pods' and ReplicaSets' generated suffixes.
        (r"kubia-([0-9a-f]{8,10})-[a-z0-9]{5}\b", "kubia-$1-<id>"),
        (r"198\.19\.\d+\.\d+", "198.19.<ip>"),
        (r"198\.18\.(\d+)\.\d+", "198.18.$1.<ip>"),
        (r"(waited|Ready after|took) \d+(\.\d+)? s\b", "$1 <t> s"),
        (r"\b\d+(s|m\d*s?|h)\b", "<age>"),
        (r"(\d+) requests during", "<n> requests during"),
        (r"(\d+) pods answered", "<n> pods answered"),
        (r"node-(\d) \d+", "node-$1 <n>"),
        (r"Received request from .*", "Received request from <ip>"),
    ];
    let mut out = text.replace(&home, "<home>");
    for (pattern, with) in rules {
        out = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&out, *with)
            .into_owned();
    }
    // Columns realigned by other widths: one space is the shape (and
    // keeps the book's 80 columns).
    let spaces = regex::Regex::new(r"  +").unwrap();
    let lines: Vec<String> = out
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                l.to_string()
            } else {
                spaces.replace_all(l, " ").trim_end().to_string()
            }
        })
        .collect();
    // Rows of pod tables and the requests' answers in a stable order.
    let mut sorted = Vec::new();
    let mut run: Vec<String> = Vec::new();
    for line in lines {
        if line.starts_with("kubia-") || line.starts_with("You've hit ") {
            run.push(line);
            continue;
        }
        run.sort();
        sorted.append(&mut run);
        sorted.push(line);
    }
    run.sort();
    sorted.append(&mut run);
    sorted.join("\n") + "\n"
}

fn check(store: &str) {
    if !require(Privilege::Root)
        || !require_program("kubectl")
        || !require_program("curl")
    {
        return;
    }
    if store == "etcd" && !require_program("etcd") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let home = tempfile::tempdir().expect("home");
    let watcher = python::python().map(|py| Watcher::start(&py, home.path()));
    let (text, ok) = tour(home.path(), store);
    let seen = watcher.map(Watcher::stop);
    assert!(ok, "the tour failed:\n{text}");
    if let Some(events) = seen {
        check_watched(&events, &text);
    }
    for must in [
        "0 failed",
        "the first answered from v1: true; the last from v2: true",
        "the leader is now scheduler-2",
        "none on node-2",
    ] {
        assert!(text.contains(must), "the tour never said {must:?}:\n{text}");
    }
    insta::assert_snapshot!(
        format!("the_tour_over_{store}"),
        redact(&text, home.path())
    );
}

/// The Python client watching the tour's pods, its output read on a
/// thread so that it never blocks on a full pipe.
struct Watcher {
    child: std::process::Child,
    out: std::thread::JoinHandle<String>,
}

impl Watcher {
    fn start(python: &str, home: &Path) -> Watcher {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/python/watch_tour.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(home.join("cluster/control-plane/admin.kubeconfig"))
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the Python watcher");
        let mut out = child.stdout.take().expect("stdout");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        Watcher { child, out }
    }

    /// Ends it (our child, by pid) and answers the events it printed.
    fn stop(mut self) -> Vec<serde_json::Value> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = self.out.join().unwrap_or_default();
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("watcher line {l:?}: {e}"))
            })
            .collect()
    }
}

/// What the Python client saw must be the tour's story, whole and in
/// order: it watched from the start; every kubia pod first appears when
/// it is created, is seen Running and ready, never goes back to Pending,
/// and is seen no more after it is DELETED; resourceVersions only grow
/// along the watch; and the pods the tour deleted (the victim, node-2's,
/// the rolled-out v1 ones) are among the DELETED.
fn check_watched(events: &[serde_json::Value], tour: &str) {
    use std::collections::BTreeMap;
    let start = events
        .iter()
        .position(|e| e["type"] == "WATCHING")
        .unwrap_or_else(|| panic!("the watcher never watched: {events:?}"));
    let mut last_rv = 0u64;
    let mut pods: BTreeMap<&str, Vec<&serde_json::Value>> = BTreeMap::new();
    for e in &events[start + 1..] {
        let name = e["name"].as_str().expect("name");
        if e["type"] != "LISTED" {
            let rv: u64 =
                e["rv"].as_str().and_then(|r| r.parse().ok()).expect("rv");
            assert!(rv > last_rv, "resourceVersion went back at {e}");
            last_rv = rv;
        }
        if name.starts_with("kubia-") {
            pods.entry(name).or_default().push(e);
        }
    }
    assert!(
        pods.len() >= 10,
        "only {} kubia pods seen: {pods:?}",
        pods.len()
    );
    let mut deleted = 0;
    for (name, seen) in &pods {
        let first = seen[0]["type"].as_str();
        assert!(
            matches!(first, Some("ADDED" | "LISTED")),
            "{name} first seen as {first:?}"
        );
        assert!(
            seen[0]["phase"] == "Pending" || seen[0]["type"] == "LISTED",
            "{name} was not seen Pending first: {seen:?}"
        );
        let mut running = false;
        for (i, e) in seen.iter().enumerate() {
            if e["phase"] == "Running" {
                running = true;
            }
            assert!(
                !(running && e["phase"] == "Pending"),
                "{name} went back to Pending: {seen:?}"
            );
            if e["type"] == "DELETED" {
                assert_eq!(
                    i,
                    seen.len() - 1,
                    "{name} seen after DELETED: {seen:?}"
                );
                deleted += 1;
            }
        }
        assert!(
            seen.iter()
                .any(|e| e["phase"] == "Running" && e["ready"] == true)
                || seen.iter().any(|e| e["deleting"] == true),
            "{name} was never seen Running and ready: {seen:?}"
        );
    }
    // The pod the tour deletes by hand.
    let victim = tour
        .lines()
        .find_map(|l| l.strip_prefix("$ kubectl delete pod "))
        .expect("the tour deletes a pod")
        .trim();
    assert_eq!(
        pods.get(victim).and_then(|s| s.last()).map(|e| &e["type"]),
        Some(&serde_json::Value::from("DELETED")),
        "the victim {victim}: {:?}",
        pods.get(victim)
    );
    assert!(deleted >= 7, "only {deleted} pods seen DELETED: {pods:?}");
    eprintln!(
        "the Python client saw {} events of {} kubia pods, {deleted} deleted",
        events.len() - start - 1,
        pods.len()
    );
}

#[test]
fn the_tour_over_embedded() {
    check("embedded");
}

#[test]
fn the_tour_over_etcd() {
    check("etcd");
}

#[test]
fn the_redactions_keep_the_shape() {
    let home = Path::new("/tmp/h");
    let text = "\
$ kubectl get pods -o wide
NAME                     READY   STATUS    RESTARTS   AGE   IP           NODE
kubia-84987d57b6-zgj7h   1/1     Running   0          12s   198.18.3.2   node-3
kubia-84987d57b6-abcde   1/1     Running   0          2s    198.18.1.7   node-1
# waited 1.3 s until 3 kubia pods were Ready
# a node is unreachable after 8 s
# pods per node: node-1 1, node-3 1
export KUBECONFIG=/tmp/h/cluster/control-plane/admin.kubeconfig
";
    assert_eq!(
        redact(text, home),
        "\
$ kubectl get pods -o wide
NAME READY STATUS RESTARTS AGE IP NODE
kubia-84987d57b6-<id> 1/1 Running 0 <age> 198.18.1.<ip> node-1
kubia-84987d57b6-<id> 1/1 Running 0 <age> 198.18.3.<ip> node-3
# waited <t> s until 3 kubia pods were Ready
# a node is unreachable after 8 s
# pods per node: node-1 <n>, node-3 <n>
export KUBECONFIG=<home>/cluster/control-plane/admin.kubeconfig
"
    );
}
