//! The API server's checks of a Pod, with its messages and field paths
//! (pkg/apis/core/validation). Every error is collected, not just the
//! first, so one `kubectl apply` lists them all.
//!
//! A message reads `<path>: <type>[: <value>][: <detail>]`, as
//! apimachinery's `field.Error` prints it: `spec.containers[1].image:
//! Required value`, `metadata.name: Invalid value: "Kubia_1": …`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod, Probe, Volume};
use lab01::namespaces::{check_hostname, HostnameError};

use crate::resources::{parse_quantity, Amount};

/// The kind of a field error, printed as apimachinery prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
        })
    }
}

/// The value that was refused: text is quoted, numbers are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    Text(String),
    Number(i64),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Text(s) => write!(f, "{s:?}"),
            BadValue::Number(n) => write!(f, "{n}"),
        }
    }
}

/// One refused field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: ErrorType,
    pub value: Option<BadValue>,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)?;
        // Required and Forbidden never show the value.
        if let (Some(value), false) = (
            &self.value,
            matches!(self.kind, ErrorType::Required | ErrorType::Forbidden),
        ) {
            write!(f, ": {value}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl FieldError {
    pub fn required(path: impl Into<String>, detail: &str) -> Self {
        Self::new(path, ErrorType::Required, None, detail)
    }
    pub fn forbidden(path: impl Into<String>, detail: &str) -> Self {
        Self::new(path, ErrorType::Forbidden, None, detail)
    }
    pub fn invalid(path: impl Into<String>, value: BadValue, detail: &str) -> Self {
        Self::new(path, ErrorType::Invalid, Some(value), detail)
    }
    pub fn duplicate(path: impl Into<String>, value: &str) -> Self {
        Self::new(path, ErrorType::Duplicate, Some(text(value)), "")
    }
    pub fn not_found(path: impl Into<String>, value: &str) -> Self {
        Self::new(path, ErrorType::NotFound, Some(text(value)), "")
    }
    /// `supported values: "Always", "OnFailure", "Never"`.
    pub fn not_supported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let detail = format!("supported values: {}", list.join(", "));
        Self::new(path, ErrorType::NotSupported, Some(text(value)), &detail)
    }
    fn new(
        path: impl Into<String>,
        kind: ErrorType,
        value: Option<BadValue>,
        detail: &str,
    ) -> Self {
        FieldError {
            path: path.into(),
            kind,
            value,
            detail: detail.to_string(),
        }
    }
}

fn text(s: &str) -> BadValue {
    BadValue::Text(s.to_string())
}

/// The messages apimachinery's name checks give.
pub const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// Whether `part` matches the label pattern, whatever its length: lab01's
/// hostname check, given the first and last character and each distinct
/// character between (a label's pattern cares about nothing else).
fn label_pattern(part: &str) -> bool {
    let chars: Vec<char> = part.chars().collect();
    let (Some(first), Some(last)) = (chars.first(), chars.last()) else {
        return false;
    };
    let middle: BTreeSet<char> = chars[1..chars.len().saturating_sub(1).max(1)]
        .iter()
        .copied()
        .collect();
    // Only 37 characters may appear at all; more distinct ones cannot match.
    if middle.len() > 37 {
        return false;
    }
    let sample: String = std::iter::once(*first)
        .chain(middle)
        .chain((chars.len() > 1).then_some(*last))
        .collect();
    check_hostname(&sample).is_ok()
}

/// What IsDNS1123Label says of a name: one message per broken rule.
pub fn dns_label_messages(name: &str) -> Vec<String> {
    let mut messages = Vec::new();
    match check_hostname(name) {
        Ok(()) => return messages,
        Err(HostnameError::TooLong(_)) => {
            messages.push("must be no more than 63 characters".to_string());
            if !label_pattern(name) {
                messages.push(LABEL_MESSAGE.to_string());
            }
        }
        Err(_) => messages.push(LABEL_MESSAGE.to_string()),
    }
    messages
}

/// What IsDNS1123Subdomain says: at most 253 characters of dot-separated
/// labels.
pub fn dns_subdomain_messages(name: &str) -> Vec<String> {
    let mut messages = Vec::new();
    if name.chars().count() > 253 {
        messages.push("must be no more than 253 characters".to_string());
    }
    if !name.split('.').all(label_pattern) {
        messages.push(SUBDOMAIN_MESSAGE.to_string());
    }
    messages
}

/// Checks a Pod as the API server does on create; an empty list means
/// valid.
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errors = validate_metadata(pod);
    let Some(spec) = &pod.spec else {
        errors.push(FieldError::required("spec", ""));
        return errors;
    };
    let volumes = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), &mut errors);
    let mut names = BTreeSet::new();
    if spec.containers.is_empty() {
        errors.push(FieldError::required("spec.containers", ""));
    }
    for (i, container) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        errors.extend(check_container_name(&container.name, &path, &mut names));
        validate_container(container, &path, &volumes, false, &mut errors);
    }
    // Init containers' names must differ from the app containers' too; a
    // clash is reported on the init container.
    for (i, container) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        errors.extend(check_container_name(&container.name, &path, &mut names));
        validate_container(container, &path, &volumes, true, &mut errors);
    }
    if let Some(policy) = &spec.restart_policy {
        if !["Always", "OnFailure", "Never"].contains(&policy.as_str()) {
            errors.push(FieldError::not_supported(
                "spec.restartPolicy",
                policy,
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
    if let Some(hostname) = &spec.hostname {
        for message in dns_label_messages(hostname) {
            errors.push(FieldError::invalid(
                "spec.hostname",
                text(hostname),
                &message,
            ));
        }
    }
    if let Some(seconds) = spec.termination_grace_period_seconds.filter(|s| *s < 0) {
        errors.push(FieldError::invalid(
            "spec.terminationGracePeriodSeconds",
            BadValue::Number(seconds),
            "must be greater than or equal to 0",
        ));
    }
    errors
}

fn validate_metadata(pod: &Pod) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let meta = &pod.metadata;
    match meta.name.as_deref() {
        None | Some("") if meta.generate_name.is_none() => errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        None | Some("") => {}
        // A pod's name is a DNS subdomain; its hostname, by default the
        // name, is cut at the first dot.
        Some(name) => {
            for message in dns_subdomain_messages(name) {
                errors.push(FieldError::invalid("metadata.name", text(name), &message));
            }
        }
    }
    if let Some(namespace) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        for message in dns_label_messages(namespace) {
            errors.push(FieldError::invalid(
                "metadata.namespace",
                text(namespace),
                &message,
            ));
        }
    }
    for key in meta.labels.iter().flatten().map(|(k, _)| k) {
        for message in label_key_messages(key) {
            errors.push(FieldError::invalid("metadata.labels", text(key), &message));
        }
    }
    for value in meta.labels.iter().flatten().map(|(_, v)| v) {
        if let Some(message) = label_value_message(value) {
            errors.push(FieldError::invalid(
                "metadata.labels",
                text(value),
                &message,
            ));
        }
    }
    errors
}

/// A label's value: empty, or at most 63 of `[A-Za-z0-9_.-]`, starting and
/// ending with a letter or digit.
pub fn label_value_message(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.chars().count() > 63 {
        return Some("must be no more than 63 characters".to_string());
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let ok = value.chars().all(|c| alnum(c) || "-_.".contains(c))
        && value.starts_with(alnum)
        && value.ends_with(alnum);
    (!ok).then(|| "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string())
}

const QUALIFIED_NAME: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// What IsQualifiedName says of a label key (`app`, `example.com/tier`):
/// an optional DNS subdomain prefix and `/`, then a name of at most 63
/// of `[A-Za-z0-9_.-]` that starts and ends with a letter or digit.
pub fn label_key_messages(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME} with an optional DNS subdomain \
                 prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    let mut messages = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            messages.push("prefix part must be non-empty".to_string());
        } else {
            for m in dns_subdomain_messages(prefix) {
                messages.push(format!("prefix part {m}"));
            }
        }
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if name.is_empty() {
        messages.push("name part must be non-empty".to_string());
    } else if name.chars().count() > 63 {
        messages.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty()
        && !(name.chars().all(|c| alnum(c) || "-_.".contains(c))
            && name.starts_with(alnum)
            && name.ends_with(alnum))
    {
        messages.push(format!("name part {QUALIFIED_NAME}"));
    }
    messages
}

// ANCHOR: check_container_name
/// The rules for one container's name at `path` (`spec.containers[1]`): it
/// is required, it is a DNS label, and no other container of the pod (in
/// `seen`, which this adds it to) has it.
pub fn check_container_name(
    name: &str,
    path: &str,
    seen: &mut BTreeSet<String>,
) -> Vec<FieldError> {
    // EXERCISE: lab03-validate-containers
    let field = format!("{path}.name");
    if name.is_empty() {
        return vec![FieldError::required(field, "")];
    }
    let mut errors: Vec<FieldError> = dns_label_messages(name)
        .iter()
        .map(|message| FieldError::invalid(&field, text(name), message))
        .collect();
    if !seen.insert(name.to_string()) {
        errors.push(FieldError::duplicate(&field, name));
    }
    errors
    // EXERCISE_END: lab03-validate-containers
}
// ANCHOR_END: check_container_name

/// The volumes' checks; answers the names that may be mounted.
fn validate_volumes(volumes: &[Volume], errors: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if volume.name.is_empty() {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            for message in dns_label_messages(&volume.name) {
                errors.push(FieldError::invalid(
                    format!("{path}.name"),
                    text(&volume.name),
                    &message,
                ));
            }
            if !names.insert(volume.name.clone()) {
                errors.push(FieldError::duplicate(format!("{path}.name"), &volume.name));
            }
        }
        // A volume has exactly one source: every key but its name.
        let sources: Vec<String> = serde_json::to_value(volume)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        let sources: Vec<&String> = sources.iter().filter(|k| *k != "name").collect();
        match sources.as_slice() {
            [] => errors.push(FieldError::required(&path, "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for source in rest {
                    errors.push(FieldError::forbidden(
                        format!("{path}.{source}"),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
        if let Some(empty_dir) = &volume.empty_dir {
            let medium = empty_dir.medium.as_deref().unwrap_or("");
            // The kubelet knows these media; the API server leaves it to
            // the kubelet to refuse others when it mounts, we refuse them
            // here.
            if !["", "Memory", "HugePages"].contains(&medium) && !medium.starts_with("HugePages-") {
                errors.push(FieldError::not_supported(
                    format!("{path}.emptyDir.medium"),
                    medium,
                    &["", "Memory", "HugePages", "HugePages-<size>"],
                ));
            }
            if let Some(limit) = &empty_dir.size_limit {
                if parse_quantity(&limit.0).map_or(true, |a| a.nanos < 0) {
                    errors.push(FieldError::forbidden(
                        format!("{path}.emptyDir.sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
        }
    }
    names
}

fn validate_container(
    container: &Container,
    path: &str,
    volumes: &BTreeSet<String>,
    init: bool,
    errors: &mut Vec<FieldError>,
) {
    if container.image.as_deref().unwrap_or("").trim().is_empty() {
        errors.push(FieldError::required(format!("{path}.image"), ""));
    }
    let mut port_names = BTreeSet::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let at = format!("{path}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            if !port_names.insert(name) {
                errors.push(FieldError::duplicate(format!("{at}.name"), name));
            }
        }
        if port.container_port == 0 {
            errors.push(FieldError::required(format!("{at}.containerPort"), ""));
        } else if !(1..=65535).contains(&port.container_port) {
            errors.push(FieldError::invalid(
                format!("{at}.containerPort"),
                BadValue::Number(port.container_port.into()),
                PORT_RANGE,
            ));
        }
        if let Some(host_port) = port
            .host_port
            .filter(|p| *p != 0 && !(1..=65535).contains(p))
        {
            errors.push(FieldError::invalid(
                format!("{at}.hostPort"),
                BadValue::Number(host_port.into()),
                PORT_RANGE,
            ));
        }
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if !["SCTP", "TCP", "UDP"].contains(&protocol) {
            errors.push(FieldError::not_supported(
                format!("{at}.protocol"),
                protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let at = format!("{path}.volumeMounts[{i}]");
        if mount.name.is_empty() {
            errors.push(FieldError::required(format!("{at}.name"), ""));
        } else if !volumes.contains(&mount.name) {
            errors.push(FieldError::not_found(format!("{at}.name"), &mount.name));
        }
        if mount.mount_path.is_empty() {
            errors.push(FieldError::required(format!("{at}.mountPath"), ""));
        } else if !mount_paths.insert(mount.mount_path.as_str()) {
            errors.push(FieldError::invalid(
                format!("{at}.mountPath"),
                text(&mount.mount_path),
                "must be unique",
            ));
        }
    }
    let probes = [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ];
    let sidecar = container.restart_policy.as_deref() == Some("Always");
    for (name, probe) in probes {
        let Some(probe) = probe else { continue };
        let at = format!("{path}.{name}");
        if init && !sidecar {
            errors.push(FieldError::forbidden(
                at,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(probe, &at, name != "readinessProbe", errors);
    }
    validate_resources(container, &format!("{path}.resources"), errors);
}

// ANCHOR: validate_probe
/// A probe has exactly one handler; liveness and startup probes succeed
/// after one success.
fn validate_probe(
    probe: &Probe,
    path: &str,
    one_success: bool, // liveness and startup probes
    errors: &mut Vec<FieldError>,
) {
    let handlers = [
        ("exec", probe.exec.is_some()),
        ("httpGet", probe.http_get.is_some()),
        ("tcpSocket", probe.tcp_socket.is_some()),
        ("grpc", probe.grpc.is_some()),
    ];
    let mut found = 0;
    for (name, _) in handlers.iter().filter(|(_, set)| *set) {
        found += 1;
        if found > 1 {
            errors.push(FieldError::forbidden(
                format!("{path}.{name}"),
                "may not specify more than 1 handler type",
            ));
        }
    }
    if found == 0 {
        errors.push(FieldError::required(path, "must specify a handler type"));
    }
    // ANCHOR_END: validate_probe
    if let Some(threshold) = probe.success_threshold.filter(|t| one_success && *t != 1) {
        errors.push(FieldError::invalid(
            format!("{path}.successThreshold"),
            BadValue::Number(threshold.into()),
            "must be 1",
        ));
    }
}

/// Each quantity parses and is not negative; a request is at most its
/// limit.
fn validate_resources(container: &Container, path: &str, errors: &mut Vec<FieldError>) {
    let Some(resources) = &container.resources else {
        return;
    };
    let mut parsed: BTreeMap<(&str, &str), Amount> = BTreeMap::new();
    let maps = [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ];
    for (map, list) in maps {
        for (name, quantity) in list.iter().flatten() {
            let at = format!("{path}.{map}[{name}]");
            match parse_quantity(&quantity.0) {
                Err(e) => errors.push(FieldError::invalid(at, text(&quantity.0), &e.to_string())),
                Ok(a) if a.nanos < 0 => errors.push(FieldError::invalid(
                    at,
                    text(&quantity.0),
                    "must be greater than or equal to 0",
                )),
                Ok(a) => {
                    parsed.insert((map, name), a);
                }
            }
        }
    }
    for (name, quantity) in resources.requests.iter().flatten() {
        let (Some(request), Some(limit)) = (
            parsed.get(&("requests", name.as_str())),
            parsed.get(&("limits", name.as_str())),
        ) else {
            continue;
        };
        if request > limit {
            let limit_text = &resources
                .limits
                .as_ref()
                .map(|l| l[name].0.clone())
                .unwrap_or_default();
            errors.push(FieldError::invalid(
                format!("{path}.requests"),
                text(&quantity.0),
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            ));
        }
    }
}

/// What the API server warns about without refusing the pod: the same
/// containerPort, protocol, hostIP and hostPort declared twice
/// (pkg/api/pod/warnings.go).
pub fn warnings(pod: &Pod) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(spec) = &pod.spec else {
        return warnings;
    };
    let mut seen: BTreeMap<(i32, String, String, i32), String> = BTreeMap::new();
    let lists = [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ];
    for (list, containers) in lists {
        for (i, container) in containers.into_iter().flatten().enumerate() {
            for (j, port) in container.ports.iter().flatten().enumerate() {
                let path = format!("spec.{list}[{i}].ports[{j}]");
                let key = (
                    port.container_port,
                    port.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                    port.host_ip.clone().unwrap_or_default(),
                    port.host_port.unwrap_or(0),
                );
                match seen.get(&key) {
                    Some(first) => {
                        warnings.push(format!("{path}: duplicate port definition with {first}"))
                    }
                    None => {
                        seen.insert(key, path);
                    }
                }
            }
        }
    }
    warnings
}
