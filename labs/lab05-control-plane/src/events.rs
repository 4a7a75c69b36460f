//! Events: what a component tells people about an object ("Scheduled",
//! "FailedScheduling", "Killing"), the lines at the end of
//! `kubectl describe`.
//!
//! Like client-go's recorder, [`Recorder::event`] never makes its caller
//! wait for the API server: events go to a thread of their own, and
//! when too many are waiting the newest are dropped; an event is
//! telemetry, not state. The same event again (same object, reason and
//! message) raises the first one's `count` instead of making another, so
//! a crash loop is one line "x12 over 5m".

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;

use crate::client::{Client, Patch};

/// Events waiting to be written; more are dropped.
const QUEUE: usize = 1000;
/// Repeats remembered, to count them; forgotten all at once beyond this.
const REMEMBERED: usize = 4096;

struct Pending {
    involved: ObjectReference,
    type_: String,
    reason: String,
    message: String,
}

/// Writes events for one component; clones share its thread.
#[derive(Clone)]
pub struct Recorder {
    sender: SyncSender<Pending>,
}

impl Recorder {
    /// `component` is the source (`default-scheduler`, `kubelet`); `host`
    /// the node, for a node's component.
    pub fn new(
        client: Client,
        component: &str,
        host: Option<&str>,
    ) -> Recorder {
        let (sender, receiver) = sync_channel(QUEUE);
        let writer = Writer {
            client,
            component: component.to_string(),
            host: host.map(str::to_string),
            seen: HashMap::new(),
        };
        // The thread ends when the last Recorder is dropped.
        let _ = std::thread::Builder::new()
            .name(format!("events-{component}"))
            .spawn(move || writer.run(receiver));
        Recorder { sender }
    }

    /// Records an event about `involved`; `type_` is "Normal" or
    /// "Warning".
    pub fn event(
        &self,
        involved: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let pending = Pending {
            involved: involved.clone(),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        };
        match self.sender.try_send(pending) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {} // dropped: see the module's note
        }
    }
}

/// The reference an event names for an object of kind `K`.
pub fn reference<K>(object: &K) -> ObjectReference
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = object.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

struct Writer {
    client: Client,
    component: String,
    host: Option<String>,
    /// (uid or name, reason, message) → (namespace, event name, count).
    seen: HashMap<(String, String, String), (String, String, i32)>,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Pending>) {
        while let Ok(pending) = receiver.recv() {
            self.write(pending);
        }
    }

    fn write(&mut self, p: Pending) {
        let now = Utc::now();
        let who = p
            .involved
            .uid
            .clone()
            .or_else(|| p.involved.name.clone())
            .unwrap_or_default();
        let key = (who, p.reason.clone(), p.message.clone());
        if let Some((namespace, name, count)) = self.seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": Time(now)});
            let done = self.client.patch::<Event>(
                Some(namespace),
                name,
                Patch::Merge,
                &patch,
            );
            if done.is_ok() {
                return;
            }
            self.seen.remove(&key);
        }
        // Cluster-scoped objects' events live in "default", as upstream.
        let namespace = p
            .involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let stamp = now.timestamp_nanos_opt().unwrap_or_default();
        let name = format!(
            "{}.{stamp:x}",
            p.involved.name.as_deref().unwrap_or("unknown")
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: p.involved,
            type_: Some(p.type_),
            reason: Some(p.reason),
            message: Some(p.message),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(
                self.host.clone().unwrap_or_else(|| self.component.clone()),
            ),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            // The legacy recorder's shape: first/last timestamps and a
            // count, no eventTime (that is events.k8s.io's series).
            event_time: None,
            count: Some(1),
            ..Default::default()
        };
        if self.client.create(Some(&namespace), &event).is_ok() {
            if self.seen.len() >= REMEMBERED {
                self.seen.clear();
            }
            self.seen.insert(key, (namespace, name, 1));
        }
    }
}
