//! The ReplicaSet controller, which is also the ReplicationController
//! controller: upstream runs one implementation for both, seeing an RC as
//! a ReplicaSet whose selector is a map. Here the one implementation is
//! generic over [`ReplicaOwner`], which both kinds implement by turning
//! themselves into a ReplicaSet.
//!
//! A sync: the owner's pods are *claimed* (matching orphans adopted,
//! owned pods that no longer match released); the active ones are
//! counted; the difference with `spec.replicas` is made good by creating
//! pods from the template (in slow-start batches) or deleting the least
//! valuable ones; then the status says what is there.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference,
};
use lab04::selector::Selector;
use serde::Serialize;
use serde_json::json;

use super::expectations::Expectations;
use super::pods::{self, controller_ref, is_active, is_available, is_ready};
use super::{split_key, SyncError};
use crate::client::{Client, ClientError, Patch};
use crate::events::{reference, Recorder};
use crate::informer::{key_of, Cache, Change, Informable};
use crate::workqueue::WorkQueue;

/// At most this many pods are created or deleted in one sync
/// (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// The first batch of creates is one pod (`SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;
/// Pods with a lower cost are deleted first.
pub const POD_DELETION_COST: &str =
    "controller.kubernetes.io/pod-deletion-cost";

/// What one sync does about the number of pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Steady,
    Create(usize),
    Delete(usize),
}

// ANCHOR: replica_diff
/// From `active` pods to `replicas`: how many to create or delete in
/// this sync, never more than `burst`.
pub fn replica_diff(active: usize, replicas: i32, burst: usize) -> Scale {
    // EXERCISE: lab05-replica-diff
    let wanted = usize::try_from(replicas.max(0)).unwrap_or(0);
    match active.cmp(&wanted) {
        Ordering::Less => Scale::Create((wanted - active).min(burst)),
        Ordering::Greater => Scale::Delete((active - wanted).min(burst)),
        Ordering::Equal => Scale::Steady,
    }
    // EXERCISE_END: lab05-replica-diff
}
// ANCHOR_END: replica_diff

/// The sizes of the create batches for `count` pods: 1, 2, 4, … (the
/// last one what is left). A batch that fails ends the sync, so a
/// template the API server refuses costs one request, not 500.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut left = count;
    let mut size = initial.max(1).min(left);
    while left > 0 {
        batches.push(size);
        left -= size;
        size = (size * 2).min(left);
    }
    batches
}

/// A pod with how many pods related to it share its node.
#[derive(Debug, Clone, Copy)]
pub struct Ranked<'a> {
    pub pod: &'a Pod,
    /// Active related pods on the same node, this one included.
    pub colocated: usize,
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

/// The base-2 logarithm of the nanoseconds since `t`, -1 for none:
/// pods whose ages are within a factor of two rank equal, so a scale
/// down does not always take the very newest (LogarithmicScaleDown).
fn log_age(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    match (now - t).num_nanoseconds() {
        Some(ns) if ns > 0 => (ns as f64).log2() as i64,
        Some(_) => -1,
        None => i64::MAX,
    }
}

/// Newer first (a missing time counts as the newest); ages within one
/// power of two are ordered by uid.
fn newer_first(
    a: Option<DateTime<Utc>>,
    b: Option<DateTime<Utc>>,
    uids: (&str, &str),
    now: DateTime<Utc>,
) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) if a == b => Ordering::Equal,
        (Some(a), Some(b)) => match log_age(a, now).cmp(&log_age(b, now)) {
            Ordering::Equal => uids.0.cmp(uids.1),
            other => other,
        },
    }
}

// ANCHOR: deletion_order
/// Which of two pods to delete first (`Less`: `a`), upstream's
/// `ActivePodsWithRanks`: unassigned before assigned; Pending before
/// Unknown before Running; not ready before ready; lower
/// pod-deletion-cost first; more pods of its kind on its node first;
/// ready for less time first; more restarts first; newer first.
pub fn deletion_order(a: &Ranked, b: &Ranked, now: DateTime<Utc>) -> Ordering {
    // EXERCISE: lab05-deletion-rank
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let uids = (
        a.pod.metadata.uid.as_deref().unwrap_or_default(),
        b.pod.metadata.uid.as_deref().unwrap_or_default(),
    );
    node(a.pod)
        .cmp(&node(b.pod))
        .then_with(|| phase_rank(a.pod).cmp(&phase_rank(b.pod)))
        .then_with(|| is_ready(a.pod).cmp(&is_ready(b.pod)))
        .then_with(|| deletion_cost(a.pod).cmp(&deletion_cost(b.pod)))
        .then_with(|| b.colocated.cmp(&a.colocated))
        .then_with(|| {
            if is_ready(a.pod) && is_ready(b.pod) {
                let (ra, rb) =
                    (pods::ready_since(a.pod), pods::ready_since(b.pod));
                newer_first(ra, rb, uids, now)
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b.pod).cmp(&max_restarts(a.pod)))
        .then_with(|| {
            let created =
                |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            newer_first(created(a.pod), created(b.pod), uids, now)
        })
    // EXERCISE_END: lab05-deletion-rank
}
// ANCHOR_END: deletion_order

/// The `count` pods of `active` to delete first; `related` are the pods
/// whose crowding on a node counts (the owner's own).
pub fn pods_to_delete(
    active: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: DateTime<Utc>,
) -> Vec<Arc<Pod>> {
    let node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_active(p)) {
        if let Some(n) = node(pod) {
            *on_node.entry(n).or_default() += 1;
        }
    }
    let mut ranked: Vec<(Ranked, &Arc<Pod>)> = active
        .iter()
        .map(|p| {
            let colocated =
                node(p).and_then(|n| on_node.get(&n).copied()).unwrap_or(0);
            (Ranked { pod: p, colocated }, p)
        })
        .collect();
    ranked.sort_by(|a, b| deletion_order(&a.0, &b.0, now));
    ranked
        .into_iter()
        .take(count)
        .map(|(_, p)| p.clone())
        .collect()
}

/// A kind whose controller owns pods it selects by label: the
/// ReplicaSet, ReplicationController, DaemonSet and Job controllers share
/// the pod handler and the claim below through it.
pub trait PodOwner: Informable + Clone {
    /// The selector of the pods it owns; `None` when it cannot be read
    /// (nothing is matched then).
    fn pod_selector(&self) -> Option<Selector>;
}

/// A kind this controller runs: ReplicaSet, or ReplicationController
/// seen as one.
pub trait ReplicaOwner: PodOwner + Serialize {
    /// The object as a ReplicaSet (same metadata, spec and status).
    fn to_replica_set(&self) -> ReplicaSet;
    /// Writes `status` through the kind's own status subresource.
    fn write_status(
        &self,
        client: &Client,
        status: &ReplicaSetStatus,
    ) -> Result<(), ClientError>;
}

/// Writes `status` (put into a copy of `object` by `set`) through the
/// status subresource; on a conflict once more on the fresh object.
pub(crate) fn write_status_of<T: Informable + Clone + Serialize, S>(
    client: &Client,
    object: &T,
    status: &S,
    set: impl Fn(&mut T, &S),
) -> Result<(), ClientError> {
    let meta = object.metadata();
    let (ns, name) = (
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    );
    let mut next = object.clone();
    set(&mut next, status);
    match client.replace_status(ns, name, &next) {
        // The cache was behind: once more on the object as it is now.
        Err(e) if e.is_conflict() => {
            let mut fresh: T = client.get(ns, name)?;
            set(&mut fresh, status);
            client.replace_status(ns, name, &fresh).map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

impl ReplicaOwner for ReplicaSet {
    fn to_replica_set(&self) -> ReplicaSet {
        self.clone()
    }

    fn write_status(
        &self,
        client: &Client,
        status: &ReplicaSetStatus,
    ) -> Result<(), ClientError> {
        write_status_of(client, self, status, |rs, s| {
            rs.status = Some(s.clone())
        })
    }
}

impl ReplicaOwner for ReplicationController {
    // ANCHOR: rc_as_rs
    fn to_replica_set(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        let template_labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        // An RC without a selector selects its template's labels.
        let selector =
            spec.selector.filter(|s| !s.is_empty()).or(template_labels);
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                min_ready_seconds: spec.min_ready_seconds,
                replicas: spec.replicas,
                selector: LabelSelector {
                    match_labels: selector,
                    match_expressions: None,
                },
                template: spec.template,
            }),
            // The two statuses have the same fields.
            status: self
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| serde_json::from_value(v).ok()),
        }
    }
    // ANCHOR_END: rc_as_rs

    fn write_status(
        &self,
        client: &Client,
        status: &ReplicaSetStatus,
    ) -> Result<(), ClientError> {
        let converted = serde_json::to_value(status)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok());
        write_status_of(client, self, status, |rc, _| {
            rc.status = converted.clone()
        })
    }
}

/// The owner's selector; `None` when it cannot be read (nothing is
/// matched then).
fn selector_of(rs: &ReplicaSet) -> Option<Selector> {
    let spec = rs.spec.as_ref()?;
    Selector::from_label_selector(&spec.selector, "spec.selector").ok()
}

impl PodOwner for ReplicaSet {
    fn pod_selector(&self) -> Option<Selector> {
        selector_of(self)
    }
}

impl PodOwner for ReplicationController {
    fn pod_selector(&self) -> Option<Selector> {
        selector_of(&self.to_replica_set())
    }
}

/// The cached pods of namespace `ns`: those an owner there may claim.
pub(crate) fn pods_in(pods: &Cache<Pod>, ns: Option<&str>) -> Vec<Arc<Pod>> {
    pods.list()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .collect()
}

/// The keys of the owners in `owners` whose selector matches `pod` and
/// that could adopt it (an orphan's candidate owners).
fn matching_owners<T: PodOwner>(owners: &Cache<T>, pod: &Pod) -> Vec<String> {
    let labels = pods::labels(&pod.metadata);
    owners
        .list()
        .iter()
        .filter(|o| o.metadata().namespace == pod.metadata.namespace)
        .filter(|o| o.pod_selector().is_some_and(|s| s.matches(&labels)))
        .map(|o| key_of(o.metadata()))
        .collect()
}

/// The key of the owner of kind `T` that controls `pod`, if it is in
/// the cache with the uid the reference names.
pub fn owner_key<T: PodOwner>(owners: &Cache<T>, pod: &Pod) -> Option<String> {
    let r = controller_ref(&pod.metadata)?;
    if r.kind != T::KIND {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let key = format!("{ns}/{}", r.name);
    let owner = owners.get(&key)?;
    (owner.metadata().uid.as_deref() == Some(r.uid.as_str())).then_some(key)
}

/// The pod informer's handler for this controller: observe
/// expectations and queue the owners concerned (upstream's addPod,
/// updatePod, deletePod).
pub fn on_pod_change<T: PodOwner>(
    queue: &WorkQueue<String>,
    expectations: &Expectations,
    owners: &Cache<T>,
    change: &Change<Pod>,
) {
    // ANCHOR: pod_handler
    let deleted = |pod: &Pod| {
        if let Some(key) = owner_key(owners, pod) {
            expectations.deletion_observed(&key, &key_of(&pod.metadata));
            queue.add(key);
        }
    };
    match change {
        Change::Added(pod) => {
            if pod.metadata.deletion_timestamp.is_some() {
                deleted(pod);
            } else if let Some(key) = owner_key(owners, pod) {
                expectations.creation_observed(&key);
                queue.add(key);
            } else if controller_ref(&pod.metadata).is_none() {
                for key in matching_owners(owners, pod) {
                    queue.add(key);
                }
            }
        }
        // ANCHOR_END: pod_handler
        Change::Modified { old, new } => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return;
            }
            let relabelled = old.metadata.labels != new.metadata.labels;
            if new.metadata.deletion_timestamp.is_some() {
                deleted(new);
                if relabelled {
                    deleted(old);
                }
                return;
            }
            let (old_ref, new_ref) =
                (controller_ref(&old.metadata), controller_ref(&new.metadata));
            if old_ref != new_ref {
                if let Some(key) = owner_key(owners, old) {
                    queue.add(key);
                }
            }
            if let Some(key) = owner_key(owners, new) {
                queue.add(key);
            } else if new_ref.is_none() && (relabelled || old_ref != new_ref) {
                for key in matching_owners(owners, new) {
                    queue.add(key);
                }
            }
        }
        Change::Deleted(pod) => deleted(pod),
        Change::Synced => {}
    }
}

/// The owner informer's handler: every change of an owner syncs it.
pub fn on_owner_change<T: Informable>(
    queue: &WorkQueue<String>,
    change: &Change<T>,
) {
    match change {
        Change::Added(o) | Change::Deleted(o) => {
            queue.add(key_of(o.metadata()))
        }
        Change::Modified { new, .. } => queue.add(key_of(new.metadata())),
        Change::Synced => {}
    }
}

fn patch_pod(
    client: &Client,
    pod: &Pod,
    refs: Vec<OwnerReference>,
) -> Result<(), ClientError> {
    let body = json!({"metadata": {
        "ownerReferences": refs,
        // The patch applies only to the pod the cache showed.
        "uid": pod.metadata.uid,
    }});
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    client
        .patch::<Pod>(
            pod.metadata.namespace.as_deref(),
            name,
            Patch::Merge,
            &body,
        )
        .map(|_| ())
}

/// Adopts matching orphans (of `meta`, a `T`) and releases owned pods that no longer
/// match; the active pods the owner controls afterwards.
pub fn claim<T: PodOwner>(
    client: &Client,
    meta: &ObjectMeta,
    selector: &Selector,
    active: Vec<Arc<Pod>>,
) -> Result<Vec<Arc<Pod>>, SyncError> {
    let uid = meta.uid.clone().unwrap_or_default();
    let owner = pods::owner_ref(T::API_VERSION, T::KIND, meta);
    let deleting = meta.deletion_timestamp.is_some();
    let mut can_adopt: Option<bool> = None;
    let mut claimed = Vec::new();
    for pod in active {
        let labels = pods::labels(&pod.metadata);
        let matches = selector.matches(&labels);
        let refs = pod.metadata.owner_references.clone().unwrap_or_default();
        match controller_ref(&pod.metadata) {
            Some(r) if r.uid != uid => {}
            Some(_) if matches => claimed.push(pod),
            Some(_) => {
                if deleting {
                    continue;
                }
                let kept = refs.into_iter().filter(|r| r.uid != uid).collect();
                match patch_pod(client, &pod, kept) {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(SyncError::api(format!(
                            "release pod {}",
                            key_of(&pod.metadata)
                        ))(e))
                    }
                }
            }
            None => {
                if !matches
                    || deleting
                    || pod.metadata.deletion_timestamp.is_some()
                {
                    continue;
                }
                // Recheck the owner itself before adopting: the
                // cache may show one that is gone or going.
                let allowed = *can_adopt.get_or_insert_with(|| {
                    let (ns, name) = (
                        meta.namespace.as_deref(),
                        meta.name.as_deref().unwrap_or_default(),
                    );
                    match client.get::<T>(ns, name) {
                        Ok(fresh) => {
                            fresh.metadata().uid.as_deref()
                                == Some(uid.as_str())
                                && fresh.metadata().deletion_timestamp.is_none()
                        }
                        Err(_) => false,
                    }
                });
                if !allowed {
                    continue;
                }
                let mut next = refs;
                next.push(owner.clone());
                match patch_pod(client, &pod, next) {
                    Ok(()) => claimed.push(pod),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(SyncError::api(format!(
                            "adopt pod {}",
                            key_of(&pod.metadata)
                        ))(e))
                    }
                }
            }
        }
    }
    Ok(claimed)
}

/// One controller for the kind `T`.
pub struct ReplicaSetController<T> {
    pub client: Client,
    pub owners: Cache<T>,
    pub pods: Cache<Pod>,
    pub queue: WorkQueue<String>,
    pub expectations: Expectations,
    pub recorder: Recorder,
    pub burst: usize,
}

/// The status the pods make: upstream's `calculateStatus`.
pub fn calculate_status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count())
            .unwrap_or(i32::MAX)
    };
    let fully = count(&|p: &Pod| {
        let labels = pods::labels(&p.metadata);
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    });
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(fully),
        ready_replicas: Some(count(&|p: &Pod| is_ready(p))),
        available_replicas: Some(count(&|p: &Pod| {
            is_available(p, min_ready, now)
        })),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions,
    }
}

impl<T: ReplicaOwner> ReplicaSetController<T> {
    /// A controller over the informers' caches; `queue` and
    /// `expectations` are the ones the handlers feed.
    pub fn new(
        client: Client,
        owners: Cache<T>,
        pods: Cache<Pod>,
        queue: WorkQueue<String>,
        expectations: Expectations,
        recorder: Recorder,
    ) -> ReplicaSetController<T> {
        ReplicaSetController {
            client,
            owners,
            pods,
            queue,
            expectations,
            recorder,
            burst: BURST_REPLICAS,
        }
    }

    /// Syncs the owner `key`.
    pub fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(owner) = self.owners.get(key) else {
            self.expectations.forget(key);
            return Ok(());
        };
        let rs = owner.to_replica_set();
        let Some(selector) = selector_of(&rs) else {
            return Err(SyncError::Invalid(format!(
                "{} {key}: invalid selector",
                T::KIND
            )));
        };
        let (ns, _) = split_key(key);
        let needs_sync = self.expectations.satisfied(key)
            && rs.metadata.deletion_timestamp.is_none();
        let all = pods_in(&self.pods, ns);
        let active: Vec<Arc<Pod>> =
            all.iter().filter(|p| is_active(p)).cloned().collect();
        let claimed =
            claim::<T>(&self.client, &rs.metadata, &selector, active)?;
        let mut result = Ok(());
        if needs_sync {
            result = self.manage(key, &rs, &owner, &claimed);
        }
        let now = Utc::now();
        let status = calculate_status(&rs, &claimed, now);
        if rs.status.as_ref() != Some(&status) {
            owner.write_status(&self.client, &status).map_err(
                SyncError::api(format!("update status of {} {key}", T::KIND)),
            )?;
        }
        // Pods become available minReadySeconds after they are ready.
        let min_ready = rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if min_ready > 0 && status.ready_replicas != status.available_replicas {
            self.queue.add_after(
                key.to_string(),
                std::time::Duration::from_secs(
                    u64::try_from(min_ready).unwrap_or(0),
                ),
            );
        }
        result
    }

    fn manage(
        &self,
        key: &str,
        rs: &ReplicaSet,
        owner: &T,
        claimed: &[Arc<Pod>],
    ) -> Result<(), SyncError> {
        let spec = rs.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let ns = rs
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let event_ref = reference(owner);
        match replica_diff(claimed.len(), replicas, self.burst) {
            Scale::Steady => Ok(()),
            Scale::Create(n) => {
                let Some(template) = spec.template.as_ref() else {
                    return Err(SyncError::Invalid(format!(
                        "{} {key} has no pod template",
                        T::KIND
                    )));
                };
                self.expectations.expect(key, n, &[]);
                let pod = pods::pod_from_template(
                    template,
                    &ns,
                    pods::owner_ref(T::API_VERSION, T::KIND, &rs.metadata),
                );
                let mut done = 0;
                for batch in slow_start_batches(n, SLOW_START_INITIAL_BATCH) {
                    let results: Vec<Result<Pod, ClientError>> =
                        std::thread::scope(|s| {
                            let handles: Vec<_> = (0..batch)
                                .map(|_| {
                                    s.spawn(|| {
                                        self.client.create(Some(&ns), &pod)
                                    })
                                })
                                .collect();
                            handles
                                .into_iter()
                                .map(|h| {
                                    h.join().unwrap_or_else(|_| {
                                        Err(ClientError::Config(
                                            "create thread panicked".into(),
                                        ))
                                    })
                                })
                                .collect()
                        });
                    let mut failed = None;
                    for r in results {
                        match r {
                            Ok(created) => {
                                let name =
                                    created.metadata.name.unwrap_or_default();
                                self.recorder.event(
                                    &event_ref,
                                    "Normal",
                                    "SuccessfulCreate",
                                    &format!("Created pod: {name}"),
                                );
                            }
                            Err(e) => {
                                // Never to be seen: lower the expectation.
                                self.expectations.creation_observed(key);
                                self.recorder.event(
                                    &event_ref,
                                    "Warning",
                                    "FailedCreate",
                                    &format!("Error creating: {e}"),
                                );
                                failed = Some(e);
                            }
                        }
                    }
                    done += batch;
                    if let Some(e) = failed {
                        for _ in done..n {
                            self.expectations.creation_observed(key);
                        }
                        return Err(SyncError::api(format!(
                            "create pods for {} {key}",
                            T::KIND
                        ))(e));
                    }
                }
                Ok(())
            }
            Scale::Delete(n) => {
                let victims = pods_to_delete(claimed, claimed, n, Utc::now());
                let keys: Vec<String> =
                    victims.iter().map(|p| key_of(&p.metadata)).collect();
                self.expectations.expect(key, 0, &keys);
                let results: Vec<(String, Result<_, ClientError>)> =
                    std::thread::scope(|s| {
                        let handles: Vec<_> = victims
                            .iter()
                            .map(|p| {
                                s.spawn(move || {
                                    let name = p
                                        .metadata
                                        .name
                                        .clone()
                                        .unwrap_or_default();
                                    let r = self.client.delete::<Pod>(
                                        p.metadata.namespace.as_deref(),
                                        &name,
                                        None,
                                    );
                                    (name, r)
                                })
                            })
                            .collect();
                        handles
                            .into_iter()
                            .filter_map(|h| h.join().ok())
                            .collect()
                    });
                let mut failed = None;
                for (name, r) in results {
                    match r {
                        Ok(_) => self.recorder.event(
                            &event_ref,
                            "Normal",
                            "SuccessfulDelete",
                            &format!("Deleted pod: {name}"),
                        ),
                        Err(e) => {
                            self.expectations.deletion_observed(
                                key,
                                &format!("{ns}/{name}"),
                            );
                            if !e.is_not_found() {
                                self.recorder.event(
                                    &event_ref,
                                    "Warning",
                                    "FailedDelete",
                                    &format!("Error deleting: {e}"),
                                );
                                failed = Some(e);
                            }
                        }
                    }
                }
                match failed {
                    Some(e) => Err(SyncError::api(format!(
                        "delete pods of {} {key}",
                        T::KIND
                    ))(e)),
                    None => Ok(()),
                }
            }
        }
    }
}
