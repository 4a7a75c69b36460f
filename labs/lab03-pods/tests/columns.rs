//! What kubectl shows of a pod: ages in HumanDuration's bands, and the
//! STATUS cell's most telling reason (lab03::columns).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use lab03::columns::{self, human_duration};
use serde_json::{json, Value};

#[test]
fn ages_follow_human_duration_bands() {
    let cases = [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (10_799, "179m"),
        (10_800, "3h"),
        (11_100, "3h5m"),
        (28_800, "8h"),
        (172_799, "47h"),
        (172_800, "2d"),
        (183_600, "2d3h"),
        (691_200, "8d"),
        (63_072_000, "2y"),
        (63_158_400, "2y1d"),
        (252_288_000, "8y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
    }
}

fn pod(status: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}]
        },
        "status": status,
    }))
    .unwrap()
}

fn cs(name: &str, ready: bool, state: Value) -> Value {
    json!({"name": name, "ready": ready, "restartCount": 0, "image": "",
           "imageID": "", "state": state})
}

#[test]
fn pod_status_cell_tells_the_telling_reason() {
    let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    let running = json!({"running": {}});
    let cases = [
        (json!({"phase": "Pending"}), "Pending"),
        (json!({"phase": "Failed", "reason": "Evicted"}), "Evicted"),
        (
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "SchedulingGated"}]}),
            "SchedulingGated",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                cs("init", false, json!({"waiting": {"reason": "PodInitializing"}}))]}),
            "Init:0/1",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                cs("init", false, json!({"waiting": {"reason": "CrashLoopBackOff"}}))]}),
            "Init:CrashLoopBackOff",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                cs("init", false, json!({"terminated": {"exitCode": 2}}))]}),
            "Init:ExitCode:2",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [
                cs("init", false, json!({"terminated": {"exitCode": 0, "signal": 9}}))]}),
            "Pending",
        ),
        (
            json!({"phase": "Pending", "initContainerStatuses": [cs("init", false, done.clone())],
                   "containerStatuses": [
                       cs("a", false, json!({"waiting": {"reason": "ContainerCreating"}})),
                       cs("b", false, json!({"waiting": {"reason": "ErrImagePull"}}))]}),
            // The first container's reason wins.
            "ContainerCreating",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [
                cs("a", false, json!({"terminated": {"exitCode": 137, "signal": 9}})),
                cs("b", true, running.clone())]}),
            "Signal:9",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [
                cs("a", false, json!({"terminated": {"exitCode": 3}})),
                cs("b", true, running.clone())]}),
            "ExitCode:3",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [
                cs("a", false, done.clone()), cs("b", true, running.clone())]}),
            "NotReady",
        ),
        (
            json!({"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [
                       cs("a", false, done.clone()), cs("b", true, running.clone())]}),
            "Running",
        ),
        (
            json!({"phase": "Succeeded", "containerStatuses": [
                cs("a", false, done.clone()), cs("b", false, done.clone())]}),
            "Completed",
        ),
    ];
    for (status, want) in cases {
        assert_eq!(columns::status(&pod(status.clone())), want, "{status}");
    }
    let mut leaving = pod(json!({"phase": "Running"}));
    leaving.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-01-01T12:00:00Z")).unwrap());
    assert_eq!(columns::status(&leaving), "Terminating");
    let mut lost = pod(json!({"phase": "Running", "reason": "NodeLost"}));
    lost.metadata.deletion_timestamp = leaving.metadata.deletion_timestamp.clone();
    assert_eq!(columns::status(&lost), "Unknown");
    let mut finished = pod(json!({"phase": "Succeeded"}));
    finished.metadata.deletion_timestamp = leaving.metadata.deletion_timestamp;
    assert_eq!(columns::status(&finished), "Succeeded");
}
