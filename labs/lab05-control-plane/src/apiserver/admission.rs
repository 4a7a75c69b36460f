//! Admission: what kube-apiserver's default admission plugins add to an
//! object before it is stored, beyond a kind's defaults.
//!
//! Only DefaultTolerationSeconds is here (NamespaceLifecycle lives with
//! create): every new pod tolerates a node that is not ready, or that
//! stopped reporting, for a while (300 s unless configured), so a node's
//! short absence does not cost it all its pods at once. The node
//! lifecycle controller evicts a pod when that time is up.

use serde_json::{json, Value};

/// The taints the node lifecycle controller puts on a sick node.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// How long pods tolerate each taint when they say nothing of it
/// (`--default-not-ready-toleration-seconds`,
/// `--default-unreachable-toleration-seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TolerationSeconds {
    pub not_ready: i64,
    pub unreachable: i64,
}

impl Default for TolerationSeconds {
    fn default() -> Self {
        TolerationSeconds {
            not_ready: 300,
            unreachable: 300,
        }
    }
}

// ANCHOR: default_tolerations
/// Adds the default NoExecute tolerations to a new pod (JSON) that has
/// none for those taints. A toleration with no key tolerates every
/// taint, and one with no effect every effect, as upstream counts them.
pub fn default_toleration_seconds(pod: &mut Value, seconds: TolerationSeconds) {
    let tolerates = |pod: &Value, taint: &str| {
        pod["spec"]["tolerations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                let key = t["key"].as_str().unwrap_or_default();
                let effect = t["effect"].as_str().unwrap_or_default();
                (key.is_empty() || key == taint)
                    && (effect.is_empty() || effect == "NoExecute")
            })
    };
    let mut added = Vec::new();
    for (taint, secs) in [
        (TAINT_NOT_READY, seconds.not_ready),
        (TAINT_UNREACHABLE, seconds.unreachable),
    ] {
        if !tolerates(pod, taint) {
            added.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": secs,
            }));
        }
    }
    if added.is_empty() || !pod["spec"].is_object() {
        return;
    }
    match pod["spec"]["tolerations"].as_array_mut() {
        Some(list) => list.extend(added),
        None => pod["spec"]["tolerations"] = Value::Array(added),
    }
}
// ANCHOR_END: default_tolerations

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tolerations: Value) -> Value {
        let mut p =
            json!({"spec": {"containers": [{"name": "c", "image": "kubia"}]}});
        if !tolerations.is_null() {
            p["spec"]["tolerations"] = tolerations;
        }
        p
    }

    #[test]
    fn a_pod_that_says_nothing_tolerates_both_for_300_seconds() {
        let mut p = pod(Value::Null);
        default_toleration_seconds(&mut p, TolerationSeconds::default());
        assert_eq!(
            p["spec"]["tolerations"],
            json!([
                {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
    }

    #[test]
    fn a_pods_own_toleration_is_kept_and_not_doubled() {
        let own = json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]);
        let mut p = pod(own.clone());
        default_toleration_seconds(
            &mut p,
            TolerationSeconds {
                not_ready: 7,
                unreachable: 9,
            },
        );
        let list = p["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], own[0]);
        assert_eq!(list[1]["key"], TAINT_NOT_READY);
        assert_eq!(list[1]["tolerationSeconds"], 7);
    }

    #[test]
    fn a_toleration_of_everything_needs_nothing_more() {
        let mut p = pod(json!([{"operator": "Exists"}]));
        default_toleration_seconds(&mut p, TolerationSeconds::default());
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 1);
        // A NoSchedule toleration is not one of NoExecute.
        let mut p = pod(
            json!([{"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]),
        );
        default_toleration_seconds(&mut p, TolerationSeconds::default());
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 3);
    }
}
