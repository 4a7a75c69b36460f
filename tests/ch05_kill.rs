//! kill -9 of the leading controller manager in the middle of its work,
//! on `ch05 up --nodes 2 --fast` as root: the standby takes the Lease,
//! and the ReplicaSet converges with no pod lost and none duplicated;
//! then the new leader scales it down, deleting no more than asked. The
//! dead leader's expectations die with it; the new one starts from what
//! the API server lists, as upstream. Between the two, the dead one is
//! started again (`ch05 restart`, as a standby) and so is the API server:
//! every watcher relists and carries on.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::Duration;

use lab01::probe::{require, require_program, Privilege};

#[path = "ch05/cluster.rs"]
mod cluster;
use cluster::{
    cgroups_beneath_ours, ch05, kubectl, nsfs_mounts_under, run, text,
    wait_until,
};

const RS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../book/src/ch05/manifests/kubia-replicaset-matchexpressions.yaml"
);

/// Every pod of app=kubia: (name, terminating).
fn pods(home: &Path) -> Vec<(String, bool)> {
    cluster::pod_rows(
        home,
        "app=kubia",
        "{.metadata.name}|{.metadata.deletionTimestamp}",
    )
    .into_iter()
    .map(|f| (f[0].clone(), f.get(1).is_some_and(|d| !d.is_empty())))
    .collect()
}

/// The ReplicaSet's status.readyReplicas and the pods: once `n` are
/// ready and exactly `n` pods exist, none terminating.
fn converged(home: &Path, n: usize) -> Result<Vec<String>, String> {
    let ready = kubectl(
        home,
        &[
            "get",
            "rs",
            "kubia",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
    );
    let all = pods(home);
    if ready.trim() == n.to_string()
        && all.len() == n
        && all.iter().all(|(_, t)| !t)
    {
        Ok(all.into_iter().map(|(n, _)| n).collect())
    } else {
        Err(format!("ready {ready:?}, pods {all:?}"))
    }
}

fn holder(home: &Path) -> String {
    kubectl(
        home,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
    .trim()
    .to_string()
}

/// Kills the leading controller manager right after `change`, and waits
/// for the standby to lead; answers who leads now.
fn kill_leader_after(home: &Path, change: &[&str]) -> String {
    let leader = holder(home);
    assert!(leader.starts_with("controller-manager-"), "{leader:?}");
    kubectl(home, change);
    let kill = run(&ch05(), &["kill", &leader], home, Duration::from_secs(30));
    assert!(kill.status.success(), "{}", text(&kill));
    wait_until(Duration::from_secs(60), "the standby leading", || {
        let now = holder(home);
        if now != leader && !now.is_empty() {
            Ok(now)
        } else {
            Err(now)
        }
    })
}

#[test]
fn a_killed_controller_manager_loses_and_duplicates_nothing() {
    if !require(Privilege::Root) || !require_program("kubectl") {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let cgroups_before = cgroups_beneath_ours();
    let down = cluster::Up::two_nodes(home);
    kubectl(home, &["apply", "-f", RS]);
    let limit = Duration::from_secs(120);
    let three = wait_until(limit, "3 replicas", || converged(home, 3));

    // Up: the leader dies with creations in flight.
    let leader = holder(home);
    let now_leading =
        kill_leader_after(home, &["scale", "rs", "kubia", "--replicas=8"]);
    let eight = wait_until(limit, "8 replicas", || converged(home, 8));
    assert!(
        three.iter().all(|p| eight.contains(p)),
        "{three:?} lost: {eight:?}"
    );
    // Settled means settled: nothing more is created or deleted.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(converged(home, 8), Ok(eight.clone()), "it did not stay so");

    // The dead one started again, as a standby; then the API server
    // killed and started again under everybody's watches: they all relist
    // and carry on.
    for component in [leader.as_str(), "apiserver"] {
        let out = run(
            &ch05(),
            &["restart", component],
            home,
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    wait_until(limit, "the API server back", || {
        let out = run(
            Path::new("kubectl"),
            &["get", "--raw", "/readyz"],
            home,
            Duration::from_secs(10),
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(text(&out))
        }
    });
    assert_eq!(holder(home), now_leading, "the leader kept its Lease");

    // Down, by the new leader, which knows only what it listed: no
    // more deleted than asked, none made.
    kubectl(home, &["scale", "rs", "kubia", "--replicas=4"]);
    let four = wait_until(limit, "4 replicas", || converged(home, 4));
    assert!(
        four.iter().all(|p| eight.contains(p)),
        "new pods made: {four:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(converged(home, 4), Ok(four), "it did not stay so");

    drop(down);
    assert!(nsfs_mounts_under(home).is_empty(), "namespaces left");
    let left: Vec<_> = cgroups_beneath_ours()
        .difference(&cgroups_before)
        .cloned()
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}
