//! The authorizer: what each identity may do.
//!
//! A real cluster decides this with RBAC (roles bound to users and
//! groups) and, for node agents, the Node authorizer and the
//! NodeRestriction admission plugin. RBAC is out of scope here; instead,
//! a fixed table:
//!
//! - the admin (group `system:masters`) may do anything, as in a real
//!   cluster;
//! - the scheduler and the controller manager may do anything too (a
//!   simplification: their RBAC roles are long lists of what they use);
//! - a node agent (`system:node:<name>`, group `system:nodes`) may *read*
//!   anything (a simplification: the Node authorizer lets it read only
//!   what its pods refer to), and *write* only what NodeRestriction
//!   leaves it: its own Node (and `nodes/status`), its own Lease in
//!   `kube-node-lease`, the status of pods bound to it, deletes of pods
//!   bound to it, mirror pods bound to itself, and events;
//! - anyone else, nothing.
//!
//! A refusal is a 403 Forbidden Status, worded as kube-apiserver words it:
//! NodeRestriction's reasons (`nodes "node-2" is forbidden: node "node-1"
//! is not allowed to modify node "node-2"`), RBAC's for the rest.

use serde_json::{json, Value};

use super::tokens::{
    CONTROLLER_MANAGER, MASTERS, NODES, NODE_PREFIX, SCHEDULER,
};
use crate::apiserver::guard::{Attributes, User};
use crate::apiserver::status::{qualified, ApiError};

/// The namespace of the nodes' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The annotation that marks a mirror pod (a static pod's copy in the
/// API).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether `user` may do `attrs`; `old` is the object as stored, `new` as
/// it would be written.
// ANCHOR: authorize
pub fn authorize(
    user: &User,
    attrs: &Attributes<'_>,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == MASTERS)
        || user.name == SCHEDULER
        || user.name == CONTROLLER_MANAGER
    {
        return Ok(());
    }
    match node_name(user) {
        Some(_) if is_read(attrs.verb) => Ok(()),
        Some(node) => node_write(node, user, attrs, old, new),
        None => Err(rbac_forbidden(user, attrs)),
    }
}
// ANCHOR_END: authorize

/// The node a node agent's identity is for: both the user name and the
/// group must say so, as the Node authorizer asks.
fn node_name(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_PREFIX)?;
    let in_group = user.groups.iter().any(|g| g == NODES);
    (in_group && !name.is_empty()).then_some(name)
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

/// The admission operation a verb is (NodeRestriction's words).
fn operation(verb: &str) -> &'static str {
    match verb {
        "create" => "CREATE",
        "delete" | "deletecollection" => "DELETE",
        _ => "UPDATE",
    }
}

// ANCHOR: node_write
/// What NodeRestriction lets node `node` write.
fn node_write(
    node: &str,
    user: &User,
    attrs: &Attributes<'_>,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<(), ApiError> {
    let r = attrs.resource;
    let target = attrs.name.or_else(|| new.and_then(object_name));
    let deny = |reason: String| Err(forbidden(attrs, target, reason));
    // ANCHOR: node_rules
    match (r.group, r.plural, attrs.subresource) {
        ("", "nodes", None | Some("status")) => match target {
            Some(name) if name == node => Ok(()),
            other => deny(format!(
                "node {node:?} is not allowed to modify node {:?}",
                other.unwrap_or("")
            )),
        },
        ("", "pods", None) => match attrs.verb {
            "create" => mirror_pod_create(node, new).or_else(deny),
            "delete" if bound_to(old.or(new), node) => Ok(()),
            "delete" => deny(format!(
                "node {node:?} can only delete pods with spec.nodeName set \
                 to itself"
            )),
            verb => deny(format!(
                "unexpected operation {:?}, node {node:?} can only create \
                 and delete mirror pods",
                operation(verb)
            )),
        },
        ("", "pods", Some("status")) if bound_to(old.or(new), node) => Ok(()),
        ("", "pods", Some("status")) => deny(format!(
            "node {node:?} can only update pod status for pods with \
             spec.nodeName set to itself"
        )),
        // ANCHOR_END: node_rules
        ("", "pods", Some("eviction")) if bound_to(old, node) => Ok(()),
        ("coordination.k8s.io", "leases", None) => {
            if attrs.namespace != Some(NODE_LEASE_NAMESPACE) {
                deny(format!(
                    "can only access leases in the {NODE_LEASE_NAMESPACE:?} \
                     namespace"
                ))
            } else if target != Some(node) {
                deny(
                    "can only access node lease with the same name as the \
                     requesting node"
                        .into(),
                )
            } else {
                Ok(())
            }
        }
        ("" | "events.k8s.io", "events", None) => Ok(()),
        _ => Err(rbac_forbidden(user, attrs)),
    }
}
// ANCHOR_END: node_write

/// A node creates only mirror pods, and only bound to itself.
fn mirror_pod_create(node: &str, new: Option<&Value>) -> Result<(), String> {
    let annotated = new
        .and_then(|p| p.pointer("/metadata/annotations"))
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
    if !annotated {
        return Err(format!(
            "pod does not have {MIRROR_POD_ANNOTATION:?} annotation, node \
             {node:?} can only create mirror pods"
        ));
    }
    if !bound_to(new, node) {
        return Err(format!(
            "node {node:?} can only create pods with spec.nodeName set to \
             itself"
        ));
    }
    Ok(())
}

fn bound_to(pod: Option<&Value>, node: &str) -> bool {
    pod.and_then(|p| p.pointer("/spec/nodeName"))
        .and_then(Value::as_str)
        == Some(node)
}

fn object_name(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/name").and_then(Value::as_str)
}

/// apimachinery's `NewForbidden`: `nodes "node-2" is forbidden: <why>`.
pub fn forbidden(
    attrs: &Attributes<'_>,
    name: Option<&str>,
    reason: String,
) -> ApiError {
    let r = attrs.resource;
    let what = qualified(r.group, r.plural);
    let message = match name {
        Some(name) if !name.is_empty() => {
            format!("{what} {name:?} is forbidden: {reason}")
        }
        _ => format!("{what} is forbidden: {reason}"),
    };
    let mut details = json!({ "name": name.unwrap_or(""), "kind": r.plural });
    if !r.group.is_empty() {
        details["group"] = json!(r.group);
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(403, "Forbidden", message)
    }
}

/// RBAC's refusal: `pods "x" is forbidden: User "bob" cannot delete
/// resource "pods" in API group "" in the namespace "default"`.
fn rbac_forbidden(user: &User, attrs: &Attributes<'_>) -> ApiError {
    let r = attrs.resource;
    let resource = match attrs.subresource {
        Some(sub) => format!("{}/{sub}", r.plural),
        None => r.plural.to_string(),
    };
    let scope = match attrs.namespace {
        Some(ns) if r.namespaced => format!("in the namespace {ns:?}"),
        _ => "at the cluster scope".to_string(),
    };
    forbidden(
        attrs,
        attrs.name,
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} \
             {scope}",
            user.name, attrs.verb, r.group
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::{Resource, RESOURCES};

    fn resource(group: &str, plural: &str) -> &'static Resource {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .unwrap()
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn node1() -> User {
        user("system:node:node-1", &[NODES, "system:authenticated"])
    }

    fn pod(node: Option<&str>, mirror: bool) -> Value {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        if mirror {
            p["metadata"]["annotations"] =
                json!({ MIRROR_POD_ANNOTATION: "x" });
        }
        p
    }

    /// One request: (verb, group, plural, subresource, namespace, name).
    type Req<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn decide(
        who: &User,
        req: Req<'_>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), String> {
        let (verb, group, plural, subresource, namespace, name) = req;
        let attrs = Attributes {
            verb,
            resource: resource(group, plural),
            subresource,
            namespace,
            name,
        };
        authorize(who, &attrs, old, new).map_err(|e| {
            assert_eq!((e.code, e.reason), (403, "Forbidden"));
            e.message
        })
    }

    #[test]
    fn the_admin_scheduler_and_controller_manager_may_do_anything() {
        let d = ("delete", "", "nodes", None, None, Some("node-2"));
        for who in [
            user("admin", &[MASTERS]),
            user(SCHEDULER, &[]),
            user(CONTROLLER_MANAGER, &[]),
        ] {
            assert_eq!(decide(&who, d, None, None), Ok(()));
        }
    }

    #[test]
    fn anyone_else_may_do_nothing_in_rbacs_words() {
        let bob = user("bob", &["system:authenticated"]);
        let req = ("list", "", "pods", None, Some("default"), None);
        assert_eq!(
            decide(&bob, req, None, None).unwrap_err(),
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" \
             in API group \"\" in the namespace \"default\""
        );
        let req = ("get", "", "nodes", None, None, Some("n"));
        assert_eq!(
            decide(&bob, req, None, None).unwrap_err(),
            "nodes \"n\" is forbidden: User \"bob\" cannot get resource \
             \"nodes\" in API group \"\" at the cluster scope"
        );
        // A node's name without the nodes group is no node.
        let fake = user("system:node:node-1", &[]);
        let req = ("get", "", "pods", None, Some("default"), Some("p"));
        assert!(decide(&fake, req, None, None).is_err());
    }

    #[test]
    fn a_node_reads_anything_and_writes_its_own_node_only() {
        let n = node1();
        let ok = Ok(());
        for verb in ["get", "list", "watch"] {
            let req = (verb, "", "secrets", None, Some("default"), None);
            assert_eq!(decide(&n, req, None, None), ok);
        }
        let own = json!({"metadata": {"name": "node-1"}});
        let req = ("create", "", "nodes", None, None, None);
        assert_eq!(decide(&n, req, None, Some(&own)), ok);
        for sub in [None, Some("status")] {
            let req = ("patch", "", "nodes", sub, None, Some("node-1"));
            assert_eq!(decide(&n, req, Some(&own), Some(&own)), ok);
            let req = ("update", "", "nodes", sub, None, Some("node-2"));
            assert_eq!(
                decide(&n, req, None, None).unwrap_err(),
                "nodes \"node-2\" is forbidden: node \"node-1\" is not \
                 allowed to modify node \"node-2\""
            );
        }
    }

    #[test]
    fn a_node_writes_only_pods_bound_to_it() {
        let n = node1();
        let ns = Some("default");
        let mine = pod(Some("node-1"), false);
        let theirs = pod(Some("node-2"), false);
        let status = ("patch", "", "pods", Some("status"), ns, Some("p"));
        assert_eq!(decide(&n, status, Some(&mine), Some(&mine)), Ok(()));
        assert_eq!(
            decide(&n, status, Some(&theirs), Some(&mine)).unwrap_err(),
            "pods \"p\" is forbidden: node \"node-1\" can only update pod \
             status for pods with spec.nodeName set to itself"
        );
        let delete = ("delete", "", "pods", None, ns, Some("p"));
        assert_eq!(decide(&n, delete, Some(&mine), None), Ok(()));
        assert_eq!(
            decide(&n, delete, Some(&theirs), None).unwrap_err(),
            "pods \"p\" is forbidden: node \"node-1\" can only delete pods \
             with spec.nodeName set to itself"
        );
        let update = ("update", "", "pods", None, ns, Some("p"));
        assert_eq!(
            decide(&n, update, Some(&mine), Some(&mine)).unwrap_err(),
            "pods \"p\" is forbidden: unexpected operation \"UPDATE\", node \
             \"node-1\" can only create and delete mirror pods"
        );
        let create = ("create", "", "pods", None, ns, None);
        let mirror = pod(Some("node-1"), true);
        assert_eq!(decide(&n, create, None, Some(&mirror)), Ok(()));
        assert_eq!(
            decide(&n, create, None, Some(&mine)).unwrap_err(),
            "pods \"p\" is forbidden: pod does not have \
             \"kubernetes.io/config.mirror\" annotation, node \"node-1\" can \
             only create mirror pods"
        );
        let elsewhere = pod(Some("node-2"), true);
        assert_eq!(
            decide(&n, create, None, Some(&elsewhere)).unwrap_err(),
            "pods \"p\" is forbidden: node \"node-1\" can only create pods \
             with spec.nodeName set to itself"
        );
        let bind = ("create", "", "pods", Some("binding"), ns, Some("p"));
        assert!(decide(&n, bind, Some(&mine), None).is_err());
    }

    #[test]
    fn a_node_writes_its_own_lease_and_any_event() {
        let n = node1();
        let lease = |ns, name| {
            ("update", "coordination.k8s.io", "leases", None, ns, name)
        };
        let own = lease(Some(NODE_LEASE_NAMESPACE), Some("node-1"));
        assert_eq!(decide(&n, own, None, None), Ok(()));
        assert_eq!(
            decide(&n, lease(Some("default"), Some("node-1")), None, None)
                .unwrap_err(),
            "leases.coordination.k8s.io \"node-1\" is forbidden: can only \
             access leases in the \"kube-node-lease\" namespace"
        );
        assert_eq!(
            decide(
                &n,
                lease(Some(NODE_LEASE_NAMESPACE), Some("node-2")),
                None,
                None
            )
            .unwrap_err(),
            "leases.coordination.k8s.io \"node-2\" is forbidden: can only \
             access node lease with the same name as the requesting node"
        );
        let event = ("create", "", "events", None, Some("default"), None);
        assert_eq!(decide(&n, event, None, None), Ok(()));
        let svc = ("create", "", "services", None, Some("default"), None);
        assert!(decide(&n, svc, None, None).is_err());
    }
}
