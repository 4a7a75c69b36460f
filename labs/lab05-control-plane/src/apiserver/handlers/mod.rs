//! The REST verbs on resource paths: one entry point reads the path
//! and the method and hands the request to the verb's handler.
//!
//! - [`get`]: one object, a list, a watch (as JSON or a Table)
//! - [`create`]: POST of a new object
//! - [`update`]: PUT, and the read-modify-write every change goes through
//! - [`patch`]: PATCH of an object
//! - [`delete`]: DELETE of one object or a collection

pub mod create;
pub mod delete;
pub mod get;
pub mod patch;
pub mod update;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::guard::{Attributes, User};
use super::params::ListParams;
use super::route::{self, ResourcePath};
use super::server::ApiServer;
use super::status::{qualified, ApiError};
use super::subresources;
use super::typed::FieldValidation;
use super::{body, meta, resources::Resource};

/// One request to a resource path, read and authenticated.
pub struct Call {
    pub server: Arc<ApiServer>,
    pub user: User,
    pub path: ResourcePath,
    pub method: Method,
    pub uri: Uri,
    /// The query parameters (the last of a repeated one wins).
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The connection, once the answer has switched protocols
    /// (`pods/exec`); `None` where the server cannot upgrade.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// Where a media type asks for a Table.
const TABLE_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// An answer: a status code, a JSON body, warnings.
#[derive(Debug)]
pub struct Reply {
    pub code: StatusCode,
    pub body: Value,
    pub warnings: Vec<String>,
    /// The body is a `meta.k8s.io/v1` Table.
    pub table: bool,
}

impl Reply {
    pub fn new(code: StatusCode, body: Value) -> Reply {
        Reply {
            code,
            body,
            warnings: Vec::new(),
            table: false,
        }
    }

    pub fn ok(body: Value) -> Reply {
        Reply::new(StatusCode::OK, body)
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Reply {
        self.warnings = warnings;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let content_type = if self.table {
            TABLE_TYPE
        } else {
            "application/json"
        };
        let mut response = (
            self.code,
            [(header::CONTENT_TYPE, content_type)],
            self.body.to_string(),
        )
            .into_response();
        for w in &self.warnings {
            // RFC 7234's warn-code 299 ("miscellaneous persistent"), as
            // kube-apiserver sends them; a warning that is not a valid
            // header value is left out rather than failing the answer.
            let text = format!("299 - {}", serde_json::json!(w));
            if let Ok(v) = HeaderValue::from_str(&text) {
                response.headers_mut().append("Warning", v);
            }
        }
        response
    }
}

impl Call {
    pub fn resource(&self) -> &'static Resource {
        self.path.resource
    }

    /// The object's name (empty for a collection).
    pub fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.path.namespace.as_deref()
    }

    /// The object's store key.
    pub fn key(&self) -> String {
        self.resource()
            .key(self.namespace().unwrap_or_default(), self.name())
    }

    /// The query as list and watch parameters.
    pub fn list_params(&self) -> Result<ListParams, ApiError> {
        axum::extract::Query::<ListParams>::try_from_uri(&self.uri)
            .map(|q| q.0)
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// `?dryRun=All`: everything but the write.
    pub fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        FieldValidation::parse(self.param("fieldValidation"))
    }

    /// The Accept header asks for a Table (kubectl get does).
    pub fn wants_table(&self) -> bool {
        self.headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next()
            .is_some_and(|first| {
                first.split(';').any(|p| p.trim() == "as=Table")
            })
    }

    /// Asks the guard whether this request's user may `verb` here.
    pub fn authorize(
        &self,
        verb: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = self.path.name.as_deref();
        let attrs = Attributes {
            verb,
            resource: self.resource(),
            subresource: self.path.subresource.as_deref(),
            namespace: self.namespace(),
            name,
        };
        self.server.guard().authorize(&self.user, &attrs, old, new)
    }

    /// 404 for this object.
    pub fn not_found(&self) -> ApiError {
        let r = self.resource();
        ApiError::not_found(r.group, r.plural, self.name())
    }

    /// The body's object, in the media type its Content-Type names,
    /// checked against the path: the kind and apiVersion of `expect`
    /// (`None`: the resource's own), filled in when missing.
    pub fn body_object(
        &self,
        expect: Option<(&str, &str)>,
    ) -> Result<Value, ApiError> {
        let media = body::content_type(&self.headers);
        let mut tree = body::decode(&media, &self.body)?;
        let r = self.resource();
        let api_version = r.api_version();
        let (want_version, want_kind) =
            expect.unwrap_or((api_version.as_str(), r.kind));
        check_type(&mut tree, want_version, want_kind)?;
        Ok(tree)
    }
}

/// The object's apiVersion and kind must be those of the path; missing
/// ones are taken from it (as kube-apiserver's decoder defaults them).
pub fn check_type(
    tree: &mut Value,
    api_version: &str,
    kind: &str,
) -> Result<(), ApiError> {
    let Some(map) = tree.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of the request is not a {kind} object"
        )));
    };
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), api_version.into());
        }
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the \
                 expected API version ({api_version})"
            )))
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), kind.into());
        }
        Some(k) if k != kind => {
            return Err(ApiError::bad_request(format!(
                "{k} in version \"{}\" cannot be handled as a {kind}: no \
                 kind \"{k}\" is registered for this path",
                api_version.rsplit('/').next().unwrap_or(api_version)
            )))
        }
        Some(_) => {}
    }
    Ok(())
}

/// The object's namespace must be the URL's (or absent, then it is the
/// URL's); a cluster scoped object has none.
pub fn check_namespace(
    tree: &Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let given = meta::meta_str(tree, "namespace").filter(|n| !n.is_empty());
    match (given, namespace) {
        (Some(g), Some(ns)) if g != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the \
             namespace sent on the request",
        )),
        _ => Ok(()),
    }
}

/// Reads the request and runs its verb.
pub async fn dispatch(
    State(server): State<Arc<ApiServer>>,
    request: Request,
) -> Response {
    match run(server, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(
    server: Arc<ApiServer>,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let path =
        route::parse(parts.uri.path()).ok_or_else(ApiError::no_such_path)?;
    let user =
        parts.extensions.get::<User>().cloned().ok_or_else(|| {
            ApiError::internal("request was not authenticated")
        })?;
    let limit = server.options().max_body;
    let body = read_body(body, limit).await?;
    let query = axum::extract::Query::<HashMap<String, String>>::try_from_uri(
        &parts.uri,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let call = Call {
        server,
        user,
        path,
        method: parts.method,
        uri: parts.uri,
        query,
        headers: parts.headers,
        body,
        upgrade,
    };
    route_call(call).await
}

async fn route_call(call: Call) -> Result<Response, ApiError> {
    let has_name = call.path.name.is_some();
    // `/api/v1/pods` lists pods across namespaces; it writes nothing.
    let across = call.resource().namespaced && call.namespace().is_none();
    if across && call.method != Method::GET {
        let r = call.resource();
        return Err(ApiError::method_not_allowed(
            call.method.as_str(),
            &format!("{} across namespaces", qualified(r.group, r.plural)),
        ));
    }
    let sub = call.path.subresource.clone();
    let method = call.method.clone();
    if let Some(sub) = sub {
        return subresources::dispatch(call, &sub).await;
    }
    let reply = match (method, has_name) {
        (Method::GET, true) => get::get(&call).await?,
        (Method::GET, false) => return get::collection(&call).await,
        (Method::POST, false) => create::create(&call).await?,
        (Method::PUT, true) => update::put(&call).await?,
        (Method::PATCH, true) => patch::patch(&call).await?,
        (Method::DELETE, true) => delete::delete(&call).await?,
        (Method::DELETE, false) => delete::collection(&call).await?,
        (method, _) => {
            let r = call.resource();
            return Err(ApiError::method_not_allowed(
                method.as_str(),
                &qualified(r.group, r.plural),
            ));
        }
    };
    Ok(reply.into_response())
}

/// How much more of a body over the limit is read, and dropped, before
/// the 413.
const DRAIN_OVER: usize = 8 * 1024 * 1024;

/// The request body, up to `limit` bytes. The rest of a longer one is
/// read on (up to [`DRAIN_OVER`] more, for 5 s at most) and dropped
/// before the 413: a client still sending then gets the answer, not a
/// reset, and keeps its connection.
async fn read_body(
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(e.to_string()))?;
        if bytes.len() + chunk.len() > limit {
            let mut left = DRAIN_OVER;
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    left = left.saturating_sub(chunk.len());
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
            return Err(ApiError::too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.into())
}
