//! Validation: each kind's rules, with kube-apiserver's messages and
//! field paths (pkg/apis/*/validation). Pods and Services are checked by
//! chapters 3 and 4's validators; this adds names, labels, the
//! controllers' selectors and templates, and what an update may change.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, PodTemplateSpec,
    ReplicationController, Secret, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta,
};
use k8s_openapi::Metadata;
use lab03::validate::{
    dns_label_messages, dns_subdomain_messages, label_key_messages,
    label_value_message, validate_pod, BadValue, ErrorType, FieldError,
};
use lab04::validate::{dns1035_messages, validate_service};

/// What a kind's names must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `kubia.example`: most kinds.
    Subdomain,
    /// `kube-system`: namespaces (a name that is also a DNS label).
    Label,
    /// A label starting with a letter: Services (their names become DNS
    /// names and environment variables).
    Dns1035,
}

fn text(s: &str) -> BadValue {
    BadValue::Text(s.to_string())
}

/// The checks of `metadata` every kind shares: a name of the kind's
/// rule, well-formed label keys and values.
pub fn validate_meta(meta: &ObjectMeta, rule: NameRule) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match meta.name.as_deref() {
        None | Some("") => errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            let messages = match rule {
                NameRule::Subdomain => dns_subdomain_messages(name),
                NameRule::Label => dns_label_messages(name),
                NameRule::Dns1035 => dns1035_messages(name),
            };
            for m in messages {
                errors.push(FieldError::invalid(
                    "metadata.name",
                    text(name),
                    &m,
                ));
            }
        }
    }
    labels(meta.labels.as_ref(), "metadata.labels", &mut errors);
    errors
}

fn labels(
    labels: Option<&BTreeMap<String, String>>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for (key, value) in labels.into_iter().flatten() {
        for m in label_key_messages(key) {
            errors.push(FieldError::invalid(path, text(key), &m));
        }
        if let Some(m) = label_value_message(value) {
            errors.push(FieldError::invalid(path, text(value), &m));
        }
    }
}

/// A kind's validation.
pub trait Validate: Metadata<Ty = ObjectMeta> {
    const NAME: NameRule = NameRule::Subdomain;

    /// Every rule the object breaks; empty when it is valid.
    fn validate(&self) -> Vec<FieldError> {
        validate_meta(self.metadata(), Self::NAME)
    }

    /// An update's rules: the object's own, and what may not change.
    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let _ = old;
        self.validate()
    }
}

impl Validate for ConfigMap {}
impl Validate for Secret {}
impl Validate for Event {}
impl Validate for Node {}
impl Validate for Lease {}
impl Validate for Endpoints {}
impl Validate for EndpointSlice {}

impl Validate for Namespace {
    const NAME: NameRule = NameRule::Label;
}

impl Validate for Pod {
    fn validate(&self) -> Vec<FieldError> {
        validate_pod(self)
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errors = self.validate();
        errors.extend(pod_spec_update(self, old));
        errors
    }
}

// ANCHOR: pod_update
/// A pod's spec is fixed once created, but for its images, its deadline
/// and added tolerations (ValidatePodUpdate): take the old spec, put the
/// new values of those fields in, and anything else that differs was
/// changed.
fn pod_spec_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let (Some(new_spec), Some(mut allowed)) = (&new.spec, old.spec.clone())
    else {
        return Vec::new();
    };
    for (a, n) in allowed.containers.iter_mut().zip(&new_spec.containers) {
        a.image.clone_from(&n.image);
    }
    let inits = allowed.init_containers.iter_mut().flatten();
    for (a, n) in inits.zip(new_spec.init_containers.iter().flatten()) {
        a.image.clone_from(&n.image);
    }
    allowed.active_deadline_seconds = new_spec.active_deadline_seconds;
    allowed.tolerations.clone_from(&new_spec.tolerations);
    if &allowed == new_spec {
        return Vec::new();
    }
    vec![FieldError::forbidden(
        "spec",
        "pod updates may not change fields other than \
         `spec.containers[*].image`,`spec.initContainers[*].image`,\
         `spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to \
         existing tolerations),`spec.terminationGracePeriodSeconds` (allow it \
         to be set to 1 if it was previously negative)",
    )]
}
// ANCHOR_END: pod_update

impl Validate for Service {
    const NAME: NameRule = NameRule::Dns1035;

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = validate_service(self);
        // LoadBalancer is an API type like any other (a NodePort Service
        // plus a balancer that, with no cloud, never comes); chapter 4's
        // proxies only refuse it for lack of one.
        let balancer = self
            .spec
            .as_ref()
            .is_some_and(|s| s.type_.as_deref() == Some("LoadBalancer"));
        if balancer {
            errors.retain(|e| {
                !(e.path == "spec.type" && e.kind == ErrorType::NotSupported)
            });
        }
        errors
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errors = self.validate();
        let ip =
            |s: &Service| s.spec.as_ref().and_then(|s| s.cluster_ip.clone());
        if let (Some(old_ip), new_ip) = (ip(old), ip(self)) {
            if new_ip.as_deref() != Some(old_ip.as_str()) {
                errors.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    text(new_ip.as_deref().unwrap_or_default()),
                    "may not change once set",
                ));
            }
        }
        errors
    }
}

/// A template's pod checked as a pod, its errors' paths moved below
/// `at` (`spec.template`); the template's name is not the pod's.
fn template(t: Option<&PodTemplateSpec>, at: &str) -> Vec<FieldError> {
    let Some(t) = t else {
        return vec![FieldError::required(at, "")];
    };
    let mut meta = t.metadata.clone().unwrap_or_default();
    meta.name = Some("template".into());
    let pod = Pod {
        metadata: meta,
        spec: t.spec.clone(),
        status: None,
    };
    validate_pod(&pod)
        .into_iter()
        .filter(|e| e.path != "metadata.name")
        .map(|mut e| {
            e.path = format!("{at}.{}", e.path);
            e
        })
        .collect()
}

/// The selector must select the template's own pods, or the controller
/// would make pods forever.
fn selects_template(
    selector: Option<&BTreeMap<String, String>>,
    t: Option<&PodTemplateSpec>,
    errors: &mut Vec<FieldError>,
) {
    let template_labels = t
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        errors.push(FieldError::required("spec.selector", ""));
        return;
    };
    let matches = selector
        .iter()
        .all(|(k, v)| template_labels.get(k) == Some(v));
    if !matches {
        let shown: Vec<String> = template_labels
            .iter()
            .map(|(k, v)| format!("{k:?}:{v:?}"))
            .collect();
        // Go prints the value as a map literal, unquoted: the detail
        // carries it, so no quoted value is shown.
        errors.push(FieldError {
            path: "spec.template.metadata.labels".into(),
            kind: ErrorType::Invalid,
            value: None,
            detail: format!(
                "map[string]string{{{}}}: `selector` does not match template \
                 `labels`",
                shown.join(", ")
            ),
        });
    }
}

/// The equality part of a set-based selector (matchLabels), the part a
/// template can be checked against without evaluating expressions.
fn match_labels(s: &LabelSelector) -> BTreeMap<String, String> {
    s.match_labels.clone().unwrap_or_default()
}

fn replicas(n: Option<i32>, errors: &mut Vec<FieldError>) {
    if let Some(n) = n.filter(|n| *n < 0) {
        errors.push(FieldError::invalid(
            "spec.replicas",
            BadValue::Number(i64::from(n)),
            "must be greater than or equal to 0",
        ));
    }
}

impl Validate for ReplicationController {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = validate_meta(&self.metadata, Self::NAME);
        let Some(spec) = &self.spec else {
            errors.push(FieldError::required("spec", ""));
            return errors;
        };
        replicas(spec.replicas, &mut errors);
        selects_template(
            spec.selector.as_ref(),
            spec.template.as_ref(),
            &mut errors,
        );
        errors.extend(template(spec.template.as_ref(), "spec.template"));
        errors
    }
}

/// A template that is required in one kind and optional in another.
trait Template {
    fn get(&self) -> Option<&PodTemplateSpec>;
}

impl Template for PodTemplateSpec {
    fn get(&self) -> Option<&PodTemplateSpec> {
        Some(self)
    }
}

impl Template for Option<PodTemplateSpec> {
    fn get(&self) -> Option<&PodTemplateSpec> {
        self.as_ref()
    }
}

macro_rules! set_based_controller {
    ($kind:ty) => {
        impl Validate for $kind {
            fn validate(&self) -> Vec<FieldError> {
                let mut errors = validate_meta(&self.metadata, Self::NAME);
                let Some(spec) = &self.spec else {
                    errors.push(FieldError::required("spec", ""));
                    return errors;
                };
                let selector = match_labels(&spec.selector);
                let expressions = spec
                    .selector
                    .match_expressions
                    .as_ref()
                    .is_some_and(|e| !e.is_empty());
                if !expressions || !selector.is_empty() {
                    selects_template(
                        Some(&selector),
                        spec.template.get(),
                        &mut errors,
                    );
                }
                errors.extend(template(spec.template.get(), "spec.template"));
                errors
            }
        }
    };
}

set_based_controller!(ReplicaSet);
set_based_controller!(Deployment);
set_based_controller!(DaemonSet);

impl Validate for Job {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = validate_meta(&self.metadata, Self::NAME);
        let Some(spec) = &self.spec else {
            errors.push(FieldError::required("spec", ""));
            return errors;
        };
        let policy = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always");
        if !["OnFailure", "Never"].contains(&policy) {
            errors.push(FieldError::not_supported(
                "spec.template.spec.restartPolicy",
                policy,
                &["OnFailure", "Never"],
            ));
        }
        errors.extend(template(Some(&spec.template), "spec.template"));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_labels() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("a.b".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let errors = ns.validate();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("RFC 1123 label"));
    }
}
