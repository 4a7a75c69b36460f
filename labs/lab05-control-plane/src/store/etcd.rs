//! The etcd store: real etcd v3, through its JSON gateway (`/v3/...`).
//!
//! etcd's gateway takes the gRPC messages as JSON: keys and values in
//! base64, 64-bit integers as strings, a field at its default left out
//! (a failed transaction has no `succeeded`). Every conditional write is
//! one transaction: a compare on the key's revision, a put or delete on
//! success, a read of the key on failure (the 409's current object).
//! Calls are blocking HTTP (ureq) on tokio's blocking pool; a watch is
//! one streaming POST read by a thread of its own ([`watch_thread`]).
//!
//! Two differences from the embedded store show through: a new etcd is
//! at revision 1 before any write (its first write is 2), and etcd's
//! "compacted" error does not say the compacted revision (0 then).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{
    Event, KeyValue, ListOptions, ListResult, Revision, Store, StoreError,
    WatchStream,
};

/// How long one call may take before the store reports etcd unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many events a watch buffers before it stops reading from etcd.
const WATCH_BUFFER: usize = 10_000;

/// A store in etcd, at `http://host:port`.
#[derive(Clone)]
pub struct EtcdStore {
    agent: ureq::Agent,
    endpoint: String,
    /// `host:port`, for the watch's own connection.
    authority: String,
}

impl EtcdStore {
    /// A store talking to etcd at `endpoint` (`http://127.0.0.1:2379`).
    /// Connecting is lazy: the first call finds out whether etcd is there.
    pub fn connect(endpoint: &str) -> Result<EtcdStore, StoreError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let authority = endpoint
            .strip_prefix("http://")
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "etcd endpoint {endpoint}: want http://host:port"
                ))
            })?
            .to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            // Sixteen concurrent writers keep their connections.
            .max_idle_connections_per_host(64)
            .build()
            .new_agent();
        Ok(EtcdStore {
            agent,
            endpoint,
            authority,
        })
    }

    /// POSTs `body` to `/v3/<path>`; etcd's answer, or its error.
    async fn call(
        &self,
        path: &'static str,
        body: Value,
    ) -> Result<Value, StoreError> {
        let agent = self.agent.clone();
        let url = format!("{}/v3/{path}", self.endpoint);
        tokio::task::spawn_blocking(move || {
            let backend = |e: ureq::Error| {
                StoreError::Backend(format!("etcd {url}: {e}"))
            };
            let mut response = agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string())
                .map_err(backend)?;
            let text = response
                .body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_string()
                .map_err(backend)?;
            let answer: Value = serde_json::from_str(&text).map_err(|e| {
                StoreError::Backend(format!("etcd {url}: {e}: {text}"))
            })?;
            match answer.get("error").and_then(Value::as_str) {
                Some(message) => Err(etcd_error(message)),
                None => Ok(answer),
            }
        })
        .await
        .map_err(|e| StoreError::Backend(format!("etcd call: {e}")))?
    }

    /// The transaction of a conditional write: `compare`, then `then` on
    /// success or a read of the key on failure. The answer when it
    /// succeeded, else the key's current value (if any).
    async fn txn(
        &self,
        key: &str,
        compare: Value,
        then: Value,
    ) -> Result<Result<Value, Option<KeyValue>>, StoreError> {
        let body = json!({
            "compare": [compare],
            "success": [then],
            "failure": [{"request_range": {"key": b64(key)}}],
        });
        let answer = self.call("kv/txn", body).await?;
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(Ok(answer));
        }
        let current = answer["responses"][0]["response_range"]["kvs"]
            .get(0)
            .map(parse_kv)
            .transpose()?;
        Ok(Err(current))
    }
}

/// Maps an etcd error message to the store's error.
fn etcd_error(message: &str) -> StoreError {
    if message.contains("required revision has been compacted") {
        StoreError::Compacted {
            requested: 0,
            compacted: 0,
        }
    } else if message.contains("future revision") {
        StoreError::FutureRevision {
            requested: 0,
            current: 0,
        }
    } else {
        StoreError::Backend(format!("etcd: {message}"))
    }
}

/// Fills in the revision asked for, which etcd's message leaves out.
fn with_requested(e: StoreError, revision: Revision) -> StoreError {
    match e {
        StoreError::Compacted { compacted, .. } => StoreError::Compacted {
            requested: revision,
            compacted,
        },
        StoreError::FutureRevision { current, .. } => {
            StoreError::FutureRevision {
                requested: revision,
                current,
            }
        }
        other => other,
    }
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// The end of the range of keys starting with `prefix` (etcd's
/// `range_end`): the prefix with its last byte incremented.
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return B64.encode(&end);
        }
    }
    B64.encode([0u8]) // every key
}

/// An int64 field: a string on the gateway, absent when 0.
fn int(v: &Value) -> Revision {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn header_revision(answer: &Value) -> Revision {
    int(&answer["header"]["revision"])
}

fn bad(what: &str, v: &Value) -> StoreError {
    StoreError::Backend(format!("etcd sent a bad {what}: {v}"))
}

fn parse_kv(v: &Value) -> Result<KeyValue, StoreError> {
    let decode = |field: &str| match v.get(field).and_then(Value::as_str) {
        Some(s) => B64.decode(s).map_err(|_| bad(field, v)),
        None => Ok(Vec::new()),
    };
    let key = String::from_utf8(decode("key")?).map_err(|_| bad("key", v))?;
    Ok(KeyValue {
        key,
        value: decode("value")?,
        create_revision: int(&v["create_revision"]),
        mod_revision: int(&v["mod_revision"]),
    })
}

/// The compare of an update or delete: at `expected`, or merely there.
fn compare(key: &str, expected: Option<Revision>) -> Value {
    match expected {
        Some(rev) => json!({"key": b64(key), "target": "MOD",
            "result": "EQUAL", "mod_revision": rev.to_string()}),
        None => json!({"key": b64(key), "target": "VERSION",
            "result": "GREATER", "version": "0"}),
    }
}

/// Why a conditional write failed, from what the key is now.
fn refused(
    key: &str,
    expected: Option<Revision>,
    current: Option<KeyValue>,
) -> StoreError {
    match (current, expected) {
        (Some(current), Some(expected)) => StoreError::Conflict {
            key: key.into(),
            expected,
            current: Box::new(current),
        },
        _ => StoreError::NotFound { key: key.into() },
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let answer = self.call("kv/range", json!({"key": b64(key)})).await?;
        answer["kvs"].get(0).map(parse_kv).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<ListResult, StoreError> {
        let start = match &options.start_after {
            // The first key after `after`: itself with a NUL appended.
            Some(after) if after.as_str() >= prefix => format!("{after}\0"),
            _ => prefix.to_string(),
        };
        let mut body = json!({"key": b64(&start),
            "range_end": prefix_end(prefix)});
        if let Some(limit) = options.limit.filter(|&l| l > 0) {
            body["limit"] = json!(limit.to_string());
        }
        // Revision 0 is "now" to etcd, and to us.
        let asked = options.revision.filter(|&r| r > 0);
        if let Some(revision) = asked {
            body["revision"] = json!(revision.to_string());
        }
        let answer = self.call("kv/range", body).await.map_err(|e| {
            with_requested(e, options.revision.unwrap_or_default())
        })?;
        let kvs = match answer["kvs"].as_array() {
            Some(kvs) => kvs.iter().map(parse_kv).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(ListResult {
            kvs,
            revision: asked.unwrap_or_else(|| header_revision(&answer)),
            more: answer["more"].as_bool().unwrap_or(false),
        })
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        let compare = json!({"key": b64(key), "target": "CREATE",
            "create_revision": "0"});
        let put = json!({"request_put":
            {"key": b64(key), "value": B64.encode(&value)}});
        match self.txn(key, compare, put).await? {
            Ok(answer) => Ok(header_revision(&answer)),
            Err(_) => Err(StoreError::AlreadyExists { key: key.into() }),
        }
    }

    async fn update(
        &self,
        key: &str,
        expected: Option<Revision>,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        let put = json!({"request_put":
            {"key": b64(key), "value": B64.encode(&value)}});
        match self.txn(key, compare(key, expected), put).await? {
            Ok(answer) => Ok(header_revision(&answer)),
            Err(current) => Err(refused(key, expected, current)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let delete = json!({"request_delete_range":
            {"key": b64(key), "prev_kv": true}});
        match self.txn(key, compare(key, expected), delete).await? {
            Ok(answer) => {
                let prev = &answer["responses"][0]["response_delete_range"]
                    ["prev_kvs"][0];
                Ok((header_revision(&answer), parse_kv(prev)?))
            }
            Err(current) => Err(refused(key, expected, current)),
        }
    }

    async fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<WatchStream, StoreError> {
        // Ask first whether after + 1 is still kept, so a compacted start
        // fails here as in the embedded store (a compaction racing with
        // this check still ends the stream with Compacted).
        let probe = json!({"key": b64(prefix), "count_only": true,
            "revision": (after + 1).to_string()});
        match self.call("kv/range", probe).await {
            Err(StoreError::Compacted { .. }) => {
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted: 0,
                });
            }
            Err(StoreError::FutureRevision { .. }) | Ok(_) => {}
            Err(e) => return Err(e),
        }
        let request = json!({"create_request": {
            "key": b64(prefix),
            "range_end": prefix_end(prefix),
            "start_revision": (after + 1).to_string(),
            "prev_kv": true,
        }})
        .to_string();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let authority = self.authority.clone();
        std::thread::Builder::new()
            .name("lab05-etcd-watch".into())
            .spawn(move || watch_thread(&authority, &request, after, &tx))
            .map_err(|e| StoreError::Backend(format!("watch thread: {e}")))?;
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let body = json!({"key": b64("\0"), "count_only": true});
        Ok(header_revision(&self.call("kv/range", body).await?))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let body = json!({"revision": revision.to_string(), "physical": true});
        match self.call("kv/compaction", body).await {
            Ok(_) | Err(StoreError::Compacted { .. }) => Ok(()),
            Err(e) => Err(with_requested(e, revision)),
        }
    }
}

/// Reads one watch's stream and feeds its events to `tx` until the
/// watcher drops its end, etcd cancels the watch, or the connection ends.
fn watch_thread(
    authority: &str,
    request: &str,
    after: Revision,
    tx: &mpsc::Sender<Result<Event, StoreError>>,
) {
    if let Err(e) = read_watch(authority, request, after, tx) {
        let _ = tx.blocking_send(Err(e));
    }
}

fn read_watch(
    authority: &str,
    request: &str,
    after: Revision,
    tx: &mpsc::Sender<Result<Event, StoreError>>,
) -> Result<(), StoreError> {
    let io = |e: std::io::Error| {
        StoreError::Backend(format!("etcd watch at {authority}: {e}"))
    };
    let mut socket = TcpStream::connect(authority).map_err(io)?;
    // A read times out now and then so a dropped watcher is noticed
    // without waiting for etcd's next event.
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(io)?;
    write!(
        socket,
        "POST /v3/watch HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{request}",
        request.len()
    )
    .map_err(io)?;
    let mut body = BufReader::new(Patient { socket, tx });
    let mut line = String::new();
    body.read_line(&mut line).map_err(io)?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(StoreError::Backend(format!("etcd watch: {line}")));
    }
    let mut chunked = false;
    loop {
        line.clear();
        body.read_line(&mut line).map_err(io)?;
        let header = line.trim().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        chunked |= header == "transfer-encoding: chunked";
    }
    if !chunked {
        return Err(StoreError::Backend("etcd watch: not chunked".into()));
    }
    // The gateway writes one JSON message per line, across chunks.
    let mut pending = Vec::new();
    loop {
        line.clear();
        body.read_line(&mut line).map_err(io)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| {
            StoreError::Backend(format!("etcd watch: chunk size {line:?}"))
        })?;
        if size == 0 {
            return Err(StoreError::Backend("etcd ended the watch".into()));
        }
        let start = pending.len();
        pending.resize(start + size, 0);
        body.read_exact(&mut pending[start..]).map_err(io)?;
        line.clear();
        body.read_line(&mut line).map_err(io)?;
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let message: Vec<u8> = pending.drain(..=end).collect();
            let message: Value = serde_json::from_slice(&message)
                .map_err(|e| StoreError::Backend(format!("etcd watch: {e}")))?;
            for event in events(&message, after)? {
                if tx.blocking_send(Ok(event)).is_err() {
                    return Ok(()); // the watcher is gone
                }
            }
        }
    }
}

/// The events of one watch message; an error if etcd cancelled the watch.
fn events(message: &Value, after: Revision) -> Result<Vec<Event>, StoreError> {
    let result = &message["result"];
    if result["canceled"].as_bool() == Some(true) {
        let compacted = int(&result["compact_revision"]);
        return Err(if compacted > 0 {
            StoreError::Compacted {
                requested: after,
                compacted,
            }
        } else {
            StoreError::Backend(format!("etcd cancelled the watch: {result}"))
        });
    }
    let Some(events) = result["events"].as_array() else {
        return Ok(Vec::new());
    };
    events
        .iter()
        .map(|e| {
            let kv = parse_kv(&e["kv"])?;
            let prev = e.get("prev_kv").map(parse_kv).transpose()?;
            Ok(if e["type"] == "DELETE" {
                let revision = kv.mod_revision;
                Event::Delete {
                    prev: prev.unwrap_or(kv),
                    revision,
                }
            } else {
                Event::Put { kv, prev }
            })
        })
        .collect()
}

/// The watch's socket: a read that timed out is tried again, unless the
/// watcher has dropped its end of the channel.
struct Patient<'a> {
    socket: TcpStream,
    tx: &'a mpsc::Sender<Result<Event, StoreError>>,
}

impl Read for Patient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.socket.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.tx.is_closed() {
                        return Err(std::io::Error::other("watcher gone"));
                    }
                }
                other => return other,
            }
        }
    }
}
