//! `ch05 bench api`'s measurements through the API: pods created by
//! concurrent clients, a list of all of them, and watchers that must
//! each see every creation. The figures are printed by `ch05`, never
//! asserted by tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::client::{Client, ClientError};

/// The annotation a benchmark pod carries: when it was sent, in
/// nanoseconds since the Unix epoch, so a watcher can tell how long its
/// event took.
pub const SENT_AT: &str = "bench.kubelings.dev/sent-at-ns";

/// A rate and the latencies behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub count: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What the watchers saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub watchers: usize,
    pub expected_each: usize,
    /// Events received, summed over the watchers.
    pub received: usize,
    /// From a pod's creation request being sent to its ADDED event at a
    /// watcher, over every (watcher, event).
    pub p50: Duration,
    pub p99: Duration,
    /// From the creation's answer reaching its client to the event at a
    /// watcher (zero when the event came first): the delivery alone,
    /// without the creation's own wait.
    pub after_ack_p50: Duration,
    pub after_ack_p99: Duration,
}

impl Delivery {
    pub fn lost(&self) -> usize {
        (self.watchers * self.expected_each).saturating_sub(self.received)
    }
}

/// The `q`-quantile of sorted latencies.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// The pod the benchmark creates: the shape kube-scheduler's benchmarks
/// use (one container, small requests).
pub fn bench_pod(name: &str) -> Pod {
    let mut annotations = BTreeMap::new();
    annotations.insert(SENT_AT.to_string(), now_ns().to_string());
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([("app".into(), "bench".into())])),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "kubia".into(),
                image: Some("kubia:v1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Create `total` pods named `<prefix>-<i>` in `namespace` from
/// `clients` threads at once.
pub fn create_pods(
    client: &Client,
    namespace: &str,
    prefix: &str,
    total: usize,
    clients: usize,
) -> Result<Rate, ClientError> {
    create_pods_noting(client, namespace, prefix, total, clients, None)
}

/// [`create_pods`], noting in `acked[i]` when pod `i`'s creation was
/// answered (nanoseconds since the epoch).
fn create_pods_noting(
    client: &Client,
    namespace: &str,
    prefix: &str,
    total: usize,
    clients: usize,
    acked: Option<Arc<Vec<AtomicU64>>>,
) -> Result<Rate, ClientError> {
    let clients = clients.max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(clients + 1));
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (client, next, start, acked) =
            (client.clone(), next.clone(), start.clone(), acked.clone());
        let (namespace, prefix) = (namespace.to_string(), prefix.to_string());
        handles.push(thread::spawn(move || {
            start.wait();
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok(latencies);
                }
                let pod = bench_pod(&format!("{prefix}-{i}"));
                let t0 = Instant::now();
                client.create(Some(&namespace), &pod)?;
                latencies.push(t0.elapsed());
                if let Some(at) = acked.as_ref().and_then(|a| a.get(i)) {
                    at.store(now_ns() as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    start.wait();
    let t0 = Instant::now();
    let mut latencies = Vec::with_capacity(total);
    let mut failed = None;
    for h in handles {
        match h.join() {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => failed = Some(e),
            Err(_) => {
                failed =
                    Some(ClientError::Config("a client thread panicked".into()))
            }
        }
    }
    let elapsed = t0.elapsed();
    if let Some(e) = failed {
        return Err(e);
    }
    latencies.sort();
    Ok(Rate {
        count: latencies.len(),
        elapsed,
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
    })
}

/// The time of one full list of the namespace's pods, from the request
/// to the answer's last byte (the best of `rounds`; decoding it is the
/// client's business and not counted), and how many it returned.
pub fn list_pods(
    client: &Client,
    namespace: &str,
    rounds: usize,
) -> Result<(Duration, usize), ClientError> {
    let path = crate::client::collection_path::<Pod>(Some(namespace));
    let mut best = Duration::MAX;
    let mut body = Vec::new();
    for _ in 0..rounds.max(1) {
        let t0 = Instant::now();
        body = client.request_bytes("GET", &path, None)?;
        best = best.min(t0.elapsed());
    }
    let list: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            url: path,
            reason: e.to_string(),
        })?;
    let count = list["items"].as_array().map_or(0, Vec::len);
    Ok((best, count))
}

/// When an ADDED event's pod was sent, read straight from the event's
/// line (no decoding: with 100 watchers on two cores, decoding would be
/// most of what is measured).
fn sent_at(line: &str) -> Option<u128> {
    if !line.contains("\"type\":\"ADDED\"") {
        return None;
    }
    let key = format!("\"{SENT_AT}\":\"");
    let start = line.find(&key)? + key.len();
    let end = start + line[start..].find('"')?;
    line[start..end].parse().ok()
}

/// The `i` of the pod `<prefix>-<i>` an event's line names, found after
/// `key` (`"name":"<prefix>-`).
fn index_of(line: &str, key: &str) -> Option<usize> {
    let start = line.find(key)? + key.len();
    let digits = line[start..].split('"').next()?;
    digits.parse().ok()
}

/// `watchers` watches of the namespace's pods from its current
/// revision, then `total` pods created by `clients` threads; each
/// watcher must see all of them ADDED within `deadline`.
pub fn watch_delivery(
    client: &Client,
    namespace: &str,
    prefix: &str,
    watchers: usize,
    total: usize,
    clients: usize,
    deadline: Duration,
) -> Result<(Rate, Delivery), ClientError> {
    let from = client
        .list::<Pod>(Some(namespace), "limit=1")?
        .resource_version;
    let timeout = deadline.as_secs().max(1);
    let acked: Arc<Vec<AtomicU64>> =
        Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let name_key = format!("\"name\":\"{prefix}-");
    let mut handles = Vec::new();
    let ready = Arc::new(Barrier::new(watchers + 1));
    for _ in 0..watchers {
        let mut watch = client.watch::<Pod>(
            Some(namespace),
            &format!("resourceVersion={from}&timeoutSeconds={timeout}"),
        )?;
        let ready = ready.clone();
        let name_key = name_key.clone();
        handles.push(thread::spawn(move || {
            ready.wait();
            let mut latencies = Vec::with_capacity(total);
            let mut seen = Vec::with_capacity(total);
            let started = Instant::now();
            while let Some(Ok(line)) = watch.next_line() {
                if let Some(sent) = sent_at(&line) {
                    let now = now_ns();
                    let ns = now.saturating_sub(sent);
                    latencies.push(Duration::from_nanos(ns as u64));
                    if let Some(i) = index_of(&line, &name_key) {
                        seen.push((i, now as u64));
                    }
                }
                if latencies.len() >= total || started.elapsed() > deadline {
                    break;
                }
            }
            (latencies, seen)
        }));
    }
    ready.wait();
    let rate = create_pods_noting(
        client,
        namespace,
        prefix,
        total,
        clients,
        Some(acked.clone()),
    )?;
    let mut all = Vec::with_capacity(watchers * total);
    let mut after_ack = Vec::with_capacity(watchers * total);
    for h in handles {
        if let Ok((l, seen)) = h.join() {
            all.extend(l);
            for (i, at) in seen {
                let ack = acked.get(i).map_or(0, |a| a.load(Ordering::Relaxed));
                after_ack.push(Duration::from_nanos(at.saturating_sub(ack)));
            }
        }
    }
    all.sort();
    after_ack.sort();
    Ok((
        rate,
        Delivery {
            watchers,
            expected_each: total,
            received: all.len(),
            p50: quantile(&all, 0.5),
            p99: quantile(&all, 0.99),
            after_ack_p50: quantile(&after_ack, 0.5),
            after_ack_p99: quantile(&after_ack, 0.99),
        },
    ))
}

/// A process's resident memory now and at its peak (VmRSS, VmHWM), in
/// KiB, from /proc.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sent_time_is_read_from_an_added_line() {
        let line = format!(
            "{{\"type\":\"ADDED\",\"object\":{{\"metadata\":{{\"annotations\":\
             {{\"{SENT_AT}\":\"1234\"}}}}}}}}"
        );
        assert_eq!(sent_at(&line), Some(1234));
        assert_eq!(sent_at(&line.replace("ADDED", "DELETED")), None);
    }

    #[test]
    fn quantiles_pick_from_the_sorted_latencies() {
        let l: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&l, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&l, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&[], 0.99), Duration::ZERO);
    }
}
