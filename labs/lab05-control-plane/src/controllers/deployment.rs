//! The Deployment controller: a Deployment owns ReplicaSets, one per
//! version of its pod template, and moves pods from the old ones to the
//! new one — all at once (Recreate) or a few at a time (RollingUpdate,
//! bounded by maxSurge above and maxUnavailable below the desired
//! count). Each ReplicaSet carries its revision, so `kubectl rollout
//! history` can list them and `kubectl rollout undo` can put an old
//! template back.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet,
    ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use lab04::selector::Selector;
use serde_json::json;

use super::pods::{self, controller_ref};
use super::{split_key, SyncError};
use crate::client::{Client, Patch};
use crate::events::{reference, Recorder};
use crate::informer::{key_of, Cache, Change};
use crate::workqueue::WorkQueue;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Annotations of the Deployment not copied to its ReplicaSets.
const NOT_COPIED: [&str; 5] = [
    REVISION,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    REVISION_HISTORY,
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// An int-or-percent of `total`: a percentage rounds up for maxSurge,
/// down for maxUnavailable.
pub fn scaled_value(
    value: Option<&IntOrString>,
    total: i32,
    round_up: bool,
) -> i32 {
    match value {
        None => {
            // The default: 25%.
            scaled_value(
                Some(&IntOrString::String("25%".into())),
                total,
                round_up,
            )
        }
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let percent: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            let exact = percent * f64::from(total) / 100.0;
            if round_up {
                exact.ceil() as i32
            } else {
                exact.floor() as i32
            }
        }
    }
}

/// maxSurge and maxUnavailable as pod counts (upstream's
/// `ResolveFenceposts`): both 0 would never move, so unavailable is 1.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let rolling = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .unwrap_or_default();
    let surge = scaled_value(rolling.max_surge.as_ref(), desired, true);
    let unavailable =
        scaled_value(rolling.max_unavailable.as_ref(), desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// A ReplicaSet's size and how many of its pods are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RsSize {
    pub replicas: i32,
    pub available: i32,
}

/// The sizes one step of a rolling update sets: the new ReplicaSet's,
/// and the old ones' (in the order given, oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub new: i32,
    pub old: Vec<i32>,
}

// ANCHOR: rolling_step
/// One step of a rolling update towards `desired` pods, at most
/// `max_surge` above it and `max_unavailable` below it: upstream's
/// `NewRSNewReplicas` for the new ReplicaSet, then
/// `reconcileOldReplicaSets` for the old ones (oldest first) seeing the
/// new one at its new size.
pub fn rolling_step(
    desired: i32,
    max_surge: i32,
    max_unavailable: i32,
    new: RsSize,
    old: &[RsSize],
) -> Step {
    // EXERCISE: lab05-rolling-step
    let old_total: i32 = old.iter().map(|r| r.replicas).sum();
    // Up: to at most desired + surge pods in all.
    let max_total = desired + max_surge;
    let total = new.replicas + old_total;
    let new_replicas = if total >= max_total {
        new.replicas
    } else {
        new.replicas + (max_total - total).min(desired - new.replicas)
    };
    let mut sizes: Vec<i32> = old.iter().map(|r| r.replicas).collect();
    if old_total == 0 {
        return Step {
            new: new_replicas,
            old: sizes,
        };
    }
    // Down: never below desired - unavailable available pods, counting
    // the new pods not yet available as missing.
    let min_available = desired - max_unavailable;
    let new_unavailable = new_replicas - new.available;
    let max_scaled_down =
        new_replicas + old_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Step {
            new: new_replicas,
            old: sizes,
        };
    }
    // First the old pods that are not available anyway.
    let mut cleaned = 0;
    for (size, rs) in sizes.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = *size - rs.available;
        if *size == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - cleaned);
        *size -= down;
        cleaned += down;
    }
    // Then available ones, down to the minimum.
    let available: i32 =
        new.available + old.iter().map(|r| r.available).sum::<i32>();
    if available > min_available {
        let mut left = available - min_available;
        for size in sizes.iter_mut() {
            if left == 0 {
                break;
            }
            let down = (*size).min(left);
            *size -= down;
            left -= down;
        }
    }
    Step {
        new: new_replicas,
        old: sizes,
    }
    // EXERCISE_END: lab05-rolling-step
}
// ANCHOR_END: rolling_step

// ANCHOR: hash
/// The pod-template-hash of `template`: FNV-32a as upstream's
/// `ComputeHash`, then its decimal digits mapped onto the letters and
/// digits that make no words (`SafeEncodeString`). Upstream hashes Go's
/// dump of the template struct; we hash its JSON, so the values differ
/// from a real cluster's, while the scheme is the same.
pub fn compute_hash(
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        feed(&bytes);
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}
// ANCHOR_END: hash

/// Whether `rs` is controlled by `d` and runs `template` (hash aside).
fn is_ours(
    rs: &ReplicaSet,
    d: &Deployment,
    template: &PodTemplateSpec,
) -> bool {
    let controlled = rs.metadata.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true) && d.metadata.uid.as_ref() == Some(&o.uid)
    });
    let same = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .is_some_and(|t| without_hash(t) == without_hash(template));
    controlled && same
}

/// The template without its pod-template-hash label, to compare.
fn without_hash(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty() {
            if let Some(m) = t.metadata.as_mut() {
                m.labels = None;
            }
        }
    }
    serde_json::to_value(t).unwrap_or_default()
}

fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rs_size(rs: &ReplicaSet) -> RsSize {
    RsSize {
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

/// The deployment informer's handler.
pub fn on_deployment_change(
    queue: &WorkQueue<String>,
    change: &Change<Deployment>,
) {
    match change {
        Change::Added(d) | Change::Deleted(d) => queue.add(key_of(&d.metadata)),
        Change::Modified { new, .. } => queue.add(key_of(&new.metadata)),
        Change::Synced => {}
    }
}

/// The ReplicaSet informer's handler for deployments: the owner syncs.
pub fn on_replica_set_change(
    queue: &WorkQueue<String>,
    change: &Change<ReplicaSet>,
) {
    let owner = |rs: &ReplicaSet| {
        let r = controller_ref(&rs.metadata)?;
        (r.kind == "Deployment").then(|| {
            format!(
                "{}/{}",
                rs.metadata.namespace.as_deref().unwrap_or_default(),
                r.name
            )
        })
    };
    match change {
        Change::Added(rs) | Change::Deleted(rs) => {
            if let Some(k) = owner(rs) {
                queue.add(k);
            }
        }
        Change::Modified { old, new } => {
            for k in [owner(old), owner(new)].into_iter().flatten() {
                queue.add(k);
            }
        }
        Change::Synced => {}
    }
}

pub struct DeploymentController {
    pub client: Client,
    pub deployments: Cache<Deployment>,
    pub replica_sets: Cache<ReplicaSet>,
    pub queue: WorkQueue<String>,
    pub recorder: Recorder,
}

impl DeploymentController {
    /// The ReplicaSets `d` owns, adopting matching orphans.
    fn claim(&self, d: &Deployment) -> Result<Vec<Arc<ReplicaSet>>, SyncError> {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let spec = d.spec.clone().unwrap_or_default();
        let selector =
            Selector::from_label_selector(&spec.selector, "spec.selector")
                .map_err(|_| SyncError::Invalid("invalid selector".into()))?;
        let mut owned = Vec::new();
        for rs in self.replica_sets.list() {
            if rs.metadata.namespace != d.metadata.namespace {
                continue;
            }
            match controller_ref(&rs.metadata) {
                Some(r) if r.uid == uid => owned.push(rs),
                Some(_) => {}
                None => {
                    let matches = selector.matches(&pods::labels(&rs.metadata));
                    if !matches
                        || d.metadata.deletion_timestamp.is_some()
                        || rs.metadata.deletion_timestamp.is_some()
                    {
                        continue;
                    }
                    let mut refs = rs
                        .metadata
                        .owner_references
                        .clone()
                        .unwrap_or_default();
                    refs.push(pods::owner_ref(
                        "apps/v1",
                        "Deployment",
                        &d.metadata,
                    ));
                    let body = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    let adopted: ReplicaSet = self
                        .client
                        .patch(
                            rs.metadata.namespace.as_deref(),
                            &name,
                            Patch::Merge,
                            &body,
                        )
                        .map_err(SyncError::api(format!(
                            "adopt replicaset {name}"
                        )))?;
                    owned.push(Arc::new(adopted));
                }
            }
        }
        Ok(owned)
    }

    /// Writes `rs` with `replicas` and the deployment's size annotations.
    fn scale(
        &self,
        d: &Deployment,
        rs: &ReplicaSet,
        replicas: i32,
        surge: i32,
    ) -> Result<ReplicaSet, SyncError> {
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let mut next = rs.clone();
        let annotations =
            next.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + surge).to_string());
        let old = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        if let Some(spec) = next.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
        if next == *rs {
            return Ok(next);
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let written = self
            .client
            .replace(rs.metadata.namespace.as_deref(), &name, &next)
            .map_err(SyncError::api(format!("scale replicaset {name}")))?;
        if old != replicas {
            let verb = if replicas > old { "up" } else { "down" };
            self.recorder.event(
                &reference(d),
                "Normal",
                "ScalingReplicaSet",
                &format!(
                    "Scaled {verb} replica set {name} from {old} to {replicas}"
                ),
            );
        }
        Ok(written)
    }

    /// The new ReplicaSet (the one with the deployment's template),
    /// created at `replicas` when there is none; its revision made the
    /// newest.
    fn new_replica_set(
        &self,
        d: &Deployment,
        owned: &[Arc<ReplicaSet>],
        replicas: impl Fn(&[Arc<ReplicaSet>]) -> i32,
    ) -> Result<ReplicaSet, SyncError> {
        let spec = d.spec.clone().unwrap_or_default();
        let template = without_hash(&spec.template);
        let mut matching: Vec<&Arc<ReplicaSet>> = owned
            .iter()
            .filter(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .map(without_hash)
                    == Some(template.clone())
            })
            .collect();
        matching.sort_by_key(|rs| {
            rs.metadata.creation_timestamp.clone().map(|t| t.0)
        });
        let others: Vec<&Arc<ReplicaSet>> = owned
            .iter()
            .filter(|rs| {
                matching
                    .first()
                    .is_none_or(|m| m.metadata.uid != rs.metadata.uid)
            })
            .collect();
        let max_old = others
            .iter()
            .map(|rs| revision_of(&rs.metadata))
            .max()
            .unwrap_or(0);
        let next_revision = (max_old + 1).to_string();
        let ns = d.metadata.namespace.clone();
        if let Some(existing) = matching.first() {
            // A rollback: an old template is new again, with a new revision.
            if revision_of(&existing.metadata) <= max_old {
                let mut next = (***existing).clone();
                let annotations =
                    next.metadata.annotations.get_or_insert_with(BTreeMap::new);
                let old =
                    annotations.insert(REVISION.into(), next_revision.clone());
                if let Some(old) = old {
                    let history = match annotations.get(REVISION_HISTORY) {
                        Some(h) if !h.is_empty() => format!("{h},{old}"),
                        _ => old,
                    };
                    annotations.insert(REVISION_HISTORY.into(), history);
                }
                let name = next.metadata.name.clone().unwrap_or_default();
                return self
                    .client
                    .replace(ns.as_deref(), &name, &next)
                    .map_err(SyncError::api(format!(
                        "update revision of replicaset {name}"
                    )));
            }
            return Ok((***existing).clone());
        }
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collisions);
        let name = format!(
            "{}-{hash}",
            d.metadata.name.as_deref().unwrap_or_default()
        );
        let mut template = spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut annotations: BTreeMap<String, String> = d
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
            .collect();
        let desired = spec.replicas.unwrap_or(1);
        let (surge, _) = fenceposts(d);
        annotations.insert(REVISION.into(), next_revision);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + surge).to_string());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: ns.clone(),
                labels: tmeta.labels.clone(),
                annotations: Some(annotations),
                owner_references: Some(vec![pods::owner_ref(
                    "apps/v1",
                    "Deployment",
                    &d.metadata,
                )]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                min_ready_seconds: spec.min_ready_seconds,
                replicas: Some(replicas(owned)),
                selector: LabelSelector {
                    match_labels: selector.match_labels,
                    match_expressions: selector.match_expressions,
                },
                template: Some(template),
            }),
            status: None,
        };
        match self.client.create(ns.as_deref(), &rs) {
            Ok(created) => {
                let replicas =
                    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                self.recorder.event(
                    &reference(d),
                    "Normal",
                    "ScalingReplicaSet",
                    &format!(
                        "Scaled up replica set {name} from 0 to {replicas}"
                    ),
                );
                Ok(created)
            }
            Err(e) if e.code() == Some(409) => {
                // Ours already, made by an earlier sync that our cache
                // has not seen yet (upstream's getNewReplicaSet checks
                // the same): the same owner and template is no collision.
                if let Some(existing) = self
                    .client
                    .get::<ReplicaSet>(ns.as_deref(), &name)
                    .ok()
                    .filter(|rs| is_ours(rs, d, &spec.template))
                {
                    return Ok(existing);
                }
                // A ReplicaSet of that name with another template: hash
                // again with one more collision.
                let mut next = d.clone();
                let status = next.status.get_or_insert_with(Default::default);
                status.collision_count =
                    Some(status.collision_count.unwrap_or(0) + 1);
                let dname = d.metadata.name.clone().unwrap_or_default();
                self.client
                    .replace_status(ns.as_deref(), &dname, &next)
                    .map_err(SyncError::api("update collisionCount"))?;
                Err(SyncError::Invalid(format!(
                    "hash collision on replicaset {name}"
                )))
            }
            Err(e) => {
                Err(SyncError::api(format!("create replicaset {name}"))(e))
            }
        }
    }

    /// Syncs the Deployment `key`.
    pub fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(d) = self.deployments.get(key) else {
            return Ok(());
        };
        let (_, _) = split_key(key);
        let owned = self.claim(&d)?;
        let spec = d.spec.clone().unwrap_or_default();
        if d.metadata.deletion_timestamp.is_some() || spec.paused == Some(true)
        {
            return self.write_status(&d, &owned, None);
        }
        let desired = spec.replicas.unwrap_or(1);
        let (surge, unavailable) = fenceposts(&d);
        let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        let size_of = |rs: &[Arc<ReplicaSet>]| -> i32 {
            if recreate {
                let old_pods: i32 =
                    rs.iter().map(|r| rs_size(r).replicas).sum();
                if old_pods > 0 {
                    0
                } else {
                    desired
                }
            } else {
                let old: Vec<RsSize> = rs.iter().map(|r| rs_size(r)).collect();
                rolling_step(
                    desired,
                    surge,
                    unavailable,
                    RsSize {
                        replicas: 0,
                        available: 0,
                    },
                    &old,
                )
                .new
            }
        };
        let new_rs = self.new_replica_set(&d, &owned, size_of)?;
        let mut old: Vec<Arc<ReplicaSet>> = owned
            .iter()
            .filter(|rs| rs.metadata.uid != new_rs.metadata.uid)
            .cloned()
            .collect();
        old.sort_by_key(|rs| {
            rs.metadata.creation_timestamp.clone().map(|t| t.0)
        });
        let old_sizes: Vec<RsSize> = old.iter().map(|r| rs_size(r)).collect();
        let new_size = rs_size(&new_rs);
        let mut new_rs = new_rs;

        if recreate {
            let old_running: i32 = old
                .iter()
                .map(|rs| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0))
                .sum();
            if old_sizes.iter().any(|s| s.replicas > 0) {
                for rs in &old {
                    self.scale(&d, rs, 0, surge)?;
                }
            } else if old_running == 0 && new_size.replicas != desired {
                new_rs = self.scale(&d, &new_rs, desired, surge)?;
            }
        } else if old_sizes.iter().all(|s| s.replicas == 0) {
            // Not rolling: a plain scale of the one active ReplicaSet.
            if new_size.replicas != desired {
                new_rs = self.scale(&d, &new_rs, desired, surge)?;
            }
        } else {
            let step =
                rolling_step(desired, surge, unavailable, new_size, &old_sizes);
            if step.new != new_size.replicas {
                new_rs = self.scale(&d, &new_rs, step.new, surge)?;
            }
            for (rs, size) in old.iter().zip(step.old) {
                if size != rs_size(rs).replicas {
                    self.scale(&d, rs, size, surge)?;
                }
            }
        }
        self.set_revision(&d, &new_rs)?;
        let all: Vec<Arc<ReplicaSet>> = old
            .iter()
            .cloned()
            .chain(std::iter::once(Arc::new(new_rs.clone())))
            .collect();
        self.write_status(&d, &all, Some(&new_rs))?;
        self.requeue_stuck(key, &d, &all, &new_rs);
        self.cleanup(&d, &old)
    }

    /// Upstream's requeueStuckDeployment: a rollout still progressing is
    /// looked at again when its deadline would pass, in case nothing
    /// else happens before.
    fn requeue_stuck(
        &self,
        key: &str,
        d: &Deployment,
        all: &[Arc<ReplicaSet>],
        new_rs: &ReplicaSet,
    ) {
        let status = calculate_status(d, all, Some(new_rs));
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing");
        if let Some(c) = progressing.filter(|c| {
            c.status == "True"
                && c.reason.as_deref() != Some("NewReplicaSetAvailable")
        }) {
            if let Some(left) = deadline_left(d, c) {
                self.queue.add_after(
                    key.to_string(),
                    left + std::time::Duration::from_millis(100),
                );
            }
        }
    }

    /// The deployment's own revision annotation: the new ReplicaSet's
    /// (kubectl rollout undo replaces the deployment's annotations, so
    /// they must exist).
    fn set_revision(
        &self,
        d: &Deployment,
        new_rs: &ReplicaSet,
    ) -> Result<(), SyncError> {
        let revision = revision_of(&new_rs.metadata).to_string();
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if current == Some(&revision) {
            return Ok(());
        }
        let body = json!({"metadata": {"annotations": {REVISION: revision}}});
        let name = d.metadata.name.clone().unwrap_or_default();
        self.client
            .patch::<Deployment>(
                d.metadata.namespace.as_deref(),
                &name,
                Patch::Merge,
                &body,
            )
            .map(|_| ())
            .map_err(SyncError::api(format!(
                "set revision of deployment {name}"
            )))
    }

    /// Old ReplicaSets beyond revisionHistoryLimit (10), empty ones,
    /// oldest revision first.
    fn cleanup(
        &self,
        d: &Deployment,
        old: &[Arc<ReplicaSet>],
    ) -> Result<(), SyncError> {
        let limit = usize::try_from(
            d.spec
                .as_ref()
                .and_then(|s| s.revision_history_limit)
                .unwrap_or(10),
        )
        .unwrap_or(0);
        let mut empty: Vec<&Arc<ReplicaSet>> = old
            .iter()
            .filter(|rs| {
                rs_size(rs).replicas == 0
                    && rs.status.as_ref().map(|s| s.replicas).unwrap_or(0) == 0
            })
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        if old.len() <= limit {
            return Ok(());
        }
        empty.sort_by_key(|rs| revision_of(&rs.metadata));
        for rs in empty.into_iter().take(old.len() - limit) {
            let name = rs.metadata.name.clone().unwrap_or_default();
            match self.client.delete::<ReplicaSet>(
                rs.metadata.namespace.as_deref(),
                &name,
                None,
            ) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(SyncError::api(format!(
                        "delete old replicaset {name}"
                    ))(e))
                }
            }
        }
        Ok(())
    }

    fn write_status(
        &self,
        d: &Deployment,
        all: &[Arc<ReplicaSet>],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), SyncError> {
        let status = calculate_status(d, all, new_rs);
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut next = d.clone();
        next.status = Some(status);
        let name = d.metadata.name.clone().unwrap_or_default();
        self.client
            .replace_status(d.metadata.namespace.as_deref(), &name, &next)
            .map(|_| ())
            .map_err(SyncError::api(format!(
                "update status of deployment {name}"
            )))
    }
}

fn condition(
    old: Option<&DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Time(Utc::now());
    // Unchanged: keep the times, so the status does not change forever.
    if let Some(o) = old {
        if o.status == status
            && o.reason.as_deref() == Some(reason)
            && o.message.as_deref() == Some(message.as_str())
        {
            return o.clone();
        }
    }
    let transition = match old {
        Some(o) if o.status == status => o.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now),
        last_transition_time: transition,
    }
}

/// Upstream's DeploymentProgressing: more replicas updated, ready or
/// available than the last status said, or fewer old ones.
fn progressed(
    old: &DeploymentStatus,
    updated: i32,
    ready: i32,
    available: i32,
    old_replicas: i32,
) -> bool {
    let was_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    updated > old.updated_replicas.unwrap_or(0)
        || ready > old.ready_replicas.unwrap_or(0)
        || available > old.available_replicas.unwrap_or(0)
        || old_replicas < was_old
}

/// Upstream's DeploymentTimedOut: a rollout of `new_rs` that made no
/// progress for progressDeadlineSeconds since the Progressing
/// condition's last update (once timed out, it stays so until progress).
fn timed_out(
    d: &Deployment,
    progressing: Option<&DeploymentCondition>,
    new_rs: &str,
) -> bool {
    let Some(c) = progressing else {
        return false;
    };
    if c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return true;
    }
    // A finished rollout, or one of another ReplicaSet, has no deadline.
    let of_this = c
        .message
        .as_deref()
        .is_some_and(|m| m.contains(&format!("\"{new_rs}\"")));
    if c.reason.as_deref() == Some("NewReplicaSetAvailable") || !of_this {
        return false;
    }
    match (deadline_left(d, c), c.last_update_time.as_ref()) {
        (Some(left), Some(_)) => left.is_zero(),
        _ => false,
    }
}

/// What is left of the progress deadline counted from `c`'s last update
/// (zero once past); None when the Deployment has none.
pub fn deadline_left(
    d: &Deployment,
    c: &DeploymentCondition,
) -> Option<std::time::Duration> {
    let seconds = d.spec.as_ref()?.progress_deadline_seconds?;
    let from = c.last_update_time.as_ref()?.0;
    let end = from + chrono::Duration::seconds(i64::from(seconds));
    Some((end - Utc::now()).to_std().unwrap_or_default())
}

/// The status the ReplicaSets make, with the Available and Progressing
/// conditions kubectl rollout status reads.
pub fn calculate_status(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| {
        all.iter().map(|rs| f(rs)).sum::<i32>()
    };
    let replicas =
        sum(&|rs| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0));
    let ready = sum(&|rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    });
    let available = sum(&|rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    });
    let updated = new_rs
        .and_then(|rs| rs.status.as_ref())
        .map(|s| s.replicas)
        .unwrap_or(0);
    let old = d.status.clone().unwrap_or_default();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let find = |t: &str| old_conditions.iter().find(|c| c.type_ == t);
    let (_, unavailable) = fenceposts(d);
    let mut conditions = Vec::new();
    let min_available = desired - unavailable;
    conditions.push(if available >= min_available {
        condition(
            find("Available"),
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        )
    } else {
        condition(
            find("Available"),
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    });
    if let Some(rs) = new_rs {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let new_status = rs.status.clone().unwrap_or_default();
        let complete =
            updated == desired && replicas == desired && available == desired;
        let progressing = if complete
            && new_status.available_replicas.unwrap_or(0) == desired
        {
            condition(
                find("Progressing"),
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{name}\" has successfully progressed."),
            )
        } else if find("Progressing").is_none() {
            condition(
                None,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
            )
        } else if progressed(
            &old,
            updated,
            ready,
            available,
            replicas - updated,
        ) || !timed_out(d, find("Progressing"), &name)
        {
            let mut c = condition(
                find("Progressing"),
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
            );
            // Progress moves the deadline: it counts from the last one.
            if progressed(&old, updated, ready, available, replicas - updated) {
                c.last_update_time = Some(Time(Utc::now()));
            }
            c
        } else {
            condition(
                find("Progressing"),
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{name}\" has timed out progressing."),
            )
        };
        conditions.push(progressing);
    } else if let Some(c) = find("Progressing") {
        conditions.push(c.clone());
    }
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        conditions: Some(conditions),
        collision_count: old.collision_count,
    }
}
