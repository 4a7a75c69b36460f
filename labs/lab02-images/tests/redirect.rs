//! Blob downloads that a registry redirects elsewhere, as Docker Hub and
//! most cloud registries do (307 to blob storage on another host): a test
//! registry that wants Basic credentials and redirects every blob GET to a
//! storage server on a second loopback port. The pull follows, checks the
//! digest, and the storage server never sees the Authorization header.
//! Loops, endless chains and redirects to other schemes are refused.

mod peers;
use peers::{blobs, build_image, digest, store};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lab02::client::{Client, ClientError, Credentials};
use lab02::layout::ImageStore;
use lab02::reference::Reference;

/// What both servers hold and saw.
#[derive(Default)]
struct Shared {
    /// Manifests by tag or digest: (media type, bytes).
    manifests: Mutex<HashMap<String, (String, Vec<u8>)>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    storage_addr: Mutex<Option<SocketAddr>>,
    registry_addr: Mutex<Option<SocketAddr>>,
    /// Requests the storage server answered, and how many of them carried
    /// an Authorization header.
    storage_requests: AtomicUsize,
    storage_saw_authorization: AtomicUsize,
    registry_saw_authorization: AtomicUsize,
}

type S = State<Arc<Shared>>;

/// Nothing if the request carries Basic alice:secret, else a 401 that asks
/// for it.
fn refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    // "alice:secret" in base64.
    let ok = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v == "Basic YWxpY2U6c2VjcmV0");
    if ok {
        shared
            .registry_saw_authorization
            .fetch_add(1, Ordering::SeqCst);
        None
    } else {
        Some((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"test\"")],
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"login\"}]}",
        )
            .into_response())
    }
}

async fn version(State(s): S, headers: HeaderMap) -> Response {
    refusal(&s, &headers).unwrap_or_else(|| "{}".into_response())
}

async fn manifest(
    State(s): S,
    Path((repo, reference)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&s, &headers) {
        return r;
    }
    match s.manifests.lock().unwrap().get(&reference) {
        // Docker's old signed schema 1, which no registry should still send.
        Some((_, bytes)) if repo == "schema1" => (
            [(
                header::CONTENT_TYPE,
                "application/vnd.docker.distribution.manifest.v1+prettyjws"
                    .to_string(),
            )],
            bytes.clone(),
        )
            .into_response(),
        Some((media_type, bytes)) => {
            ([(header::CONTENT_TYPE, media_type.clone())], bytes.clone())
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// How the repository's blob GETs are answered: its name says.
async fn blob(
    State(s): S,
    Path((repo, digest)): Path<(String, String)>,
    headers: HeaderMap,
    query: axum::extract::RawQuery,
) -> Response {
    if let Some(r) = refusal(&s, &headers) {
        return r;
    }
    let storage = s.storage_addr.lock().unwrap().expect("storage address");
    let registry = s.registry_addr.lock().unwrap().expect("registry address");
    let location = match repo.as_str() {
        "app" => format!("http://{storage}/storage/{digest}?signature=abc"),
        "tampered" => format!("http://{storage}/tampered/{digest}"),
        // Back to the same URL: a loop.
        "loop" => format!("http://{registry}/v2/loop/blobs/{digest}"),
        // Always somewhere new: a chain that never ends.
        "chain" => {
            let hop: usize = query
                .0
                .and_then(|q| q.strip_prefix("hop=")?.parse().ok())
                .unwrap_or(0);
            format!("/v2/chain/blobs/{digest}?hop={}", hop + 1)
        }
        "ftp" => format!("ftp://{storage}/storage/{digest}"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

async fn storage(
    State(s): S,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.storage_requests.fetch_add(1, Ordering::SeqCst);
    if headers.contains_key(header::AUTHORIZATION) {
        s.storage_saw_authorization.fetch_add(1, Ordering::SeqCst);
    }
    match s.blobs.lock().unwrap().get(&digest) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn tampered(State(s): S, Path(digest): Path<String>) -> Response {
    match s.blobs.lock().unwrap().get(&digest) {
        Some(bytes) => {
            let mut bytes = bytes.clone();
            bytes[0] ^= 0xff;
            bytes.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The two servers, on a runtime of their own, stopped when dropped.
struct Servers {
    shared: Arc<Shared>,
    registry: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Servers {
    fn start(source: &ImageStore, image: &str) -> Servers {
        let shared = Arc::new(Shared::default());
        // The image's manifest under every repository's `v1`, its blobs in
        // storage.
        let desc = source.resolve(image).expect("image");
        let bytes = source.read_blob(&digest(&desc)).expect("manifest");
        shared
            .manifests
            .lock()
            .unwrap()
            .insert("v1".into(), (desc.media_type().to_string(), bytes));
        for blob in blobs(source, &desc) {
            let bytes = source.read_blob(&blob).expect("blob");
            shared.blobs.lock().unwrap().insert(blob.to_string(), bytes);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let bind = |runtime: &tokio::runtime::Runtime| {
            runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind")
        };
        let (registry_port, storage_port) = (bind(&runtime), bind(&runtime));
        let registry_addr = registry_port.local_addr().unwrap();
        *shared.registry_addr.lock().unwrap() = Some(registry_addr);
        *shared.storage_addr.lock().unwrap() =
            Some(storage_port.local_addr().unwrap());
        let registry_app = Router::new()
            .route("/v2/", get(version))
            .route("/v2/{repo}/manifests/{reference}", get(manifest))
            .route("/v2/{repo}/blobs/{digest}", get(blob))
            .with_state(shared.clone());
        let storage_app = Router::new()
            .route("/storage/{digest}", get(storage))
            .route("/tampered/{digest}", get(tampered))
            .with_state(shared.clone());
        runtime.spawn(
            async move { axum::serve(registry_port, registry_app).await },
        );
        runtime
            .spawn(async move { axum::serve(storage_port, storage_app).await });
        Servers {
            shared,
            registry: registry_addr,
            _runtime: runtime,
        }
    }

    fn reference(&self, repo: &str) -> Reference {
        format!("{}/{repo}:v1", self.registry).parse().unwrap()
    }
}

fn alice() -> Client {
    Client::new(Some(Credentials::new("alice", "secret"))).quiet(true)
}

#[test]
fn blob_redirects_are_followed_without_the_credentials() {
    let (_a, source) = store();
    let desc = build_image(&source, "app:v1", b"stored elsewhere", "amd64");
    let servers = Servers::start(&source, "app:v1");
    let (_b, target) = store();
    let pulled = alice()
        .pull(&target, &servers.reference("app"))
        .expect("pull through redirects");
    assert_eq!(pulled.manifest, digest(&desc));
    assert_eq!(pulled.blobs_fetched, 2);
    target
        .check(&target.resolve(&pulled.local_name).unwrap())
        .expect("every blob matches its digest");
    let shared = &servers.shared;
    assert_eq!(shared.storage_requests.load(Ordering::SeqCst), 2);
    assert!(shared.registry_saw_authorization.load(Ordering::SeqCst) > 0);
    assert_eq!(
        shared.storage_saw_authorization.load(Ordering::SeqCst),
        0,
        "the storage server saw the registry's credentials"
    );
}

#[test]
fn a_redirected_blob_is_still_checked() {
    let (_a, source) = store();
    build_image(&source, "app:v1", b"tampered on the way", "amd64");
    let servers = Servers::start(&source, "app:v1");
    let (_b, target) = store();
    let reference = servers.reference("tampered");
    let err = alice().pull(&target, &reference).expect_err("tampered");
    assert!(matches!(err, ClientError::DigestMismatch { .. }), "{err}");
    assert!(target.images().unwrap().is_empty());
}

#[test]
fn loops_endless_chains_and_other_schemes_are_refused() {
    let (_a, source) = store();
    let desc = build_image(&source, "app:v1", b"never arrives", "amd64");
    let servers = Servers::start(&source, "app:v1");
    for (repo, says) in [
        ("loop", "a redirect loop"),
        ("chain", "more than 5 redirects"),
        ("ftp", "only http(s) is followed"),
    ] {
        let (_b, target) = store();
        let reference = servers.reference(repo);
        let err = alice().pull(&target, &reference).expect_err(repo);
        let text = err.to_string();
        assert!(
            matches!(err, ClientError::Redirect { .. }),
            "{repo}: {text}"
        );
        assert!(text.contains(says), "{repo}: {text}");
        assert!(text.contains(&reference.to_string()), "{repo}: {text}");
        assert!(target.images().unwrap().is_empty(), "{repo}: no tag");
        for blob in blobs(&source, &desc) {
            assert!(!target.has_blob(&blob), "{repo}: no blob");
        }
        assert!(!target.has_blob(&digest(&desc)), "{repo}: no manifest");
    }
}

#[test]
fn a_manifest_type_we_cannot_read_is_named() {
    let (_a, source) = store();
    build_image(&source, "app:v1", b"schema 1", "amd64");
    let servers = Servers::start(&source, "app:v1");
    let (_b, target) = store();
    let reference = servers.reference("schema1");
    let err = alice().pull(&target, &reference).expect_err("schema 1");
    let text = err.to_string();
    assert!(matches!(err, ClientError::MediaType { .. }), "{text}");
    assert!(text.contains("manifest.v1+prettyjws"), "{text}");
    assert!(text.contains(&reference.to_string()), "{text}");
    assert_eq!(servers.shared.storage_requests.load(Ordering::SeqCst), 0);
    assert!(target.images().unwrap().is_empty());
}
