//! The client's errors: each names the registry, the request or the blob
//! it was about.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::layout::StoreError;
use crate::spec::SpecError;

/// Why a push, pull or login did not work.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{reference} names no registry: write it as 127.0.0.1:5000/{reference}"
    )]
    NoRegistry { reference: String },

    #[error("{reference}: the TLS certificate of {registry} was refused: {problem}; if {registry} uses its own CA, put it in {hint} or pass --ca-file")]
    Certificate {
        reference: String,
        registry: String,
        problem: String,
        hint: String,
    },

    #[error("CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },

    #[error("{what}: {reason}")]
    Redirect { what: String, reason: String },

    #[error("{reference}: the registry sent a manifest of type {media_type:?}, which this client cannot read (it reads OCI and Docker schema 2 manifests and indexes); nothing was stored")]
    MediaType {
        reference: String,
        media_type: String,
    },

    // The cause is in the message and not a source: ureq's I/O errors
    // repeat their own cause, and a chain would print it thrice.
    #[error("{method} {url}: {cause}")]
    Http {
        method: String,
        url: String,
        cause: Box<ureq::Error>,
    },

    #[error("{registry} refused the credentials{}: {message}", if *.anonymous { " (none were given: run `ch02 login` first)" } else { "" })]
    Unauthorized {
        registry: String,
        anonymous: bool,
        message: String,
    },

    #[error("{what}: the registry answered {status} {code}: {message}")]
    Registry {
        what: String,
        status: u16,
        code: String,
        message: String,
    },

    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },

    #[error(
        "{what}: expected digest {expected}, got {actual}; nothing was stored"
    )]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },

    #[error(
        "blob {digest}: expected {expected} bytes, the registry sent {actual}; nothing was stored"
    )]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    #[error("{reference} has no image for {platform} (it has: {available}); choose one with --platform; nothing was stored")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },

    #[error("reading {} for upload: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("credentials file {}: {reason}", path.display())]
    Credentials { path: PathBuf, reason: String },

    // Boxed: the store's errors are large, and every Result here carries one.
    #[error(transparent)]
    Store(Box<StoreError>),

    #[error(transparent)]
    Spec(Box<SpecError>),
}

impl From<StoreError> for ClientError {
    fn from(err: StoreError) -> Self {
        ClientError::Store(Box::new(err))
    }
}

impl From<SpecError> for ClientError {
    fn from(err: SpecError) -> Self {
        ClientError::Spec(Box::new(err))
    }
}
