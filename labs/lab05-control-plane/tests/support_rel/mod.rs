//! Shared by the reliability and bad-input tests: the real API server
//! as a cluster runs it — HTTPS with the cluster's CA, bearer tokens
//! checked by [`TokenGuard`] — over the embedded store or a real etcd,
//! reached with lab05's own blocking [`Client`].
//!
//! The server runs on a tokio runtime of its own, so the tests can be
//! plain threads doing blocking calls, as the scheduler and the node
//! agents are.
#![allow(dead_code)]

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lab02::registry::tls::TlsListener;
use lab05::apiserver::{ApiServer, Options};
use lab05::auth::tls::Ca;
use lab05::auth::{Role, TokenFile, TokenGuard};
use lab05::client::{Client, ClientConfig};
use lab05::store::{EmbeddedStore, EtcdProcess, EtcdStore, Store};

/// The tokens a test may show, issued before the server starts.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub admin: String,
    pub node1: String,
    pub node2: String,
}

/// Makes the CA and the token file in `dir` (or reads them, when they
/// are there already): what a server started on `dir` trusts.
pub fn prepare(dir: &Path) -> (String, Tokens) {
    let ca = Ca::load_or_create(dir).unwrap();
    let mut file = TokenFile::open(dir).unwrap();
    let tokens = Tokens {
        admin: file.issue(&Role::Admin).unwrap(),
        node1: file.issue(&Role::Node("node-1".into())).unwrap(),
        node2: file.issue(&Role::Node("node-2".into())).unwrap(),
    };
    (ca.cert_pem().to_string(), tokens)
}

/// Serves the API server over `store` on 127.0.0.1 (a free port), with
/// the CA and tokens of `dir`; returns the port. Runs inside a tokio
/// runtime until it is dropped.
pub async fn start(dir: &Path, store: Arc<dyn Store>) -> u16 {
    let ca = Ca::load_or_create(dir).unwrap();
    let guard = Arc::new(TokenGuard::new(TokenFile::open(dir).unwrap()));
    let server = ApiServer::new(store, guard, Options::default())
        .await
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener =
        TlsListener::new(tcp, ca.server_config(&[]).unwrap()).unwrap();
    tokio::spawn(axum::serve(listener, server.router()).into_future());
    port
}

/// Which store a [`Cluster`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// One API server of a test, stopped (with its etcd) when dropped.
pub struct Cluster {
    pub url: String,
    pub ca_pem: String,
    pub tokens: Tokens,
    runtime: Option<tokio::runtime::Runtime>,
    // Dropped after the runtime: the server stops before its etcd.
    _etcd: Option<EtcdProcess>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// A server over `backend`; `None` when that is etcd and etcd is not
    /// installed (and not under CI, where it panics instead).
    pub fn start(backend: Backend) -> Option<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, tokens) = prepare(dir.path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut etcd = None;
        let store: Arc<dyn Store> = match backend {
            Backend::Embedded => Arc::new(
                EmbeddedStore::open(&dir.path().join("store")).unwrap(),
            ),
            Backend::Etcd => {
                if !kubelings_probe::require_program("etcd") {
                    return None;
                }
                let process =
                    EtcdProcess::start(&dir.path().join("etcd")).unwrap();
                let store = EtcdStore::connect(process.endpoint()).unwrap();
                etcd = Some(process);
                Arc::new(store)
            }
        };
        let port = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                start(dir.path(), store),
            )
            .await
            .expect("the API server starts within 20 s")
        });
        Some(Cluster {
            url: format!("https://127.0.0.1:{port}"),
            ca_pem,
            tokens,
            runtime: Some(runtime),
            _etcd: etcd,
            dir,
        })
    }

    /// A client showing `token` (`None`: no token at all).
    pub fn client(&self, token: Option<&str>) -> Client {
        client(&self.url, &self.ca_pem, token)
    }

    pub fn admin(&self) -> Client {
        self.client(Some(&self.tokens.admin))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Open watches would keep a graceful shutdown waiting.
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A client of the server at `url`, trusting `ca_pem`.
pub fn client(url: &str, ca_pem: &str, token: Option<&str>) -> Client {
    Client::new(ClientConfig {
        server: url.to_string(),
        ca_pem: Some(ca_pem.as_bytes().to_vec()),
        token: token.map(str::to_string),
    })
    .unwrap()
}

/// One request as sent, without lab05's client: the answer's code and
/// its body as JSON (`Null` if it is not JSON), to check whole Statuses.
pub fn raw(
    url: &str,
    ca_pem: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, serde_json::Value) {
    use std::io::Read;
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let roots: Vec<_> = ureq::tls::parse_pem(ca_pem.as_bytes())
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(tls)
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let (media, bytes) = body.unwrap_or(("application/json", Vec::new()));
    let request = request.header("Content-Type", media).body(bytes).unwrap();
    let response = agent.run(request).unwrap();
    let code = response.status().as_u16();
    let mut text = String::new();
    response
        .into_body()
        .into_reader()
        .read_to_string(&mut text)
        .unwrap();
    (code, serde_json::from_str(&text).unwrap_or_default())
}

impl Cluster {
    /// [`raw`] to this cluster, as the admin.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, serde_json::Value) {
        let token = Some(self.tokens.admin.as_str());
        raw(&self.url, &self.ca_pem, token, method, path, body)
    }
}
