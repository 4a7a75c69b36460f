//! Liveness, readiness and startup probes, as the kubelet's prober runs
//! them (`pkg/kubelet/prober`).
//!
//! A probe is tried every `periodSeconds`, the first time
//! `initialDelaySeconds` after the container started, each try given
//! `timeoutSeconds`. One try's outcome does not decide anything: it takes
//! `failureThreshold` failures in a row to fail a probe and
//! `successThreshold` successes in a row to pass it again ([`decide`]).
//! The worker acts on the decisions: a failed liveness or startup probe
//! restarts the container, readiness sets its `ready`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cri::{CriError, RuntimeService};

/// The three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// As the kubelet's messages begin: `Liveness probe failed: …`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// What a try does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A command in the container; exit 0 passes.
    Exec(Vec<String>),
    /// An HTTP GET; a status from 200 to 399 passes.
    HttpGet {
        /// `None`: the pod's IP.
        host: Option<String>,
        port: u16,
        path: String,
        /// `HTTP` or `HTTPS`.
        scheme: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection; connecting passes.
    TcpSocket { host: Option<String>, port: u16 },
    /// A handler this node cannot run (gRPC, or none given).
    Unsupported(String),
}

// ANCHOR: defaults
/// The kubelet's defaults (the API server fills them in).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
// ANCHOR_END: defaults

/// How many tries in a row decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub success: u32,
    pub failure: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            success: DEFAULT_SUCCESS_THRESHOLD,
            failure: DEFAULT_FAILURE_THRESHOLD,
        }
    }
}

/// A probe of a container, with the defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
    /// The probe's own `terminationGracePeriodSeconds`, which overrides
    /// the pod's when a failure kills the container.
    pub grace: Option<Duration>,
}

fn seconds(v: Option<i32>, default: Duration) -> Duration {
    match v {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => default,
    }
}

fn count(v: Option<i32>, default: u32) -> u32 {
    match v {
        Some(n) if n > 0 => n as u32,
        _ => default,
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port_of(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => match name.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        },
    }
}

impl ProbeSpec {
    /// The probe of `kind` of a container, if it has one.
    pub fn of(kind: ProbeKind, container: &Container) -> Option<ProbeSpec> {
        let probe: &Probe = match kind {
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }?;
        let action = if let Some(e) = &probe.exec {
            Action::Exec(e.command.clone().unwrap_or_default())
        } else if let Some(h) = &probe.http_get {
            match port_of(&h.port, container) {
                Some(port) => Action::HttpGet {
                    host: h.host.clone().filter(|h| !h.is_empty()),
                    port,
                    path: h
                        .path
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or("/".into()),
                    scheme: h.scheme.clone().unwrap_or_else(|| "HTTP".into()),
                    headers: h
                        .http_headers
                        .iter()
                        .flatten()
                        .map(|x| (x.name.clone(), x.value.clone()))
                        .collect(),
                },
                None => Action::Unsupported(format!("unknown port {:?}", h.port)),
            }
        } else if let Some(t) = &probe.tcp_socket {
            match port_of(&t.port, container) {
                Some(port) => Action::TcpSocket {
                    host: t.host.clone().filter(|h| !h.is_empty()),
                    port,
                },
                None => Action::Unsupported(format!("unknown port {:?}", t.port)),
            }
        } else if probe.grpc.is_some() {
            Action::Unsupported("gRPC probes are not supported by this node".into())
        } else {
            Action::Unsupported("probe has no handler".into())
        };
        // Liveness and startup need one success to pass, whatever is set.
        let success = match kind {
            ProbeKind::Readiness => count(probe.success_threshold, DEFAULT_SUCCESS_THRESHOLD),
            _ => 1,
        };
        Some(ProbeSpec {
            kind,
            action,
            initial_delay: Duration::from_secs(
                probe.initial_delay_seconds.unwrap_or(0).max(0) as u64
            ),
            period: seconds(probe.period_seconds, DEFAULT_PERIOD),
            timeout: seconds(probe.timeout_seconds, DEFAULT_TIMEOUT),
            thresholds: Thresholds {
                success,
                failure: count(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
            },
            grace: probe
                .termination_grace_period_seconds
                .map(|s| Duration::from_secs(s.max(0) as u64)),
        })
    }
}

/// One try's outcome; a failure says why, for the `Unhealthy` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// What the tries of one probe add up to so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    /// Whether the last try passed; `None` before the first.
    pub last: Option<bool>,
    /// How many tries in a row ended the way the last one did.
    pub count: u32,
}

/// What one more try decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not enough tries in a row yet: the probe's result stays as it was.
    Unchanged,
    /// The probe passes (readiness: ready; startup: started).
    Pass,
    /// The probe fails (liveness, startup: restart; readiness: unready).
    Fail,
}

// ANCHOR: decide
/// Counts one more try of a probe into its run and decides: the result
/// changes only once `thresholds` tries in a row agree (`success` for a
/// pass, `failure` for a failure).
pub fn decide(run: &mut Run, passed: bool, thresholds: Thresholds) -> Decision {
    // EXERCISE: lab03-liveness-decision
    if run.last == Some(passed) {
        run.count = run.count.saturating_add(1);
    } else {
        run.last = Some(passed);
        run.count = 1;
    }
    let needed = if passed {
        thresholds.success
    } else {
        thresholds.failure
    };
    if run.count < needed {
        return Decision::Unchanged;
    }
    if passed {
        Decision::Pass
    } else {
        Decision::Fail
    }
    // EXERCISE_END: lab03-liveness-decision
}
// ANCHOR_END: decide

/// Opens the TCP connections of httpGet and tcpSocket probes. The kubelet
/// probes from the node's network namespace; a node whose pods live in
/// another namespace than its own process passes a connector that
/// connects from there.
pub trait Connector: Send + Sync {
    fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream>;
}

/// Connects from the caller's own network namespace.
#[derive(Debug, Default, Clone, Copy)]
pub struct Direct;

impl Connector for Direct {
    fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        TcpStream::connect_timeout(&addr, timeout)
    }
}

impl<F> Connector for F
where
    F: Fn(SocketAddr, Duration) -> io::Result<TcpStream> + Send + Sync,
{
    fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        self(addr, timeout)
    }
}

/// Whom a try is for.
#[derive(Clone)]
pub struct Target {
    pub container_id: String,
    pub pod_ip: Option<Ipv4Addr>,
    pub runtime: Arc<dyn RuntimeService>,
    pub connector: Arc<dyn Connector>,
}

/// Go's words for a failed dial, which the kubelet's messages carry.
fn dial_error(addr: SocketAddr, e: &io::Error) -> String {
    let what = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {addr}: {what}")
}

fn address(host: &Option<String>, port: u16, target: &Target) -> Result<SocketAddr, String> {
    let ip: IpAddr = match host {
        Some(h) => h
            .parse()
            .map_err(|_| format!("host {h:?} is not an IP address"))?,
        None => IpAddr::V4(target.pod_ip.ok_or("the pod has no IP")?),
    };
    Ok(SocketAddr::new(ip, port))
}

// ANCHOR: run_once
/// One try of a probe. Blocks for up to the probe's timeout, so the
/// worker runs it on a [`super::jobs::Spawner`].
pub fn run_once(spec: &ProbeSpec, target: &Target) -> Outcome {
    let timeout = spec.timeout;
    let connector = target.connector.as_ref();
    match &spec.action {
        Action::Exec(cmd) => exec(cmd, timeout, target),
        Action::TcpSocket { host, port } => match address(host, *port, target) {
            Err(m) => Outcome::Failure(m),
            Ok(addr) => match connector.connect(addr, timeout) {
                Ok(_) => Outcome::Success,
                Err(e) => Outcome::Failure(dial_error(addr, &e)),
            },
        },
        Action::HttpGet {
            host,
            port,
            path,
            scheme,
            headers,
        } => {
            if !scheme.eq_ignore_ascii_case("http") {
                let why = format!("{scheme} probes are not supported here");
                return Outcome::Failure(why);
            }
            match address(host, *port, target) {
                Err(m) => Outcome::Failure(m),
                Ok(addr) => http_get(connector, addr, path, headers, timeout),
            }
        }
        Action::Unsupported(why) => Outcome::Failure(why.clone()),
    }
}
// ANCHOR_END: run_once

/// An exec probe: the command's exit code decides, its output is the
/// failure's message.
fn exec(cmd: &[String], timeout: Duration, target: &Target) -> Outcome {
    match target.runtime.exec_sync(&target.container_id, cmd, timeout) {
        Ok(r) if r.exit_code == 0 => Outcome::Success,
        Ok(r) => {
            let mut out = r.stdout;
            out.extend_from_slice(&r.stderr);
            Outcome::Failure(String::from_utf8_lossy(&out).trim_end().to_string())
        }
        Err(CriError::DeadlineExceeded(d)) => Outcome::Failure(format!(
            "command \"{}\" timed out after {}",
            cmd.join(" "),
            crate::backoff::go_duration(d)
        )),
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

/// The status code of an HTTP/1.1 GET, all of it within `timeout`.
fn http_status(
    connector: &dyn Connector,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> io::Result<u16> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    let mut stream = connector.connect(addr, timeout)?;
    stream.set_write_timeout(Some(left()?))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    // The kubelet's own headers unless the probe sets them.
    for (name, value) in [("User-Agent", "kube-probe/1.32"), ("Accept", "*/*")] {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // Only the status line matters: read until its end.
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed HTTP response {line:?}"),
        )),
    }
}

fn http_get(
    connector: &dyn Connector,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let url = format!("http://{addr}{path}");
    match http_status(connector, addr, path, headers, timeout) {
        Ok(code) if (200..400).contains(&code) => Outcome::Success,
        Ok(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
            Outcome::Failure(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Outcome::Failure(format!("Get \"{url}\": {e}"))
        }
        Err(e) => Outcome::Failure(format!("Get \"{url}\": {}", dial_error(addr, &e))),
    }
}

/// One probe of one container instance: its spec, its run of tries, and
/// when the next try is due.
#[derive(Debug)]
pub struct Prober {
    pub spec: ProbeSpec,
    pub run: Run,
    /// The settled result: `None` until the first decision.
    pub result: Option<bool>,
    pub next_at: SystemTime,
    pub(crate) in_flight: Option<super::jobs::Job<Outcome>>,
}

impl Prober {
    /// A probe for a container that started at `started_at`.
    pub fn new(spec: ProbeSpec, started_at: SystemTime) -> Prober {
        Prober {
            next_at: started_at + spec.initial_delay,
            spec,
            run: Run::default(),
            result: None,
            in_flight: None,
        }
    }
}
