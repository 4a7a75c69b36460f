//! Shared by the API server's tests: a server over an in-memory store,
//! driven in-process through its router.
#![allow(dead_code)]

pub mod memstore;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use lab05::apiserver::guard::AllowAll;
use lab05::apiserver::{ApiServer, Options};
use serde_json::Value;
use tower::ServiceExt;

/// What a request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The `message` of a Status answer.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

pub struct Api {
    pub server: Arc<ApiServer>,
    pub store: Arc<memstore::MemStore>,
}

pub async fn api() -> Api {
    api_with(Options::default()).await
}

pub async fn api_with(options: Options) -> Api {
    let store = Arc::new(memstore::MemStore::default());
    let server = ApiServer::new(store.clone(), Arc::new(AllowAll), options)
        .await
        .unwrap();
    Api { server, store }
}

impl Api {
    /// One request; every test request is bounded in time.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        accept: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let request = request.body(Body::from(body)).unwrap();
        let router = self.server.router();
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            router.oneshot(request),
        )
        .await
        .expect("request timed out")
        .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = tokio::time::timeout(
            Duration::from_secs(10),
            axum::body::to_bytes(response.into_body(), usize::MAX),
        )
        .await
        .expect("body timed out")
        .unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, "", Vec::new(), None).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Answer {
        let bytes = body.to_string().into_bytes();
        self.call(method, path, "application/json", bytes, None)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PUT, path, body).await
    }

    pub async fn delete(&self, path: &str, body: Option<&Value>) -> Answer {
        let bytes =
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.call(Method::DELETE, path, "application/json", bytes, None)
            .await
    }
}

/// A pod of one container, as `kubia-manual.yaml` in the book.
pub fn kubia_pod(name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "kubia"}},
        "spec": {"containers": [{
            "name": "kubia",
            "image": "luksa/kubia",
            "ports": [{"containerPort": 8080}],
        }]},
    })
}

pub const PODS: &str = "/api/v1/namespaces/default/pods";

/// The redactions of what varies between runs.
pub fn redactions() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_redaction(".metadata.uid", "[uid]");
    settings.add_redaction(".metadata.creationTimestamp", "[time]");
    settings.add_redaction(".metadata.deletionTimestamp", "[time]");
    settings.add_redaction(".metadata.resourceVersion", "[rv]");
    settings
}
