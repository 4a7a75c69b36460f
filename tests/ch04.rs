//! The `ch04` program end to end: the book's Service manifests on a node
//! of its own (`apply`, `get`, `describe`, `delete`), bad input refused
//! with nothing written, and the chapter's demo through each proxy.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lab01::probe::{require, require_program, Privilege};

fn ch04(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ch04").expect("the ch04 binary");
    cmd.arg("--home")
        .arg(home)
        .timeout(Duration::from_secs(120));
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_fits(text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../labs/lab04-services/tests/services")
}

/// A node of the test's own, taken down (pods, rules, network) on drop.
struct NodeUp {
    home: PathBuf,
}

impl NodeUp {
    fn start(home: &Path, proxy: &str) -> NodeUp {
        ch04(home)
            .args(["node", "up", "--proxy", proxy])
            .assert()
            .success();
        NodeUp {
            home: home.to_path_buf(),
        }
    }
}

impl Drop for NodeUp {
    fn drop(&mut self) {
        let _ = ch04(&self.home).args(["node", "down"]).output();
    }
}

fn can_run_nodes() -> bool {
    require(Privilege::Root) && require_program("nft")
}

/// Lines up the columns of a table again after redaction changed the
/// widths of its cells, with the printers' own aligner: `get`'s minimum
/// width 6 and padding 3, or `describe`'s 0 and 2.
fn realign(lines: &[String], min_width: usize, padding: usize) -> Vec<String> {
    let split = regex::Regex::new(r"\s{2,}").expect("pattern");
    let cells: Vec<String> = lines
        .iter()
        .map(|l| split.replace_all(l.trim_end(), "\t").into_owned())
        .collect();
    let text =
        chapters::tabwriter::align(&cells.join("\n"), min_width, padding);
    text.lines().map(str::to_string).collect()
}

/// Replaces what changes from run to run: service and pod addresses,
/// ages, times, uids, slice names; tables are lined up again.
fn redact(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut l = line.to_string();
        for (pattern, with) in [
            (r"198\.19\.\d+\.\d+", "198.19.X.X"),
            (r"198\.18\.1\.\d+", "198.18.1.X"),
            (r"\b\d+(s|m\d*s?)\b", "<age>"),
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>"),
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "<uid>",
            ),
            (
                r"(kubia[a-z-]*)-[bcdfghjklmnpqrstvwxz2456789]{5}\b",
                "$1-XXXXX",
            ),
        ] {
            l = regex::Regex::new(pattern)
                .expect("pattern")
                .replace_all(&l, with)
                .into_owned();
        }
        lines.push(l);
    }
    // A table: a header and the rows under it at the same indent, up to
    // the next command.
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let header = lines[i].starts_with("NAME ")
            || lines[i].trim_start().starts_with("Type ");
        if header {
            let indent = lines[i].len() - lines[i].trim_start().len();
            let mut j = i + 1;
            while j < lines.len()
                && !lines[j].starts_with('$')
                && !lines[j].trim().is_empty()
                && lines[j].len() - lines[j].trim_start().len() == indent
            {
                j += 1;
            }
            let block: Vec<String> = lines[i..j]
                .iter()
                .map(|l| l.trim_start().to_string())
                .collect();
            let (min_width, padding) =
                if indent == 0 { (6, 3) } else { (0, 2) };
            out.extend(
                realign(&block, min_width, padding)
                    .into_iter()
                    .map(|l| format!("{}{l}", " ".repeat(indent))),
            );
            i = j;
        } else {
            out.push(lines[i].clone());
            i += 1;
        }
    }
    out.join("\n") + "\n"
}

#[test]
fn bad_services_are_named_and_change_nothing() {
    if !can_run_nodes() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let home = work.path().join("home");
    let _node = NodeUp::start(&home, "nftables");
    let good = "apiVersion: v1\nkind: Service\nmetadata:\n  name: taken\nspec:\n  clusterIP: 198.19.0.50\n  \
                selector:\n    app: kubia\n  ports:\n  - port: 80\n";
    std::fs::write(work.path().join("taken.yaml"), good).expect("write");
    ch04(&home)
        .current_dir(work.path())
        .args(["apply", "-f", "taken.yaml"])
        .assert()
        .success();
    let svc = |name: &str, spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}")
    };
    let cases = [
        ("bad-yaml.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n spec: {}\n".to_string()),
        ("unknown-field.yaml", svc("kubia", "  selector:\n    app: kubia\n  portz:\n  - port: 80\n")),
        ("bad-selector.yaml", svc("kubia", "  selector:\n    app!: kubia\n  ports:\n  - port: 80\n")),
        (
            "duplicate-port.yaml",
            svc("kubia", "  selector:\n    app: kubia\n  ports:\n  - name: a\n    port: 80\n  - name: b\n    port: 80\n"),
        ),
        (
            "outside-range.yaml",
            svc("kubia", "  clusterIP: 10.0.0.1\n  selector:\n    app: kubia\n  ports:\n  - port: 80\n"),
        ),
        (
            "ip-taken.yaml",
            svc("kubia", "  clusterIP: 198.19.0.50\n  selector:\n    app: kubia\n  ports:\n  - port: 80\n"),
        ),
        (
            "nodeport-range.yaml",
            svc(
                "kubia",
                "  type: NodePort\n  selector:\n    app: kubia\n  ports:\n  - port: 80\n    nodePort: 40000\n",
            ),
        ),
        ("expose-set.sh", String::new()),
    ];
    let mut refusals = String::new();
    for (name, body) in &cases {
        let out = if name.ends_with(".sh") {
            refusals +=
                "$ ch04 expose label 'app in (kubia)' --name kubia --port 80\n";
            ch04(&home)
                .args([
                    "expose",
                    "label",
                    "app in (kubia)",
                    "--name",
                    "kubia",
                    "--port",
                    "80",
                ])
                .output()
                .expect("run")
        } else {
            std::fs::write(work.path().join(name), body).expect("write");
            refusals += &format!("$ ch04 apply -f {name}\n");
            ch04(&home)
                .current_dir(work.path())
                .args(["apply", "-f", name])
                .output()
                .expect("run")
        };
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out.stdout));
        refusals += &text(&out.stderr);
    }
    // Only the good one is there.
    let out = ch04(&home).args(["get", "svc"]).output().expect("get");
    let table = text(&out.stdout);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("taken"), "{table}");
    assert_fits(&refusals);
    insta::assert_snapshot!(refusals);
}

/// Runs `args` until `done` holds for what it printed.
fn wait_for(home: &Path, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = ch04(home).args(args).output().expect("run");
        let printed = text(&out.stdout);
        if done(&printed) {
            return printed;
        }
        assert!(
            Instant::now() < deadline,
            "waiting on {args:?}; last:\n{printed}{}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_books_services_on_a_node() {
    if !can_run_nodes() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let home = work.path().join("home");
    Command::cargo_bin("ch03")
        .expect("ch03")
        .arg("--home")
        .arg(&home)
        .arg("images")
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let _node = NodeUp::start(&home, "nftables");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kubia-1\n  labels:\n    app: kubia\nspec:\n  \
               containers:\n  - name: kubia\n    image: kubia:v1\n    ports:\n    - name: http\n      \
               containerPort: 8080\n";
    std::fs::write(work.path().join("kubia-1.yaml"), pod).expect("write");
    let mut session = String::new();
    let work_dir = format!("{}/", work.path().display());
    let mut run = |args: &[&str]| {
        let out = ch04(&home)
            .current_dir(manifests())
            .args(args)
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let shown = args.join(" ").replace(&work_dir, "");
        session += &format!("$ ch04 {shown}\n{}", text(&out.stdout));
    };
    let pod_file = work.path().join("kubia-1.yaml");
    run(&["apply", "-f", pod_file.to_str().expect("utf-8")]);
    wait_for(&home, &["get", "pods"], |t| t.contains("1/1"));
    for file in [
        "kubia-svc.yaml",
        "kubia-nodeport.yaml",
        "kubia-headless.yaml",
        "kubia-publish-not-ready.yaml",
    ] {
        run(&["apply", "-f", file]);
    }
    run(&["apply", "-f", "kubia-svc.yaml"]);
    wait_for(&home, &["get", "endpointslices"], |t| {
        t.lines().count() == 5 && !t.contains("<unset>   ")
    });
    run(&["get", "svc"]);
    run(&["get", "svc", "kubia", "-o", "wide"]);
    run(&["get", "endpointslices"]);
    run(&["describe", "svc", "kubia"]);
    run(&["delete", "svc", "kubia"]);
    // Named ports: the pod has `http` only, so it is no endpoint of `https`.
    run(&["apply", "-f", "kubia-svc-named-ports.yaml"]);
    wait_for(&home, &["describe", "svc", "kubia"], |t| {
        t.contains("FailedToResolvePort")
    });
    run(&["describe", "svc", "kubia"]);
    run(&["apply", "-f", "kubia-svc-client-ip.yaml"]);
    run(&["get", "svc", "kubia", "-o", "yaml"]);
    for name in ["kubia", "kubia-nodeport", "kubia-headless", "kubia-all"] {
        run(&["delete", "svc", name]);
    }
    run(&["get", "svc"]);
    insta::assert_snapshot!(redact(&session));
}

/// The two demos, one at a time: each runs a node of five pods on two
/// cores. (This does not cure the nftables demo's rare stall in step 6,
/// a SYN that reaches no endpoint chain: that is the proxy's to fix.)
static ONE_DEMO_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn demo(proxy: &str) -> String {
    let _one = ONE_DEMO_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Command::cargo_bin("ch04")
        .expect("ch04")
        .args(["demo", "--proxy", proxy])
        .timeout(Duration::from_secs(240))
        .output()
        .expect("run the demo");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let printed = text(&out.stdout);
    assert_fits(&printed);
    // The tour's claims, checked here as well as shown.
    assert!(
        printed.contains("answered by kubia-1, kubia-2, kubia-3 (0 failed)"),
        "{printed}"
    );
    assert!(
        printed.contains("1 pod(s) answered 30 requests"),
        "{printed}"
    );
    assert!(
        printed.contains("answered by kubia-1, kubia-3 (0 failed)"),
        "{printed}"
    );
    assert!(
        printed.contains("answered by kubia-1, kubia-2 (0 failed)"),
        "{printed}"
    );
    assert!(printed.contains(": true"), "{printed}");
    redact(&printed)
}

#[test]
fn the_demo_through_nftables() {
    if !can_run_nodes() {
        return;
    }
    insta::assert_snapshot!(demo("nftables"));
}

#[test]
fn the_demo_through_the_userspace_proxy() {
    if !can_run_nodes() {
        return;
    }
    insta::assert_snapshot!(demo("userspace"));
}
