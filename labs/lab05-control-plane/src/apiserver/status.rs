//! Errors as the API answers them: a `Status` object with an HTTP code
//! and a reason, the shape kubectl prints (`Error from server
//! (NotFound): pods "x" not found`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use lab03::validate::{ErrorType, FieldError};

use crate::store::StoreError;

/// One failed request, as kube-apiserver's `StatusError`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`,
    /// `Expired`, `Unauthorized`, `Forbidden`, `RequestEntityTooLarge`,
    /// `UnsupportedMediaType`, `MethodNotAllowed`, `InternalError`,
    /// `ServiceUnavailable`, `Gone`.
    pub reason: &'static str,
    pub message: String,
    /// `details`: name, group, kind (the plural), causes.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `details` of an error about one object: `{"name", "group", "kind"}`,
/// where kind is the resource's plural, as kube-apiserver fills it.
fn details(group: &str, plural: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": plural });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// `pods` or `deployments.apps`, as messages name a resource.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    pub fn new(
        code: u16,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404: `pods "x" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            details: Some(details(group, plural, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(group, plural)),
            )
        }
    }

    /// 409: `pods "x" already exists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            details: Some(details(group, plural, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!(
                    "{} \"{name}\" already exists",
                    qualified(group, plural)
                ),
            )
        }
    }

    /// 409: the object changed since the resourceVersion the client sent.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            details: Some(details(group, plural, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object \
                     has been modified; please apply your changes to the latest \
                     version and try again",
                    qualified(group, plural)
                ),
            )
        }
    }

    /// 422: `Pod "x" is invalid: spec.containers[0].image: Required value`,
    /// every field error also a cause.
    pub fn invalid(
        group: &str,
        kind: &str,
        name: &str,
        errors: &[FieldError],
    ) -> Self {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                json!({
                    "reason": cause_reason(&e.kind),
                    "message": cause_message(e),
                    "field": e.path,
                })
            })
            .collect();
        let mut d = json!({ "name": name, "kind": kind, "causes": causes });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        let kind_q = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            details: Some(d),
            ..Self::new(
                422,
                "Invalid",
                format!("{kind_q} \"{name}\" is invalid: {joined}"),
            )
        }
    }

    /// 400 with the message as given.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410: `too old resource version: 5 (100)`.
    pub fn expired(requested: i64, oldest: i64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 403: `pods "x" is forbidden: <why>`.
    pub fn forbidden(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let what = qualified(group, plural);
        let message = if name.is_empty() {
            format!("{what} is forbidden: {why}")
        } else {
            format!("{what} \"{name}\" is forbidden: {why}")
        };
        ApiError {
            details: Some(details(group, plural, name)),
            ..Self::new(403, "Forbidden", message)
        }
    }

    /// 404 for a path that names nothing the server serves.
    pub fn no_such_path() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    /// 405: a verb the path does not take.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
    }

    /// 415: a body in a format the server does not read.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        let _ = content_type;
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted \
             media types include: application/json, application/yaml",
        )
    }

    /// 413: a body over the server's limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 503: the server cannot do this now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::expired(requested, compacted),
            // The handlers turn the others into the resource's own words
            // (not found, already exists, conflict) where they know the
            // object; these are the fallbacks.
            StoreError::NotFound { key } => {
                ApiError::new(404, "NotFound", format!("{key} not found"))
            }
            StoreError::AlreadyExists { key } => {
                ApiError::new(409, "AlreadyExists", format!("{key} already exists"))
            }
            StoreError::Conflict { key, .. } => {
                ApiError::new(409, "Conflict", format!("{key} was modified"))
            }
            StoreError::FutureRevision { requested, current } => ApiError::new(
                504,
                "Timeout",
                format!(
                    "Too large resource version: {requested}, current: {current}"
                ),
            ),
            StoreError::Backend(m) => ApiError::internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.to_status().to_string(),
        )
            .into_response()
    }
}

/// A cause's message is the error without its field (`Required
/// value`): kubectl prints `<field>: <message>` from the two.
fn cause_message(e: &FieldError) -> String {
    let text = e.to_string();
    match text.strip_prefix(&format!("{}: ", e.path)) {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// A field error's `causes[].reason`, as apimachinery's field.ErrorType.
fn cause_reason(kind: &ErrorType) -> &'static str {
    match kind {
        ErrorType::NotFound => "FieldValueNotFound",
        ErrorType::Required => "FieldValueRequired",
        ErrorType::Duplicate => "FieldValueDuplicate",
        ErrorType::Invalid => "FieldValueInvalid",
        ErrorType::NotSupported => "FieldValueNotSupported",
        ErrorType::Forbidden => "FieldValueForbidden",
    }
}
