//! A Kubernetes API client: what the scheduler, the node agents, the
//! controllers and the benchmarks use to talk to the API server, as
//! client-go is for Kubernetes' own components.
//!
//! It speaks the REST API of section 5.3 with k8s-openapi's types:
//! HTTPS with the cluster's CA, a bearer token, JSON bodies. Calls
//! block (ureq); a watch is an iterator over the events of one
//! streaming response.

mod kubeconfig;
mod watch;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use k8s_openapi::{ListableResource, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

pub use watch::Watch;

/// Where the API server is and who is asking.
#[derive(Clone, Default)]
pub struct ClientConfig {
    /// `https://127.0.0.1:6443`.
    pub server: String,
    /// The cluster CA's certificate(s), PEM; `None` trusts no HTTPS
    /// server (plain HTTP only).
    pub ca_pem: Option<Vec<u8>>,
    /// The bearer token.
    pub token: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a Status: `404 NotFound`, `409 Conflict`.
    #[error("{code} {reason}: {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    /// The request did not get an answer.
    #[error("{method} {url}: {reason}")]
    Transport {
        method: String,
        url: String,
        reason: String,
    },
    /// The answer was not what its kind should be.
    #[error("{url}: the answer does not decode: {reason}")]
    Decode { url: String, reason: String },
    /// The client's own settings.
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
}

/// The kinds of PATCH, by their Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    Merge,
    Strategic,
    Json,
}

impl Patch {
    fn content_type(self) -> &'static str {
        match self {
            Patch::Merge => "application/merge-patch+json",
            Patch::Strategic => "application/strategic-merge-patch+json",
            Patch::Json => "application/json-patch+json",
        }
    }
}

/// A list's items and the resourceVersion to watch from.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub resource_version: String,
    pub continue_token: Option<String>,
}

/// A client of one API server, as one identity. Cheap to clone; clones
/// share their connections.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// Watches wait for events as long as the server keeps them open.
    watch_agent: ureq::Agent,
    server: Arc<str>,
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .finish()
    }
}

/// The path of a collection: `/api/v1/namespaces/default/pods`,
/// `/apis/apps/v1/deployments`, `/api/v1/nodes`.
pub fn collection_path<T: Resource>(namespace: Option<&str>) -> String {
    let base = if T::GROUP.is_empty() {
        format!("/api/{}", T::VERSION)
    } else {
        format!("/apis/{}/{}", T::GROUP, T::VERSION)
    };
    match namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{}", T::URL_PATH_SEGMENT),
        None => format!("{base}/{}", T::URL_PATH_SEGMENT),
    }
}

/// The path of one object.
pub fn object_path<T: Resource>(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", collection_path::<T>(namespace))
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<TlsConfig, ClientError> {
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    if let Some(pem) = ca_pem {
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => roots.push(cert),
                Ok(_) => {}
                Err(e) => {
                    return Err(ClientError::Config(format!(
                        "the CA certificate: {e}"
                    )))
                }
            }
        }
        if roots.is_empty() {
            return Err(ClientError::Config(
                "the CA data holds no PEM certificate".into(),
            ));
        }
    }
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build())
}

fn agent(tls: TlsConfig, response_timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        // Status answers are read as Status objects, not ureq errors.
        .http_status_as_error(false)
        // The API server is on loopback or the cluster network: never
        // through a proxy from the environment.
        .proxy(None)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(response_timeout)
        .max_idle_connections_per_host(64)
        .user_agent("kubelings-lab05")
        .tls_config(tls)
        .build()
        .into()
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        if !(config.server.starts_with("https://")
            || config.server.starts_with("http://"))
        {
            return Err(ClientError::Config(format!(
                "server {:?} is not an http:// or https:// URL",
                config.server
            )));
        }
        let tls = tls_config(config.ca_pem.as_deref())?;
        Ok(Client {
            agent: agent(tls.clone(), Some(Duration::from_secs(60))),
            watch_agent: agent(tls, None),
            server: config.server.trim_end_matches('/').into(),
            token: config.token.map(Into::into),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// One request; the answer's JSON, or the Status it failed with.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value, ClientError> {
        let text = self.request_bytes(method, path, body)?;
        serde_json::from_slice(&text).map_err(|e| ClientError::Decode {
            url: format!("{}{path}", self.server),
            reason: e.to_string(),
        })
    }

    /// One request; the answer's body as it came, or the Status it failed
    /// with.
    pub fn request_bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.server);
        let transport = |reason: String| ClientError::Transport {
            method: method.to_string(),
            url: url.clone(),
            reason,
        };
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            builder =
                builder.header("Authorization", format!("Bearer {token}"));
        }
        let (content_type, bytes) =
            body.unwrap_or(("application/json", Vec::new()));
        let request = builder
            .header("Content-Type", content_type)
            .body(bytes)
            .map_err(|e| transport(e.to_string()))?;
        let response = self
            .agent
            .run(request)
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let mut text = Vec::new();
        response
            .into_body()
            .into_reader()
            .read_to_end(&mut text)
            .map_err(|e| transport(e.to_string()))?;
        if status >= 400 {
            return Err(api_error(status, &String::from_utf8_lossy(&text)));
        }
        Ok(text)
    }

    fn typed<T: DeserializeOwned>(
        &self,
        path: &str,
        value: Value,
    ) -> Result<T, ClientError> {
        serde_json::from_value(value).map_err(|e| ClientError::Decode {
            url: format!("{}{path}", self.server),
            reason: e.to_string(),
        })
    }

    fn json_body<B: Serialize>(body: &B) -> Result<Vec<u8>, ClientError> {
        serde_json::to_vec(body).map_err(|e| ClientError::Config(e.to_string()))
    }

    pub fn get<T: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<T, ClientError> {
        let path = object_path::<T>(namespace, name);
        let value = self.request("GET", &path, None)?;
        self.typed(&path, value)
    }

    /// A list; `query` is the query string without `?` (selectors,
    /// `limit`, `resourceVersion`), may be empty.
    pub fn list<T: ListableResource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        query: &str,
    ) -> Result<Listed<T>, ClientError> {
        let mut path = collection_path::<T>(namespace);
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        let value = self.request("GET", &path, None)?;
        let resource_version = value["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let continue_token = value["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let items = match value.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let items = items
            .into_iter()
            .map(|mut item| {
                // Items of a list come without kind and apiVersion.
                item["kind"] = Value::from(T::KIND);
                item["apiVersion"] = Value::from(T::API_VERSION);
                self.typed(&path, item)
            })
            .collect::<Result<Vec<T>, _>>()?;
        Ok(Listed {
            items,
            resource_version,
            continue_token,
        })
    }

    pub fn create<T: Resource + Serialize + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        object: &T,
    ) -> Result<T, ClientError> {
        let path = collection_path::<T>(namespace);
        let body = Self::json_body(object)?;
        let value =
            self.request("POST", &path, Some(("application/json", body)))?;
        self.typed(&path, value)
    }

    /// PUT: the whole object, with the compare on its resourceVersion if
    /// it carries one.
    pub fn replace<T: Resource + Serialize + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &T,
    ) -> Result<T, ClientError> {
        let path = object_path::<T>(namespace, name);
        let body = Self::json_body(object)?;
        let value =
            self.request("PUT", &path, Some(("application/json", body)))?;
        self.typed(&path, value)
    }

    /// PUT of the status subresource.
    pub fn replace_status<T: Resource + Serialize + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &T,
    ) -> Result<T, ClientError> {
        let path = format!("{}/status", object_path::<T>(namespace, name));
        let body = Self::json_body(object)?;
        let value =
            self.request("PUT", &path, Some(("application/json", body)))?;
        self.typed(&path, value)
    }

    pub fn patch<T: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
        kind: Patch,
        patch: &Value,
    ) -> Result<T, ClientError> {
        let path = object_path::<T>(namespace, name);
        let body = Self::json_body(patch)?;
        let value =
            self.request("PATCH", &path, Some((kind.content_type(), body)))?;
        self.typed(&path, value)
    }

    /// DELETE; the answer (the object, marked for deletion or as it was,
    /// or a Status) as JSON.
    pub fn delete<T: Resource>(
        &self,
        namespace: Option<&str>,
        name: &str,
        options: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let path = object_path::<T>(namespace, name);
        let body = match options {
            Some(o) => Some(("application/json", Self::json_body(o)?)),
            None => None,
        };
        self.request("DELETE", &path, body)
    }

    /// A watch of a collection: `query` as for [`Client::list`], without
    /// `watch=true`, which this adds.
    pub fn watch<T: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        query: &str,
    ) -> Result<Watch<T>, ClientError> {
        let mut path =
            format!("{}?watch=true", collection_path::<T>(namespace));
        if !query.is_empty() {
            path = format!("{path}&{query}");
        }
        let url = format!("{}{path}", self.server);
        let transport = |reason: String| ClientError::Transport {
            method: "GET".into(),
            url: url.clone(),
            reason,
        };
        let mut builder = ureq::http::Request::builder()
            .method("GET")
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            builder =
                builder.header("Authorization", format!("Bearer {token}"));
        }
        let request = builder.body(()).map_err(|e| transport(e.to_string()))?;
        let response = self
            .watch_agent
            .run(request)
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let reader = response.into_body().into_reader();
        if status >= 400 {
            let mut text = String::new();
            let _ = std::io::BufReader::new(reader).read_to_string(&mut text);
            return Err(api_error(status, &text));
        }
        Ok(Watch::new(url, Box::new(reader)))
    }
}

/// The error a failed answer stands for: its Status, or the code alone.
fn api_error(code: u16, body: &str) -> ClientError {
    match serde_json::from_str::<Status>(body) {
        Ok(status) => ClientError::Api {
            code: status.code.map(|c| c as u16).unwrap_or(code),
            reason: status.reason.unwrap_or_default(),
            message: status.message.unwrap_or_default(),
        },
        Err(_) => ClientError::Api {
            code,
            reason: String::new(),
            message: body.trim().chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Node, Pod};

    #[test]
    fn paths_follow_group_version_and_scope() {
        assert_eq!(
            collection_path::<Pod>(Some("default")),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(collection_path::<Pod>(None), "/api/v1/pods");
        assert_eq!(object_path::<Node>(None, "node-1"), "/api/v1/nodes/node-1");
        assert_eq!(
            object_path::<Deployment>(Some("ns"), "kubia"),
            "/apis/apps/v1/namespaces/ns/deployments/kubia"
        );
    }

    #[test]
    fn a_status_answer_is_an_api_error() {
        let e = api_error(
            404,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure",
               "message":"pods \"x\" not found","reason":"NotFound","code":404}"#,
        );
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "404 NotFound: pods \"x\" not found");
        assert!(Client::new(ClientConfig {
            server: "127.0.0.1:6443".into(),
            ..Default::default()
        })
        .is_err());
    }
}
