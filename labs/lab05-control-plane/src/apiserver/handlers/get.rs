//! GET: one object, a collection (a list, or with `watch=true` a
//! watch), as JSON or, when the Accept header asks, as a Table.

use std::time::SystemTime;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{Call, Reply};
use crate::apiserver::status::ApiError;
use crate::apiserver::table::{self, IncludeObject};
use crate::apiserver::watch::{self, WatchOutput};
use crate::apiserver::{list, stored};

/// The object at the call's path, as stored now.
pub async fn read(call: &Call) -> Result<Value, ApiError> {
    let kv = call
        .server
        .store()
        .get(&call.key())
        .await?
        .ok_or_else(|| call.not_found())?;
    stored::decode(&kv)
}

/// `?includeObject=` of a Table request.
fn include(call: &Call) -> IncludeObject {
    match call.param("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// `objects` as the answer: a Table if asked for, else `whole`.
fn answer(call: &Call, objects: &[Value], rv: &str, whole: Value) -> Reply {
    if !call.wants_table() {
        return Reply::ok(whole);
    }
    table_reply(call, objects, rv)
}

/// `objects` as a Table.
fn table_reply(call: &Call, objects: &[Value], rv: &str) -> Reply {
    let t = table::to_table(
        call.resource(),
        objects,
        rv,
        include(call),
        SystemTime::now(),
    );
    let mut reply = Reply::ok(t);
    reply.table = true;
    reply
}

/// GET of one object.
pub async fn get(call: &Call) -> Result<Reply, ApiError> {
    call.authorize("get", None, None)?;
    let object = read(call).await?;
    let rv = object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(answer(
        call,
        std::slice::from_ref(&object),
        &rv,
        object.clone(),
    ))
}

/// GET of a collection: a list, or a watch.
pub async fn collection(call: &Call) -> Result<Response, ApiError> {
    let params = call.list_params()?;
    let resource = call.resource();
    let namespace = call.namespace().map(str::to_string);
    if params.is_watch() {
        call.authorize("watch", None, None)?;
        let output = if call.wants_table() {
            WatchOutput::Table
        } else {
            WatchOutput::Object
        };
        let store = call.server.store().clone();
        return watch::watch(store, resource, namespace, params, output).await;
    }
    call.authorize("list", None, None)?;
    let store = call.server.store();
    let page =
        list::read(store.as_ref(), resource, namespace.as_deref(), &params)
            .await?;
    if !call.wants_table() {
        // The stored bytes, spliced: no tree of every object in between.
        let json = page.json()?;
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response());
    }
    let listed = page.listed()?;
    let mut reply = table_reply(call, &listed.items, &listed.resource_version);
    // A Table's ListMeta carries the page's continue token too: kubectl
    // pages through Tables (`--chunk-size`).
    if let Some(c) = &listed.continue_token {
        reply.body["metadata"]["continue"] = Value::String(c.clone());
    }
    Ok(reply.into_response())
}
