//! The `ch05` API server against the real kubectl, over both stores.
//!
//! One server per store, started on first use and shared by the tests
//! (each works in a namespace of its own), stopped when the test process
//! exits. Each test runs kubectl as a user would and checks what it
//! prints.

use std::io::Read;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lab01::probe::require_program;

#[allow(dead_code)]
#[path = "ch05/server.rs"]
mod server;

use server::{read, Server};

/// The shared server of a store kind; `None` (a skip) when etcd is not
/// installed.
fn server(store: &str) -> Option<&'static Server> {
    static EMBEDDED: OnceLock<Server> = OnceLock::new();
    static ETCD: OnceLock<Server> = OnceLock::new();
    if !require_program("kubectl") {
        return None;
    }
    match store {
        "etcd" if !require_program("etcd") => None,
        "etcd" => Some(ETCD.get_or_init(|| Server::start("etcd", &[]))),
        _ => Some(EMBEDDED.get_or_init(|| Server::start("embedded", &[]))),
    }
}

/// The words of a table's header line.
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The cells of a table's row whose first cell is `name`.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
        .split("  ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The names in the first column of a table.
fn names(table: &str) -> Vec<&str> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

fn book(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

fn kubia_manual() -> String {
    book("book/src/ch03/manifests/kubia-manual.yaml")
}

fn kubia_labelled() -> String {
    book("book/src/ch03/manifests/kubia-manual-with-labels.yaml")
}

fn kubia_svc() -> String {
    book("labs/lab04-services/tests/services/kubia-svc.yaml")
}

/// KiA chapter 4's ReplicationController (image `kubia`).
const KUBIA_RC: &str = "\
apiVersion: v1
kind: ReplicationController
metadata:
  name: kubia
spec:
  replicas: 3
  selector:
    app: kubia
  template:
    metadata:
      labels:
        app: kubia
    spec:
      containers:
      - name: kubia
        image: kubia
        ports:
        - containerPort: 8080
";

/// A pod as a user writes one (KiA chapter 3, image `kubia`, port 8080).
fn pod(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: \
         {{{labels}}}\nspec:\n  containers:\n  - name: kubia\n    image: \
         kubia\n    ports:\n    - containerPort: 8080\n"
    )
}

// The tests, each against a &Server; `both_stores!` below makes one test
// per store of each.

fn cluster_info(s: &Server) {
    let out = s.kubectl(&["cluster-info"]);
    let first = out.out().lines().next().unwrap_or("");
    // kubectl colours it only on a terminal.
    assert_eq!(
        first,
        format!("Kubernetes control plane is running at {}", s.url)
    );
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    assert!(!s.port().is_empty());
}

fn version(s: &Server) {
    let out = s.kubectl(&["version"]);
    let server = out
        .out()
        .lines()
        .find(|l| l.starts_with("Server Version: "))
        .unwrap_or_else(|| panic!("no server version: {out:?}"));
    assert!(server.starts_with("Server Version: v1.32."), "{server}");
}

fn api_resources(s: &Server) {
    let out = s.kubectl(&["api-resources"]);
    let table = out.out();
    assert_eq!(
        header(table),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    assert_eq!(row(table, "pods"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(row(table, "nodes"), ["nodes", "no", "v1", "false", "Node"]);
    assert_eq!(
        row(table, "deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        row(table, "leases"),
        ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    );
    for name in [
        "namespaces",
        "services",
        "endpoints",
        "events",
        "replicationcontrollers",
        "replicasets",
    ] {
        row(table, name);
    }
}

fn get_every_kind(s: &Server) {
    let ns = s.namespace("get-kinds");
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_manual()])
        .out();
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_svc()]).out();
    let rc = s.manifest("get-kinds-rc.yaml", KUBIA_RC);
    s.kubectl(&["create", "-n", &ns, "-f", &rc]).out();

    let pods = s.kubectl(&["get", "pods", "-n", &ns]);
    assert_eq!(
        header(pods.out()),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let cells = row(pods.out(), "kubia-manual");
    assert_eq!(cells[..4], ["kubia-manual", "0/1", "Pending", "0"]);
    let svc = s.kubectl(&["get", "svc", "-n", &ns]);
    assert_eq!(
        header(svc.out()),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let cells = row(svc.out(), "kubia");
    assert_eq!(cells[1], "ClusterIP");
    assert_eq!(cells[4], "80/TCP");
    let rcs = s.kubectl(&["get", "rc", "-n", &ns]);
    assert_eq!(
        header(rcs.out()),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    );
    assert_eq!(row(rcs.out(), "kubia")[..2], ["kubia", "3"]);

    for kind in ["rs", "deployments", "leases", "events"] {
        let none = s.kubectl(&["get", kind, "-n", &ns]);
        assert_eq!(
            none.stderr.trim(),
            format!("No resources found in {ns} namespace."),
            "{kind}: {none:?}"
        );
        assert!(none.ok);
    }
    // Endpoints: none, or the one the Service's controller made.
    assert!(s.kubectl(&["get", "endpoints", "-n", &ns]).ok);

    let nodes = s.kubectl(&["get", "nodes"]);
    assert!(nodes.ok, "{nodes:?}");
    let namespaces = s.kubectl(&["get", "namespaces"]);
    assert_eq!(header(namespaces.out()), ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(namespaces.out(), &ns)[..2], [ns.as_str(), "Active"]);
}

fn get_output_formats(s: &Server) {
    let ns = s.namespace("get-formats");
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_manual()])
        .out();
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_labelled()])
        .out();

    let wide = s.kubectl(&["get", "pods", "-o", "wide", "-n", &ns]);
    assert_eq!(
        header(wide.out()),
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
    let yaml =
        s.kubectl(&["get", "pod", "kubia-manual", "-o", "yaml", "-n", &ns]);
    let pod: serde_yaml::Value =
        serde_yaml::from_str(yaml.out()).expect("YAML");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], "kubia-manual");
    assert_eq!(pod["metadata"]["namespace"], ns.as_str());
    assert_eq!(pod["spec"]["containers"][0]["image"], "kubia:v1");
    let json = s.kubectl(&["get", "pods", "-o", "json", "-n", &ns]);
    let list: serde_json::Value =
        serde_json::from_str(json.out()).expect("JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));

    let labelled =
        s.kubectl(&["get", "pods", "-l", "creation_method=manual", "-n", &ns]);
    assert_eq!(names(labelled.out()), ["kubia-manual-v2"]);
    let not = s.kubectl(&["get", "pods", "-l", "!env", "-n", &ns]);
    assert_eq!(names(not.out()), ["kubia-manual"]);
    let by_name = s.kubectl(&[
        "get",
        "pods",
        "--field-selector",
        "metadata.name=kubia-manual",
        "-n",
        &ns,
    ]);
    assert_eq!(names(by_name.out()), ["kubia-manual"]);
    let unbound = s.kubectl(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=node-9",
        "-n",
        &ns,
    ]);
    assert!(unbound.out().is_empty(), "{unbound:?}");
    let labels = s.kubectl(&["get", "pods", "--show-labels", "-n", &ns]);
    assert_eq!(
        row(labels.out(), "kubia-manual-v2").last().copied(),
        Some("creation_method=manual,env=prod")
    );
}

fn get_watch_prints_a_later_change(s: &Server) {
    let ns = s.namespace("get-watch");
    let before = s.manifest("watch-before.yaml", &pod("before", "app: w"));
    s.kubectl(&["create", "-n", &ns, "-f", &before]).out();
    let mut watch = StdCommand::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.admin)
        .args(["get", "pods", "-w", "-n", &ns])
        .env("HOME", s.work.join("home"))
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let mut stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    // A whole line (a read may end mid-line) whose first cell is `name`.
    let has_row = |seen: &str, name: &str| {
        seen.split_inclusive('\n').any(|l| {
            l.ends_with('\n') && l.split_whitespace().next() == Some(name)
        })
    };
    let wait_for = |name: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !has_row(seen, name) && Instant::now() < deadline {
            if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    };
    // The list is printed: the watch goes on from the list's
    // resourceVersion, so whatever is written now is seen.
    wait_for("before", &mut seen);
    let manifest = s.manifest("watch-pod.yaml", &pod("watched", "app: w"));
    s.kubectl(&["create", "-n", &ns, "-f", &manifest]).out();
    wait_for("watched", &mut seen);
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        header(&seen),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let cells = row(&seen, "watched");
    assert_eq!(cells[..3], ["watched", "0/1", "Pending"], "{seen}");
}

fn create_then_already_exists(s: &Server) {
    let ns = s.namespace("create");
    let file = kubia_manual();
    let out = s.kubectl(&["create", "-n", &ns, "-f", &file]);
    assert_eq!(out.out(), "pod/kubia-manual created\n");
    let again = s.kubectl(&["create", "-n", &ns, "-f", &file]);
    assert_eq!(
        again.err().trim(),
        format!(
            "Error from server (AlreadyExists): error when creating \
             \"{file}\": pods \"kubia-manual\" already exists"
        )
    );
}

fn apply_twice_then_edited(s: &Server) {
    let ns = s.namespace("apply");
    let file = s.manifest("apply.yaml", &pod("applied", "app: kubia"));
    let first = s.kubectl(&["apply", "-n", &ns, "-f", &file]);
    assert_eq!(first.out(), "pod/applied created\n");
    let second = s.kubectl(&["apply", "-n", &ns, "-f", &file]);
    assert_eq!(second.out(), "pod/applied unchanged\n");
    s.manifest("apply.yaml", &pod("applied", "app: kubia, tier: web"));
    let third = s.kubectl(&["apply", "-n", &ns, "-f", &file]);
    assert_eq!(third.out(), "pod/applied configured\n");
    let labels = s.kubectl(&[
        "get",
        "pod",
        "applied",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.labels.tier}",
    ]);
    assert_eq!(labels.out(), "web");
}

fn replace(s: &Server) {
    let ns = s.namespace("replace");
    let file = s.manifest("replace.yaml", &pod("replaced", "app: a"));
    s.kubectl(&["create", "-n", &ns, "-f", &file]).out();
    s.manifest("replace.yaml", &pod("replaced", "app: b"));
    let out = s.kubectl(&["replace", "-n", &ns, "-f", &file]);
    assert_eq!(out.out(), "pod/replaced replaced\n");
    let app = s.kubectl(&[
        "get",
        "pod",
        "replaced",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.labels.app}",
    ]);
    assert_eq!(app.out(), "b");
}

fn patch_three_ways(s: &Server) {
    let ns = s.namespace("patch");
    let file = s.manifest("patch.yaml", &pod("patched", "app: p"));
    s.kubectl(&["create", "-n", &ns, "-f", &file]).out();
    let patch = |kind: &str, body: &str| {
        s.kubectl(&[
            "patch", "pod", "patched", "-n", &ns, "--type", kind, "-p", body,
        ])
    };
    let merge = patch("merge", r#"{"metadata":{"labels":{"m":"1"}}}"#);
    assert_eq!(merge.out(), "pod/patched patched\n");
    // Strategic: the container list merges by name (the image changes,
    // the port stays).
    let strategic = patch(
        "strategic",
        r#"{"spec":{"containers":[{"name":"kubia","image":"kubia:v2"}]}}"#,
    );
    assert_eq!(strategic.out(), "pod/patched patched\n");
    let json = patch(
        "json",
        r#"[{"op":"add","path":"/metadata/annotations","value":{"j":"2"}}]"#,
    );
    assert_eq!(json.out(), "pod/patched patched\n");
    let got = s.kubectl(&["get", "pod", "patched", "-n", &ns, "-o", "json"]);
    let pod: serde_json::Value = serde_json::from_str(got.out()).unwrap();
    assert_eq!(pod["metadata"]["labels"]["m"], "1");
    assert_eq!(pod["metadata"]["annotations"]["j"], "2");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "kubia:v2");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let unchanged = patch("merge", r#"{"metadata":{"labels":{"m":"1"}}}"#);
    assert_eq!(unchanged.out(), "pod/patched patched (no change)\n");
}

fn label_and_annotate(s: &Server) {
    let ns = s.namespace("label");
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_manual()])
        .out();
    let label =
        s.kubectl(&["label", "pod", "kubia-manual", "env=debug", "-n", &ns]);
    assert_eq!(label.out(), "pod/kubia-manual labeled\n");
    let taken =
        s.kubectl(&["label", "pod", "kubia-manual", "env=prod", "-n", &ns]);
    assert_eq!(
        taken.err().trim(),
        "error: 'env' already has a value (debug), and --overwrite is false"
    );
    let over = s.kubectl(&[
        "label",
        "pod",
        "kubia-manual",
        "env=prod",
        "--overwrite",
        "-n",
        &ns,
    ]);
    assert_eq!(over.out(), "pod/kubia-manual labeled\n");
    let note = s.kubectl(&[
        "annotate",
        "pod",
        "kubia-manual",
        "mycompany.com/someannotation=foo bar",
        "-n",
        &ns,
    ]);
    assert_eq!(note.out(), "pod/kubia-manual annotated\n");
    let got =
        s.kubectl(&["get", "pod", "kubia-manual", "-n", &ns, "-o", "json"]);
    let pod: serde_json::Value = serde_json::from_str(got.out()).unwrap();
    assert_eq!(pod["metadata"]["labels"]["env"], "prod");
    assert_eq!(
        pod["metadata"]["annotations"]["mycompany.com/someannotation"],
        "foo bar"
    );
}

fn scale_rc(s: &Server) {
    let ns = s.namespace("scale");
    let rc = s.manifest("scale-rc.yaml", KUBIA_RC);
    s.kubectl(&["create", "-n", &ns, "-f", &rc]).out();
    let out = s.kubectl(&["scale", "rc", "kubia", "--replicas=5", "-n", &ns]);
    assert_eq!(out.out(), "replicationcontroller/kubia scaled\n");
    let replicas = s.kubectl(&[
        "get",
        "rc",
        "kubia",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas.out(), "5");
}

fn delete_waits(s: &Server) {
    let ns = s.namespace("delete");
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_manual()])
        .out();
    let out = s.kubectl(&["delete", "pod", "kubia-manual", "-n", &ns]);
    assert_eq!(out.out(), "pod \"kubia-manual\" deleted\n");
    let gone = s.kubectl(&["get", "pod", "kubia-manual", "-n", &ns]);
    assert_eq!(
        gone.err().trim(),
        "Error from server (NotFound): pods \"kubia-manual\" not found"
    );
}

fn describe_pod_node_service(s: &Server) {
    let ns = s.namespace("describe");
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_labelled()])
        .out();
    s.kubectl(&["create", "-n", &ns, "-f", &kubia_svc()]).out();
    let pod = s.kubectl(&["describe", "pod", "kubia-manual-v2", "-n", &ns]);
    let text = pod.out();
    let field = |text: &str, name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name}: in\n{text}"))
            .trim()
            .to_string()
    };
    assert_eq!(field(text, "Name"), "kubia-manual-v2");
    assert_eq!(field(text, "Namespace"), ns);
    assert_eq!(field(text, "Status"), "Pending");
    assert_eq!(field(text, "Labels"), "creation_method=manual");
    let image = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Image:"))
        .map(str::trim);
    assert_eq!(image, Some("kubia:v1"), "{text}");
    assert_eq!(field(text, "Events"), "<none>");

    let svc = s.kubectl(&["describe", "service", "kubia", "-n", &ns]);
    let text = svc.out();
    assert_eq!(field(text, "Name"), "kubia");
    assert_eq!(field(text, "Selector"), "app=kubia");
    assert_eq!(field(text, "Type"), "ClusterIP");

    let node = s.manifest(
        "describe-node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: describe-node\n  \
         labels: {kubernetes.io/hostname: describe-node}\n",
    );
    s.kubectl(&["create", "-f", &node]).out();
    let desc = s.kubectl(&["describe", "node", "describe-node"]);
    let text = desc.out();
    assert_eq!(field(text, "Name"), "describe-node");
    assert!(
        text.contains("kubernetes.io/hostname=describe-node"),
        "{text}"
    );
}

/// kubectl's generators POST protobuf.
fn create_deployment_and_namespace(s: &Server) {
    let made = s.kubectl(&["create", "namespace", "generated"]);
    assert_eq!(made.out(), "namespace/generated created\n");
    let dep = s.kubectl(&[
        "create",
        "deployment",
        "kiada",
        "--image=kubia",
        "-n",
        "generated",
    ]);
    assert_eq!(dep.out(), "deployment.apps/kiada created\n");
    let image = s.kubectl(&[
        "get",
        "deployment",
        "kiada",
        "-n",
        "generated",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image.out(), "kubia");
}

fn explain(s: &Server) {
    let out = s.kubectl(&["explain", "pods"]);
    let text = out.out();
    assert!(
        text.starts_with("KIND:       Pod\nVERSION:    v1\n"),
        "{text}"
    );
    assert!(text.contains("DESCRIPTION:"), "{text}");
}

/// `explain` of a field reads the kinds' schemas in the OpenAPI
/// documents.
fn explain_a_field(s: &Server) {
    let out = s.kubectl(&["explain", "pod.spec.containers"]);
    let text = out.out();
    assert!(
        text.starts_with("KIND:       Pod\nVERSION:    v1\n"),
        "{text}"
    );
    assert!(text.contains("FIELD: containers <[]Container>"), "{text}");
}

fn invalid_manifest(s: &Server) {
    let ns = s.namespace("invalid");
    let file = s.manifest(
        "invalid.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  \
         containers:\n  - name: kubia\n",
    );
    let out = s.kubectl(&["create", "-n", &ns, "-f", &file]);
    assert_eq!(
        out.err().trim(),
        "The Pod \"bad\" is invalid: spec.containers[0].image: Required value"
    );
}

fn wrong_token_is_unauthorized(s: &Server) {
    let text = read(&s.admin);
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("a token");
    let wrong = s.work.join("wrong.kubeconfig");
    std::fs::write(&wrong, text.replace(token, "not-the-token")).unwrap();
    let out = s.kubectl_as(&wrong, &["get", "pods"], None);
    assert_eq!(
        out.err().trim(),
        "error: You must be logged in to the server (Unauthorized)"
    );
}

fn a_node_writes_only_its_own_node(s: &Server) {
    for name in ["node-1", "node-2"] {
        let node = s.manifest(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n"),
        );
        // Another test may have made it already.
        let made = s.kubectl(&["create", "-f", &node]);
        assert!(made.ok || made.stderr.contains("AlreadyExists"), "{made:?}");
    }
    let config = s.kubeconfig("node:node-1");
    let own = s.kubectl_as(
        &config,
        &["label", "node", "node-1", "ready=yes", "--overwrite"],
        None,
    );
    assert_eq!(own.out(), "node/node-1 labeled\n");
    let other = s.kubectl_as(
        &config,
        &["label", "node", "node-2", "ready=yes", "--overwrite"],
        None,
    );
    assert_eq!(
        other.err().trim(),
        "Error from server (Forbidden): nodes \"node-2\" is forbidden: node \
         \"node-1\" is not allowed to modify node \"node-2\""
    );
    // Reading is allowed.
    assert!(s.kubectl_as(&config, &["get", "nodes"], None).ok);
    // Pods: only mirror pods bound to itself, deletes of its own.
    let ns = s.namespace("node-writes");
    let plain = s.manifest("node-plain.yaml", &pod("plain", "app: nw"));
    let out = s.kubectl_as(&config, &["create", "-n", &ns, "-f", &plain], None);
    assert_eq!(
        out.err().trim(),
        format!(
            "Error from server (Forbidden): error when creating \"{plain}\": \
             pods \"plain\" is forbidden: pod does not have \
             \"kubernetes.io/config.mirror\" annotation, node \"node-1\" can \
             only create mirror pods"
        )
    );
    let bound = pod("elsewhere", "app: nw")
        .replace("spec:\n", "spec:\n  nodeName: node-2\n");
    let bound = s.manifest("node-bound.yaml", &bound);
    s.kubectl(&["create", "-n", &ns, "-f", &bound]).out();
    let out =
        s.kubectl_as(&config, &["delete", "pod", "elsewhere", "-n", &ns], None);
    assert_eq!(
        out.err().trim(),
        "Error from server (Forbidden): pods \"elsewhere\" is forbidden: node \
         \"node-1\" can only delete pods with spec.nodeName set to itself"
    );
    // A node added after the server started (its token issued now).
    let late = s.kubeconfig("node:node-7");
    let out = s.kubectl_as(&late, &["label", "node", "node-2", "x=y"], None);
    assert!(
        out.err().contains("node \"node-7\" is not allowed"),
        "{out:?}"
    );
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $name() {
                    if let Some(s) = super::server("embedded") {
                        super::$name(s);
                    }
                }
            )*
        }
        mod etcd {
            $(
                #[test]
                fn $name() {
                    if let Some(s) = super::server("etcd") {
                        super::$name(s);
                    }
                }
            )*
        }
    };
}

both_stores!(
    cluster_info,
    version,
    api_resources,
    get_every_kind,
    get_output_formats,
    get_watch_prints_a_later_change,
    create_then_already_exists,
    apply_twice_then_edited,
    replace,
    patch_three_ways,
    label_and_annotate,
    scale_rc,
    delete_waits,
    describe_pod_node_service,
    create_deployment_and_namespace,
    explain,
    explain_a_field,
    invalid_manifest,
    wrong_token_is_unauthorized,
    a_node_writes_only_its_own_node,
);

/// Bad command lines: refused with a reason, nothing started.
#[test]
fn bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ch05 = || {
        let mut cmd = Command::cargo_bin("ch05").expect("ch05");
        cmd.timeout(Duration::from_secs(30));
        cmd
    };
    let out = ch05()
        .args(["apiserver", "--listen", "0.0.0.0:6443", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ch05: --listen 0.0.0.0:6443: 0.0.0.0 is not a loopback address: the \
         API server\n      listens on 127.0.0.1 (or ::1) only"
    );
    let out = ch05()
        .args(["apiserver", "--listen", "localhost", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = ch05()
        .args(["apiserver", "--listen", "127.0.0.1:0", "--data"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ch05: cannot use "), "{err}");
    let out = ch05()
        .args(["kubeconfig", "--user", "root", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// SIGTERM stops the server, and the etcd it started, with exit code 0;
/// `ch05 kubeconfig` writes DIR/admin.kubeconfig by default.
#[test]
fn the_server_stops_cleanly_with_its_etcd() {
    if !require_program("etcd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("ch05"))
        .args(["apiserver", "--store", "etcd", "--listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ch05 apiserver");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut etcd = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let Some(rest) = line.split("(pid ").nth(1) {
            etcd = rest.split(',').next().map(str::to_string);
        }
        if line.starts_with("export KUBECONFIG=") {
            break;
        }
    }
    let etcd = etcd.expect("the server names its etcd's pid");
    assert!(Path::new(&format!("/proc/{etcd}")).exists());

    let out = Command::cargo_bin("ch05")
        .unwrap()
        .arg("kubeconfig")
        .arg("--data")
        .arg(dir.path())
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let admin = dir.path().join("admin.kubeconfig");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("export KUBECONFIG={}\n", admin.display())
    );
    let config = std::fs::read_to_string(&admin).unwrap();
    assert!(config.contains("server: https://127.0.0.1:"), "{config}");

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ch05 apiserver did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // Its etcd is gone too (a zombie has no cmdline).
    let cmdline =
        std::fs::read(format!("/proc/{etcd}/cmdline")).unwrap_or_default();
    assert!(cmdline.is_empty(), "etcd {etcd} still runs");
}

/// `--no-tls` serves plain HTTP (tokens still asked for); `--etcd-endpoints`
/// uses an etcd that is already running.
#[test]
fn plain_http_and_an_etcd_of_ones_own() {
    if !require_program("kubectl") {
        return;
    }
    let http = Server::start("embedded", &["--no-tls"]);
    assert!(http.url.starts_with("http://127.0.0.1:"), "{}", http.url);
    let ns = http.kubectl(&["get", "ns", "default", "-o", "name"]);
    assert_eq!(ns.out(), "namespace/default\n");
    assert!(!read(&http.admin).contains("certificate-authority-data"));

    if !require_program("etcd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etcd = lab05::store::EtcdProcess::start(dir.path()).expect("etcd");
    let s = Server::start("etcd", &["--etcd-endpoints", etcd.endpoint()]);
    let ns = s.kubectl(&["get", "ns", "kube-system", "-o", "name"]);
    assert_eq!(ns.out(), "namespace/kube-system\n");
    // The objects are in that etcd, under kube-apiserver's keys.
    let keys = StdCommand::new("etcdctl")
        .args([
            "--endpoints",
            etcd.endpoint(),
            "get",
            "--prefix",
            "--keys-only",
        ])
        .arg("/registry/namespaces/")
        .env("ETCDCTL_API", "3")
        .output();
    if let Some(out) = keys.ok().filter(|o| o.status.success()) {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/registry/namespaces/kube-system"), "{text}");
    }
}

/// The book's kubectl session (section 5.9), against a server of its
/// own so that `default` holds only what the session makes. What varies
/// from run to run (the port, ages) is redacted; the rest is asserted.
#[test]
fn the_books_kubectl_session() {
    if !require_program("kubectl") {
        return;
    }
    let s = Server::start("embedded", &[]);
    let steps: &[&[&str]] = &[
        &["get", "namespaces"],
        &["create", "-f", &kubia_manual()],
        &["get", "pods"],
        &["label", "pod", "kubia-manual", "env=debug"],
        &["get", "pods", "-L", "env"],
        &["create", "deployment", "kubia", "--image=kubia:v1"],
        &["scale", "deployment", "kubia", "--replicas=3"],
        &["get", "deployments"],
        &[
            "get",
            "pod",
            "kubia-manual",
            "-o",
            "jsonpath={.spec.restartPolicy}",
        ],
        &["delete", "pod", "kubia-manual"],
        &["get", "pods"],
    ];
    let mut session = String::new();
    for args in steps {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                let a = a.replace(&book(""), "");
                if a.contains('{') {
                    format!("'{a}'")
                } else {
                    a
                }
            })
            .collect();
        session.push_str(&format!("$ kubectl {}\n", shown.join(" ")));
        let run = s.kubectl(args);
        assert!(run.ok, "kubectl {args:?}: {run:?}");
        session.push_str(&run.stdout);
        session.push_str(&run.stderr);
        if !session.ends_with('\n') {
            session.push('\n');
        }
    }
    let mut settings = insta::Settings::clone_current();
    // Ages: 3s, 2m5s, 10m.
    settings.add_filter(r"\b\d+(s|m\d*s?|h\d*m?)\b", "[age]");
    settings.add_filter(r"/[^\s]*/book/src/", "book/src/");
    settings.bind(|| insta::assert_snapshot!(session));
}
