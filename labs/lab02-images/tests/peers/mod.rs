//! What the client, TLS, redirect and interop self-checks share: small
//! images, Debian's docker-registry run by the test itself (plain or with
//! TLS), and a CA with certificates made on the spot (rcgen).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab02::layout::ImageStore;
use lab02::{spec, Digest};
use oci_spec::image::Descriptor;

pub fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        ImageStore::open(&dir.path().join("store")).expect("open store");
    (dir, store)
}

/// Deterministic bytes that do not compress (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A one-layer image in `store`, tagged `name`: a real tar+gzip layer
/// holding `/data` with `content`, and a config for linux/`arch`.
pub fn build_image(
    store: &ImageStore,
    name: &str,
    content: &[u8],
    arch: &str,
) -> Descriptor {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "data", content).expect("tar");
    let tar = tar.into_inner().expect("tar");
    let mut gzip =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar).unwrap();
    let layer = gzip.finish().unwrap();

    let layer_digest = store.write_blob(&layer).expect("layer blob");
    let layer_desc = spec::descriptor(
        spec::MEDIA_TYPE_LAYER_GZIP,
        &layer_digest,
        layer.len() as u64,
    );
    let config = spec::image_config(
        "linux",
        arch,
        &spec::ExecConfig::default(),
        &[Digest::of(&tar)],
        &[],
        None,
    )
    .expect("config");
    let (config_bytes, config_desc) =
        spec::config_blob(&config).expect("config blob");
    store.write_blob(&config_bytes).expect("store config");
    let manifest =
        spec::image_manifest(config_desc, vec![layer_desc], BTreeMap::new())
            .expect("manifest");
    let desc = store.put_manifest(&manifest).expect("put manifest");
    store.tag(name, &desc).expect("tag");
    desc
}

pub fn digest(desc: &Descriptor) -> Digest {
    spec::digest_of(desc).expect("sha256 digest")
}

/// The blobs of the image `desc` names: config first, then layers.
pub fn blobs(store: &ImageStore, desc: &Descriptor) -> Vec<Digest> {
    let manifest = store.manifest(desc).expect("manifest");
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .map(digest)
        .collect()
}

/// A free loopback port: bind port 0, note it, let it go.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// A certificate and its key, as PEM files.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA made for one test, which signs server certificates.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA's certificate (PEM), what a client is told to trust.
    pub cert: PathBuf,
    dir: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let key = KeyPair::generate().expect("CA key");
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "kubelings test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("ca.crt");
        std::fs::write(&path, cert.pem()).unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            cert: path,
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses),
    /// valid now, or (with `expired`) only in 2020.
    pub fn server(
        &self,
        label: &str,
        names: &[&str],
        expired: bool,
    ) -> CertFiles {
        use rcgen::{
            date_time_ymd, CertificateParams, DnType, ExtendedKeyUsagePurpose,
            KeyPair,
        };
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, label);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2020, 12, 31);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let files = CertFiles {
            cert: self.dir.join(format!("{label}.crt")),
            key: self.dir.join(format!("{label}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// Debian's docker-registry (Docker's distribution), run with our own
/// config on a free loopback port, killed by pid when dropped.
pub struct DockerRegistry {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl DockerRegistry {
    const BINARY: &'static str = "/usr/bin/docker-registry";

    /// None (after saying why) when the binary is missing, unless in CI.
    pub fn start() -> Option<DockerRegistry> {
        DockerRegistry::start_with(None)
    }

    /// The same, serving HTTPS with `tls`.
    pub fn start_tls(tls: &CertFiles) -> Option<DockerRegistry> {
        DockerRegistry::start_with(Some(tls))
    }

    fn start_with(tls: Option<&CertFiles>) -> Option<DockerRegistry> {
        if !lab01::probe::require_program("docker-registry") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = free_addr();
        let config = dir.path().join("config.yml");
        let tls_lines = tls.map_or(String::new(), |t| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            )
        });
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {addr}\n{tls_lines}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        // It logs every 404 (and a HEAD for a missing blob is routine):
        // keep its log beside the config, shown only if it fails to start.
        let log = std::fs::File::create(dir.path().join("registry.log"))
            .expect("log file");
        let mut command = Command::new(Self::BINARY);
        command
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // Its REGISTRY_* variables would override our config.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(key);
            }
        }
        let child = command.spawn().expect("start docker-registry");
        let registry = DockerRegistry { child, addr, dir };
        registry.wait_ready(tls.is_some());
        Some(registry)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Polls until it answers, for at most 20 s: `/v2/` in plain HTTP, or
    /// (with TLS, whose CA this check does not know) an open port.
    fn wait_ready(&self, tls: bool) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if tls {
                if TcpStream::connect(self.addr).is_ok() {
                    return;
                }
            } else if let Ok(response) =
                agent.get(format!("http://{}/v2/", self.addr)).call()
            {
                if response.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log"))
            .unwrap_or_default();
        panic!(
            "docker-registry did not answer on {} within 20 s; its log:\n{log}",
            self.addr
        );
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
