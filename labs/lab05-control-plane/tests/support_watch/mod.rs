//! What the list and watch tests share: the in-memory store, objects to
//! put in it, and a reader of watch responses that never hangs.

#![allow(dead_code)]

#[path = "../support/memstore.rs"]
pub mod memstore;

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use futures_util::StreamExt;
use lab05::apiserver::resources::{self, Resource};
use lab05::apiserver::stored;
use lab05::store::{Revision, Store};
use serde_json::{json, Value};

pub use memstore::MemStore;

pub fn pods() -> &'static Resource {
    resources::find("", "v1", "pods").unwrap()
}

pub fn configmaps() -> &'static Resource {
    resources::find("", "v1", "configmaps").unwrap()
}

pub fn store() -> Arc<MemStore> {
    Arc::new(MemStore::default())
}

/// A pod with labels, on a node ("" for none), in a phase.
pub fn pod(ns: &str, name: &str, labels: Value, node: &str) -> Value {
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": ns, "labels": labels },
        "spec": { "containers": [{ "name": "c", "image": "kubia" }] },
        "status": { "phase": "Pending" },
    });
    if !node.is_empty() {
        p["spec"]["nodeName"] = json!(node);
    }
    p
}

pub async fn create(store: &dyn Store, object: &Value) -> Revision {
    let key = key_of(object);
    store.create(&key, stored::encode(object)).await.unwrap()
}

pub async fn update(store: &dyn Store, object: &Value) -> Revision {
    let key = key_of(object);
    store
        .update(&key, None, stored::encode(object))
        .await
        .unwrap()
}

pub async fn delete(store: &dyn Store, ns: &str, name: &str) -> Revision {
    store.delete(&pods().key(ns, name), None).await.unwrap().0
}

fn key_of(object: &Value) -> String {
    let m = &object["metadata"];
    pods().key(
        m["namespace"].as_str().unwrap(),
        m["name"].as_str().unwrap(),
    )
}

/// A watch response's events, read as they come.
pub struct Events {
    body: axum::body::BodyDataStream,
    buf: Vec<u8>,
}

impl Events {
    pub fn new(response: Response) -> Events {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "application/json"
        );
        Events {
            body: response.into_body().into_data_stream(),
            buf: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream ended; panics after
    /// `timeout` without one.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, self.next_event())
            .await
            .expect("no watch event in time")
    }

    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(Duration::from_secs(10)).await
    }

    /// The next event, which must come.
    pub async fn expect(&mut self) -> Value {
        self.next().await.expect("the watch ended early")
    }

    /// Whether nothing arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.next_event()).await.is_err()
    }

    /// The next event's raw line (with its newline).
    pub async fn next_line_within(
        &mut self,
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        tokio::time::timeout(timeout, self.next_raw())
            .await
            .expect("no watch event in time")
    }

    async fn next_event(&mut self) -> Option<Value> {
        let line = self.next_raw().await?;
        Some(serde_json::from_slice(&line).unwrap())
    }

    async fn next_raw(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                return Some(self.buf.drain(..=i).collect());
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk.unwrap()),
                None => {
                    assert!(self.buf.is_empty(), "a partial line at the end");
                    return None;
                }
            }
        }
    }
}

/// `(type, name, resourceVersion)` of an event, for short asserts.
pub fn brief(event: &Value) -> (String, String, String) {
    let o = &event["object"];
    (
        event["type"].as_str().unwrap().to_string(),
        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}
