//! Container logs, served by the node agent's server ([`super::server`])
//! as the kubelet serves them on 10250: `GET /containerLogs/<ns>/<pod>/<container>`
//! with `follow`, `previous`, `tailLines`, `timestamps`, `sinceSeconds`
//! and `limitBytes`. The API server's `pods/log` proxies here, so
//! `kubectl logs [-f] [-p]` reads the files lab03's runtime writes in
//! the CRI log format, through lab03's reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use lab03::logs::{self, LogOptions};
use serde::Deserialize;

use super::server::Served;

/// What the agent knows of one container's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogs {
    pub restarts: u32,
    pub running: bool,
    /// The waiting reason while no instance has started.
    pub waiting: Option<String>,
    /// Whether any instance was made (a log file may exist).
    pub started_once: bool,
    /// The runtime's id of the running instance (what exec runs in).
    pub id: Option<String>,
}

/// One pod's log directory and containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLogs {
    pub dir: PathBuf,
    pub containers: BTreeMap<String, ContainerLogs>,
}

/// The node's pods' logs by (namespace, name), kept by the sync loop.
#[derive(Debug, Clone, Default)]
pub struct LogIndex(Arc<Mutex<BTreeMap<(String, String), PodLogs>>>);

impl LogIndex {
    pub fn set(&self, namespace: &str, name: &str, logs: Option<PodLogs>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match logs {
            Some(l) => map.insert(key, l),
            None => map.remove(&key),
        };
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<PodLogs> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

/// The query of a containerLogs request, by the kubelet's names.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    #[serde(default)]
    pub follow: Option<String>,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub timestamps: Option<String>,
    #[serde(default)]
    pub tail_lines: Option<i64>,
    #[serde(default)]
    pub since_seconds: Option<u64>,
    #[serde(default)]
    pub limit_bytes: Option<usize>,
}

fn flag(v: &Option<String>) -> bool {
    v.as_deref() == Some("true") || v.as_deref() == Some("1")
}

/// An answer that is not a log: the code and the kubelet's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code =
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        (code, self.message).into_response()
    }
}

fn refuse(code: u16, message: String) -> Refusal {
    Refusal { code, message }
}

// ANCHOR: log_file
/// Which file answers the request: the current instance's, or with
/// `previous` the one before it.
pub fn log_file(
    index: &LogIndex,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<PathBuf, Refusal> {
    let logs = index.get(ns, pod).ok_or_else(|| {
        refuse(
            404,
            format!(
                "pod \"{pod}\" in namespace \"{ns}\" not found on this node"
            ),
        )
    })?;
    let what = format!("container \"{container}\" in pod \"{pod}\"");
    let c = logs
        .containers
        .get(container)
        .ok_or_else(|| refuse(400, format!("{what} is not valid")))?;
    if previous {
        let path = logs::previous_log_path(&logs.dir, container, c.restarts);
        let missing = format!("previous terminated {what} not found");
        return path.ok_or_else(|| refuse(400, missing));
    }
    if !c.started_once {
        let why = c.waiting.as_deref().unwrap_or("ContainerCreating");
        let message = format!("{what} is waiting to start: {why}");
        return Err(refuse(400, message));
    }
    Ok(logs::log_path(&logs.dir, container, c.restarts))
}
// ANCHOR_END: log_file

/// GET /containerLogs/<ns>/<pod>/<container>.
pub async fn container_logs(
    State(served): State<Served>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let previous = flag(&q.previous);
    let path = match log_file(&served.index, &ns, &pod, &container, previous) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let options = LogOptions {
        tail: q.tail_lines.and_then(|n| usize::try_from(n).ok()),
        since: q.since_seconds.and_then(|s| {
            SystemTime::now().checked_sub(Duration::from_secs(s))
        }),
        timestamps: flag(&q.timestamps),
        ..LogOptions::default()
    };
    let text = if path.exists() {
        match logs::read(&path, &options) {
            Ok(t) => t,
            Err(e) => return refuse(500, e.to_string()).into_response(),
        }
    } else {
        String::new()
    };
    let plain = [(header::CONTENT_TYPE, "text/plain")];
    if !flag(&q.follow) || previous {
        let mut text = text.into_bytes();
        if let Some(limit) = q.limit_bytes {
            text.truncate(limit);
        }
        return (plain, text).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let first = Bytes::from(text.into_bytes());
    let (index, timestamps) = (served.index.clone(), options.timestamps);
    std::thread::spawn(move || {
        follow(
            &path,
            &index,
            (&ns, &pod, &container),
            timestamps,
            first,
            tx,
        )
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    (plain, Body::from_stream(stream)).into_response()
}

/// `follow=true`: what the file gains, in whole lines, until the
/// container's instance stops running or the reader goes away.
fn follow(
    path: &Path,
    index: &LogIndex,
    (ns, pod, container): (&str, &str, &str),
    timestamps: bool,
    first: Bytes,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut offset = std::fs::metadata(path).map_or(0, |m| m.len());
    if !first.is_empty() && tx.blocking_send(first).is_err() {
        return;
    }
    let restarts = index
        .get(ns, pod)
        .and_then(|p| p.containers.get(container).map(|c| c.restarts));
    let mut last_check = Instant::now();
    let mut last_round = false;
    loop {
        let bytes = std::fs::read(path).unwrap_or_default();
        if (bytes.len() as u64) > offset {
            let new = &bytes[offset as usize..];
            if let Some(end) = new.iter().rposition(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&new[..=end]);
                if let Ok(records) = logs::parse_log(&text) {
                    let out = logs::render(&logs::join(&records), timestamps);
                    if tx.blocking_send(Bytes::from(out.into_bytes())).is_err()
                    {
                        return;
                    }
                }
                offset += end as u64 + 1;
            }
        }
        if last_round || tx.is_closed() {
            return;
        }
        if last_check.elapsed() > Duration::from_millis(300) {
            last_check = Instant::now();
            let now = index
                .get(ns, pod)
                .and_then(|p| p.containers.get(container).cloned());
            let same = now
                .as_ref()
                .is_some_and(|c| c.running && Some(c.restarts) == restarts);
            // One more read for what the last moments wrote.
            last_round = !same;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
