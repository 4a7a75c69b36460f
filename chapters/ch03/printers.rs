//! What `kubectl get pods` and `kubectl describe pod` print, computed the
//! way kubectl computes it (`pkg/printers/internalversion/printers.go`
//! `printPod` and `pkg/describe/describe.go` `describePod`), from the same
//! API objects.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, Event, Pod, Probe, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use lab03::columns;

use crate::tabwriter::align;

/// The pod's cells are chapter 3's lab (lab03's `columns`), the same ones
/// chapter 5's API server puts in its Tables.
pub use lab03::columns::PodRow;

/// How long ago `t` was, as kubectl prints it (`<unknown>` without one).
pub fn since(t: Option<&Time>, now: SystemTime) -> String {
    columns::since(t.map(|t| &t.0), now)
}

/// One row of `get pods`. A pod the node has not reported on yet has no
/// phase; the API server would have defaulted it to `Pending`.
pub fn pod_row(pod: &Pod, now: SystemTime) -> PodRow {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_ref());
    if phase.is_some() {
        return columns::pod_row(pod, now);
    }
    let mut pod = pod.clone();
    pod.status.get_or_insert_default().phase = Some("Pending".into());
    columns::pod_row(&pod, now)
}

/// `kubectl get pods [-o wide]`, aligned as kubectl aligns it.
pub fn get_pods(pods: &[Pod], wide: bool, now: SystemTime) -> String {
    let mut text = String::from("NAME\tREADY\tSTATUS\tRESTARTS\tAGE");
    if wide {
        text += "\tIP\tNODE\tNOMINATED NODE\tREADINESS GATES";
    }
    text.push('\n');
    for pod in pods {
        let r = pod_row(pod, now);
        let _ = write!(
            text,
            "{}\t{}\t{}\t{}\t{}",
            r.name, r.ready, r.status, r.restarts, r.age
        );
        if wide {
            let _ = write!(
                text,
                "\t{}\t{}\t{}\t{}",
                r.ip, r.node, r.nominated_node, r.readiness_gates
            );
        }
        text.push('\n');
    }
    // kubectl's printer: minimum width 6, padding 3.
    align(&text, 6, 3)
}

/// A time as `describe` prints it (Go's RFC1123Z, in UTC here).
fn rfc1123z(t: &Time) -> String {
    t.0.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

pub fn map_lines(
    out: &mut String,
    title: &str,
    map: Option<&BTreeMap<String, String>>,
) {
    match map.filter(|m| !m.is_empty()) {
        None => {
            let _ = writeln!(out, "{title}:\t<none>");
        }
        Some(m) => {
            for (i, (k, v)) in m.iter().enumerate() {
                let head = if i == 0 {
                    format!("{title}:")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "{head}\t{k}={v}");
            }
        }
    }
}

/// A probe as `describe` sums it up.
pub fn probe_line(p: &Probe) -> String {
    let how = if let Some(h) = &p.http_get {
        let port = match &h.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        };
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let host = h.host.clone().unwrap_or_default();
        let path = h.path.clone().unwrap_or_default();
        format!("http-get {scheme}://{host}:{port}{path}")
    } else if let Some(t) = &p.tcp_socket {
        let port = match &t.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        };
        format!("tcp-socket {}:{port}", t.host.clone().unwrap_or_default())
    } else if let Some(e) = &p.exec {
        format!("exec [{}]", e.command.clone().unwrap_or_default().join(" "))
    } else {
        "unknown".into()
    };
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    )
}

fn state_lines(out: &mut String, title: &str, state: Option<&ContainerState>) {
    let Some(state) = state else {
        let _ = writeln!(out, "    {title}:\tWaiting");
        return;
    };
    if let Some(r) = &state.running {
        let _ = writeln!(out, "    {title}:\tRunning");
        if let Some(t) = &r.started_at {
            let _ = writeln!(out, "      Started:\t{}", rfc1123z(t));
        }
    } else if let Some(w) = &state.waiting {
        let _ = writeln!(out, "    {title}:\tWaiting");
        if let Some(r) = &w.reason {
            let _ = writeln!(out, "      Reason:\t{r}");
        }
        if let Some(m) = w.message.as_ref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "      Message:\t{m}");
        }
    } else if let Some(t) = &state.terminated {
        let _ = writeln!(out, "    {title}:\tTerminated");
        if let Some(r) = &t.reason {
            let _ = writeln!(out, "      Reason:\t{r}");
        }
        if let Some(m) = t.message.as_ref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "      Message:\t{m}");
        }
        let _ = writeln!(out, "      Exit Code:\t{}", t.exit_code);
        if let Some(s) = t.signal.filter(|s| *s != 0) {
            let _ = writeln!(out, "      Signal:\t{s}");
        }
        if let Some(t) = &t.started_at {
            let _ = writeln!(out, "      Started:\t{}", rfc1123z(t));
        }
        if let Some(t) = &t.finished_at {
            let _ = writeln!(out, "      Finished:\t{}", rfc1123z(t));
        }
    } else {
        let _ = writeln!(out, "    {title}:\tWaiting");
    }
}

fn container_lines(
    out: &mut String,
    c: &Container,
    status: Option<&ContainerStatus>,
) {
    let _ = writeln!(out, "  {}:", c.name);
    if let Some(id) = status.and_then(|s| s.container_id.as_ref()) {
        let _ = writeln!(out, "    Container ID:\t{id}");
    }
    let _ =
        writeln!(out, "    Image:\t{}", c.image.clone().unwrap_or_default());
    let image_id = status.map(|s| s.image_id.clone()).unwrap_or_default();
    let _ = writeln!(out, "    Image ID:\t{image_id}");
    let ports = c.ports.clone().unwrap_or_default();
    match ports.len() {
        0 => {
            let _ = writeln!(out, "    Port:\t<none>");
            let _ = writeln!(out, "    Host Port:\t<none>");
        }
        _ => {
            let list = |f: &dyn Fn(
                &k8s_openapi::api::core::v1::ContainerPort,
            ) -> i32| {
                ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            f(p),
                            p.protocol.as_deref().unwrap_or("TCP")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let title = if ports.len() == 1 { "Port" } else { "Ports" };
            let _ =
                writeln!(out, "    {title}:\t{}", list(&|p| p.container_port));
            let title = if ports.len() == 1 {
                "Host Port"
            } else {
                "Host Ports"
            };
            let _ = writeln!(
                out,
                "    {title}:\t{}",
                list(&|p| p.host_port.unwrap_or(0))
            );
        }
    }
    if let Some(cmd) = c.command.as_ref().filter(|c| !c.is_empty()) {
        let _ = writeln!(out, "    Command:");
        for part in cmd {
            let _ = writeln!(out, "      {part}");
        }
    }
    if let Some(args) = c.args.as_ref().filter(|a| !a.is_empty()) {
        let _ = writeln!(out, "    Args:");
        for part in args {
            let _ = writeln!(out, "      {part}");
        }
    }
    state_lines(out, "State", status.and_then(|s| s.state.as_ref()));
    if let Some(last) = status.and_then(|s| s.last_state.as_ref()).filter(|l| {
        l.terminated.is_some() || l.running.is_some() || l.waiting.is_some()
    }) {
        state_lines(out, "Last State", Some(last));
    }
    let ready = status.is_some_and(|s| s.ready);
    let _ =
        writeln!(out, "    Ready:\t{}", if ready { "True" } else { "False" });
    let restarts = status.map_or(0, |s| s.restart_count);
    let _ = writeln!(out, "    Restart Count:\t{restarts}");
    for (title, probe) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            let _ = writeln!(out, "    {title}:\t{}", probe_line(p));
        }
    }
    match c.env.as_ref().filter(|e| !e.is_empty()) {
        None => {
            let _ = writeln!(out, "    Environment:\t<none>");
        }
        Some(env) => {
            let _ = writeln!(out, "    Environment:");
            for e in env {
                let value = e.value.clone().unwrap_or_default();
                let _ = writeln!(out, "      {}:\t{value}", e.name);
            }
        }
    }
    match c.volume_mounts.as_ref().filter(|m| !m.is_empty()) {
        None => {
            let _ = writeln!(out, "    Mounts:\t<none>");
        }
        Some(mounts) => {
            let _ = writeln!(out, "    Mounts:");
            for m in mounts {
                let rw = if m.read_only == Some(true) {
                    "ro"
                } else {
                    "rw"
                };
                let _ = writeln!(
                    out,
                    "      {} from {} ({rw})",
                    m.mount_path, m.name
                );
            }
        }
    }
}

fn volume_lines(out: &mut String, volumes: &[Volume]) {
    if volumes.is_empty() {
        let _ = writeln!(out, "Volumes:\t<none>");
        return;
    }
    let _ = writeln!(out, "Volumes:");
    for v in volumes {
        let _ = writeln!(out, "  {}:", v.name);
        if let Some(e) = &v.empty_dir {
            let _ = writeln!(
                out,
                "    Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)"
            );
            let _ = writeln!(
                out,
                "    Medium:\t{}",
                e.medium.clone().unwrap_or_default()
            );
            let limit = e.size_limit.as_ref().map(|q| q.0.clone());
            let _ = writeln!(
                out,
                "    SizeLimit:\t{}",
                limit.unwrap_or_else(|| "<unset>".into())
            );
        } else {
            let _ = writeln!(out, "    Type:\t<unknown>");
        }
    }
}

/// An event's AGE as `describe` shows it: `12s`, or `3s (x4 over 40s)`
/// for one seen several times.
fn event_age(e: &Event, now: SystemTime) -> String {
    let last = e.last_timestamp.as_ref().or(e.first_timestamp.as_ref());
    let count = e.count.unwrap_or(1);
    if count > 1 {
        format!(
            "{} (x{count} over {})",
            since(last, now),
            since(e.first_timestamp.as_ref(), now)
        )
    } else {
        since(last, now)
    }
}

/// `kubectl describe pod`, in its order and alignment.
pub fn describe_pod(pod: &Pod, events: &[Event], now: SystemTime) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let meta = &pod.metadata;
    let mut out = String::new();
    let none = || "<none>".to_string();
    let _ = writeln!(out, "Name:\t{}", meta.name.clone().unwrap_or_default());
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let _ = writeln!(out, "Namespace:\t{ns}");
    let _ = writeln!(out, "Priority:\t{}", spec.priority.unwrap_or(0));
    let node = match (&spec.node_name, &status.host_ip) {
        (Some(n), Some(ip)) => format!("{n}/{ip}"),
        (Some(n), None) => n.clone(),
        _ => none(),
    };
    let _ = writeln!(out, "Node:\t{node}");
    if let Some(t) = &status.start_time {
        let _ = writeln!(out, "Start Time:\t{}", rfc1123z(t));
    }
    map_lines(&mut out, "Labels", meta.labels.as_ref());
    map_lines(&mut out, "Annotations", meta.annotations.as_ref());
    if let Some(t) = &meta.deletion_timestamp {
        let _ = writeln!(
            out,
            "Status:\tTerminating (lasts {})",
            since(Some(t), now)
        );
    } else {
        let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
        let _ = writeln!(out, "Status:\t{phase}");
    }
    if let Some(r) = status.reason.as_ref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "Reason:\t{r}");
    }
    if let Some(m) = status.message.as_ref().filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "Message:\t{m}");
    }
    let ip = status.pod_ip.clone().filter(|i| !i.is_empty());
    let _ = writeln!(out, "IP:\t{}", ip.clone().unwrap_or_default());
    match &ip {
        Some(ip) => {
            let _ = writeln!(out, "IPs:\n  IP:\t{ip}");
        }
        None => {
            let _ = writeln!(out, "IPs:\t<none>");
        }
    }
    let find = |list: &Option<Vec<ContainerStatus>>, name: &str| {
        list.iter().flatten().find(|s| s.name == name).cloned()
    };
    if let Some(inits) = spec.init_containers.as_ref().filter(|i| !i.is_empty())
    {
        let _ = writeln!(out, "Init Containers:");
        for c in inits {
            let s = find(&status.init_container_statuses, &c.name);
            container_lines(&mut out, c, s.as_ref());
        }
    }
    let _ = writeln!(out, "Containers:");
    for c in &spec.containers {
        let s = find(&status.container_statuses, &c.name);
        container_lines(&mut out, c, s.as_ref());
    }
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        let _ = writeln!(out, "Conditions:\n  Type\tStatus");
        for c in &conditions {
            let _ = writeln!(out, "  {}\t{}", c.type_, c.status);
        }
    }
    volume_lines(&mut out, spec.volumes.as_deref().unwrap_or_default());
    let qos = status
        .qos_class
        .clone()
        .unwrap_or_else(|| "BestEffort".into());
    let _ = writeln!(out, "QoS Class:\t{qos}");
    let _ = writeln!(out, "Node-Selectors:\t<none>");
    let _ = writeln!(out, "Tolerations:\t<none>");
    events_lines(&mut out, events, now);
    // kubectl's describe writer: minimum width 0, padding 2.
    align(&out, 0, 2)
}

/// The Events section that ends every `describe`.
pub fn events_lines(out: &mut String, events: &[Event], now: SystemTime) {
    if events.is_empty() {
        let _ = writeln!(out, "Events:\t<none>");
    } else {
        let _ = writeln!(out, "Events:");
        let _ = writeln!(out, "  Type\tReason\tAge\tFrom\tMessage");
        let _ = writeln!(out, "  ----\t------\t----\t----\t-------");
        for e in events {
            let from = e
                .source
                .as_ref()
                .and_then(|s| s.component.clone())
                .or_else(|| e.reporting_component.clone())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}\t{}\t{}\t{from}\t{}",
                e.type_.clone().unwrap_or_else(|| "Normal".into()),
                e.reason.clone().unwrap_or_default(),
                event_age(e, now),
                e.message.clone().unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        PodSpec, PodStatus,
    };

    fn pod(statuses: Vec<ContainerStatus>, phase: &str) -> Pod {
        let now =
            chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        Pod {
            metadata:
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some("kubia".into()),
                    creation_timestamp: Some(Time(
                        now - chrono::Duration::seconds(75),
                    )),
                    ..Default::default()
                },
            spec: Some(PodSpec {
                containers: statuses
                    .iter()
                    .map(|s| Container {
                        name: s.name.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(statuses),
                ..Default::default()
            }),
        }
    }

    fn waiting(name: &str, reason: &str, restarts: i32) -> ContainerStatus {
        let finished =
            chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                - chrono::Duration::seconds(12);
        ContainerStatus {
            name: name.into(),
            restart_count: restarts,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..Default::default()
            }),
            last_state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    finished_at: Some(Time(finished)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready: true,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning { started_at: None }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_crash_loop_shows_its_reason_and_last_restart() {
        let p = pod(
            vec![running("kubia"), waiting("crash", "CrashLoopBackOff", 3)],
            "Running",
        );
        let row = pod_row(&p, SystemTime::now());
        assert_eq!(row.ready, "1/2");
        assert_eq!(row.status, "CrashLoopBackOff");
        assert_eq!(row.restarts, "3 (12s ago)");
        assert_eq!(row.age, "75s");
    }

    #[test]
    fn an_init_container_shows_progress() {
        let mut p = pod(vec![running("kubia")], "Pending");
        p.spec.as_mut().unwrap().init_containers =
            Some(vec![Container::default()]);
        p.status.as_mut().unwrap().init_container_statuses =
            Some(vec![ContainerStatus {
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning { started_at: None }),
                    ..Default::default()
                }),
                ..Default::default()
            }]);
        assert_eq!(pod_row(&p, SystemTime::now()).status, "Init:0/1");
    }

    #[test]
    fn a_pod_without_a_status_is_pending_and_a_deleted_one_terminating() {
        let mut p = pod(vec![], "Running");
        p.status = None;
        assert_eq!(pod_row(&p, SystemTime::now()).status, "Pending");
        let mut p = pod(vec![running("kubia")], "Running");
        p.metadata.deletion_timestamp = p.metadata.creation_timestamp.clone();
        assert_eq!(pod_row(&p, SystemTime::now()).status, "Terminating");
    }

    #[test]
    fn the_table_is_aligned_like_kubectl() {
        let p = pod(vec![running("kubia")], "Running");
        let table = get_pods(&[p], false, SystemTime::now());
        assert_eq!(
            table,
            "NAME    READY   STATUS    RESTARTS   AGE\nkubia   1/1     Running   0          75s\n"
        );
    }
}
