//! WATCH: a collection's changes as a stream of `{"type", "object"}`
//! lines, from a resourceVersion on, filtered by the selectors.
//!
//! A watch is the store's watch seen through the request's selectors.
//! The store reports every write under the prefix; the API server turns
//! each into the event *this* watcher should see, which depends on the
//! object before and after the write: a pod that starts matching
//! `spec.nodeName=node-1` is ADDED for that watcher, even though the
//! store saw an update (kube-apiserver's cacher does the same, in
//! `cache_watcher.go`). Errors that happen once the watch is accepted (a
//! start revision already compacted, the store failing midway) arrive as
//! an ERROR event carrying a Status, and the stream ends: clients then
//! list again.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

use super::filter::Filter;
use super::list::{parse_revision, wait_fresh};
use super::params::{flag, ListParams};
use super::resources::Resource;
use super::status::ApiError;
use super::stored;
use super::table::{self, IncludeObject};
use crate::store::{
    Event, KeyValue, ListOptions, Revision, Store, StoreError, WatchStream,
};

/// How each event's object is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchOutput {
    /// The object's JSON.
    Object,
    /// A one-row Table (`kubectl get -w` asks for this).
    Table,
}

/// The server's side of a watch's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How long a watch without `timeoutSeconds` lasts (kube-apiserver
    /// picks 30–60 minutes at random from its `--min-request-timeout`).
    pub default_timeout: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            bookmark_interval: Duration::from_secs(60),
            default_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// The most a watch gathers into one write.
const CHUNK: usize = 64 * 1024;

/// The annotation of the bookmark that ends a watch-list's initial
/// events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A watch response: `200`, chunked, one JSON event per line, ending at
/// `timeoutSeconds`.
pub async fn watch(
    store: Arc<dyn Store>,
    resource: &'static Resource,
    namespace: Option<String>,
    params: ListParams,
    output: WatchOutput,
) -> Result<Response, ApiError> {
    watch_with(
        store,
        resource,
        namespace,
        params,
        output,
        WatchOptions::default(),
    )
    .await
}

/// [`watch`] with the server's timing spelled out.
pub async fn watch_with(
    store: Arc<dyn Store>,
    resource: &'static Resource,
    namespace: Option<String>,
    params: ListParams,
    output: WatchOutput,
    options: WatchOptions,
) -> Result<Response, ApiError> {
    let watcher =
        Watcher::start(store, resource, namespace, &params, output, options)
            .await?;
    let lines = futures_util::stream::unfold(watcher, |mut w| async move {
        w.next_chunk()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), w))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .map_err(|e| ApiError::internal(format!("watch response: {e}")))
}

/// Where a watch begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Synthetic ADDED events for what exists, then changes
    /// (`bookmark`: end them with the initial-events-end bookmark).
    Initial { bookmark: bool },
    /// Changes after this revision.
    After(Revision),
    /// Changes from now on.
    Now,
}

/// Read `resourceVersion` and `sendInitialEvents` as kube-apiserver does.
fn start_of(
    params: &ListParams,
) -> Result<(Start, Option<Revision>), ApiError> {
    let rv = params.resource_version.as_deref().unwrap_or("");
    let initial = params
        .send_initial_events
        .is_some()
        .then(|| flag(&params.send_initial_events));
    let n = match rv {
        "" | "0" => None,
        rv => Some(parse_revision(rv)?),
    };
    Ok(match (initial, n) {
        (Some(true), n) => (Start::Initial { bookmark: true }, n),
        (Some(false), Some(n)) => (Start::After(n), None),
        (Some(false), None) => (Start::Now, None),
        (None, Some(n)) => (Start::After(n), None),
        (None, None) => (Start::Initial { bookmark: false }, None),
    })
}

/// One watcher: the store's stream, the filter, the timers.
struct Watcher {
    resource: &'static Resource,
    filter: Filter,
    output: WatchOutput,
    /// What a Table row carries (`includeObject`).
    include: IncludeObject,
    /// Lines to send before reading the store again (initial events, a
    /// bookmark, a final error).
    pending: VecDeque<Bytes>,
    events: Option<WatchStream>,
    bookmarks: Option<tokio::time::Interval>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The newest revision this watcher has seen (its bookmarks').
    revision: Revision,
}

impl Watcher {
    /// Check the request (a bad selector is an HTTP 400), then open the
    /// store's watch. Errors past this point are ERROR events.
    async fn start(
        store: Arc<dyn Store>,
        resource: &'static Resource,
        namespace: Option<String>,
        params: &ListParams,
        output: WatchOutput,
        options: WatchOptions,
    ) -> Result<Watcher, ApiError> {
        params.validate_watch()?;
        let filter = Filter::from_params(resource, params)?;
        let (start, not_older_than) = start_of(params)?;
        let timeout = match params.timeout_seconds {
            Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()),
            _ => options.default_timeout,
        };
        let bookmarks = flag(&params.allow_watch_bookmarks).then(|| {
            let period = options.bookmark_interval;
            let mut i = tokio::time::interval_at(
                tokio::time::Instant::now() + period,
                period,
            );
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut watcher = Watcher {
            resource,
            filter,
            output,
            include: include_object(params),
            pending: VecDeque::new(),
            events: None,
            bookmarks,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            revision: 0,
        };
        let prefix = resource.prefix(namespace.as_deref());
        if let Err(e) = watcher
            .open(store.as_ref(), &prefix, start, not_older_than)
            .await
        {
            watcher.pending.push_back(line("ERROR", &e.to_status()));
            watcher.events = None;
        }
        Ok(watcher)
    }

    // ANCHOR: open
    /// Queue the initial events, if any, and open the store's watch.
    async fn open(
        &mut self,
        store: &dyn Store,
        prefix: &str,
        start: Start,
        not_older_than: Option<Revision>,
    ) -> Result<(), ApiError> {
        let after = match start {
            Start::After(n) => {
                wait_fresh(store, n).await?;
                n
            }
            Start::Now => store.revision().await?,
            Start::Initial { bookmark } => {
                if let Some(n) = not_older_than {
                    wait_fresh(store, n).await?;
                }
                let listed =
                    store.list(prefix, &ListOptions::default()).await?;
                for kv in &listed.kvs {
                    if let Some(parsed) = self.filter.admit(kv)? {
                        let l =
                            self.send("ADDED", kv, kv.mod_revision, parsed)?;
                        self.pending.push_back(l);
                    }
                }
                self.revision = listed.revision;
                if bookmark {
                    let mut b = self.bookmark_object();
                    b["metadata"]["annotations"] =
                        json!({ INITIAL_EVENTS_END: "true" });
                    self.pending.push_back(line("BOOKMARK", &b));
                }
                listed.revision
            }
        };
        self.revision = self.revision.max(after);
        self.events = Some(store.watch(prefix, after).await?);
        Ok(())
    }
    // ANCHOR_END: open

    /// The next line to send and every line ready behind it, up to
    /// [`CHUNK`] bytes, as one write: as kube-apiserver's watch server
    /// flushes only when no event is waiting. Under load this is one TLS
    /// record and one write for many events; idle, it is one line.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let first = self.next_line().await?;
        let mut chunk: Option<Vec<u8>> = None;
        while chunk.as_ref().map_or(first.len(), Vec::len) < CHUNK {
            // Only what is ready now: the next line is never waited for.
            let Some(Some(more)) = self.next_line().now_or_never() else {
                break;
            };
            chunk
                .get_or_insert_with(|| first.to_vec())
                .extend_from_slice(&more);
        }
        Some(chunk.map_or(first, Bytes::from))
    }

    /// The next line to send; `None` ends the response.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(l) = self.pending.pop_front() {
                return Some(l);
            }
            let events = self.events.as_mut()?;
            let bookmarks = &mut self.bookmarks;
            let tick = async {
                match bookmarks {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut self.deadline => {
                    self.events = None;
                    return None;
                }
                item = events.next() => match item {
                    Some(Ok(event)) => {
                        self.revision = self.revision.max(event.revision());
                        match self.convert(event) {
                            Ok(Some(l)) => return Some(l),
                            Ok(None) => {}
                            Err(e) => return Some(self.fail(e)),
                        }
                    }
                    Some(Err(e)) => return Some(self.fail(store_error(e))),
                    None => {
                        self.events = None;
                        return None;
                    }
                },
                _ = tick => {
                    let b = self.bookmark_object();
                    return Some(line("BOOKMARK", &b));
                }
            }
        }
    }

    /// End the watch with an ERROR event.
    fn fail(&mut self, e: ApiError) -> Bytes {
        self.events = None;
        line("ERROR", &e.to_status())
    }

    /// The event this watcher sees for one store event, if any.
    fn convert(&self, event: Event) -> Result<Option<Bytes>, ApiError> {
        match event {
            // No selector: every write is the watcher's, and nothing
            // needs parsing.
            Event::Put { kv, prev } if self.filter.is_everything() => {
                let existed =
                    prev.is_some() || kv.create_revision != kv.mod_revision;
                let kind = if existed { "MODIFIED" } else { "ADDED" };
                self.send(kind, &kv, kv.mod_revision, None).map(Some)
            }
            Event::Put { kv, prev } => self.put_through_filter(&kv, prev),
            Event::Delete { prev, revision } => {
                let Some(old) = self.filter.admit(&prev)? else {
                    return Ok(None);
                };
                Ok(Some(self.send("DELETED", &prev, revision, old)?))
            }
        }
    }

    // ANCHOR: convert
    /// A write as a watcher with selectors sees it: what matters is
    /// whether the object passed the filter before the write and whether
    /// it passes after it.
    fn put_through_filter(
        &self,
        kv: &KeyValue,
        prev: Option<KeyValue>,
    ) -> Result<Option<Bytes>, ApiError> {
        let existed = prev.is_some() || kv.create_revision != kv.mod_revision;
        let at = kv.mod_revision;
        let object = stored::decode(kv)?;
        let now = self.filter.matches(&object);
        let before = match &prev {
            _ if !existed => None,
            Some(p) => {
                let old = stored::decode(p)?;
                self.filter.matches(&old).then_some(Some((p, old)))
            }
            // A store that keeps no previous value: assume the object
            // matched as it matches now.
            None => now.then_some(None),
        };
        Ok(match (now, before) {
            (true, None) => Some(self.send("ADDED", kv, at, Some(object))?),
            (true, Some(_)) => {
                Some(self.send("MODIFIED", kv, at, Some(object))?)
            }
            // It left the selection: the watcher sees it deleted, as it
            // was, at this write's revision.
            (false, Some(Some((p, old)))) => {
                Some(self.send("DELETED", p, at, Some(old))?)
            }
            (false, _) => None,
        })
    }
    // ANCHOR_END: convert

    /// The line of one event: the object `kv` holds, at `revision`. As
    /// JSON it is the stored bytes with the resourceVersion spliced in
    /// (`parsed`, if the filter needed it, is not serialized again); a
    /// Table row needs the parsed object.
    fn send(
        &self,
        kind: &str,
        kv: &KeyValue,
        revision: Revision,
        parsed: Option<Value>,
    ) -> Result<Bytes, ApiError> {
        if self.output == WatchOutput::Object {
            // `{"type":…,"object":…}` as `line` writes it, around the
            // stored bytes.
            let mut out = Vec::with_capacity(kv.value.len() + 64);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            stored::render_into(&mut out, kv, revision)?;
            out.extend_from_slice(b"}\n");
            return Ok(Bytes::from(out));
        }
        let mut object = match parsed {
            Some(object) => object,
            None => stored::decode(kv)?,
        };
        stored::set_resource_version(&mut object, revision);
        Ok(self.event_line(kind, object))
    }

    /// One event's line, its object as the request asked.
    fn event_line(&self, kind: &str, object: Value) -> Bytes {
        match self.output {
            WatchOutput::Object => line(kind, &object),
            WatchOutput::Table => {
                let rv = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let t = table::to_table(
                    self.resource,
                    &[object],
                    &rv,
                    self.include,
                    SystemTime::now(),
                );
                line(kind, &t)
            }
        }
    }

    /// A bookmark: the kind, and the revision the watcher has reached.
    fn bookmark_object(&self) -> Value {
        let rv = self.revision.to_string();
        match self.output {
            WatchOutput::Object => json!({
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version(),
                "metadata": { "resourceVersion": rv },
            }),
            // A Table watch's bookmark is an empty Table at that revision.
            WatchOutput::Table => json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": { "resourceVersion": rv },
                "columnDefinitions": [],
                "rows": [],
            }),
        }
    }
}

/// `includeObject=None|Object|Metadata` (the default).
fn include_object(params: &ListParams) -> IncludeObject {
    match params.include_object.as_deref() {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// A store error as the Status of an ERROR event: 410 Expired for a
/// compacted revision (the client relists), 500 otherwise.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted { .. } => e.into(),
        other => ApiError::internal(other.to_string()),
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

/// `{"type":…,"object":…}` and a newline.
fn line(kind: &str, object: &Value) -> Bytes {
    let mut out =
        serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}
