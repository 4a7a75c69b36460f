//! The HTTP side: one handler per endpoint of the distribution API, behind
//! a dispatcher that reads the endpoint from the path (names may hold '/',
//! which a router's patterns cannot express).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use oci_spec::distribution::{RepositoryListBuilder, TagListBuilder};
use percent_encoding::utf8_percent_encode;

use super::auth::{Access, Action, Challenge};
use super::errors::{ApiError, ErrorCode};
use super::manifest;
use super::names::{self, query_get, query_pairs, Reference, Route};
use super::storage::{Storage, StoredManifest};
use super::upload::{finish_upload, Upload, Uploads};
use crate::digest::Digest;

pub const API_VERSION: HeaderName =
    HeaderName::from_static("docker-distribution-api-version");
pub const CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
pub const UPLOAD_UUID: HeaderName =
    HeaderName::from_static("docker-upload-uuid");

/// Everything the handlers share.
pub struct App {
    pub storage: Storage,
    pub uploads: Uploads,
    pub access: Access,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/token", get(token))
        .fallback(dispatch)
        .with_state(app)
}

async fn dispatch(State(app): State<Arc<App>>, request: Request) -> Response {
    let mut response = match handle(&app, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

async fn handle(app: &App, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let query = query_pairs(&parts.uri);
    let headers = &parts.headers;
    let Some(route) = names::route(parts.uri.path())? else {
        return Err(ApiError::new(ErrorCode::Unsupported, "no such endpoint")
            .status(StatusCode::NOT_FOUND));
    };
    let head = parts.method == Method::HEAD;
    // ANCHOR: handle
    match (route, parts.method) {
        (Route::Base, Method::GET | Method::HEAD) => {
            app.access.require_login(headers).await?;
            Ok(json(StatusCode::OK, serde_json::json!({})))
        }
        (Route::Catalog, Method::GET | Method::HEAD) => {
            catalog(app, headers, &query).await
        }
        (Route::Tags { name }, Method::GET | Method::HEAD) => {
            tags(app, headers, &name, &query).await
        }
        (Route::Manifest { name, reference }, Method::GET | Method::HEAD) => {
            get_manifest(app, headers, &name, &reference, head).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            put_manifest(app, headers, &name, &reference, body).await
        }
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            get_blob(app, headers, &name, &digest, head).await
        }
        (Route::UploadStart { name }, Method::POST) => {
            start_upload(app, headers, &name, &query, body).await
        }
        (Route::Upload { name, id }, Method::PATCH) => {
            patch_upload(app, headers, &name, &id, body).await
        }
        (Route::Upload { name, id }, Method::PUT) => {
            put_upload(app, headers, &name, &id, &query, body).await
        }
        (Route::Upload { name, id }, Method::GET) => {
            upload_status(app, headers, &name, &id).await
        }
        (Route::Upload { name, id }, Method::DELETE) => {
            cancel_upload(app, headers, &name, &id).await
        }
        (_, method) => Err(ApiError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported on this endpoint"),
        )),
    }
    // ANCHOR_END: handle
}

fn storage_error(what: &'static str) -> impl Fn(std::io::Error) -> ApiError {
    move |err| ApiError::internal(what, err)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A response with no body and these headers.
fn empty(status: StatusCode, headers: &[(HeaderName, String)]) -> Response {
    let mut response = status.into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name.clone(), value);
        }
    }
    response
}

/// `n` and `last` pagination: the items after `last`, at most `n` of them,
/// and the `last` for the next page if there is one.
fn paginate(
    items: Vec<String>,
    query: &[(String, String)],
) -> (Vec<String>, Option<(usize, String)>) {
    let after: Vec<String> = match query_get(query, "last") {
        Some(last) => items.into_iter().filter(|i| i.as_str() > last).collect(),
        None => items,
    };
    match query_get(query, "n").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if after.len() > n => {
            let page: Vec<String> = after.into_iter().take(n).collect();
            let next = page.last().cloned().map(|last| (n, last));
            (page, next)
        }
        _ => (after, None),
    }
}

fn with_next_link(
    mut response: Response,
    path: &str,
    next: Option<(usize, String)>,
) -> Response {
    if let Some((n, last)) = next {
        let link = format!(
            "<{path}?n={n}&last={}>; rel=\"next\"",
            utf8_percent_encode(&last, names::QUERY_VALUE)
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

/// Lists the repositories this client may pull from.
async fn catalog(
    app: &App,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Response, ApiError> {
    let who = app.access.identify(headers).await?;
    let all = app
        .storage
        .repositories()
        .map_err(storage_error("listing repositories"))?;
    let visible = all
        .into_iter()
        .filter(|name| app.access.permits(&who, name, Action::Pull))
        .collect();
    let (page, next) = paginate(visible, query);
    let list = RepositoryListBuilder::default()
        .repositories(page)
        .build()
        .map_err(|err| ApiError::internal("listing repositories", err))?;
    Ok(with_next_link(
        json(StatusCode::OK, serde_json::json!(list)),
        "/v2/_catalog",
        next,
    ))
}

async fn tags(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    query: &[(String, String)],
) -> Result<Response, ApiError> {
    app.access.require(headers, name, Action::Pull).await?;
    let tags = app
        .storage
        .tags(name)
        .map_err(storage_error("listing tags"))?
        .ok_or_else(|| name_unknown(name))?;
    let (page, next) = paginate(tags, query);
    let list = TagListBuilder::default()
        .name(name)
        .tags(page)
        .build()
        .map_err(|err| ApiError::internal("listing tags", err))?;
    Ok(with_next_link(
        json(StatusCode::OK, serde_json::json!(list)),
        &format!("/v2/{name}/tags/list"),
        next,
    ))
}

fn name_unknown(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NameUnknown,
        "repository name not known to registry",
    )
    .detail(serde_json::json!({ "name": name }))
}

fn manifest_unknown(name: &str, reference: &Reference) -> ApiError {
    let reference = match reference {
        Reference::Tag(tag) => tag.clone(),
        Reference::Digest(digest) => digest.to_string(),
    };
    ApiError::new(ErrorCode::ManifestUnknown, "manifest unknown")
        .detail(serde_json::json!({ "name": name, "reference": reference }))
}

async fn get_manifest(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    reference: &Reference,
    head: bool,
) -> Result<Response, ApiError> {
    // Access first: whether a private repository exists is its own business.
    app.access.require(headers, name, Action::Pull).await?;
    if !app.storage.has_repository(name) {
        return Err(name_unknown(name));
    }
    let digest = match reference {
        Reference::Tag(tag) => app
            .storage
            .tag(name, tag)
            .map_err(storage_error("reading a tag"))?
            .ok_or_else(|| manifest_unknown(name, reference))?,
        Reference::Digest(digest) => digest.clone(),
    };
    let manifest = app
        .storage
        .manifest(name, &digest)
        .map_err(storage_error("reading a manifest"))?
        .ok_or_else(|| manifest_unknown(name, reference))?;
    let headers = [
        (header::CONTENT_TYPE, manifest.media_type.clone()),
        (header::CONTENT_LENGTH, manifest.bytes.len().to_string()),
        (CONTENT_DIGEST, manifest.digest.to_string()),
    ];
    let mut response = if head {
        empty(StatusCode::OK, &[])
    } else {
        Body::from(manifest.bytes).into_response()
    };
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

async fn put_manifest(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    reference: &Reference,
    body: Body,
) -> Result<Response, ApiError> {
    app.access.require(headers, name, Action::Push).await?;
    let too_large = || {
        ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("manifest larger than {} bytes", manifest::MAX_MANIFEST),
        )
        .status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > manifest::MAX_MANIFEST) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, manifest::MAX_MANIFEST)
        .await
        .map_err(|_| too_large())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // ANCHOR: put_manifest
    let checked = manifest::check(&bytes, content_type)?;
    let digest = Digest::of(&bytes);
    if let Reference::Digest(named) = reference {
        if named != &digest {
            return Err(ApiError::digest_invalid(named, &digest));
        }
    }
    // Every blob a manifest names must already be here: a manifest is
    // pushed last, so that nobody can pull an image with missing parts.
    for blob in &checked.blobs {
        let size = app
            .storage
            .blob_size(name, blob)
            .map_err(storage_error("checking a blob"))?;
        if size.is_none() {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                "manifest references unknown blob",
            )
            .detail(serde_json::json!({ "digest": blob })));
        }
    }
    // ANCHOR_END: put_manifest
    for child in &checked.manifests {
        if !app.storage.has_manifest(name, child) {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                "index references unknown manifest",
            )
            .detail(serde_json::json!({ "digest": child })));
        }
    }
    let stored = StoredManifest {
        digest: digest.clone(),
        media_type: checked.media_type,
        bytes: bytes.to_vec(),
    };
    let tag = match reference {
        Reference::Tag(tag) => Some(tag.clone()),
        Reference::Digest(_) => None,
    };
    let repository = name.to_string();
    app.storage
        .run(move |storage| {
            storage.put_manifest(&repository, &stored, tag.as_deref())
        })
        .await
        .map_err(storage_error("storing a manifest"))?;
    Ok(empty(
        StatusCode::CREATED,
        &[
            (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
            (CONTENT_DIGEST, digest.to_string()),
        ],
    ))
}

async fn get_blob(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    digest: &Digest,
    head: bool,
) -> Result<Response, ApiError> {
    app.access.require(headers, name, Action::Pull).await?;
    let size = app
        .storage
        .blob_size(name, digest)
        .map_err(storage_error("checking a blob"))?
        .ok_or_else(|| ApiError::blob_unknown(digest))?;
    let headers = [
        (header::CONTENT_LENGTH, size.to_string()),
        (CONTENT_DIGEST, digest.to_string()),
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
    ];
    let mut response = if head {
        empty(StatusCode::OK, &[])
    } else {
        // Streamed from disk: a layer may be far larger than memory allows.
        let file = tokio::fs::File::open(app.storage.blob_path(digest))
            .await
            .map_err(storage_error("opening a blob"))?;
        // 256 KiB chunks: the default 4 KiB makes a 100 MB blob 25 000 writes.
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        ))
        .into_response()
    };
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (CONTENT_DIGEST, digest.to_string()),
        ],
    )
}

/// Where an upload stands: Location, Range and Docker-Upload-UUID.
fn upload_headers(upload: &Upload) -> [(HeaderName, String); 3] {
    [
        (header::LOCATION, upload.location()),
        (header::RANGE, upload.range()),
        (UPLOAD_UUID, upload.id().to_string()),
    ]
}

/// POST: a cross-repository mount, a whole blob in one request, or the
/// start of an upload in chunks.
async fn start_upload(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    query: &[(String, String)],
    body: Body,
) -> Result<Response, ApiError> {
    // ANCHOR: start_upload
    let who = app.access.require(headers, name, Action::Push).await?;
    if let (Some(mount), Some(from)) =
        (query_get(query, "mount"), query_get(query, "from"))
    {
        let digest = names::parse_digest(mount)?;
        // Mount only what the client could have pulled itself; otherwise
        // fall through to an ordinary upload, revealing nothing.
        if names::is_name(from)
            && app.access.permits(&who, from, Action::Pull)
            && app
                .storage
                .blob_size(from, &digest)
                .map_err(storage_error("checking a blob"))?
                .is_some()
        {
            let (repository, linked) = (name.to_string(), digest.clone());
            app.storage
                .run(move |storage| storage.link_blob(&repository, &linked))
                .await
                .map_err(storage_error("mounting a blob"))?;
            return Ok(blob_created(name, &digest));
        }
    }
    let monolithic = query_get(query, "digest")
        .map(names::parse_digest)
        .transpose()?;
    let upload = app.uploads.create(&app.storage, name)?;
    let mut upload = upload.lock().await;
    if let Some(digest) = monolithic {
        let result =
            finish_upload(&app.storage, &mut upload, &digest, body).await;
        app.uploads.remove(&upload);
        result?;
        return Ok(blob_created(name, &digest));
    }
    Ok(empty(StatusCode::ACCEPTED, &upload_headers(&upload)))
    // ANCHOR_END: start_upload
}

/// An optional `Content-Range: <start>-<end>` (inclusive; a leading
/// "bytes " is tolerated). A chunk must start where the upload stands.
fn check_range(
    headers: &HeaderMap,
    upload: &Upload,
) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    let text = text.strip_prefix("bytes ").unwrap_or(text).trim();
    let parsed = text
        .split_once('-')
        .and_then(|(start, end)| {
            Some((start.parse::<u64>().ok()?, end.parse::<u64>().ok()?))
        })
        .filter(|(start, end)| start <= end);
    let out_of_order = || {
        ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!(
                "chunk must start at byte {} (got Content-Range {text:?})",
                upload.offset()
            ),
        )
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .header(header::LOCATION, upload.location())
        .header(header::RANGE, upload.range())
        .header(UPLOAD_UUID, upload.id())
    };
    match parsed {
        Some((start, end)) if start == upload.offset() => {
            Ok(Some((start, end)))
        }
        _ => Err(out_of_order()),
    }
}

async fn patch_upload(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    app.access.require(headers, name, Action::Push).await?;
    let upload = app.uploads.get(name, id)?;
    let mut upload = upload.lock().await;
    let range = check_range(headers, &upload)?;
    let start = upload.offset();
    let written = upload.append(body).await?;
    if let Some((first, last)) = range {
        if written != last - first + 1 {
            upload.truncate(start).await?;
            return Err(ApiError::new(
                ErrorCode::SizeInvalid,
                format!(
                    "Content-Range announced {} bytes, the body held {written}",
                    last - first + 1
                ),
            ));
        }
    }
    Ok(empty(StatusCode::ACCEPTED, &upload_headers(&upload)))
}

async fn put_upload(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    id: &str,
    query: &[(String, String)],
    body: Body,
) -> Result<Response, ApiError> {
    app.access.require(headers, name, Action::Push).await?;
    let digest = query_get(query, "digest")
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DigestInvalid,
                "the digest parameter is missing",
            )
        })
        .and_then(names::parse_digest)?;
    let upload = app.uploads.get(name, id)?;
    let mut upload = upload.lock().await;
    check_range(headers, &upload)?;
    match finish_upload(&app.storage, &mut upload, &digest, body).await {
        Ok(()) => {
            app.uploads.remove(&upload);
            Ok(blob_created(name, &digest))
        }
        // Wrong bytes can't be fixed by sending more: the upload is over.
        Err(error) if error.code == Some(ErrorCode::DigestInvalid) => {
            app.uploads.remove(&upload);
            Err(error)
        }
        // A final chunk that broke off was cut back: the upload can go on.
        Err(error) => Err(error),
    }
}

async fn upload_status(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    id: &str,
) -> Result<Response, ApiError> {
    app.access.require(headers, name, Action::Push).await?;
    let upload = app.uploads.get(name, id)?;
    let upload = upload.lock().await;
    Ok(empty(StatusCode::NO_CONTENT, &upload_headers(&upload)))
}

async fn cancel_upload(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    id: &str,
) -> Result<Response, ApiError> {
    app.access.require(headers, name, Action::Push).await?;
    let upload = app.uploads.get(name, id)?;
    let upload = upload.lock().await;
    app.uploads.remove(&upload);
    Ok(empty(StatusCode::NO_CONTENT, &[]))
}

/// `GET /token?service=kubelings&scope=repository:NAME:pull,push`, in
/// bearer mode only.
async fn token(State(app): State<Arc<App>>, request: Request) -> Response {
    if app.access.challenge_kind() != Challenge::Bearer {
        return StatusCode::NOT_FOUND.into_response();
    }
    let pairs = query_pairs(request.uri());
    let scopes: Vec<&str> = pairs
        .iter()
        .filter(|(key, _)| key == "scope")
        .flat_map(|(_, value)| value.split(' '))
        .collect();
    match app.access.issue_token(request.headers(), &scopes).await {
        Ok(token) => json(
            StatusCode::OK,
            serde_json::json!({ "token": token, "access_token": token, "expires_in": super::auth::TOKEN_LIFETIME.as_secs() }),
        ),
        Err(error) => error.into_response(),
    }
}
