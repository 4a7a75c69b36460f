//! LIST: the objects of a collection, filtered by label and field
//! selectors, at a resourceVersion, a page at a time.
//!
//! A list is one read of the store under the collection's key prefix, at
//! one revision; that revision is the list's resourceVersion, and a
//! client that watches from it misses nothing. What the client may ask:
//!
//! - no resourceVersion: the newest state; `0`: any state (ours is the
//!   newest too, and whole: like kube-apiserver's watch cache it ignores
//!   `limit` then);
//! - `N` with `resourceVersionMatch=Exact` (or, the legacy way, with a
//!   `limit`): the store as it was at N, 410 once N is compacted;
//! - `N` otherwise: the newest, but not older than N: a server that has
//!   not seen N yet waits a moment, then answers 504.
//!
//! Pages (`limit`, `continue`) are all read at the first page's revision,
//! so a paged list is as consistent as a whole one. Selectors filter
//! after the read, as upstream's do: a page may be short, even empty,
//! and still have a next one.

use std::time::Duration;

use serde_json::Value;

use super::continue_token;
use super::filter::Filter;
use super::params::ListParams;
use super::resources::Resource;
use super::status::ApiError;
use super::stored;
use crate::store::{KeyValue, ListOptions, Revision, Store, StoreError};

/// A list's answer before it is wrapped as `<Kind>List` or a Table.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The objects, each with its resourceVersion.
    pub items: Vec<Value>,
    /// The list's resourceVersion.
    pub resource_version: String,
    /// The `continue` token of the next page, if there is one.
    pub continue_token: Option<String>,
    /// `remainingItemCount`, when known.
    pub remaining: Option<i64>,
}

/// What a list's `resourceVersion` and `resourceVersionMatch` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// The newest state (rv unset, or "0": any).
    Newest,
    /// The newest, which must be at least this revision (NotOlderThan).
    NotOlderThan(Revision),
    /// Exactly this revision (Exact; or a legacy `limit` list at an rv).
    Exact(Revision),
}

/// How long a list at a revision the store has not reached waits for
/// it before answering 504 (kube-apiserver waits up to 3 s in its watch
/// cache; a second is plenty for one process).
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(1);

/// The 410 of a continue token whose revision was compacted, in
/// kube-apiserver's words.
pub const CONTINUE_EXPIRED: &str = "The provided continue parameter is too \
old to display a consistent list result. You can start a new list without \
the continue parameter, or use the continue token in this response to \
retrieve the remainder of the results. Continuing with the provided token \
results in an inconsistent list - objects that were created, modified, or \
deleted between the time the first chunk was returned and now may show up \
in the list.";

/// Read `resourceVersion` / `resourceVersionMatch` (already validated) as
/// the etcd3 store does.
pub fn read_at(params: &ListParams) -> Result<ReadAt, ApiError> {
    let rv = params.resource_version.as_deref().unwrap_or("");
    if rv.is_empty() || rv == "0" {
        return Ok(ReadAt::Newest);
    }
    let n = parse_revision(rv)?;
    Ok(match params.resource_version_match.as_deref() {
        Some("Exact") => ReadAt::Exact(n),
        // The legacy meaning of no match: a paged list at an rv reads
        // exactly there, an unpaged one at least there.
        None | Some("") if params.limit.is_some_and(|l| l > 0) => {
            ReadAt::Exact(n)
        }
        _ => ReadAt::NotOlderThan(n),
    })
}

/// A resourceVersion as a revision; anything else is a 400.
pub fn parse_revision(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!("invalid resource version: {rv:?}"))
        })
}

/// The 504 of a resourceVersion the store has not reached, with the cause
/// clients look for (`ResourceVersionTooLarge`) to retry.
pub fn too_large(requested: Revision, current: Revision) -> ApiError {
    ApiError {
        details: Some(serde_json::json!({
            "causes": [{
                "reason": "ResourceVersionTooLarge",
                "message": "Too large resource version",
            }],
            "retryAfterSeconds": 1,
        })),
        ..ApiError::new(
            504,
            "Timeout",
            format!(
                "Too large resource version: {requested}, current: {current}"
            ),
        )
    }
}

/// Wait (up to [`FRESHNESS_WAIT`]) until the store has reached `revision`.
pub async fn wait_fresh(
    store: &dyn Store,
    revision: Revision,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
    loop {
        let current = store.revision().await?;
        if current >= revision {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(too_large(revision, current));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// List `resource` in `namespace` (`None`: every namespace, or a cluster
/// scoped resource) as `params` ask.
pub async fn list(
    store: &dyn Store,
    resource: &'static Resource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Listed, ApiError> {
    read(store, resource, namespace, params).await?.listed()
}

/// A list's read of the store, before its objects are filtered: what
/// [`Page::listed`] decodes, or [`Page::json`] sends as it is stored.
pub struct Page {
    resource: &'static Resource,
    filter: Filter,
    kvs: Vec<KeyValue>,
    resource_version: String,
    continue_token: Option<String>,
}

/// Read the page of `resource` in `namespace` that `params` ask for.
pub async fn read(
    store: &dyn Store,
    resource: &'static Resource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Page, ApiError> {
    params.validate_list()?;
    let filter = Filter::from_params(resource, params)?;
    let prefix = resource.prefix(namespace);
    // resourceVersion=0 is "any": kube-apiserver answers it from its
    // watch cache, whole, whatever the limit (informers list so).
    let any = params.resource_version.as_deref() == Some("0")
        && params.continue_token.as_deref().is_none_or(str::is_empty);
    let limit = match params.limit {
        Some(l) if l > 0 && !any => {
            Some(usize::try_from(l).unwrap_or(usize::MAX))
        }
        _ => None,
    };
    let mut options = ListOptions {
        limit,
        ..ListOptions::default()
    };
    let token = params.continue_token.as_deref().filter(|t| !t.is_empty());
    let from_token = match token {
        Some(token) => {
            let rv = params.resource_version.as_deref().unwrap_or("");
            if !rv.is_empty() && rv != "0" {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using \
                     continue",
                ));
            }
            let at = continue_token::decode(token, &prefix).map_err(|e| {
                ApiError::bad_request(format!("invalid continue token: {e}"))
            })?;
            options.revision = at.revision;
            options.start_after = Some(continue_token::start_after(&at.start));
            true
        }
        None => {
            match read_at(params)? {
                ReadAt::Newest => {}
                ReadAt::NotOlderThan(n) => wait_fresh(store, n).await?,
                ReadAt::Exact(n) => options.revision = Some(n),
            }
            false
        }
    };
    // ANCHOR: list
    let result = match store.list(&prefix, &options).await {
        Ok(result) => result,
        // All pages are read at the first page's revision; once that is
        // compacted the list cannot go on consistently.
        Err(StoreError::Compacted { .. }) if from_token => {
            return Err(ApiError::new(410, "Expired", CONTINUE_EXPIRED))
        }
        Err(StoreError::FutureRevision { requested, current }) => {
            return Err(too_large(requested, current))
        }
        Err(e) => return Err(e.into()),
    };
    let continue_token = match (result.more, result.kvs.last()) {
        (true, Some(last)) => Some(
            continue_token::encode(&last.key, &prefix, result.revision)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ),
        _ => None,
    };
    Ok(Page {
        resource,
        filter,
        kvs: result.kvs,
        resource_version: result.revision.to_string(),
        continue_token,
    })
    // ANCHOR_END: list
}

impl Page {
    /// The objects that pass the selectors, parsed.
    pub fn listed(self) -> Result<Listed, ApiError> {
        // Filtering after the read, as kube-apiserver does: a page may
        // hold fewer items than `limit` and still have a next page.
        let mut items = Vec::with_capacity(self.kvs.len());
        for kv in &self.kvs {
            let object = stored::decode(kv)?;
            if self.filter.matches(&object) {
                items.push(object);
            }
        }
        Ok(Listed {
            items,
            resource_version: self.resource_version,
            continue_token: self.continue_token,
            remaining: None,
        })
    }

    /// The `<Kind>List` as JSON, each item's bytes as stored with its
    /// resourceVersion spliced in: the bytes [`list_object`] would
    /// serialize to, without a tree of ten thousand objects in between.
    /// Objects are parsed only when a selector must look at them.
    pub fn json(self) -> Result<Vec<u8>, ApiError> {
        let resource = self.resource;
        let size: usize = self.kvs.iter().map(|kv| kv.value.len() + 48).sum();
        let mut out = Vec::with_capacity(size + 256);
        let text = |v: &str| Value::String(v.to_string()).to_string();
        out.extend_from_slice(b"{\"apiVersion\":");
        out.extend_from_slice(text(&resource.api_version()).as_bytes());
        out.extend_from_slice(b",\"items\":[");
        let mut first = true;
        for kv in &self.kvs {
            if self.filter.admit(kv)?.is_none() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            stored::render_into(&mut out, kv, kv.mod_revision)?;
        }
        out.extend_from_slice(b"],\"kind\":");
        out.extend_from_slice(
            text(&format!("{}List", resource.kind)).as_bytes(),
        );
        out.extend_from_slice(b",\"metadata\":");
        let meta = list_metadata(
            &self.resource_version,
            self.continue_token.as_deref(),
            None,
        );
        out.extend_from_slice(meta.to_string().as_bytes());
        out.push(b'}');
        Ok(out)
    }
}

/// The `<Kind>List` object of a list answer.
pub fn list_object(resource: &Resource, listed: &Listed) -> Value {
    serde_json::json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(),
        "metadata": list_metadata(
            &listed.resource_version,
            listed.continue_token.as_deref(),
            listed.remaining,
        ),
        "items": listed.items,
    })
}

/// A list's ListMeta.
fn list_metadata(
    rv: &str,
    continue_token: Option<&str>,
    remaining: Option<i64>,
) -> Value {
    let mut metadata = serde_json::json!({ "resourceVersion": rv });
    if let Some(c) = continue_token {
        metadata["continue"] = Value::String(c.to_string());
    }
    if let Some(n) = remaining {
        metadata["remainingItemCount"] = Value::from(n);
    }
    metadata
}
