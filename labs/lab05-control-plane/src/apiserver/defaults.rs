//! Defaulting: the values Kubernetes gives the fields a manifest left
//! out (pkg/apis/*/v1/defaults.go), on the typed objects, on create and
//! on update alike, so what is stored is always complete.
//!
//! Only the fields the book's objects use are defaulted; each default
//! is where kube-apiserver sets it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy,
    ReplicaSet, RollingUpdateDaemonSet, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Endpoints, Event, Namespace, Node, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ReplicationController,
    ResourceRequirements, Secret, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A kind's defaults.
pub trait Defaults {
    /// Fill in what is missing; never change what is set.
    fn set_defaults(&mut self) {}
}

impl Defaults for ConfigMap {}
impl Defaults for Secret {}
impl Defaults for Event {}
impl Defaults for Node {}
impl Defaults for Lease {}
impl Defaults for EndpointSlice {}

impl Defaults for Namespace {
    fn set_defaults(&mut self) {
        // Every namespace is selectable by its name (since 1.21).
        if let Some(name) = self.metadata.name.clone() {
            self.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert("kubernetes.io/metadata.name".into(), name);
        }
    }
}

impl Defaults for Endpoints {
    fn set_defaults(&mut self) {
        for subset in self.subsets.iter_mut().flatten() {
            for port in subset.ports.iter_mut().flatten() {
                port.protocol.get_or_insert_with(|| "TCP".into());
            }
        }
    }
}

fn set<T>(field: &mut Option<T>, value: T) {
    field.get_or_insert(value);
}

fn text(field: &mut Option<String>, value: &str) {
    field.get_or_insert_with(|| value.to_string());
}

// ANCHOR: pull_policy
/// `Always` for an image with no tag or the tag `latest` (it may change
/// under the same name), `IfNotPresent` for any other tag or a digest.
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // A ':' after the last '/' starts the tag (before it, a registry port).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}
// ANCHOR_END: pull_policy

fn probe(probe: &mut Option<Probe>) {
    if let Some(p) = probe {
        set(&mut p.timeout_seconds, 1);
        set(&mut p.period_seconds, 10);
        set(&mut p.success_threshold, 1);
        set(&mut p.failure_threshold, 3);
        if let Some(http) = &mut p.http_get {
            text(&mut http.scheme, "HTTP");
        }
    }
}

fn container(c: &mut Container) {
    let policy = pull_policy(c.image.as_deref().unwrap_or_default());
    text(&mut c.image_pull_policy, policy);
    text(&mut c.termination_message_path, "/dev/termination-log");
    text(&mut c.termination_message_policy, "File");
    set(&mut c.resources, ResourceRequirements::default());
    for port in c.ports.iter_mut().flatten() {
        text(&mut port.protocol, "TCP");
    }
    probe(&mut c.liveness_probe);
    probe(&mut c.readiness_probe);
    probe(&mut c.startup_probe);
}

/// A pod's spec, also the spec of every pod template.
pub fn pod_spec(spec: &mut PodSpec) {
    text(&mut spec.restart_policy, "Always");
    set(&mut spec.termination_grace_period_seconds, 30);
    text(&mut spec.dns_policy, "ClusterFirst");
    text(&mut spec.scheduler_name, "default-scheduler");
    set(&mut spec.security_context, PodSecurityContext::default());
    set(&mut spec.enable_service_links, true);
    spec.containers.iter_mut().for_each(container);
    spec.init_containers
        .iter_mut()
        .flatten()
        .for_each(container);
}

fn template(t: &mut PodTemplateSpec) {
    if let Some(spec) = &mut t.spec {
        pod_spec(spec);
    }
}

impl Defaults for Pod {
    fn set_defaults(&mut self) {
        if let Some(spec) = &mut self.spec {
            pod_spec(spec);
        }
    }
}

impl Defaults for Service {
    fn set_defaults(&mut self) {
        let Some(spec) = &mut self.spec else { return };
        text(&mut spec.type_, "ClusterIP");
        text(&mut spec.session_affinity, "None");
        let external = spec.type_.as_deref() != Some("ClusterIP");
        if external {
            text(&mut spec.external_traffic_policy, "Cluster");
        }
        text(&mut spec.internal_traffic_policy, "Cluster");
        for port in spec.ports.iter_mut().flatten() {
            text(&mut port.protocol, "TCP");
            set(&mut port.target_port, IntOrString::Int(port.port));
        }
        if spec.cluster_ip.as_deref() != Some("None") {
            set(&mut spec.ip_families, vec!["IPv4".into()]);
            text(&mut spec.ip_family_policy, "SingleStack");
        }
    }
}

impl Defaults for ReplicationController {
    fn set_defaults(&mut self) {
        let Some(spec) = &mut self.spec else { return };
        set(&mut spec.replicas, 1);
        if let Some(t) = &mut spec.template {
            let labels = t.metadata.as_ref().and_then(|m| m.labels.clone());
            // An RC without a selector selects its template's labels,
            // and wears them when it has none of its own.
            if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
                spec.selector = labels.clone();
            }
            if self.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
                self.metadata.labels = labels;
            }
            template(t);
        }
    }
}

impl Defaults for ReplicaSet {
    fn set_defaults(&mut self) {
        let Some(spec) = &mut self.spec else { return };
        set(&mut spec.replicas, 1);
        if let Some(t) = &mut spec.template {
            template(t);
        }
    }
}

fn quarter() -> IntOrString {
    IntOrString::String("25%".into())
}

impl Defaults for Deployment {
    fn set_defaults(&mut self) {
        let Some(spec) = &mut self.spec else { return };
        set(&mut spec.replicas, 1);
        set(&mut spec.revision_history_limit, 10);
        set(&mut spec.progress_deadline_seconds, 600);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        text(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            set(&mut rolling.max_surge, quarter());
            set(&mut rolling.max_unavailable, quarter());
        }
        template(&mut spec.template);
    }
}

impl Defaults for DaemonSet {
    fn set_defaults(&mut self) {
        let Some(spec) = &mut self.spec else { return };
        set(&mut spec.revision_history_limit, 10);
        let strategy = spec
            .update_strategy
            .get_or_insert_with(DaemonSetUpdateStrategy::default);
        text(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDaemonSet::default);
            set(&mut rolling.max_unavailable, IntOrString::Int(1));
            set(&mut rolling.max_surge, IntOrString::Int(0));
        }
        template(&mut spec.template);
    }
}

impl Defaults for Job {
    fn set_defaults(&mut self) {
        let Some(spec) = &mut self.spec else { return };
        // Neither set: one pod. Parallelism alone: a work queue, whose
        // completions stay unset (upstream's SetDefaults_Job).
        if spec.completions.is_none() && spec.parallelism.is_none() {
            spec.completions = Some(1);
        }
        set(&mut spec.parallelism, 1);
        set(&mut spec.backoff_limit, 6);
        text(&mut spec.completion_mode, "NonIndexed");
        set(&mut spec.suspend, false);
        template(&mut spec.template);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies() {
        assert_eq!(pull_policy("luksa/kubia"), "Always");
        assert_eq!(pull_policy("luksa/kubia:latest"), "Always");
        assert_eq!(pull_policy("luksa/kubia:v1"), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/kubia"), "Always");
        assert_eq!(pull_policy("localhost:5000/kubia:1"), "IfNotPresent");
        assert_eq!(pull_policy("kubia@sha256:abc"), "IfNotPresent");
    }
}
