//! The shape of scheduler_perf's SchedulingBasic (test/integration/
//! scheduler_perf, 5000Nodes_10000Pods): nodes of 4 CPU, 32Gi and 110
//! pods; pods of one container requesting (and limited to) 100m and
//! 500Mi with containerPort 80; some placed first, then the measured
//! ones. `ch05 bench sched` runs it in memory and through an API server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::cycle::{Algorithm, Snapshot};
use super::feasible::Rng;
use super::node_info::{InfoError, NodeInfo, PlacedPod, PodInfo};
use super::run::{Scheduler, SchedulerOptions};
use crate::client::{Client, ClientError};

/// templates/node-default.yaml: 4 CPU, 32Gi, 110 pods, Ready.
pub fn perf_node(name: &str) -> Node {
    let resources = json!({"cpu": "4", "memory": "32Gi", "pods": "110"});
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .unwrap_or_default()
}

/// templates/pod-default.yaml: pause, 100m / 500Mi requests = limits,
/// containerPort 80; on `node` if given.
pub fn perf_pod(namespace: &str, name: &str, node: Option<&str>) -> Pod {
    let r = json!({"cpu": "100m", "memory": "500Mi"});
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{
            "name": "pause", "image": "registry.k8s.io/pause:3.10",
            "ports": [{"containerPort": 80}],
            "resources": {"requests": r, "limits": r},
        }]},
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    serde_json::from_value(pod).unwrap_or_default()
}

/// What a run measured.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub pods: usize,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.pods as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The algorithm alone: `nodes` nodes, `placed` pods scheduled first
/// (untimed), then `pods` pods, each scheduled and assumed; the time
/// excludes building the objects.
pub fn in_memory(
    nodes: usize,
    placed: usize,
    pods: usize,
) -> Result<Throughput, InfoError> {
    let infos = (0..nodes)
        .map(|i| NodeInfo::new(Arc::new(perf_node(&format!("node-{i}")))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut snapshot = Snapshot::new(infos);
    let mut algorithm = Algorithm::new(0, Rng::seeded(1));
    let build = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| {
                PodInfo::new(Arc::new(perf_pod(
                    "sched",
                    &format!("{prefix}-{i}"),
                    None,
                )))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let mut place = |pods: &[PodInfo], snapshot: &mut Snapshot| -> usize {
        let mut done = 0;
        for pod in pods {
            if let Ok(p) = algorithm.schedule(pod, snapshot) {
                if let Some(n) = snapshot.get_mut(&p.node) {
                    n.add_pod(PlacedPod::from(pod));
                    done += 1;
                }
            }
        }
        done
    };
    let first = build("init", placed)?;
    place(&first, &mut snapshot);
    let measured = build("pod", pods)?;
    let start = Instant::now();
    let done = place(&measured, &mut snapshot);
    Ok(Throughput {
        pods: done,
        elapsed: start.elapsed(),
    })
}

/// Creates `objects` with `clients` threads; `make(i)` is the i-th.
pub fn create_all<T, F>(
    client: &Client,
    namespace: Option<&str>,
    objects: usize,
    clients: usize,
    make: F,
) -> Result<(), ClientError>
where
    T: k8s_openapi::Resource + serde::Serialize + serde::de::DeserializeOwned,
    F: Fn(usize) -> T + Sync,
{
    let next = Mutex::new(0usize);
    let failed: Mutex<Option<ClientError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..clients.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                if i >= objects {
                    return;
                }
                if let Err(e) = client.create(namespace, &make(i)) {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return;
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Through an API server: nodes and pods already created (`pods`
/// pending in `namespace`), the scheduler started, timed until a watch
/// has seen every one of them bound.
pub fn through_api(
    client: &Client,
    namespace: &str,
    pods: usize,
    timeout: Duration,
) -> Result<Throughput, ClientError> {
    let listed = client.list::<Pod>(Some(namespace), "limit=1")?;
    let mut watch = client.watch::<Pod>(
        Some(namespace),
        &format!(
            "resourceVersion={}&timeoutSeconds={}",
            listed.resource_version,
            timeout.as_secs().max(1)
        ),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let scheduler = Scheduler::new(client.clone(), SchedulerOptions::default());
    let start = Instant::now();
    let elapsed = std::thread::scope(|s| {
        let flag = stop.clone();
        let scheduler = &scheduler;
        s.spawn(move || scheduler.run(&flag));
        let mut bound = 0;
        let deadline = start + timeout;
        while bound < pods && Instant::now() < deadline {
            match watch.next_line() {
                Some(Ok(line)) => {
                    if line.contains("\"MODIFIED\"")
                        && line.contains("\"nodeName\"")
                    {
                        bound += 1;
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::SeqCst);
        (bound, elapsed)
    });
    Ok(Throughput {
        pods: elapsed.0,
        elapsed: elapsed.1,
    })
}
