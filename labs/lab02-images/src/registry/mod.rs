//! A registry server speaking the OCI distribution API (v1.1): the same
//! HTTP conversation `docker push` and `docker pull` have with Docker Hub.
//!
//! [`RegistryHandle::start`] runs one on its own thread; `ch02 registry
//! serve`, the demo and the tests all use it.

pub mod auth;
pub mod errors;
pub mod manifest;
pub mod names;
pub mod server;
pub mod storage;
pub mod tls;
pub mod upload;

use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auth::Challenge;
pub use errors::{ApiError, ErrorCode, RegistryError};

/// How long a shutdown waits for requests in flight before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What a registry serves, from where, to whom.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Where to listen; `127.0.0.1:5000` by default (port 0: any free port).
    pub addr: SocketAddr,
    /// The storage directory (created if missing).
    pub root: PathBuf,
    /// An htpasswd file of bcrypt entries (`htpasswd -B`). Without one,
    /// anyone may push and pull.
    pub users: Option<PathBuf>,
    /// Repositories (and the names beneath them) that need credentials to
    /// pull from, too.
    pub private: Vec<String>,
    /// Serve HTTPS with this certificate and key (PEM files).
    pub tls: Option<tls::TlsFiles>,
}

impl RegistryConfig {
    /// Storage under `root`, on 127.0.0.1:5000, open to all.
    pub fn new(root: impl Into<PathBuf>) -> RegistryConfig {
        RegistryConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 5000)),
            root: root.into(),
            users: None,
            private: Vec::new(),
            tls: None,
        }
    }
}

/// Everything needed to serve, checked before the port is opened.
fn build_app(
    config: &RegistryConfig,
    challenge: Challenge,
    addr: SocketAddr,
) -> Result<server::App, RegistryError> {
    let storage = storage::Storage::open(&config.root).map_err(|source| {
        RegistryError::Storage {
            root: config.root.clone(),
            source,
        }
    })?;
    let users = config.users.as_deref().map(auth::Users::load).transpose()?;
    let access = auth::Access::new(
        users,
        config.private.clone(),
        challenge,
        format!(
            "{}://{addr}/token",
            if config.tls.is_some() {
                "https"
            } else {
                "http"
            }
        ),
    )?;
    Ok(server::App {
        storage,
        uploads: upload::Uploads::default(),
        access,
    })
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, RegistryError> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|source| RegistryError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| RegistryError::Bind { addr, source })?;
    Ok(listener)
}

// ANCHOR: handle
/// A registry running on its own thread (and its own tokio runtime), until
/// [`shutdown`](RegistryHandle::shutdown) or drop.
pub struct RegistryHandle {
    addr: SocketAddr,
    tls: bool,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<Result<(), RegistryError>>>,
}

impl RegistryHandle {
    /// Starts a registry answering 401s with a Basic challenge.
    pub fn start(
        config: RegistryConfig,
    ) -> Result<RegistryHandle, RegistryError> {
        RegistryHandle::start_with(config, Challenge::Basic)
    }

    /// Starts a registry with the given kind of auth challenge.
    pub fn start_with(
        config: RegistryConfig,
        challenge: Challenge,
    ) -> Result<RegistryHandle, RegistryError> {
        let listener = bind(config.addr)?;
        let addr =
            listener
                .local_addr()
                .map_err(|source| RegistryError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let app = Arc::new(build_app(&config, challenge, addr)?);
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("registry")
            .enable_all()
            .build()
            .map_err(RegistryError::Runtime)?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(format!("registry {addr}"))
            .spawn(move || {
                let result =
                    runtime.block_on(serve(listener, tls, app, stopped));
                // Whatever is still running (a stalled upload) is dropped.
                runtime.shutdown_timeout(Duration::from_millis(100));
                result
            })
            .map_err(RegistryError::Runtime)?;
        Ok(RegistryHandle {
            addr,
            tls: config.tls.is_some(),
            stop,
            thread: Some(thread),
        })
    }

    /// Where the registry listens (with the real port, when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` if it serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// `127.0.0.1:PORT`, as a reference's registry part.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the registry and waits for its thread.
    pub fn shutdown(mut self) -> Result<(), RegistryError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), RegistryError> {
        let _ = self.stop.send(true);
        match self.thread.take() {
            Some(thread) => {
                thread.join().map_err(|_| RegistryError::Panicked)?
            }
            None => Ok(()),
        }
    }
}

impl Drop for RegistryHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
// ANCHOR_END: handle

/// Serves until `stopped` turns true, then gives requests in flight a
/// moment to finish.
async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Arc<server::App>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RegistryError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(RegistryError::Runtime)?;
    match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)
                .map_err(RegistryError::Runtime)?;
            serve_on(listener, app, stopped).await
        }
        None => serve_on(listener, app, stopped).await,
    }
}

async fn serve_on<L>(
    listener: L,
    app: Arc<server::App>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RegistryError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let mut signal = stopped.clone();
    let graceful = axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async move {
            let _ = signal.wait_for(|stop| *stop).await;
        })
        .into_future();
    let deadline = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = graceful => result.map_err(RegistryError::Runtime),
        () = deadline => Ok(()),
    }
}
