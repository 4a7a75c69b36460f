//! The `ch03` program end to end: a node of its own running the book's
//! pods (static pods), kubectl's commands against it, bad input, and
//! nothing left behind after `node down` or after a kill -9 and a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lab01::probe::{require, Privilege};

fn ch03(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ch03").expect("the ch03 binary");
    cmd.arg("--home").arg(home).timeout(Duration::from_secs(90));
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the book shows must fit its 80 columns.
fn assert_fits(text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src/ch03/manifests")
}

#[test]
fn the_books_manifests_parse_and_validate() {
    let mut seen = 0;
    for entry in std::fs::read_dir(manifests()).expect("the manifests") {
        let path = entry.expect("entry").path();
        let body = std::fs::read_to_string(&path).expect("read");
        let pod = lab03::manifest::parse_pod(&body)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let errors = lab03::validate::validate_pod(&pod);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        assert!(
            body.starts_with("apiVersion: v1\nkind: Pod\n"),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[test]
fn bad_manifests_are_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "bad-yaml.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kubia\n spec: {}\n",
        ),
        (
            "unknown-field.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kubia\nspec:\n  containers:\n  \
             - name: kubia\n    image: kubia:v1\n    imagePullPolizy: Never\n",
        ),
        (
            "no-image.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kubia\nspec:\n  containers:\n  \
             - name: kubia\n",
        ),
        (
            "same-name.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kubia\nspec:\n  containers:\n  \
             - name: kubia\n    image: kubia:v1\n  - name: kubia\n    image: busybox:1\n",
        ),
        (
            "bad-name.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Kubia_Manual\nspec:\n  containers:\n  \
             - name: kubia\n    image: kubia:v1\n",
        ),
    ];
    let mut refusals = String::new();
    for (name, body) in cases {
        std::fs::write(work.path().join(name), body).expect("write");
        let out = ch03(&work.path().join("home"))
            .current_dir(work.path())
            .args(["apply", "-f", name])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{name}");
        refusals += &format!("$ ch03 apply -f {name}\n{}", text(&out.stderr));
    }
    // Nothing was written anywhere.
    assert!(!work.path().join("home/nodes").exists());
    assert_fits(&refusals);
    insta::assert_snapshot!(refusals);
}

/// Root, or a printed reason to skip.
fn can_run_nodes() -> bool {
    require(Privilege::Root)
}

/// The first test home's images, built once per test.
fn home_with_images(work: &Path) -> PathBuf {
    let home = work.join("home");
    ch03(&home).arg("images").assert().success();
    home
}

/// Runs `get pods` until `done` holds for its output.
fn wait_get(home: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ch03(home).args(["get", "pods"]).output().expect("get");
        let table = text(&out.stdout);
        if done(&table) {
            return table;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {what}; last:\n{table}{}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn row<'a>(table: &'a str, pod: &str) -> Option<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pod))
}

fn status_of(table: &str, pod: &str) -> Option<String> {
    row(table, pod)
        .and_then(|l| l.split_whitespace().nth(2))
        .map(str::to_string)
}

/// The cgroup directory named `name` anywhere beneath the cgroup roots.
fn find_dir(root: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    if depth == 0 {
        return None;
    }
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name().to_string_lossy() == name {
            return Some(path);
        }
        if let Some(found) = find_dir(&path, name, depth - 1) {
            return Some(found);
        }
    }
    None
}

/// The runtime's node cgroup name for a state directory (FNV-1a of its
/// path, as lab03's runtime names it).
fn node_cgroup(state_dir: &Path) -> String {
    let h = state_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("kubelings-node-{h:016x}")
}

/// Everything of a node's that could outlive it: mounts (the node's
/// network namespace is a bind mount in its directory, the containers'
/// root filesystems are overlay mounts there), processes rooted there or
/// naming it, and its cgroup.
fn leftovers(home: &Path, node: &str) -> Vec<String> {
    let mut found = Vec::new();
    let home_s = home.to_string_lossy().into_owned();
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines().filter(|l| l.contains(&home_s)) {
        found.push(format!("mount: {line}"));
    }
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let cmdline =
            std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let root =
            std::fs::read_link(entry.path().join("root")).unwrap_or_default();
        if text(&cmdline).contains(&home_s) || root.starts_with(home) {
            found.push(format!(
                "process {name}: {}",
                text(&cmdline).replace('\0', " ")
            ));
        }
    }
    let state = home.join("nodes").join(node).join("runtime");
    let cgroup = node_cgroup(&state);
    if let Some(dir) = find_dir(Path::new("/sys/fs/cgroup"), &cgroup, 8) {
        found.push(format!("cgroup: {}", dir.display()));
    }
    if Path::new("/sys/class/net/kube0").exists() {
        found.push("the root network namespace has a kube0".into());
    }
    found
}

/// A filter for insta: what varies between runs.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"198\.18\.1\.[1-9]\d*", "198.18.1.[N]");
    s.add_filter(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000", "[TIME]");
    s.add_filter(r"(Container ID:\s+)\S+", "$1[ID]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"(?m)^(\S+\s+\d+/\d+\s+\S+\s+\d+\s+)\d+\w*$", "$1[AGE]");
    // An event's age sits mid-row: keep type, reason and message.
    s.add_filter(
        r"(?m)^  (Normal|Warning)\s+(\S+)\s+.*?\s+kubelet\s+(.*)$",
        "  $1  $2  [AGE]  kubelet  $3",
    );
    s
}

#[test]
fn a_node_runs_the_books_pods() {
    if !can_run_nodes() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let home = home_with_images(work.path());
    let up = ch03(&home)
        .args(["node", "up", "--backoff-base-ms", "200"])
        .output()
        .expect("up");
    assert!(up.status.success(), "node up: {}", text(&up.stderr));
    // Whatever happens below, the node goes down.
    struct Down<'a>(&'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = ch03(self.0).args(["node", "down"]).output();
        }
    }
    let down = Down(&home);
    for m in ["kubia-manual.yaml", "kubia-with-sidecar.yaml"] {
        let out = ch03(&home)
            .arg("apply")
            .arg("-f")
            .arg(manifests().join(m))
            .output()
            .expect("apply");
        assert!(out.status.success(), "apply {m}: {}", text(&out.stderr));
    }
    let table = wait_get(&home, "both pods Running", |t| {
        status_of(t, "kubia-manual").as_deref() == Some("Running")
            && row(t, "kubia-with-sidecar").is_some_and(|r| r.contains("2/2"))
    });
    assert!(table.starts_with("NAME "), "{table}");
    let wide = ch03(&home)
        .args(["get", "pods", "-o", "wide"])
        .output()
        .expect("wide");
    let wide = text(&wide.stdout);
    assert!(
        wide.contains("IP ") && wide.contains("NOMINATED NODE"),
        "{wide}"
    );
    assert!(
        wide.contains("198.18.1.") && wide.contains("node-1"),
        "{wide}"
    );

    // A second pod by the same name is refused.
    let again = ch03(&home)
        .arg("apply")
        .arg("-f")
        .arg(manifests().join("kubia-manual.yaml"))
        .output()
        .expect("apply");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    // The same hostname in both containers; exec's exit code comes back.
    let exec = ch03(&home)
        .args([
            "exec",
            "kubia-with-sidecar",
            "-c",
            "fetcher",
            "--",
            "hostname",
        ])
        .output()
        .expect("exec");
    assert_eq!(text(&exec.stdout).trim(), "kubia-with-sidecar");
    let exec = ch03(&home)
        .args([
            "exec",
            "kubia-with-sidecar",
            "-c",
            "fetcher",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .output()
        .expect("exec");
    assert_eq!(exec.status.code(), Some(3));

    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );

    // A crash loop: restarts counted, the previous instance's log kept.
    let crasher = work.path().join("crasher.yaml");
    std::fs::write(
        &crasher,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crasher\nspec:\n  containers:\n  \
         - name: main\n    image: busybox:1\n    command: [sh, -c, 'echo ran; exit 1']\n",
    )
    .expect("write");
    ch03(&home)
        .arg("apply")
        .arg("-f")
        .arg(&crasher)
        .assert()
        .success();
    let t = wait_get(&home, "CrashLoopBackOff", |t| {
        status_of(t, "crasher").as_deref() == Some("CrashLoopBackOff")
            && row(t, "crasher").is_some_and(|r| r.contains(" ago)"))
    });
    assert!(row(&t, "crasher").is_some_and(|r| r.contains("0/1")), "{t}");
    let previous = ch03(&home)
        .args(["logs", "crasher", "--previous"])
        .output()
        .expect("logs --previous");
    assert_eq!(
        text(&previous.stdout),
        "ran\n",
        "{}",
        text(&previous.stderr)
    );

    let tail = ch03(&home)
        .args(["logs", "kubia-with-sidecar", "-c", "kubia", "--tail", "1"])
        .output()
        .expect("logs --tail");
    assert_eq!(
        text(&tail.stdout).lines().count(),
        1,
        "{}",
        text(&tail.stdout)
    );
    assert!(
        text(&tail.stdout).starts_with("Received request from"),
        "{}",
        text(&tail.stdout)
    );

    let logs = ch03(&home)
        .args(["logs", "kubia-manual"])
        .output()
        .expect("logs");
    assert!(
        text(&logs.stdout).contains("Kubia server starting"),
        "{}",
        text(&logs.stdout)
    );

    // An image the store does not hold.
    let missing = work.path().join("missing.yaml");
    std::fs::write(
        &missing,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: missing\nspec:\n  containers:\n  \
         - name: main\n    image: nothere:v9\n",
    )
    .expect("write");
    ch03(&home)
        .arg("apply")
        .arg("-f")
        .arg(&missing)
        .assert()
        .success();
    let t = wait_get(&home, "ErrImagePull", |t| {
        matches!(
            status_of(t, "missing").as_deref(),
            Some("ErrImagePull") | Some("ImagePullBackOff")
        )
    });
    assert!(row(&t, "missing").is_some_and(|r| r.contains("0/1")), "{t}");
    let described = ch03(&home)
        .args(["describe", "pod", "missing"])
        .output()
        .expect("describe");
    assert!(
        text(&described.stdout).contains("nothere:v9"),
        "{}",
        text(&described.stdout)
    );

    let described = ch03(&home)
        .args(["describe", "pod", "kubia-manual"])
        .output()
        .expect("describe");
    let described = text(&described.stdout);
    settings()
        .bind(|| insta::assert_snapshot!("describe_kubia_manual", described));

    let deleted = ch03(&home)
        .args(["delete", "pod", "kubia-manual"])
        .output()
        .expect("delete");
    assert_eq!(
        text(&deleted.stdout),
        "pod \"kubia-manual\" deleted\n",
        "{}",
        text(&deleted.stderr)
    );
    let table = wait_get(&home, "kubia-manual gone", |t| {
        row(t, "kubia-manual").is_none()
    });
    assert!(row(&table, "kubia-with-sidecar").is_some());

    let out = ch03(&home).args(["node", "down"]).output().expect("down");
    assert!(out.status.success(), "node down: {}", text(&out.stderr));
    std::mem::forget(down);
    let left = leftovers(&home, "node-1");
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

#[test]
fn kill_9_then_node_up_cleans_up() {
    if !can_run_nodes() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let home = home_with_images(work.path());
    ch03(&home).args(["node", "up"]).assert().success();
    ch03(&home)
        .arg("apply")
        .arg("-f")
        .arg(manifests().join("kubia-manual.yaml"))
        .assert()
        .success();
    wait_get(&home, "Running", |t| {
        status_of(t, "kubia-manual").as_deref() == Some("Running")
    });
    let pid_file = home.join("nodes/node-1/daemon.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill -9");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(" Z ")
    {
        assert!(Instant::now() < deadline, "the daemon outlived kill -9");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A command now says the node is gone; `node up` cleans and starts
    // the static pods again.
    let get = ch03(&home).args(["get", "pods"]).output().expect("get");
    assert_eq!(get.status.code(), Some(1));
    ch03(&home).args(["node", "up"]).assert().success();
    wait_get(&home, "Running again", |t| {
        status_of(t, "kubia-manual").as_deref() == Some("Running")
    });
    ch03(&home).args(["node", "down"]).assert().success();
    let left = leftovers(&home, "node-1");
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

#[test]
fn the_chapter_demo() {
    if !can_run_nodes() {
        return;
    }
    let out = Command::cargo_bin("ch03")
        .expect("ch03")
        .arg("demo")
        .timeout(Duration::from_secs(90))
        .output()
        .expect("demo");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_fits(&stdout);
    settings().bind(|| insta::assert_snapshot!(stdout));
}

#[test]
fn density_leaves_nothing() {
    if !can_run_nodes() {
        return;
    }
    let out = Command::cargo_bin("ch03")
        .expect("ch03")
        .args(["density", "--pods", "5"])
        .timeout(Duration::from_secs(90))
        .output()
        .expect("density");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("pods on one node          5"), "{stdout}");
    assert!(
        stdout.contains("left behind               nothing"),
        "{stdout}"
    );
}
