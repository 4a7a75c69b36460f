//! The garbage collector: what ownerReferences mean once an owner goes.
//!
//! The API server only records how an owner is deleted (see
//! `apiserver/handlers/delete.rs`): Background deletes it at once;
//! Foreground keeps it, marked, with the `foregroundDeletion`
//! finalizer; Orphan keeps it with the `orphan` finalizer. The rest is
//! done here, every period, over the informers' caches:
//! - a dependent whose owners are all gone is deleted (Background);
//! - the dependents of a Foreground owner are deleted, and its finalizer
//!   taken off once none that blocks it (blockOwnerDeletion) is left;
//! - the dependents of an Orphan owner lose their reference to it, then
//!   its finalizer is taken off.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ObjectMeta, OwnerReference,
};
use serde_json::json;

use super::SyncError;
use crate::client::{Client, ClientError, Patch};
use crate::informer::{Cache, Informable};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// The kinds it collects: owners and dependents.
pub struct GarbageCollector {
    pub client: Client,
    pub deployments: Cache<Deployment>,
    pub replica_sets: Cache<ReplicaSet>,
    pub controllers: Cache<ReplicationController>,
    pub daemon_sets: Cache<DaemonSet>,
    pub jobs: Cache<Job>,
    pub services: Cache<Service>,
    pub pods: Cache<Pod>,
    pub slices: Cache<EndpointSlice>,
    pub period: Duration,
}

/// An owner being deleted with a finalizer of ours.
#[derive(Debug, Clone)]
struct Deleting {
    kind: &'static str,
    meta: ObjectMeta,
    policy: &'static str,
}

fn deleting_of<T: Informable>(
    cache: &Cache<T>,
    out: &mut HashMap<String, Deleting>,
) {
    for o in cache.list() {
        let meta = o.metadata();
        if meta.deletion_timestamp.is_none() {
            continue;
        }
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        let policy = if finalizers.iter().any(|f| f == ORPHAN) {
            ORPHAN
        } else if finalizers.iter().any(|f| f == FOREGROUND) {
            FOREGROUND
        } else {
            continue;
        };
        if let Some(uid) = meta.uid.clone() {
            out.insert(
                uid,
                Deleting {
                    kind: T::KIND,
                    meta: meta.clone(),
                    policy,
                },
            );
        }
    }
}

fn uids_of<T: Informable>(cache: &Cache<T>, out: &mut HashSet<String>) {
    out.extend(cache.list().iter().filter_map(|o| o.metadata().uid.clone()));
}

impl GarbageCollector {
    pub fn run(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            if let Err(e) = self.collect() {
                eprintln!("garbage-collector: {e}");
            }
            while !stop.load(Ordering::SeqCst)
                && started.elapsed() < self.period
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Whether the owner `r` names exists, asked of the API server (the
    /// caches may not show a new owner yet); `None` for a kind it does
    /// not know or an error, when nothing is done.
    fn owner_exists(
        &self,
        ns: Option<&str>,
        r: &OwnerReference,
    ) -> Option<bool> {
        fn check<T: Informable>(
            c: &Client,
            ns: Option<&str>,
            r: &OwnerReference,
        ) -> Option<bool> {
            match c.get::<T>(ns, &r.name) {
                Ok(o) => {
                    Some(o.metadata().uid.as_deref() == Some(r.uid.as_str()))
                }
                Err(e) if e.is_not_found() => Some(false),
                Err(_) => None,
            }
        }
        let c = &self.client;
        match r.kind.as_str() {
            "Deployment" => check::<Deployment>(c, ns, r),
            "ReplicaSet" => check::<ReplicaSet>(c, ns, r),
            "ReplicationController" => check::<ReplicationController>(c, ns, r),
            "DaemonSet" => check::<DaemonSet>(c, ns, r),
            "Job" => check::<Job>(c, ns, r),
            "Service" => check::<Service>(c, ns, r),
            _ => None,
        }
    }

    /// One pass over every dependent and every owner being deleted.
    pub fn collect(&self) -> Result<(), SyncError> {
        let mut deleting = HashMap::new();
        deleting_of(&self.deployments, &mut deleting);
        deleting_of(&self.replica_sets, &mut deleting);
        deleting_of(&self.controllers, &mut deleting);
        deleting_of(&self.daemon_sets, &mut deleting);
        deleting_of(&self.jobs, &mut deleting);
        let mut known = HashSet::new();
        uids_of(&self.deployments, &mut known);
        uids_of(&self.replica_sets, &mut known);
        uids_of(&self.controllers, &mut known);
        uids_of(&self.daemon_sets, &mut known);
        uids_of(&self.jobs, &mut known);
        uids_of(&self.services, &mut known);
        // Owners (by uid) that still have dependents holding them back.
        let mut held: HashSet<String> = HashSet::new();
        let mut first_error = None;
        let mut note = |r: Result<(), ClientError>, what: String| {
            if let Err(e) = r {
                if !e.is_not_found() {
                    first_error.get_or_insert(SyncError::api(what)(e));
                }
            }
        };
        self.dependents(&self.pods, &deleting, &known, &mut held, &mut note);
        self.dependents(
            &self.replica_sets,
            &deleting,
            &known,
            &mut held,
            &mut note,
        );
        self.dependents(&self.slices, &deleting, &known, &mut held, &mut note);
        for (uid, owner) in &deleting {
            if held.contains(uid) {
                continue;
            }
            let finalizers: Vec<String> = owner
                .meta
                .finalizers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != owner.policy)
                .collect();
            let body =
                json!({"metadata": {"finalizers": finalizers, "uid": uid}});
            let ns = owner.meta.namespace.as_deref();
            let name = owner.meta.name.clone().unwrap_or_default();
            let c = &self.client;
            let r = match owner.kind {
                "Deployment" => c
                    .patch::<Deployment>(ns, &name, Patch::Merge, &body)
                    .map(|_| ()),
                "ReplicaSet" => c
                    .patch::<ReplicaSet>(ns, &name, Patch::Merge, &body)
                    .map(|_| ()),
                "DaemonSet" => c
                    .patch::<DaemonSet>(ns, &name, Patch::Merge, &body)
                    .map(|_| ()),
                "Job" => {
                    c.patch::<Job>(ns, &name, Patch::Merge, &body).map(|_| ())
                }
                _ => c
                    .patch::<ReplicationController>(
                        ns,
                        &name,
                        Patch::Merge,
                        &body,
                    )
                    .map(|_| ()),
            };
            note(
                r,
                format!(
                    "remove finalizer {} of {} {name}",
                    owner.policy, owner.kind
                ),
            );
        }
        first_error.map_or(Ok(()), Err)
    }

    fn dependents<T: Informable>(
        &self,
        cache: &Cache<T>,
        deleting: &HashMap<String, Deleting>,
        known: &HashSet<String>,
        held: &mut HashSet<String>,
        note: &mut impl FnMut(Result<(), ClientError>, String),
    ) {
        for dependent in cache.list() {
            let meta = dependent.metadata();
            let Some(refs) =
                meta.owner_references.clone().filter(|r| !r.is_empty())
            else {
                continue;
            };
            let ns = meta.namespace.as_deref();
            let name = meta.name.clone().unwrap_or_default();
            let what = format!("{} {}/{name}", T::KIND, ns.unwrap_or_default());
            let c = &self.client;
            // Orphan: drop the references to owners being orphaned.
            let kept: Vec<OwnerReference> = refs
                .iter()
                .filter(|r| {
                    deleting.get(&r.uid).is_none_or(|d| d.policy != ORPHAN)
                })
                .cloned()
                .collect();
            if kept.len() != refs.len() {
                for r in &refs {
                    if deleting.get(&r.uid).is_some_and(|d| d.policy == ORPHAN)
                    {
                        held.insert(r.uid.clone());
                    }
                }
                let body = json!({"metadata": {"ownerReferences": kept, "uid": meta.uid}});
                note(
                    c.patch::<T>(ns, &name, Patch::Merge, &body).map(|_| ()),
                    format!("orphan {what}"),
                );
                continue;
            }
            // Foreground: the dependents go first.
            let foreground: Vec<&OwnerReference> = refs
                .iter()
                .filter(|r| {
                    deleting.get(&r.uid).is_some_and(|d| d.policy == FOREGROUND)
                })
                .collect();
            if !foreground.is_empty() {
                for r in &foreground {
                    if r.block_owner_deletion == Some(true) {
                        held.insert(r.uid.clone());
                    }
                }
                if meta.deletion_timestamp.is_none() {
                    let options = json!({"propagationPolicy": "Foreground"});
                    note(
                        c.delete::<T>(ns, &name, Some(&options)).map(|_| ()),
                        format!("delete {what}"),
                    );
                }
                continue;
            }
            // Background: every owner gone (checked with the API server
            // for those the caches do not show).
            if meta.deletion_timestamp.is_some() {
                continue;
            }
            let mut all_gone = true;
            for r in &refs {
                if known.contains(&r.uid) {
                    all_gone = false;
                    break;
                }
                if self.owner_exists(ns, r) != Some(false) {
                    all_gone = false;
                    break;
                }
            }
            if all_gone {
                let options = json!({"propagationPolicy": "Background"});
                note(
                    c.delete::<T>(ns, &name, Some(&options)).map(|_| ()),
                    format!("delete {what}"),
                );
            }
        }
    }
}
