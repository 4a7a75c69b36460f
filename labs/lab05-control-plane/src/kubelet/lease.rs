//! The node's heartbeat: a `coordination.k8s.io/v1` Lease named for the
//! node in `kube-node-lease`, renewed every 10 s. KEP-0009 ("Efficient
//! Node Heartbeat") moved the heartbeat here from the Node's status: a
//! Lease is a few hundred bytes, a Node's status kilobytes, and writing
//! the big object every 10 s from thousands of nodes was most of etcd's
//! load. The Node's status is now written only when it changes (and at
//! least every five minutes).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    MicroTime, ObjectMeta, OwnerReference,
};

use crate::auth::restriction::NODE_LEASE_NAMESPACE;
use crate::client::{Client, ClientError};

/// The kubelet's `nodeLeaseDurationSeconds`.
pub const LEASE_DURATION: Duration = Duration::from_secs(40);
/// Renewed at a quarter of its duration, as the kubelet does.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// The node's Lease as it should be after a renewal at `now`: held by
/// the node, owned by its Node (so it goes when the Node goes).
pub fn renewed(
    old: Option<Lease>,
    node: &Node,
    duration: Duration,
    now: SystemTime,
) -> Lease {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut lease = old.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(NODE_LEASE_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    if let Some(uid) = &node.metadata.uid {
        lease.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: name.clone(),
            uid: uid.clone(),
            ..OwnerReference::default()
        }]);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(name);
    spec.lease_duration_seconds = Some(duration.as_secs() as i32);
    spec.renew_time = Some(MicroTime(now.into()));
    lease
}

/// One renewal: create the Lease, or update it (a conflict means someone
/// wrote it meanwhile; the next renewal reads it again).
pub fn renew(
    client: &Client,
    node: &Node,
    duration: Duration,
    now: SystemTime,
) -> Result<Lease, ClientError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let ns = Some(NODE_LEASE_NAMESPACE);
    match client.get::<Lease>(ns, &name) {
        Ok(old) => {
            client.replace(ns, &name, &renewed(Some(old), node, duration, now))
        }
        Err(e) if e.is_not_found() => {
            client.create(ns, &renewed(None, node, duration, now))
        }
        Err(e) => Err(e),
    }
}
