//! The registry's errors: the ones that stop it from starting, and the ones
//! it answers a request with, shaped exactly as the distribution spec says.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::digest::Digest;

/// Why the registry could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot use {root} as the registry's storage: {source}")]
    Storage {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read the users file {path}: {source}")]
    Users {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}:{line}: {reason}")]
    UsersLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("private repositories ({0}) need a users file: nobody could ever pull them")]
    PrivateWithoutUsers(String),

    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("the registry's runtime failed: {0}")]
    Runtime(#[source] std::io::Error),

    #[error("the registry's server thread panicked")]
    Panicked,
}

// ANCHOR: error_codes
/// The error codes of the OCI distribution spec (v1.1), with their statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// Not in the spec: a fault of the server itself (Docker's registry says the same).
    Unknown,
}

impl ErrorCode {
    /// The code as it appears in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            // Spelled without underscores in the spec's table.
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The status the spec pairs with the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
// ANCHOR_END: error_codes

/// One error answer: `{"errors":[{"code":...,"message":...,"detail":...}]}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra headers: the auth challenge, an upload's Range and Location.
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    pub fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    pub fn blob_unknown(digest: &Digest) -> ApiError {
        ApiError::new(ErrorCode::BlobUnknown, "blob unknown to registry")
            .detail(serde_json::json!({ "digest": digest }))
    }

    /// The complete upload does not hash to the digest the client named.
    pub fn digest_invalid(expected: &Digest, actual: &Digest) -> ApiError {
        ApiError::new(
            ErrorCode::DigestInvalid,
            "provided digest did not match uploaded content",
        )
        .detail(serde_json::json!({ "expected": expected, "actual": actual }))
    }

    /// A fault on the server's side (a disk error): logged, and answered 500.
    pub fn internal(what: &str, err: impl std::fmt::Display) -> ApiError {
        eprintln!("registry: {what}: {err}");
        ApiError::new(ErrorCode::Unknown, format!("{what} failed on the server"))
    }

    /// The JSON body, as sent.
    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.code.as_str(),
            "message": self.message,
        });
        if let Some(detail) = &self.detail {
            error["detail"] = detail.clone();
        }
        serde_json::json!({ "errors": [error] })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}
