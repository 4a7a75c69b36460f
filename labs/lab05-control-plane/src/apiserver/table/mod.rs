//! Server-side printing: the `Table` kubectl asks for
//! (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), with the
//! columns kubectl shows for each kind.
//!
//! The columns and cells follow kube-apiserver's printers
//! (pkg/printers/internalversion/printers.go). Like kube-apiserver, the
//! server always fills the wide (`-o wide`, priority 1) cells too; kubectl
//! drops the columns it was not asked for. The column descriptions are
//! our own short ones: kubectl never prints them.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::resources::Resource;

pub mod age;
pub mod cluster;
mod config;
pub mod pods;
mod services;
mod workloads;

/// What each row carries as its `object` (`includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    /// The default: the object's metadata as a PartialObjectMetadata.
    #[default]
    Metadata,
    Object,
}

/// One column of a Table (`TableColumnDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// `string` or `integer`.
    pub kind: &'static str,
    /// `name` for the column that names the object, else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

const fn column(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 0,
    }
}

const fn integer(name: &'static str, description: &'static str) -> Column {
    Column {
        kind: "integer",
        ..column(name, description)
    }
}

const fn wide(c: Column) -> Column {
    Column { priority: 1, ..c }
}

const NAME: Column = Column {
    format: "name",
    ..column("Name", "The object's name, unique in its namespace.")
};

const AGE: Column = column("Age", "How long ago the object was created.");

const CONTAINERS: Column = wide(column(
    "Containers",
    "The names of the template's containers.",
));

const IMAGES: Column =
    wide(column("Images", "The images of the template's containers."));

const SELECTOR: Column =
    wide(column("Selector", "The labels that select the pods."));

/// A kind's printer: its columns and the cells of one object.
struct Printer {
    columns: &'static [Column],
    cells: fn(&Value, SystemTime) -> Vec<Value>,
}

/// Resources without a printer upstream get a name and an age.
static DEFAULT: Printer = Printer {
    columns: &[NAME, AGE],
    cells: |o, now| {
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            typed(&o["metadata"]);
        vec![
            json!(meta.name.unwrap_or_default()),
            json!(age::since(
                meta.creation_timestamp.as_ref().map(|t| &t.0),
                now
            )),
        ]
    },
};

fn printer(kind: &str) -> &'static Printer {
    match kind {
        "Pod" => &pods::PRINTER,
        "Node" => &cluster::NODES,
        "Namespace" => &cluster::NAMESPACES,
        "Event" => &cluster::EVENTS,
        "Lease" => &cluster::LEASES,
        "Service" => &services::SERVICES,
        "Endpoints" => &services::ENDPOINTS,
        "EndpointSlice" => &services::ENDPOINT_SLICES,
        "ConfigMap" => &config::CONFIG_MAPS,
        "Secret" => &config::SECRETS,
        "ReplicationController" => &workloads::REPLICATION_CONTROLLERS,
        "ReplicaSet" => &workloads::REPLICA_SETS,
        "Deployment" => &workloads::DEPLOYMENTS,
        "DaemonSet" => &workloads::DAEMON_SETS,
        "Job" => &workloads::JOBS,
        _ => &DEFAULT,
    }
}

/// The columns of a kind's Table.
pub fn columns(kind: &str) -> &'static [Column] {
    printer(kind).columns
}

/// An object's JSON as its k8s-openapi type. Stored objects were
/// validated on the way in, so a failure only loses cells: the printer
/// sees an empty object rather than the request failing.
pub(crate) fn typed<T: DeserializeOwned + Default>(object: &Value) -> T {
    serde_json::from_value(object.clone()).unwrap_or_default()
}

// ANCHOR: to_table
/// A `meta.k8s.io/v1` Table of `objects` (each the JSON of one object of
/// `resource`), at list resourceVersion `resource_version`; ages are
/// measured against `now`.
pub fn to_table(
    resource: &Resource,
    objects: &[Value],
    resource_version: &str,
    include: IncludeObject,
    now: SystemTime,
) -> Value {
    let printer = printer(resource.kind);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({
                "cells": (printer.cells)(o, now),
                "object": row_object(resource, o, include),
            });
            if resource.kind == "Pod" {
                if let Some(c) = pods::row_conditions(o) {
                    row["conditions"] = c;
                }
            }
            row
        })
        .collect();
    let columns: Vec<Value> = printer
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": resource_version },
        "columnDefinitions": columns,
        "rows": rows,
    })
}
// ANCHOR_END: to_table

/// A row's `object`: kubectl reads labels (`--show-labels`), the
/// namespace (`-A`) and the name from it.
fn row_object(
    resource: &Resource,
    object: &Value,
    include: IncludeObject,
) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => {
            let mut o = object.clone();
            // Stored objects may lack their type; the row says it.
            if o.get("kind").is_none() {
                o["kind"] = json!(resource.kind);
                o["apiVersion"] = json!(resource.api_version());
            }
            o
        }
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
        }),
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
pub(crate) fn format_labels(
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> String {
    match labels {
        Some(l) if !l.is_empty() => l
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// A label selector as `metav1.FormatLabelSelector` writes it: the
/// requirements sorted by key (`app=kubia,env in (dev,prod),!canary`),
/// `<none>` when it selects by nothing.
pub(crate) fn format_selector(
    selector: Option<
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    >,
) -> String {
    let Some(selector) = selector else {
        return "<none>".into();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let values = values.join(",");
        let k = &e.key;
        let text = match e.operator.as_str() {
            "In" => format!("{k} in ({values})"),
            "NotIn" => format!("{k} notin ({values})"),
            "Exists" => k.clone(),
            "DoesNotExist" => format!("!{k}"),
            other => format!("{k} {other} ({values})"),
        };
        reqs.push((k.clone(), text));
    }
    // A stable sort by key, as the selector's requirements are ordered.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    if reqs.is_empty() {
        return "<none>".into();
    }
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(
    spec: Option<&k8s_openapi::api::core::v1::PodSpec>,
) -> (String, String) {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

/// The AGE cell of an object's metadata.
pub(crate) fn age_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    now: SystemTime,
) -> Value {
    json!(age::since(
        meta.creation_timestamp.as_ref().map(|t| &t.0),
        now
    ))
}

/// The NAME cell.
pub(crate) fn name_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Value {
    json!(meta.name.clone().unwrap_or_default())
}
