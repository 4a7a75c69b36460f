//! The book's own manifests, unchanged but for the image, applied with the
//! real kubectl to `ch05 up --nodes 2` as root, over each store (embedded
//! and etcd): the ReplicationController
//! (a pod deleted is replaced, a pod relabelled is let go and replaced,
//! scaling), orphaning its pods and a ReplicaSet with matchExpressions
//! adopting them, the Deployment rolled to v2 and undone, the DaemonSet
//! with a nodeSelector following a node's
//! label, the Jobs (one completion; five, two at a time), the RC with a
//! readiness probe behind its Service (made ready by `kubectl exec`,
//! which is also checked on its own and through the Python client), and
//! the liveness-probe pod restarted.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::Duration;

use std::io::Write;
use std::process::{Command, Stdio};

use lab01::probe::{require, require_program, Privilege};

#[path = "ch05/cluster.rs"]
mod cluster;
use cluster::{
    cgroups_beneath_ours, kubectl, nsfs_mounts_under, run, text, wait_until,
};
#[path = "ch05/python.rs"]
mod python;

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../book/src");

fn manifest(path: &str) -> String {
    format!("{MANIFESTS}/{path}")
}

/// A pod as these checks see it.
#[derive(Debug, Clone)]
struct Pod {
    name: String,
    phase: String,
    owner: String,
    terminating: bool,
}

/// The pods `selector` matches, terminating ones marked.
fn pods(home: &Path, selector: &str) -> Vec<Pod> {
    let template = "{.metadata.name}|{.status.phase}|\
        {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}|\
        {.metadata.deletionTimestamp}";
    cluster::pod_rows(home, selector, template)
        .into_iter()
        .map(|f| {
            let field = |i: usize| f.get(i).cloned().unwrap_or_default();
            Pod {
                name: field(0),
                phase: field(1),
                owner: field(2),
                terminating: !field(3).is_empty(),
            }
        })
        .collect()
}

/// Waits until exactly `n` pods match `selector`, none terminating, all
/// Running and owned by `owner` (`Kind/name`); answers them.
fn settle(home: &Path, selector: &str, n: usize, owner: &str) -> Vec<Pod> {
    wait_until(
        Duration::from_secs(90),
        &format!("{n} running pods of {owner} ({selector})"),
        || {
            let all = pods(home, selector);
            let ok = all.len() == n
                && all.iter().all(|p| {
                    !p.terminating && p.phase == "Running" && p.owner == owner
                });
            if ok {
                Ok(all)
            } else {
                Err(format!("{all:?}"))
            }
        },
    )
}

/// One cluster at a time: the cgroup check counts every cluster's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_books_manifests_over_embedded() {
    the_books_manifests_on_a_two_node_cluster("embedded");
}

#[test]
fn the_books_manifests_over_etcd() {
    if !require_program("etcd") {
        return;
    }
    the_books_manifests_on_a_two_node_cluster("etcd");
}

fn the_books_manifests_on_a_two_node_cluster(store: &str) {
    if !require(Privilege::Root) || !require_program("kubectl") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let cgroups_before = cgroups_beneath_ours();
    let _down = cluster::Up::two_nodes_on(home, store);

    // The liveness pod first: its restart takes a minute of probes, which
    // run while the rest is checked.
    kubectl(
        home,
        &[
            "apply",
            "-f",
            &manifest("ch03/manifests/kubia-liveness-probe.yaml"),
        ],
    );

    // The ReplicationController makes three pods.
    let out = kubectl(
        home,
        &["apply", "-f", &manifest("ch05/manifests/kubia-rc.yaml")],
    );
    assert_eq!(out.trim(), "replicationcontroller/kubia created");
    let first = settle(home, "app=kubia", 3, "ReplicationController/kubia");

    // A pod deleted by hand is replaced.
    let victim = &first[0].name;
    kubectl(home, &["delete", "pod", victim, "--wait=false"]);
    let now = settle(home, "app=kubia", 3, "ReplicationController/kubia");
    assert!(now.iter().all(|p| &p.name != victim), "{now:?}");

    // A pod relabelled out of the selector is let go, and replaced.
    let moved = now[0].name.clone();
    kubectl(home, &["label", "pod", &moved, "app=foo", "--overwrite"]);
    let now = settle(home, "app=kubia", 3, "ReplicationController/kubia");
    assert!(now.iter().all(|p| p.name != moved), "{now:?}");
    let relabelled = pods(home, "app=foo");
    assert_eq!(relabelled.len(), 1, "{relabelled:?}");
    assert_eq!(
        relabelled[0].owner, "/",
        "released, no owner: {relabelled:?}"
    );

    // Scaling up.
    kubectl(home, &["scale", "rc", "kubia", "--replicas=5"]);
    let five = settle(home, "app=kubia", 5, "ReplicationController/kubia");

    // Deleting the RC but orphaning its pods: they keep running, ownerless.
    kubectl(home, &["delete", "rc", "kubia", "--cascade=orphan"]);
    let orphans = settle(home, "app=kubia", 5, "/");
    let mut names: Vec<&str> = five.iter().map(|p| p.name.as_str()).collect();
    let mut kept: Vec<&str> = orphans.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    kept.sort();
    assert_eq!(names, kept, "the same pods, orphaned");

    // The ReplicaSet's matchExpressions select them: it adopts three of
    // the five and deletes two, creating none.
    kubectl(
        home,
        &[
            "apply",
            "-f",
            &manifest("ch05/manifests/kubia-replicaset-matchexpressions.yaml"),
        ],
    );
    let adopted = settle(home, "app=kubia", 3, "ReplicaSet/kubia");
    assert!(
        adopted.iter().all(|p| names.contains(&p.name.as_str())),
        "adopted, not new: {adopted:?} of {names:?}"
    );

    // Deleting the ReplicaSet takes its pods with it (background).
    kubectl(home, &["delete", "rs", "kubia"]);
    wait_until(
        Duration::from_secs(90),
        "the ReplicaSet's pods gone",
        || {
            let left = pods(home, "app=kubia");
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
    kubectl(home, &["delete", "pod", &moved, "--wait=false"]);

    // The book's Deployment: to v2 and back with rollout undo, which
    // makes the old template revision 3 (the history has 2 and 3).
    let deployment = manifest("ch05/manifests/kubia-deployment.yaml");
    kubectl(home, &["apply", "-f", &deployment]);
    let rollout = ["rollout", "status", "deployment/kubia", "--timeout=120s"];
    kubectl(home, &rollout);
    kubectl(
        home,
        &["set", "image", "deployment/kubia", "nodejs=kubia:v2"],
    );
    kubectl(home, &rollout);
    kubectl(home, &["rollout", "undo", "deployment/kubia"]);
    kubectl(home, &rollout);
    let image = kubectl(
        home,
        &[
            "get",
            "deployment",
            "kubia",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, "kubia:v1");
    let history = kubectl(home, &["rollout", "history", "deployment/kubia"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    kubectl(home, &["delete", "deployment", "kubia"]);
    wait_until(
        Duration::from_secs(90),
        "the Deployment's pods gone",
        || {
            let left = pods(home, "app=kubia");
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );

    // The DaemonSet runs its pod on every node labelled disk=ssd: none
    // at first, then node-1's, then none again when the label changes.
    kubectl(
        home,
        &[
            "apply",
            "-f",
            &manifest("ch05/manifests/ssd-monitor-daemonset.yaml"),
        ],
    );
    // (node, phase) of each daemon pod not being deleted.
    let on_nodes = |home: &Path| -> Vec<(String, String)> {
        let template =
            "{.spec.nodeName}|{.status.phase}|{.metadata.deletionTimestamp}";
        cluster::pod_rows(home, "app=ssd-monitor", template)
            .into_iter()
            .filter(|f| f.get(2).is_none_or(|d| d.is_empty()))
            .map(|f| (f[0].clone(), f.get(1).cloned().unwrap_or_default()))
            .collect()
    };
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(on_nodes(home), vec![], "no node has disk=ssd yet");
    kubectl(home, &["label", "node", "node-1", "disk=ssd"]);
    wait_until(Duration::from_secs(90), "the daemon pod on node-1", || {
        let now = on_nodes(home);
        if now == [("node-1".to_string(), "Running".to_string())] {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    kubectl(
        home,
        &["label", "node", "node-1", "disk=hdd", "--overwrite"],
    );
    wait_until(Duration::from_secs(90), "the daemon pod gone", || {
        let now = on_nodes(home);
        if now.is_empty() {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    kubectl(home, &["delete", "ds", "ssd-monitor"]);

    // The Jobs: one pod to completion; then five, two at a time.
    for (file, job, completions) in [
        ("exporter.yaml", "batch-job", 1),
        (
            "multi-completion-parallel-batch-job.yaml",
            "multi-completion-batch-job",
            5,
        ),
    ] {
        kubectl(
            home,
            &["apply", "-f", &manifest(&format!("ch05/manifests/{file}"))],
        );
        let template = "{.status.succeeded} \
            {.status.conditions[?(@.type==\"Complete\")].status}";
        wait_until(
            Duration::from_secs(120),
            &format!("{job} complete"),
            || {
                let out = kubectl(
                    home,
                    &["get", "job", job, "-o", &format!("jsonpath={template}")],
                );
                if out.trim() == format!("{completions} True") {
                    Ok(())
                } else {
                    Err(out)
                }
            },
        );
    }
    let done = kubectl(
        home,
        &[
            "get",
            "pods",
            "-l",
            "job-name=multi-completion-batch-job",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    );
    let phases: Vec<&str> = done.split_whitespace().collect();
    assert_eq!(phases, ["Succeeded"; 5], "{done}");

    readiness_behind_the_service(home);

    // The unhealthy kubia fails its probe from the sixth request on: the
    // kubelet stops it and starts it again. The book's Node.js app, PID 1
    // with no handler, ignored the SIGTERM and was killed after its grace
    // period (137 = 128 + SIGKILL); ours ends on SIGTERM (143).
    let restarted = wait_until(
        Duration::from_secs(240),
        "kubia-liveness restarted",
        || {
            let template = "{.status.containerStatuses[0].restartCount} \
                {.status.containerStatuses[0].lastState.terminated.exitCode}";
            let out = kubectl(
                home,
                &[
                    "get",
                    "pod",
                    "kubia-liveness",
                    "-o",
                    &format!("jsonpath={template}"),
                ],
            );
            match out.split_whitespace().collect::<Vec<_>>()[..] {
                [count, code] if count != "0" => Ok(code.to_string()),
                _ => Err(out),
            }
        },
    );
    assert!(["137", "143"].contains(&restarted.as_str()), "{restarted}");

    drop(_down);
    assert!(nsfs_mounts_under(home).is_empty(), "namespaces left");
    let left: Vec<_> = cgroups_beneath_ours()
        .difference(&cgroups_before)
        .cloned()
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

/// Each pod's readiness by name, as its container status says.
fn readiness(home: &Path) -> Vec<(String, String)> {
    let template = "{.metadata.name}|{.status.containerStatuses[0].ready}";
    cluster::pod_rows(home, "app=kubia", template)
        .into_iter()
        .map(|f| (f[0].clone(), f.get(1).cloned().unwrap_or_default()))
        .collect()
}

/// The book's RC with a readiness probe (`ls /var/ready`) behind the
/// book's Service: no pod is ready, so the Service has no ready endpoint;
/// `kubectl exec … -- touch /var/ready` makes one ready, and every request
/// through the Service then reaches that one. kubectl exec is checked on
/// the way: exit codes, stderr, stdin; and the Python client's exec.
fn readiness_behind_the_service(home: &Path) {
    kubectl(
        home,
        &["apply", "-f", &manifest("ch05/manifests/kubia-svc.yaml")],
    );
    kubectl(
        home,
        &[
            "apply",
            "-f",
            &manifest("ch05/manifests/kubia-rc-readinessprobe.yaml"),
        ],
    );
    let made = settle(home, "app=kubia", 3, "ReplicationController/kubia");
    let names: Vec<String> = made.iter().map(|p| p.name.clone()).collect();
    let first = names[0].clone();
    // The probe has failed once on each (its first run is at start).
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        readiness(home).iter().all(|(_, r)| r == "false"),
        "{:?}",
        readiness(home)
    );

    // kubectl exec: a command's output and exit code, and stdin.
    let kubectl_path = Path::new("kubectl");
    let failing = run(
        kubectl_path,
        &[
            "exec",
            &first,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        home,
        Duration::from_secs(60),
    );
    assert_eq!(failing.status.code(), Some(3), "{}", text(&failing));
    assert_eq!(String::from_utf8_lossy(&failing.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );
    let mut cat = Command::new("kubectl")
        .args(["exec", "-i", &first, "--", "cat"])
        .env(
            "KUBECONFIG",
            home.join("cluster/control-plane/admin.kubeconfig"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl exec -i");
    let mut input = cat.stdin.take().expect("stdin");
    input.write_all(b"typed into cat\n").expect("stdin");
    // Closed: v5's CLOSE of stdin reaches cat as its end of input.
    drop(input);
    let echoed =
        wait_until(Duration::from_secs(30), "kubectl exec -i ending", || {
            cat.try_wait()
                .expect("wait")
                .ok_or_else(|| "running".to_string())
        });
    let out = cat.wait_with_output().expect("output");
    assert!(echoed.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "typed into cat\n");
    if let Some(py) = python::python() {
        let script =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/exec.py");
        let kubeconfig = home.join("cluster/control-plane/admin.kubeconfig");
        let seen = run(
            Path::new(&py),
            &[script, &kubeconfig.to_string_lossy(), &first],
            home,
            Duration::from_secs(60),
        );
        assert!(seen.status.success(), "{}", text(&seen));
        let seen: serde_json::Value =
            serde_json::from_slice(&seen.stdout).expect("the script's JSON");
        assert_eq!(
            seen,
            serde_json::json!({
                "hostname": format!("{first}\n"),
                "stdout": "out\n",
                "stderr": "err\n",
                "code": 3,
            })
        );
    }

    // The service has three endpoints, none ready.
    let ready_ips = |home: &Path| {
        kubectl(
            home,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=kubia",
                "-o",
                "jsonpath={range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready} {end}",
            ],
        )
    };
    let before = ready_ips(home);
    assert_eq!(before.matches("=false").count(), 3, "{before}");

    // The book's trick: create the file the probe looks for, in one pod.
    kubectl(home, &["exec", &first, "--", "touch", "/var/ready"]);
    wait_until(Duration::from_secs(30), "one pod ready", || {
        let now = readiness(home);
        let ready: Vec<&str> = now
            .iter()
            .filter(|(_, r)| r == "true")
            .map(|(n, _)| n.as_str())
            .collect();
        if ready == [first.as_str()] {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    wait_until(Duration::from_secs(30), "one ready endpoint", || {
        let now = ready_ips(home);
        if now.matches("=true").count() == 1 {
            Ok(())
        } else {
            Err(now)
        }
    });
    // Requests through the Service, from another pod, as the book does
    // with curl: only the ready pod answers.
    let other = &names[1];
    for _ in 0..5 {
        let answer = kubectl(
            home,
            &["exec", other, "--", "wget", "-qO-", "http://kubia"],
        );
        assert_eq!(answer.trim(), format!("You've hit {first}"));
    }
    kubectl(home, &["delete", "rc", "kubia"]);
    kubectl(home, &["delete", "service", "kubia"]);
    wait_until(Duration::from_secs(90), "the RC's pods gone", || {
        let left = pods(home, "app=kubia");
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}
