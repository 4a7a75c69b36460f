//! A Service checked as kube-apiserver checks it on create, with field
//! paths: `spec.ports[1].name: Duplicate value: "http"`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use lab03::validate::{
    dns_label_messages, label_key_messages, label_value_message, BadValue,
    FieldError, PORT_RANGE,
};

const DNS1035_MESSAGE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
/// The types this book's services have; LoadBalancer and ExternalName need
/// a cloud or DNS that a node of our own lacks.
pub const TYPES: [&str; 2] = ["ClusterIP", "NodePort"];

/// What IsDNS1035Label says: a DNS label that starts with a letter (a
/// Service's name becomes a DNS name and environment variable names).
pub fn dns1035_messages(name: &str) -> Vec<String> {
    let mut messages = dns_label_messages(name);
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    let pattern_broken =
        messages.iter().any(|m| !m.starts_with("must be no more"));
    if !starts_with_letter || pattern_broken {
        messages.retain(|m| m.starts_with("must be no more"));
        messages.push(DNS1035_MESSAGE.to_string());
    }
    messages
}

/// IsValidPortName: an IANA service name, at most 15 characters of
/// `[a-z0-9-]`, at least one letter, no `--`, not starting or ending with
/// `-`.
pub fn port_name_messages(name: &str) -> Vec<String> {
    let mut m = Vec::new();
    if name.len() > 15 {
        m.push("must be no more than 15 characters".to_string());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        m.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if name.contains("--") {
        m.push("must not contain consecutive hyphens".into());
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        m.push("must contain at least one letter (a-z)".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        m.push("must not begin or end with a hyphen".into());
    }
    m
}

fn text(s: &str) -> BadValue {
    BadValue::Text(s.to_string())
}

/// Every rule a Service breaks; empty when it is valid.
pub fn validate_service(service: &Service) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match service.metadata.name.as_deref() {
        None | Some("") => errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            for m in dns1035_messages(name) {
                errors.push(FieldError::invalid(
                    "metadata.name",
                    text(name),
                    &m,
                ));
            }
        }
    }
    let Some(spec) = service.spec.as_ref() else {
        errors.push(FieldError::required("spec", ""));
        return errors;
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !TYPES.contains(&kind) {
        errors.push(FieldError::not_supported("spec.type", kind, &TYPES));
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if headless && kind == "NodePort" {
        errors.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            text("None"),
            "may not be set to 'None' for NodePort services",
        ));
    }
    if let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                text(ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    for (key, value) in spec.selector.iter().flatten() {
        for m in label_key_messages(key) {
            errors.push(FieldError::invalid("spec.selector", text(key), &m));
        }
        if let Some(m) = label_value_message(value) {
            errors.push(FieldError::invalid("spec.selector", text(value), &m));
        }
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        match port.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => {
                errors.push(FieldError::required(format!("{at}.name"), ""))
            }
            None => {}
            Some(name) => {
                for m in dns_label_messages(name) {
                    errors.push(FieldError::invalid(
                        format!("{at}.name"),
                        text(name),
                        &m,
                    ));
                }
                if !names.insert(name.to_string()) {
                    errors.push(FieldError::duplicate(
                        format!("{at}.name"),
                        name,
                    ));
                }
            }
        }
        if !(1..=65535).contains(&port.port) {
            errors.push(FieldError::invalid(
                format!("{at}.port"),
                BadValue::Number(port.port.into()),
                PORT_RANGE,
            ));
        }
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            errors.push(FieldError::not_supported(
                format!("{at}.protocol"),
                protocol,
                &PROTOCOLS,
            ));
        }
        if !numbers.insert((port.port, protocol.to_string())) {
            errors.push(FieldError::duplicate(
                at.clone(),
                &format!("{}/{protocol}", port.port),
            ));
        }
        match &port.target_port {
            Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => errors
                .push(FieldError::invalid(
                    format!("{at}.targetPort"),
                    BadValue::Number((*n).into()),
                    PORT_RANGE,
                )),
            Some(IntOrString::String(name)) if name.parse::<i32>().is_err() => {
                for m in port_name_messages(name) {
                    errors.push(FieldError::invalid(
                        format!("{at}.targetPort"),
                        text(name),
                        &m,
                    ));
                }
            }
            _ => {}
        }
        if let Some(node_port) = port.node_port.filter(|p| *p != 0) {
            if kind == "ClusterIP" {
                errors.push(FieldError::forbidden(
                    format!("{at}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if !(1..=65535).contains(&node_port) {
                errors.push(FieldError::invalid(
                    format!("{at}.nodePort"),
                    BadValue::Number(node_port.into()),
                    PORT_RANGE,
                ));
            }
        }
    }
    match spec.session_affinity.as_deref().unwrap_or("None") {
        "None" => {
            if spec.session_affinity_config.is_some() {
                errors.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = timeout.filter(|t| !(1..=86400).contains(t)) {
                errors.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    BadValue::Number(t.into()),
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    errors
}

/// The affinity timeout kube-proxy uses when none is given: three hours.
pub const DEFAULT_AFFINITY_TIMEOUT: i32 = 10800;
