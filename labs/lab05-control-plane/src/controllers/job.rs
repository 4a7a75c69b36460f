//! The Job controller: pods from the template until `completions` of
//! them succeeded, at most `parallelism` at once; failure past
//! `backoffLimit` or running past `activeDeadlineSeconds` fails the Job
//! and deletes its active pods (upstream's `pkg/controller/job`).
//!
//! Pods are counted from the cache, as the legacy tracking did: the
//! `batch.kubernetes.io/job-tracking` finalizer and
//! `status.uncountedTerminatedPods` (which keep a finished pod counted
//! after it is deleted) are left out, as are Indexed completion, pod
//! failure policies, success policies, suspend, the pod backoff delay
//! and the FailureTarget / SuccessCriteriaMet interim conditions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lab04::selector::Selector;

use super::expectations::Expectations;
use super::pods::{self, is_active, is_ready};
use super::replicaset::{
    claim, pods_in, pods_to_delete, replica_diff, write_status_of, PodOwner,
    Scale, BURST_REPLICAS,
};
use super::{split_key, SyncError};
use crate::client::Client;
use crate::events::{reference, Recorder};
use crate::informer::{key_of, Cache};
use crate::workqueue::WorkQueue;

/// The labels a Job's pods carry (the bare ones are the legacy twins).
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const LEGACY_JOB_NAME: &str = "job-name";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";

impl PodOwner for Job {
    /// `spec.selector`; a Job without one selects its own uid, the
    /// selector the API server generates for it upstream.
    fn pod_selector(&self) -> Option<Selector> {
        let spec = self.spec.as_ref()?;
        match &spec.selector {
            Some(s) => Selector::from_label_selector(s, "spec.selector").ok(),
            None => {
                let uid = self.metadata.uid.clone()?;
                Some(Selector::from_map(&BTreeMap::from([(
                    CONTROLLER_UID.to_string(),
                    uid,
                )])))
            }
        }
    }
}

// ANCHOR: active_diff
/// Upstream's `manageJob` arithmetic: with `completions` the Job wants
/// `min(parallelism, completions - succeeded)` pods active; a work-queue
/// Job (no completions) wants `parallelism` until one pod succeeded, then
/// no new ones. How many to create or delete now, at most `burst`.
pub fn active_diff(
    active: usize,
    succeeded: usize,
    completions: Option<i32>,
    parallelism: i32,
    burst: usize,
) -> Scale {
    // EXERCISE: lab05-job-active
    let parallelism = usize::try_from(parallelism.max(0)).unwrap_or(0);
    let want = match completions {
        None if succeeded > 0 => active.min(parallelism),
        None => parallelism,
        Some(c) => usize::try_from(c.max(0))
            .unwrap_or(0)
            .saturating_sub(succeeded)
            .min(parallelism),
    };
    replica_diff(active, i32::try_from(want).unwrap_or(i32::MAX), burst)
    // EXERCISE_END: lab05-job-active
}
// ANCHOR_END: active_diff

/// The pod the Job makes: its template, owned by it, with the job-name
/// and controller-uid labels.
pub fn job_pod(job: &Job) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let ns = job.metadata.namespace.as_deref().unwrap_or("default");
    let owner = pods::owner_ref("batch/v1", "Job", &job.metadata);
    let mut pod = pods::pod_from_template(&spec.template, ns, owner);
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in [
        (JOB_NAME, &name),
        (LEGACY_JOB_NAME, &name),
        (CONTROLLER_UID, &uid),
        (LEGACY_CONTROLLER_UID, &uid),
    ] {
        labels.insert(k.to_string(), v.clone());
    }
    pod
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Whether the Job has a true Complete or Failed condition.
pub fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"
        })
}

/// Upstream's `pastBackoffLimitOnFailure`: with restartPolicy OnFailure
/// the kubelet restarts containers in place, so their restarts count.
fn restarts_past_limit(job: &Job, active: &[&Arc<Pod>], limit: i32) -> bool {
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = active
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn condition(
    type_: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> JobCondition {
    JobCondition {
        type_: type_.to_string(),
        status: "True".into(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The Job controller over the shared caches.
pub struct JobController {
    pub client: Client,
    pub jobs: Cache<Job>,
    pub pods: Cache<Pod>,
    pub queue: WorkQueue<String>,
    pub expectations: Expectations,
    pub recorder: Recorder,
}

impl JobController {
    /// Syncs the Job `key`.
    pub fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(job) = self.jobs.get(key) else {
            self.expectations.forget(key);
            return Ok(());
        };
        if is_finished(&job) {
            return Ok(());
        }
        let Some(selector) = job.pod_selector() else {
            return Err(SyncError::Invalid(format!(
                "Job {key}: invalid selector"
            )));
        };
        let (ns, _) = split_key(key);
        let candidates: Vec<Arc<Pod>> = pods_in(&self.pods, ns)
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let claimed =
            claim::<Job>(&self.client, &job.metadata, &selector, candidates)?;
        let active: Vec<&Arc<Pod>> =
            claimed.iter().filter(|p| is_active(p)).collect();
        let succeeded = claimed
            .iter()
            .filter(|p| phase(p) == Some("Succeeded"))
            .count();
        let failed = claimed
            .iter()
            .filter(|p| phase(p) == Some("Failed"))
            .count();
        let spec = job.spec.clone().unwrap_or_default();
        let now = Utc::now();
        let old = job.status.clone().unwrap_or_default();
        let start = old.start_time.as_ref().map_or(now, |t| t.0);
        let backoff_limit = spec.backoff_limit.unwrap_or(6);

        // ANCHOR: finished
        let deadline = spec
            .active_deadline_seconds
            .map(|s| start + chrono::Duration::seconds(s));
        let failure = if count(failed) > backoff_limit
            || restarts_past_limit(&job, &active, backoff_limit)
        {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline.is_some_and(|d| d <= now) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };
        let complete = match spec.completions {
            Some(c) => count(succeeded) >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        // ANCHOR_END: finished
        let event_ref = reference(job.as_ref());
        let mut conditions = old.conditions.clone().unwrap_or_default();
        let mut completion_time = old.completion_time.clone();
        let mut result = Ok(());
        let mut still_active = active.len();
        if let Some((reason, message)) = failure {
            self.delete_pods(key, &active)?;
            still_active = 0;
            conditions.push(condition("Failed", reason, message, now));
            self.recorder.event(&event_ref, "Warning", reason, message);
        } else if complete {
            self.delete_pods(key, &active)?;
            still_active = 0;
            conditions.push(condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            ));
            completion_time = Some(Time(now));
            self.recorder.event(
                &event_ref,
                "Normal",
                "Completed",
                "Job completed",
            );
        } else if self.expectations.satisfied(key)
            && job.metadata.deletion_timestamp.is_none()
        {
            let parallelism = spec.parallelism.unwrap_or(1);
            result = match active_diff(
                active.len(),
                succeeded,
                spec.completions,
                parallelism,
                BURST_REPLICAS,
            ) {
                Scale::Steady => Ok(()),
                Scale::Create(n) => self.create_pods(key, &job, n),
                Scale::Delete(n) => {
                    let owned: Vec<Arc<Pod>> =
                        active.iter().map(|p| (*p).clone()).collect();
                    let victims = pods_to_delete(&owned, &owned, n, now);
                    let victims: Vec<&Arc<Pod>> = victims.iter().collect();
                    self.delete_pods(key, &victims)
                }
            };
        }
        let status = JobStatus {
            active: (still_active > 0).then(|| count(still_active)),
            succeeded: (succeeded > 0).then(|| count(succeeded)),
            failed: (failed > 0).then(|| count(failed)),
            ready: Some(count(active.iter().filter(|p| is_ready(p)).count())),
            start_time: Some(Time(start)),
            completion_time,
            conditions: (!conditions.is_empty()).then_some(conditions),
            ..old.clone()
        };
        if job.status.as_ref() != Some(&status) {
            write_status_of(&self.client, job.as_ref(), &status, |j, s| {
                j.status = Some(s.clone())
            })
            .map_err(SyncError::api(format!("update status of Job {key}")))?;
        }
        // Wake up at the deadline, if it is still ahead.
        if let Some(d) = deadline.filter(|_| failure.is_none() && !complete) {
            let left = (d - now).to_std().unwrap_or(Duration::ZERO);
            self.queue
                .add_after(key.to_string(), left + Duration::from_millis(10));
        }
        result
    }

    fn create_pods(
        &self,
        key: &str,
        job: &Job,
        n: usize,
    ) -> Result<(), SyncError> {
        self.expectations.expect(key, n, &[]);
        let pod = job_pod(job);
        let event_ref = reference(job);
        for i in 0..n {
            match self.client.create(pod.metadata.namespace.as_deref(), &pod) {
                Ok(created) => self.recorder.event(
                    &event_ref,
                    "Normal",
                    "SuccessfulCreate",
                    &format!(
                        "Created pod: {}",
                        created.metadata.name.unwrap_or_default()
                    ),
                ),
                Err(e) => {
                    // This one and the rest will never be seen.
                    for _ in i..n {
                        self.expectations.creation_observed(key);
                    }
                    return Err(SyncError::api(format!(
                        "create pod for Job {key}"
                    ))(e));
                }
            }
        }
        Ok(())
    }

    fn delete_pods(
        &self,
        key: &str,
        victims: &[&Arc<Pod>],
    ) -> Result<(), SyncError> {
        if victims.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> =
            victims.iter().map(|p| key_of(&p.metadata)).collect();
        self.expectations.expect(key, 0, &keys);
        let mut failed = None;
        for p in victims {
            let name = p.metadata.name.clone().unwrap_or_default();
            if let Err(e) = self.client.delete::<Pod>(
                p.metadata.namespace.as_deref(),
                &name,
                None,
            ) {
                self.expectations
                    .deletion_observed(key, &key_of(&p.metadata));
                if !e.is_not_found() {
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => {
                Err(SyncError::api(format!("delete pods of Job {key}"))(e))
            }
            None => Ok(()),
        }
    }
}
