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

    #[error("TLS file {}: {reason}", path.display())]
    Tls { path: PathBuf, reason: String },

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
/// The error codes of the OCI distribution spec (v1.1), as oci-spec names
/// them; the body spells them BLOB_UNKNOWN, DIGEST_INVALID, and so on.
pub use oci_spec::distribution::ErrorCode;

/// The status the spec pairs with each code.
pub fn status_of(code: &ErrorCode) -> StatusCode {
    match code {
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
    }
}
// ANCHOR_END: error_codes

/// One error answer: `{"errors":[{"code":...,"message":...,"detail":...}]}`.
#[derive(Debug)]
pub struct ApiError {
    /// `None` for a fault of the server itself, which the spec has no code
    /// for: answered UNKNOWN, as Docker's registry does.
    pub code: Option<ErrorCode>,
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra headers: the auth challenge, an upload's Range and Location.
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status_of(&code),
            code: Some(code),
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

    pub fn header(
        mut self,
        name: HeaderName,
        value: impl Into<String>,
    ) -> ApiError {
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
        ApiError {
            code: None,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{what} failed on the server"),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// The code as the body spells it.
    pub fn code_name(&self) -> String {
        self.code
            .as_ref()
            .and_then(|code| serde_json::to_value(code).ok())
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_else(|| "UNKNOWN".to_string())
    }

    /// The JSON body, as sent.
    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.code_name(),
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
            self.code_name(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_the_spec_spells_them() {
        let spelled =
            |error: ApiError| (error.status.as_u16(), error.code_name());
        assert_eq!(
            spelled(ApiError::new(ErrorCode::BlobUploadUnknown, "x")),
            (404, "BLOB_UPLOAD_UNKNOWN".into())
        );
        assert_eq!(
            spelled(ApiError::new(ErrorCode::TooManyRequests, "x")),
            (429, "TOOMANYREQUESTS".into())
        );
        assert_eq!(
            spelled(ApiError::internal("a test", "nothing")),
            (500, "UNKNOWN".into())
        );
    }
}
