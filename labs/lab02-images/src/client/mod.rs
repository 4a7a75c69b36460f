//! Pushing images from the local store to a registry and pulling them back,
//! over the OCI distribution API: with our registry, Debian's
//! docker-registry, or the registries people use (Docker Hub), over HTTPS.
//!
//! Every digest that arrives is checked: a manifest against the reference
//! (when pulling by digest) and the registry's Docker-Content-Digest, every
//! blob against the manifest, before anything lands in the store.

pub mod errors;
pub mod http;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod tls;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub use errors::ClientError;
pub use platform::Platform;
pub use tls::TlsOptions;

use crate::digest::Digest;
use crate::layout::ImageStore;
use crate::reference::Reference;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print a password, not even in a test failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The credentials file: `{"auths": {"127.0.0.1:5000": {"user": …, "password": …}}}`.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    auths: BTreeMap<String, Credentials>,
}

impl Credentials {
    pub fn new(
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Credentials {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The credentials saved for `registry` in the file at `path`, if any
    /// (a missing file holds none).
    pub fn load(
        path: &Path,
        registry: &str,
    ) -> Result<Option<Credentials>, ClientError> {
        Ok(read_file(path)?.auths.remove(registry))
    }

    /// Saves these credentials for `registry` (what `ch02 login` does),
    /// keeping those of other registries. The file is readable by its owner
    /// only, and replaced whole.
    pub fn save(&self, path: &Path, registry: &str) -> Result<(), ClientError> {
        let mut file = read_file(path)?;
        file.auths.insert(registry.to_string(), self.clone());
        write_file(path, &file)
    }

    /// Removes the credentials for `registry`; false if there were none.
    pub fn forget(path: &Path, registry: &str) -> Result<bool, ClientError> {
        let mut file = read_file(path)?;
        let had = file.auths.remove(registry).is_some();
        if had {
            write_file(path, &file)?;
        }
        Ok(had)
    }
}

fn read_file(path: &Path) -> Result<CredentialsFile, ClientError> {
    let bad = |reason: String| ClientError::Credentials {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|err| bad(err.to_string()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Ok(CredentialsFile::default())
        }
        Err(err) => Err(bad(err.to_string())),
    }
}

fn write_file(path: &Path, file: &CredentialsFile) -> Result<(), ClientError> {
    use std::os::unix::fs::PermissionsExt;
    let bad = |reason: String| ClientError::Credentials {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|err| bad(err.to_string()))?;
    // tempfile creates the file 0600, so the password is never readable by others.
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|err| bad(err.to_string()))?;
    let json =
        serde_json::to_vec_pretty(file).map_err(|err| bad(err.to_string()))?;
    temp.write_all(&json)
        .and_then(|()| temp.as_file().sync_all())
        .and_then(|()| {
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
        })
        .map_err(|err| bad(err.to_string()))?;
    temp.persist(path).map_err(|err| bad(err.to_string()))?;
    Ok(())
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// Where it went: `127.0.0.1:5000/kubia:v1`.
    pub reference: String,
    pub manifest: Digest,
    pub blobs_sent: usize,
    /// Blobs the registry had already.
    pub blobs_skipped: usize,
    pub bytes_sent: u64,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    pub reference: String,
    /// The name it has in the local store.
    pub local_name: String,
    /// The platform chosen, when the reference led to an index.
    pub platform: Option<String>,
    pub manifest: Digest,
    pub blobs_fetched: usize,
    /// Blobs the local store had already.
    pub blobs_skipped: usize,
    pub bytes_fetched: u64,
}

// ANCHOR: client
/// A registry client: optional credentials, where to find CAs, the
/// platform to pull, and whether to draw progress bars.
pub struct Client {
    creds: Option<Credentials>,
    tls: TlsOptions,
    platform: Platform,
    quiet: bool,
}

impl Client {
    pub fn new(creds: Option<Credentials>) -> Client {
        Client {
            creds,
            tls: TlsOptions::default(),
            platform: Platform::host(),
            quiet: false,
        }
    }

    /// CAs (`certs.d`, `--ca-file`) and insecure registries.
    pub fn tls(mut self, tls: TlsOptions) -> Client {
        self.tls = tls;
        self
    }

    /// The platform an index resolves to (default: this machine's).
    pub fn platform(mut self, platform: Platform) -> Client {
        self.platform = platform;
        self
    }

    /// No progress bars (they are hidden anyway when stderr is no terminal).
    pub fn quiet(mut self, quiet: bool) -> Client {
        self.quiet = quiet;
        self
    }

    /// Pushes the local image `local` (a name in `store`, or a digest) to
    /// `target`, e.g. `127.0.0.1:5000/kubia:v1`.
    pub fn push(
        &self,
        store: &ImageStore,
        local: &str,
        target: &Reference,
    ) -> Result<PushReport, ClientError> {
        let conn = self.connect(target)?;
        push::push(
            &conn,
            &progress::Progress::new(self.quiet),
            store,
            local,
            target,
        )
    }

    /// Pulls `source` into `store` and names it as Docker shows it: the
    /// familiar name (`busybox:latest` for Docker Hub's
    /// `docker.io/library/busybox:latest`), others as written.
    pub fn pull(
        &self,
        store: &ImageStore,
        source: &Reference,
    ) -> Result<PullReport, ClientError> {
        let local_name = match source.registry.as_deref() {
            Some(crate::reference::DOCKER_HUB) => {
                source.familiar().local_name()
            }
            _ => source.local_name(),
        };
        self.pull_as(store, source, &local_name)
    }

    /// Pulls `source` into `store` named `local_name`: a mirror's copy of
    /// a short name (`kubia:v1` from a cluster's registry) keeps the
    /// short name, as the pod that asked for it wrote it.
    pub fn pull_as(
        &self,
        store: &ImageStore,
        source: &Reference,
        local_name: &str,
    ) -> Result<PullReport, ClientError> {
        let conn = self.connect(source)?;
        pull::pull(
            &conn,
            &progress::Progress::new(self.quiet),
            store,
            source,
            &self.platform,
            local_name,
        )
    }

    /// Checks that the registry (`127.0.0.1:5000`) accepts the credentials,
    /// as `docker login` does: the version check must answer 200.
    pub fn login_check(&self, registry: &str) -> Result<(), ClientError> {
        let conn = http::Conn::new(
            &self.tls,
            self.creds.as_ref(),
            registry,
            registry,
        )?;
        let response =
            conn.call("GET", "/v2/", &[], http::Payload::Empty, None)?;
        conn.expect(response, &[200], || format!("GET {}/v2/", conn.base()))?;
        Ok(())
    }

    fn connect(
        &self,
        reference: &Reference,
    ) -> Result<http::Conn<'_>, ClientError> {
        let registry = reference.registry.as_deref().ok_or_else(|| {
            ClientError::NoRegistry {
                reference: reference.to_string(),
            }
        })?;
        http::Conn::new(
            &self.tls,
            self.creds.as_ref(),
            registry,
            &reference.to_string(),
        )
    }
}
// ANCHOR_END: client
