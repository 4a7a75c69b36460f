//! The cluster's certificates: a CA made once, and the API server's
//! certificate signed by it.
//!
//! A client trusts the server because the kubeconfig carries the CA's
//! certificate (`certificate-authority-data`) and the server shows a
//! certificate that CA signed, for the name the client dialled. So the
//! server's certificate names every way it is reached: `127.0.0.1`,
//! `localhost`, `kubernetes`, `kubernetes.default.svc` (the in-cluster
//! Service), the first Service IP, and any extra names asked for.
//!
//! The CA lives in the data directory (`ca.crt`, `ca.key`, the key 0600)
//! so kubeconfigs written before a restart still work; the server's
//! certificate is made anew at each start (its names may change).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::AuthError;

/// The CA's file names in the data directory.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";

/// The first address of the Service range (`kubernetes.default`'s
/// ClusterIP).
pub const FIRST_SERVICE_IP: &str = "198.19.0.1";

/// The names every server certificate carries.
pub const DEFAULT_SANS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    FIRST_SERVICE_IP,
];

const CA_NAME: &str = "kubelings-ca";

/// The cluster's CA, as loaded from (or first made into) the data
/// directory.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn cert_error(what: &str, e: impl std::fmt::Display) -> AuthError {
    AuthError::Certificate {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// The CA's own parameters. Rebuilt the same way at every start: with the
/// key from `ca.key`, they sign certificates that `ca.crt` verifies (the
/// issuer's name and key identifier come from these and the key).
fn ca_params() -> Result<CertificateParams, AuthError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| cert_error("the CA", e))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    Ok(params)
}

impl Ca {
    /// The CA of `dir`: loaded if `ca.crt` and `ca.key` are there, else
    /// made and saved.
    pub fn load_or_create(dir: &Path) -> Result<Ca, AuthError> {
        let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        if key_path.exists() && cert_path.exists() {
            let read = |p: &Path| {
                fs::read_to_string(p).map_err(|e| AuthError::io(p, e))
            };
            let key = KeyPair::from_pem(&read(&key_path)?)
                .map_err(|e| cert_error(&key_path.display().to_string(), e))?;
            return Ok(Ca {
                cert_pem: read(&cert_path)?,
                issuer: Issuer::new(ca_params()?, key),
            });
        }
        let key = KeyPair::generate().map_err(|e| cert_error("the CA", e))?;
        let params = ca_params()?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| cert_error("the CA", e))?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        fs::write(&cert_path, cert.pem())
            .map_err(|e| AuthError::io(&cert_path, e))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// `ca.crt`, PEM: what a kubeconfig's `certificate-authority-data`
    /// holds.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for the default names and `extra`, signed by
    /// this CA: (certificate PEM, key PEM).
    pub fn server_cert(
        &self,
        extra: &[String],
    ) -> Result<(String, String), AuthError> {
        let mut names: Vec<String> =
            DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
        for name in extra {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut params = CertificateParams::new(names)
            .map_err(|e| cert_error("the server certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()
            .map_err(|e| cert_error("the server certificate", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| cert_error("the server certificate", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The API server's TLS: a fresh certificate for the names, and a
    /// rustls config serving it (no client certificates: clients show
    /// bearer tokens).
    pub fn server_config(
        &self,
        extra: &[String],
    ) -> Result<Arc<rustls::ServerConfig>, AuthError> {
        let (cert_pem, key_pem) = self.server_cert(extra)?;
        let bad =
            |e: &dyn std::fmt::Display| cert_error("the server certificate", e);
        let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| bad(&e))?];
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| bad(&e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&e))?;
        // Our axum speaks HTTP/1.1 only; say so, so a client that offers
        // h2 falls back.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Writes a secret: created 0600, never readable by others even briefly.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    let io = |e| AuthError::io(PathBuf::from(path), e);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn the_ca_is_made_once_and_signs_servers_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ca::load_or_create(dir.path()).unwrap();
        let again = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(first.cert_pem(), again.cert_pem());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(CA_KEY)).unwrap();
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);

        // A certificate made after the reload verifies against the CA
        // saved before it.
        let (cert, _) = again.server_cert(&["api.example".into()]).unwrap();
        let ca = CertificateDer::from_pem_slice(first.cert_pem().as_bytes())
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        for name in ["127.0.0.1", "kubernetes.default.svc", "api.example"] {
            let name = rustls_pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(
                    &leaf,
                    &[],
                    &name,
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .unwrap();
        }
        assert!(again.server_config(&[]).is_ok());
    }
}
