//! `ch05 bench cluster`: how long `ch05 up --nodes 3` takes until kubia
//! answers through its Service (minikube takes 20 s or more to start a
//! single node), then pod startup latency: many pods created at once, and
//! for each the time from its creation to all its containers started, as
//! a watch sees it (Kubernetes' SLO: p99 at most 5 s, images pulled
//! already). Figures are printed (and saved with `--save`), never
//! asserted. Runs in `$KUBELINGS_HOME`, as the reader's own cluster does,
//! and takes the cluster down on every path.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, WatchEvent};
use lab05::client::{Client, ClientConfig};

use crate::cluster_cmds::Paths;

/// The tour's Deployment, the book's kubia.
const DEPLOYMENT: &str = "book/src/ch05/manifests/kubia-deployment.yaml";
/// How long anything may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(180);
/// The label of the bench's own pods.
const LABEL: &str = "bench";

/// `program args…`, its stdout; `ch05` is this program.
fn run(
    program: &str,
    args: &[&str],
    kubeconfig: Option<&Path>,
) -> Result<String> {
    let exe = match program {
        "ch05" => std::env::current_exe()?,
        other => other.into(),
    };
    let mut command = Command::new(exe);
    command.args(args).stdin(Stdio::null());
    if let Some(k) = kubeconfig {
        command.env("KUBECONFIG", k);
    }
    let out = command
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ch05 down` when dropped: on success, error and panic alike.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = run("ch05", &["down"], None) {
            eprintln!("ch05 bench cluster: ch05 down: {e:#}");
        }
    }
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if t0.elapsed() > LIMIT {
            bail!("{what}: not within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether every container of `pod` has started.
fn started(pod: &Pod) -> bool {
    let want = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    want > 0
        && statuses.len() == want
        && statuses
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

fn bench_pod(i: usize) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("startup-{i:03}")),
            labels: Some(BTreeMap::from([(LABEL.into(), "startup".into())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "kubia".into(),
                image: Some(chapters::images::KUBIA.into()),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `q`th quantile (nearest rank) of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub fn run_bench(nodes: u8, pods: usize, save: Option<&Path>) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("ch05 bench cluster starts a cluster: run it as root");
    }
    let paths = Paths::from_env();
    if paths.state().exists() {
        bail!(
            "a cluster is up in {}: ch05 down first",
            paths.root().display()
        );
    }
    // Built beforehand, as a reader's images are: building is not starting.
    crate::cluster_supervisor::ensure_images()?;
    let mut table = String::new();
    let mut line = |s: String| {
        println!("{s}");
        table.push_str(&s);
        table.push('\n');
    };

    let t0 = Instant::now();
    let _down = Down;
    let n = nodes.to_string();
    run("ch05", &["up", "--nodes", &n, "--port", "0"], None)?;
    let up = t0.elapsed();
    let kubeconfig = paths.admin_kubeconfig();
    let client = Client::new(ClientConfig::from_kubeconfig(&kubeconfig)?)?;
    run("kubectl", &["apply", "-f", DEPLOYMENT], Some(&kubeconfig))?;
    run(
        "kubectl",
        &[
            "expose",
            "deployment",
            "kubia",
            "--port=80",
            "--target-port=8080",
        ],
        Some(&kubeconfig),
    )?;
    let ip = poll("the Service's ClusterIP", || {
        Ok(client
            .get::<Service>(Some("default"), "kubia")?
            .spec
            .and_then(|s| s.cluster_ip))
    })?;
    let url = format!("http://{ip}");
    poll("kubia answering through its Service", || {
        let got = run(
            "ch05",
            &["ssh", "node-1", "--", "curl", "-s", "-m", "1", &url],
            None,
        );
        Ok(got.ok().filter(|s| s.contains("You've hit")))
    })?;
    let answered = t0.elapsed();
    line(format!(
        "ch05 up --nodes {nodes} until kubia answers through its Service"
    ));
    line(format!(
        "{:<48} {:>8.2} s",
        "  nodes Ready (ch05 up returns)",
        up.as_secs_f64()
    ));
    line(format!(
        "{:<48} {:>8.2} s",
        "  + Deployment, Service, first answer",
        (answered - up).as_secs_f64()
    ));
    line(format!(
        "{:<48} {:>8.2} s",
        "  total (goal 2 s; minikube 20 s or more)",
        answered.as_secs_f64()
    ));

    // Pod startup: the watch first, so that no change is missed.
    let seen: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let bound: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let listed = client.list::<Pod>(Some("default"), "labelSelector=bench")?;
    let watch = client.watch::<Pod>(
        Some("default"),
        &format!(
            "labelSelector={LABEL}&resourceVersion={}",
            listed.resource_version
        ),
    )?;
    let watcher = {
        let (seen, bound) = (seen.clone(), bound.clone());
        std::thread::spawn(move || {
            for event in watch {
                let Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) =
                    event
                else {
                    continue;
                };
                if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let mut bound =
                        bound.lock().unwrap_or_else(|p| p.into_inner());
                    bound.entry(name).or_insert_with(Instant::now);
                }
                if started(&pod) {
                    let name = pod.metadata.name.unwrap_or_default();
                    let mut seen =
                        seen.lock().unwrap_or_else(|p| p.into_inner());
                    seen.entry(name).or_insert_with(Instant::now);
                    if seen.len() >= pods {
                        return;
                    }
                }
            }
        })
    };
    // Created at once: one thread per ten pods.
    let created: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let t_create = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..pods.div_ceil(10))
            .map(|w| {
                let (client, created) = (&client, created.clone());
                s.spawn(move || -> Result<()> {
                    for i in (w * 10..(w + 1) * 10).take_while(|i| *i < pods) {
                        let pod =
                            client.create(Some("default"), &bench_pod(i))?;
                        let name = pod.metadata.name.unwrap_or_default();
                        created
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name, Instant::now());
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a creating thread panicked"))??;
        }
        Ok(())
    })?;
    let all_created = t_create.elapsed();
    poll("every bench pod started", || {
        Ok(
            (seen.lock().unwrap_or_else(|p| p.into_inner()).len() >= pods)
                .then_some(()),
        )
    })?;
    let _ = watcher.join();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let created = created.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, c)| {
            Some(seen.get(name)?.saturating_duration_since(*c))
        })
        .collect();
    latencies.sort();
    let bound = bound.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut to_bind: Vec<Duration> = created
        .iter()
        .filter_map(|(name, c)| {
            Some(bound.get(name)?.saturating_duration_since(*c))
        })
        .collect();
    to_bind.sort();
    let last = seen
        .values()
        .max()
        .map_or(Duration::ZERO, |t| t.duration_since(t_create));
    line(String::new());
    line(format!(
        "{pods} pods created at once over {nodes} nodes (kubia, image present)"
    ));
    line(format!(
        "{:<48} {:>8.2} s",
        "  all created",
        all_created.as_secs_f64()
    ));
    line(format!(
        "{:<48} {:>8.2} s",
        "  all started (seen by a watch)",
        last.as_secs_f64()
    ));
    for (what, q) in [("p50", 0.5), ("p99", 0.99)] {
        line(format!(
            "{:<48} {:>8.2} s",
            format!("  creation to bound, {what}"),
            quantile(&to_bind, q).as_secs_f64()
        ));
    }
    for (what, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99 (goal 1 s, SLO 5 s)", 0.99),
    ] {
        line(format!(
            "{:<48} {:>8.2} s",
            format!("  creation to started, {what}"),
            quantile(&latencies, q).as_secs_f64()
        ));
    }
    line(format!(
        "{:<48} {:>8.2} s",
        "  creation to started, max",
        latencies.last().copied().unwrap_or_default().as_secs_f64()
    ));
    if let Some(path) = save {
        std::fs::write(path, &table)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v[..1], 0.99), Duration::from_millis(1));
    }
}
