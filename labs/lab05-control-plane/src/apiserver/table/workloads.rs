//! Rows of the workload controllers: ReplicationControllers, ReplicaSets,
//! Deployments, DaemonSets and Jobs (printers.go `printReplicationController`
//! and its neighbours).

use std::time::SystemTime;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ReplicationController;
use serde_json::json;

use super::{
    age, age_of, column, container_cells, format_labels, format_selector,
    integer, name_of, typed, Column, Printer, AGE, CONTAINERS, IMAGES, NAME,
    SELECTOR,
};

const DESIRED: Column = integer("Desired", "The number of pods wanted.");
const CURRENT: Column = integer("Current", "The number of pods there are.");
const READY: Column = integer("Ready", "The number of ready pods.");

/// RCs and ReplicaSets share their columns.
const REPLICAS_COLUMNS: &[Column] = &[
    NAME, DESIRED, CURRENT, READY, AGE, CONTAINERS, IMAGES, SELECTOR,
];

pub(super) static REPLICATION_CONTROLLERS: Printer = Printer {
    columns: REPLICAS_COLUMNS,
    cells: |o, now| {
        let rc: ReplicationController = typed(o);
        let spec = rc.spec.unwrap_or_default();
        let status = rc.status.unwrap_or_default();
        let template = spec.template.as_ref().and_then(|t| t.spec.as_ref());
        let (names, images) = container_cells(template);
        vec![
            name_of(&rc.metadata),
            json!(spec.replicas.unwrap_or(1)),
            json!(status.replicas),
            json!(status.ready_replicas.unwrap_or(0)),
            age_of(&rc.metadata, now),
            json!(names),
            json!(images),
            json!(format_labels(spec.selector.as_ref())),
        ]
    },
};

pub(super) static REPLICA_SETS: Printer = Printer {
    columns: REPLICAS_COLUMNS,
    cells: |o, now| {
        let rs: ReplicaSet = typed(o);
        let spec = rs.spec.unwrap_or_default();
        let status = rs.status.unwrap_or_default();
        let template = spec.template.as_ref().and_then(|t| t.spec.as_ref());
        let (names, images) = container_cells(template);
        vec![
            name_of(&rs.metadata),
            json!(spec.replicas.unwrap_or(1)),
            json!(status.replicas),
            json!(status.ready_replicas.unwrap_or(0)),
            age_of(&rs.metadata, now),
            json!(names),
            json!(images),
            json!(format_selector(Some(&spec.selector))),
        ]
    },
};

pub(super) static DEPLOYMENTS: Printer = Printer {
    columns: &[
        NAME,
        column("Ready", "Ready pods out of the pods wanted."),
        column("Up-to-date", "Pods of the newest template."),
        column("Available", "Pods ready for at least minReadySeconds."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: |o, now| {
        let d: Deployment = typed(o);
        let spec = d.spec.unwrap_or_default();
        let status = d.status.unwrap_or_default();
        let (names, images) = container_cells(spec.template.spec.as_ref());
        // printDeployment writes the selector's string, empty and all.
        let selector = match format_selector(Some(&spec.selector)) {
            s if s == "<none>" => String::new(),
            s => s,
        };
        vec![
            name_of(&d.metadata),
            json!(format!(
                "{}/{}",
                status.ready_replicas.unwrap_or(0),
                spec.replicas.unwrap_or(1)
            )),
            json!(status.updated_replicas.unwrap_or(0)),
            json!(status.available_replicas.unwrap_or(0)),
            age_of(&d.metadata, now),
            json!(names),
            json!(images),
            json!(selector),
        ]
    },
};

pub(super) static DAEMON_SETS: Printer = Printer {
    columns: &[
        NAME,
        integer("Desired", "Nodes that should run the pod."),
        integer("Current", "Nodes that run the pod."),
        integer("Ready", "Nodes whose pod is ready."),
        integer("Up-to-date", "Nodes that run the newest template."),
        integer("Available", "Nodes whose pod is available."),
        column("Node Selector", "The labels of the nodes to run on."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: |o, now| {
        let ds: DaemonSet = typed(o);
        let spec = ds.spec.unwrap_or_default();
        let status = ds.status.unwrap_or_default();
        let pod_spec = spec.template.spec.as_ref();
        let (names, images) = container_cells(pod_spec);
        let node_selector = pod_spec.and_then(|s| s.node_selector.as_ref());
        vec![
            name_of(&ds.metadata),
            json!(status.desired_number_scheduled),
            json!(status.current_number_scheduled),
            json!(status.number_ready),
            json!(status.updated_number_scheduled.unwrap_or(0)),
            json!(status.number_available.unwrap_or(0)),
            json!(format_labels(node_selector)),
            age_of(&ds.metadata, now),
            json!(names),
            json!(images),
            json!(format_selector(Some(&spec.selector))),
        ]
    },
};

pub(super) static JOBS: Printer = Printer {
    columns: &[
        NAME,
        column("Status", "Complete, Failed, Running, Suspended..."),
        column("Completions", "Succeeded pods out of those wanted."),
        column("Duration", "How long the job ran, or has been running."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: |o, now| {
        let job: Job = typed(o);
        let spec = job.spec.unwrap_or_default();
        let status = job.status.unwrap_or_default();
        let (names, images) = container_cells(spec.template.spec.as_ref());
        vec![
            name_of(&job.metadata),
            json!(job_status(&job.metadata, &status)),
            json!(completions(&spec, &status)),
            json!(duration(&status, now)),
            age_of(&job.metadata, now),
            json!(names),
            json!(images),
            json!(format_selector(spec.selector.as_ref())),
        ]
    },
};

fn job_condition(
    status: &k8s_openapi::api::batch::v1::JobStatus,
    t: &str,
) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == t)
        .is_some_and(|c| c.status == "True")
}

fn job_status(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    status: &k8s_openapi::api::batch::v1::JobStatus,
) -> &'static str {
    if job_condition(status, "Complete") {
        "Complete"
    } else if job_condition(status, "Failed") {
        "Failed"
    } else if meta.deletion_timestamp.is_some() {
        "Terminating"
    } else if job_condition(status, "Suspended") {
        "Suspended"
    } else if job_condition(status, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn completions(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    status: &k8s_openapi::api::batch::v1::JobStatus,
) -> String {
    let succeeded = status.succeeded.unwrap_or(0);
    match (spec.completions, spec.parallelism.unwrap_or(0)) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    }
}

fn duration(
    status: &k8s_openapi::api::batch::v1::JobStatus,
    now: SystemTime,
) -> String {
    let Some(start) = &status.start_time else {
        return String::new();
    };
    let end = status
        .completion_time
        .as_ref()
        .map_or(now, |t| SystemTime::from(t.0));
    age::between(SystemTime::from(start.0), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_follow_parallelism() {
        let spec = |c, p| k8s_openapi::api::batch::v1::JobSpec {
            completions: c,
            parallelism: p,
            ..Default::default()
        };
        let status = k8s_openapi::api::batch::v1::JobStatus {
            succeeded: Some(1),
            ..Default::default()
        };
        assert_eq!(completions(&spec(Some(3), None), &status), "1/3");
        assert_eq!(completions(&spec(None, Some(2)), &status), "1/1 of 2");
        assert_eq!(completions(&spec(None, None), &status), "1/1");
    }
}
