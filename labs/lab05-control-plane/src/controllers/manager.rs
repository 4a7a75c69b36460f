//! The controller manager: one process, many controllers, one set of
//! informers. Each kind is listed and watched once and every controller
//! reads the same caches (client-go's shared informers); each controller
//! has its own work queue and worker thread. With leader election only
//! the replica holding the `kube-system/kube-controller-manager` Lease
//! runs them; one that loses the Lease stops, as the real one exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::daemonset::{self, DaemonSetController};
use super::deployment::{self, DeploymentController};
use super::endpointslice::{self, EndpointSliceController};
use super::expectations::Expectations;
use super::gc::GarbageCollector;
use super::job::JobController;
use super::nodelifecycle::{
    NodeLifecycleController, NodeLifecycleOptions, NODE_LEASE_NAMESPACE,
};
use super::replicaset::{self, ReplicaSetController};
use super::run_worker;
use crate::client::Client;
use crate::events::Recorder;
use crate::informer::Informer;
use crate::leader::{LeaderElector, LeaseRef, Timings, TimingsError};
use crate::workqueue::WorkQueue;

/// kube-controller-manager's settings that matter here.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    pub node_lifecycle: NodeLifecycleOptions,
    /// How often the garbage collector looks (ours scans; upstream's
    /// keeps a graph fed by watches).
    pub gc_period: Duration,
    /// `None`: no leader election (`--leader-elect=false`); else this
    /// replica's identity and the timings.
    pub leader_election: Option<(String, Timings)>,
    /// How long to wait for the informers' first lists.
    pub sync_timeout: Duration,
}

impl Default for ManagerOptions {
    fn default() -> ManagerOptions {
        ManagerOptions {
            node_lifecycle: NodeLifecycleOptions::default(),
            gc_period: Duration::from_secs(1),
            leader_election: None,
            sync_timeout: Duration::from_secs(30),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `stop` was raised.
    Stopped,
    /// Leadership was lost: the process should exit (and be restarted).
    LostLeadership,
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("leader election: {0}")]
    Timings(#[from] TimingsError),
    #[error("the informers did not sync within {0:?}")]
    NotSynced(Duration),
}

/// The Lease the replicas compete for.
pub fn lease() -> LeaseRef {
    LeaseRef::new("kube-system", "kube-controller-manager")
}

/// Runs every controller until `stop` (or, with leader election, until
/// leadership is lost); blocks.
pub fn run(
    client: Client,
    options: &ManagerOptions,
    stop: &AtomicBool,
) -> Result<Outcome, ManagerError> {
    let Some((identity, timings)) = options.leader_election.clone() else {
        run_controllers(client, options, stop)?;
        return Ok(Outcome::Stopped);
    };
    let elector =
        LeaderElector::new(client.clone(), lease(), &identity, timings)?;
    let led = elector.run(stop, |leading| {
        let halt = AtomicBool::new(false);
        std::thread::scope(|s| {
            let worker =
                s.spawn(|| run_controllers(client.clone(), options, &halt));
            while leading.sleep(Duration::from_millis(100)) {}
            halt.store(true, Ordering::SeqCst);
            worker.join().unwrap_or(Ok(()))
        })
    });
    match led {
        None => Ok(Outcome::Stopped),
        Some(result) => {
            result?;
            if stop.load(Ordering::SeqCst) {
                Ok(Outcome::Stopped)
            } else {
                Ok(Outcome::LostLeadership)
            }
        }
    }
}

/// The controllers themselves, no election: informers, queues,
/// workers, until `stop`.
pub fn run_controllers(
    client: Client,
    options: &ManagerOptions,
    stop: &AtomicBool,
) -> Result<(), ManagerError> {
    let recorder =
        Recorder::new(client.clone(), "kube-controller-manager", None);
    let rs_queue: WorkQueue<String> = WorkQueue::new();
    let rc_queue: WorkQueue<String> = WorkQueue::new();
    let d_queue: WorkQueue<String> = WorkQueue::new();
    let svc_queue: WorkQueue<String> = WorkQueue::new();
    let ds_queue: WorkQueue<String> = WorkQueue::new();
    let job_queue: WorkQueue<String> = WorkQueue::new();
    let rs_expect = Expectations::new();
    let rc_expect = Expectations::new();
    let ds_expect = Expectations::new();
    let job_expect = Expectations::new();

    // Owners first: the pod informer's handler reads their caches.
    let rss = {
        let (q, dq) = (rs_queue.clone(), d_queue.clone());
        Informer::<ReplicaSet>::start(client.clone(), None, "", move |c| {
            replicaset::on_owner_change(&q, c);
            deployment::on_replica_set_change(&dq, c);
        })
    };
    let rcs = {
        let q = rc_queue.clone();
        Informer::<ReplicationController>::start(
            client.clone(),
            None,
            "",
            move |c| replicaset::on_owner_change(&q, c),
        )
    };
    let deployments = {
        let q = d_queue.clone();
        Informer::<Deployment>::start(client.clone(), None, "", move |c| {
            deployment::on_deployment_change(&q, c)
        })
    };
    let services = {
        let q = svc_queue.clone();
        Informer::<Service>::start(client.clone(), None, "", move |c| {
            endpointslice::on_service_change(&q, c)
        })
    };
    let slices = {
        let q = svc_queue.clone();
        Informer::<EndpointSlice>::start(client.clone(), None, "", move |c| {
            endpointslice::on_slice_change(&q, c)
        })
    };
    let daemonsets = {
        let q = ds_queue.clone();
        Informer::<DaemonSet>::start(client.clone(), None, "", move |c| {
            replicaset::on_owner_change(&q, c)
        })
    };
    let jobs = {
        let q = job_queue.clone();
        Informer::<Job>::start(client.clone(), None, "", move |c| {
            replicaset::on_owner_change(&q, c)
        })
    };
    let nodes = {
        let (q, ds_cache) = (ds_queue.clone(), daemonsets.cache());
        Informer::<Node>::start(client.clone(), None, "", move |c| {
            daemonset::on_node_change(&q, &ds_cache, c)
        })
    };
    let leases = Informer::<Lease>::start(
        client.clone(),
        Some(NODE_LEASE_NAMESPACE),
        "",
        |_| {},
    );
    let pods = {
        let (rsq, rcq, sq) =
            (rs_queue.clone(), rc_queue.clone(), svc_queue.clone());
        let (dsq, jq) = (ds_queue.clone(), job_queue.clone());
        let (rse, rce) = (rs_expect.clone(), rc_expect.clone());
        let (dse, je) = (ds_expect.clone(), job_expect.clone());
        let (rs_cache, rc_cache, svc_cache) =
            (rss.cache(), rcs.cache(), services.cache());
        let (ds_cache, job_cache) = (daemonsets.cache(), jobs.cache());
        Informer::<Pod>::start(client.clone(), None, "", move |c| {
            replicaset::on_pod_change(&rsq, &rse, &rs_cache, c);
            replicaset::on_pod_change(&rcq, &rce, &rc_cache, c);
            replicaset::on_pod_change(&dsq, &dse, &ds_cache, c);
            replicaset::on_pod_change(&jq, &je, &job_cache, c);
            endpointslice::on_pod_change(&sq, &svc_cache, c);
        })
    };
    let synced = rss.wait_synced(options.sync_timeout)
        && rcs.wait_synced(options.sync_timeout)
        && deployments.wait_synced(options.sync_timeout)
        && services.wait_synced(options.sync_timeout)
        && slices.wait_synced(options.sync_timeout)
        && daemonsets.wait_synced(options.sync_timeout)
        && jobs.wait_synced(options.sync_timeout)
        && nodes.wait_synced(options.sync_timeout)
        && leases.wait_synced(options.sync_timeout)
        && pods.wait_synced(options.sync_timeout);
    if !synced {
        return Err(ManagerError::NotSynced(options.sync_timeout));
    }

    let rs_controller = ReplicaSetController::new(
        client.clone(),
        rss.cache(),
        pods.cache(),
        rs_queue.clone(),
        rs_expect,
        recorder.clone(),
    );
    let rc_controller = ReplicaSetController::new(
        client.clone(),
        rcs.cache(),
        pods.cache(),
        rc_queue.clone(),
        rc_expect,
        recorder.clone(),
    );
    let d_controller = DeploymentController {
        client: client.clone(),
        deployments: deployments.cache(),
        replica_sets: rss.cache(),
        queue: d_queue.clone(),
        recorder: recorder.clone(),
    };
    let ds_controller = DaemonSetController {
        client: client.clone(),
        daemonsets: daemonsets.cache(),
        nodes: nodes.cache(),
        pods: pods.cache(),
        queue: ds_queue.clone(),
        expectations: ds_expect,
        recorder: recorder.clone(),
    };
    let job_controller = JobController {
        client: client.clone(),
        jobs: jobs.cache(),
        pods: pods.cache(),
        queue: job_queue.clone(),
        expectations: job_expect,
        recorder: recorder.clone(),
    };
    let slice_controller = EndpointSliceController {
        client: client.clone(),
        services: services.cache(),
        pods: pods.cache(),
        slices: slices.cache(),
        queue: svc_queue.clone(),
    };
    let node_controller = NodeLifecycleController {
        client: client.clone(),
        nodes: nodes.cache(),
        leases: leases.cache(),
        pods: pods.cache(),
        recorder: recorder.clone(),
        options: options.node_lifecycle,
        first_seen: Default::default(),
        zones: Default::default(),
    };
    let gc = GarbageCollector {
        client: client.clone(),
        deployments: deployments.cache(),
        replica_sets: rss.cache(),
        controllers: rcs.cache(),
        daemon_sets: daemonsets.cache(),
        jobs: jobs.cache(),
        services: services.cache(),
        pods: pods.cache(),
        slices: slices.cache(),
        period: options.gc_period,
    };
    // What the first lists held: everything syncs once.
    for o in rss.cache().list() {
        rs_queue.add(crate::informer::key_of(&o.metadata));
    }
    for o in rcs.cache().list() {
        rc_queue.add(crate::informer::key_of(&o.metadata));
    }
    for o in deployments.cache().list() {
        d_queue.add(crate::informer::key_of(&o.metadata));
    }
    for o in daemonsets.cache().list() {
        ds_queue.add(crate::informer::key_of(&o.metadata));
    }
    for o in jobs.cache().list() {
        job_queue.add(crate::informer::key_of(&o.metadata));
    }
    for o in services.cache().list() {
        svc_queue.add(crate::informer::key_of(&o.metadata));
    }

    std::thread::scope(|s| {
        s.spawn(|| {
            run_worker("replicaset-controller", &rs_queue, stop, |k| {
                rs_controller.sync(k)
            })
        });
        s.spawn(|| {
            run_worker(
                "replicationcontroller-controller",
                &rc_queue,
                stop,
                |k| rc_controller.sync(k),
            )
        });
        s.spawn(|| {
            run_worker("deployment-controller", &d_queue, stop, |k| {
                d_controller.sync(k)
            })
        });
        s.spawn(|| {
            run_worker("endpointslice-controller", &svc_queue, stop, |k| {
                slice_controller.sync(k)
            })
        });
        s.spawn(|| {
            run_worker("daemonset-controller", &ds_queue, stop, |k| {
                ds_controller.sync(k)
            })
        });
        s.spawn(|| {
            run_worker("job-controller", &job_queue, stop, |k| {
                job_controller.sync(k)
            })
        });
        s.spawn(|| node_controller.run(stop));
        s.spawn(|| gc.run(stop));
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for q in [
            &rs_queue, &rc_queue, &d_queue, &svc_queue, &ds_queue, &job_queue,
        ] {
            q.shut_down();
        }
    });
    for i in [
        &rss as &dyn Stoppable,
        &rcs,
        &deployments,
        &services,
        &slices,
        &daemonsets,
        &jobs,
        &nodes,
        &leases,
        &pods,
    ] {
        i.stop_informer();
    }
    Ok(())
}

trait Stoppable {
    fn stop_informer(&self);
}

impl<T: crate::informer::Informable> Stoppable for Informer<T> {
    fn stop_informer(&self) {
        self.stop();
    }
}
