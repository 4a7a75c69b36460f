//! Which registries are spoken to over HTTPS, which roots their
//! certificates must chain to, and what a refused certificate means.
//!
//! As Docker does: Mozilla's roots (the `webpki-root-certs` crate, the set
//! Debian's ca-certificates ships too), plus a registry's own CA from
//! `$KUBELINGS_HOME/certs.d/<host[:port]>/ca.crt` or `--ca-file`. Plain
//! HTTP only for a registry on this machine or one named insecure, and even
//! there HTTPS is tried first: a certificate it refuses is never a reason to
//! fall back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::CertificateError;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

use super::errors::ClientError;
use crate::reference::is_loopback;

// ANCHOR: tls_options
/// Where the client finds CAs, and which registries may answer in plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `certs.d`: one directory per registry (`127.0.0.1:5000`), holding
    /// `ca.crt` (and any other `*.crt`), as Docker's /etc/docker/certs.d.
    pub certs_dir: Option<PathBuf>,
    /// CAs trusted for every registry (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Registries that may answer in plain HTTP (`--insecure-registry`).
    pub insecure: Vec<String>,
}
// ANCHOR_END: tls_options

/// How to reach one registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS, verified.
    Https,
    /// HTTPS if the registry speaks it (verified all the same), else plain
    /// HTTP: for loopback and insecure registries.
    HttpsOrHttp,
}

impl TlsOptions {
    /// How `registry` (`host[:port]`) is reached.
    pub fn transport(&self, registry: &str) -> Transport {
        if is_loopback(registry) || self.is_insecure(registry) {
            Transport::HttpsOrHttp
        } else {
            Transport::Https
        }
    }

    /// Whether plain HTTP is allowed to `authority` (`host[:port]`), as a
    /// registry or as the target of a redirect.
    pub fn allows_http(&self, authority: &str) -> bool {
        is_loopback(authority) || self.is_insecure(authority)
    }

    fn is_insecure(&self, registry: &str) -> bool {
        // `host` names the host on any port; `host:port` that port only.
        let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
        self.insecure.iter().any(|i| i == registry || i == host)
    }

    /// The CA files that apply to `registry`: `--ca-file`, then every
    /// `*.crt` in `certs.d/<registry>/`.
    pub fn ca_files_for(&self, registry: &str) -> Vec<PathBuf> {
        let mut files = self.ca_files.clone();
        if let Some(dir) = &self.certs_dir {
            let dir = dir.join(registry);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                    .collect();
                found.sort();
                files.extend(found);
            }
        }
        files
    }

    /// ureq's TLS settings for `registry`: the roots plus its CAs.
    pub fn config_for(&self, registry: &str) -> Result<TlsConfig, ClientError> {
        let mut roots: Vec<Certificate<'static>> =
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect();
        for file in self.ca_files_for(registry) {
            roots.extend(read_certificates(&file)?);
        }
        Ok(TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            // ring, the one provider built in (ureq's default would be
            // the process-wide one, which nothing here installs).
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build())
    }
}

/// Every certificate in a PEM file; none at all is an error.
fn read_certificates(
    path: &Path,
) -> Result<Vec<Certificate<'static>>, ClientError> {
    let bad = |reason: String| ClientError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(cert) =
            item.map_err(|e| bad(e.to_string()))?
        {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// What was wrong with a certificate the client refused, in words, if
/// that is why `err` happened.
pub fn certificate_problem(err: &ureq::Error) -> Option<String> {
    let ureq::Error::Io(io) = err else {
        return None;
    };
    let rustls_error = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    let rustls::Error::InvalidCertificate(cert) = rustls_error else {
        return None;
    };
    Some(match cert {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".to_string()
        }
        CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".to_string()
        }
        CertificateError::NotValidForName
        | CertificateError::NotValidForNameContext { .. } => {
            "it is not for this host name (a mismatched name)".to_string()
        }
        CertificateError::UnknownIssuer => {
            "it was signed by an unknown certificate authority".to_string()
        }
        CertificateError::Revoked => "it has been revoked".to_string(),
        // webpki's reason, which rustls wraps.
        CertificateError::Other(other)
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            "it is a CA certificate, used as the server's own (sign a server \
             certificate with that CA instead)"
                .to_string()
        }
        _ => rustls_error.to_string(),
    })
}
