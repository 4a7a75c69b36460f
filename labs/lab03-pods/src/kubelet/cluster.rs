//! What the node agent takes from the cluster beyond its own pods: the
//! Services that exist when a container starts (their environment
//! variables) and the cluster's DNS (the pod's resolv.conf). Chapter 3's
//! node has neither; chapter 4's node plugs in the Services it holds.

use k8s_openapi::api::core::v1::Pod;

use crate::cri::DnsConfig;

/// The cluster, as a pod's sandbox and containers see it.
pub trait PodEnvironment: Send + Sync {
    /// The sandbox's DNS settings for `pod` (`None`: the node's own
    /// resolv.conf, as with `dnsPolicy: Default`).
    fn dns_config(&self, pod: &Pod) -> Option<DnsConfig>;
    /// The variables the kubelet adds for Services (`KUBIA_SERVICE_HOST`
    /// …), in order; a container's own `env` wins over any of them.
    fn service_env(&self, pod: &Pod) -> Vec<(String, String)>;
}

/// Adds `extra` after `own`, leaving out the names `own` sets already:
/// the kubelet's rule for Service variables.
pub fn merge_env(own: &mut Vec<(String, String)>, extra: Vec<(String, String)>) {
    for (name, value) in extra {
        if !own.iter().any(|(n, _)| *n == name) {
            own.push((name, value));
        }
    }
}
