//! Manifests: YAML or JSON into `k8s_openapi`'s types (a `Pod` here,
//! a `Service` in chapter 4), strictly.
//!
//! `k8s_openapi`'s `Deserialize` skips fields it does not know, so a typo
//! such as `imagePullPolizy` would vanish without a word. The API server
//! (with kubectl's default `--validate=strict`) refuses it instead. We do
//! the same by comparing the input's value tree with the tree of the `Pod`
//! it became: a key that did not survive the round trip is unknown.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A field of the input that the Pod type does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// Its field path, `spec.containers[0].imagePullPolizy`.
    pub path: String,
}

impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: unknown field", self.path)
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML (or JSON) at all.
    #[error("invalid {format} at line {line}, column {column}: {message}")]
    Syntax {
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// A document that is not a mapping at its top.
    #[error("document {document}: expected an object with apiVersion and kind")]
    NotAnObject { document: usize },
    #[error("document {document}: apiVersion {found:?} is not {expected:?}")]
    WrongApiVersion {
        document: usize,
        found: String,
        expected: &'static str,
    },
    #[error("document {document}: kind {found:?} is not {expected:?}")]
    WrongKind {
        document: usize,
        found: String,
        expected: &'static str,
    },
    /// A known field with a value of the wrong type.
    #[error("document {document}: {path}: {message}")]
    BadValue {
        document: usize,
        path: String,
        message: String,
    },
    /// Fields the Pod type does not have, as the API server's strict
    /// decoding lists them.
    #[error("document {document}: strict decoding error: {}", list(.fields))]
    UnknownFields {
        document: usize,
        fields: Vec<UnknownField>,
    },
    #[error("the manifest holds no object")]
    Empty,
}

fn list(fields: &[UnknownField]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field {:?}", f.path))
        .collect();
    quoted.join(", ")
}

/// Parses one Pod (the manifest must hold exactly one object).
pub fn parse_pod(text: &str) -> Result<Pod, ManifestError> {
    let mut pods = parse_pods(text)?;
    match pods.len() {
        0 => Err(ManifestError::Empty),
        _ => Ok(pods.swap_remove(0)),
    }
}

// ANCHOR: parse_pods
/// Parses every Pod in `text`: one JSON object, or YAML documents
/// separated by `---` (empty documents are skipped, as kubectl does).
pub fn parse_pods(text: &str) -> Result<Vec<Pod>, ManifestError> {
    parse_objects(text)
}
// ANCHOR_END: parse_pods

/// Parses every object of kind `T` in `text`, as [`parse_pods`] does Pods:
/// each must have `T`'s apiVersion and kind, and no field `T` lacks.
pub fn parse_objects<T>(text: &str) -> Result<Vec<T>, ManifestError>
where
    T: Resource + DeserializeOwned + Serialize,
{
    let mut objects = Vec::new();
    for (index, tree) in documents(text)?.into_iter().enumerate() {
        if !tree.is_null() {
            objects.push(object_from_tree(index + 1, tree)?);
        }
    }
    if objects.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(objects)
}

/// The documents of `text` as value trees: one JSON object, or YAML
/// documents separated by `---` (empty ones are null).
pub fn documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    if text.trim_start().starts_with('{') {
        Ok(vec![json_tree(text)?])
    } else {
        yaml_trees(text)
    }
}

fn json_tree(text: &str) -> Result<Value, ManifestError> {
    serde_json::from_str(text).map_err(|e| ManifestError::Syntax {
        format: "JSON",
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

fn yaml_trees(text: &str) -> Result<Vec<Value>, ManifestError> {
    use serde::Deserialize;
    let syntax = |e: serde_yaml::Error| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        ManifestError::Syntax {
            format: "YAML",
            line,
            column,
            message: e.to_string(),
        }
    };
    let mut trees = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let yaml = serde_yaml::Value::deserialize(document).map_err(syntax)?;
        // A YAML tree becomes a JSON one so both formats share one path;
        // only non-string keys fail here, and a Pod has none.
        let tree = serde_json::to_value(yaml).map_err(|e| ManifestError::Syntax {
            format: "YAML",
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        trees.push(tree);
    }
    Ok(trees)
}

/// One document's tree as a `T`, strictly; `document` (from 1) is named in errors.
pub fn object_from_tree<T>(document: usize, mut tree: Value) -> Result<T, ManifestError>
where
    T: Resource + DeserializeOwned + Serialize,
{
    let Some(object) = tree.as_object() else {
        return Err(ManifestError::NotAnObject { document });
    };
    let text_of = |key: &str| match object.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let (api_version, kind) = (text_of("apiVersion"), text_of("kind"));
    if api_version != T::API_VERSION {
        return Err(ManifestError::WrongApiVersion {
            document,
            found: api_version,
            expected: T::API_VERSION,
        });
    }
    if kind != T::KIND {
        return Err(ManifestError::WrongKind {
            document,
            found: kind,
            expected: T::KIND,
        });
    }
    quantities_as_strings(&mut tree, false);
    let object: T =
        serde_path_to_error::deserialize(&tree).map_err(|e| ManifestError::BadValue {
            document,
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    let known = serde_json::to_value(&object).map_err(|e| ManifestError::BadValue {
        document,
        path: String::new(),
        message: e.to_string(),
    })?;
    let mut fields = Vec::new();
    unknown_fields(&tree, &known, "", &mut fields);
    if !fields.is_empty() {
        return Err(ManifestError::UnknownFields { document, fields });
    }
    Ok(object)
}

/// YAML writes `cpu: 1` as a number, but `Quantity` reads only strings:
/// turn the numbers in quantity maps (`limits`, `requests`, `overhead`) and
/// `sizeLimit` into their text, as the API server's Quantity accepts both.
fn quantities_as_strings(tree: &mut Value, in_quantities: bool) {
    match tree {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "sizeLimit" || (in_quantities && value.is_number()) {
                    if let Value::Number(n) = value {
                        *value = Value::String(n.to_string());
                    }
                    continue;
                }
                let quantities = matches!(key.as_str(), "limits" | "requests" | "overhead");
                quantities_as_strings(value, quantities);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| quantities_as_strings(v, false)),
        _ => {}
    }
}

// ANCHOR: unknown_fields
/// Walks `input` beside `known` (the same object after a round trip
/// through the Pod type) and pushes every key of `input` that `known`
/// lacks, with its path: `spec.containers[0].imagePullPolizy`. A key whose
/// value is null carries nothing and is skipped: the round trip drops it
/// whether it is known or not.
pub fn unknown_fields(
    input: &Value, // the manifest as written
    known: &Value, // the manifest after the round trip
    path: &str,
    out: &mut Vec<UnknownField>,
) {
    // EXERCISE: lab03-unknown-fields
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let child = match path {
                    "" => key.clone(),
                    _ => format!("{path}.{key}"),
                };
                match known.get(key) {
                    Some(kept) => unknown_fields(value, kept, &child, out),
                    None if value.is_null() => {}
                    None => out.push(UnknownField { path: child }),
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, kept)) in input.iter().zip(known).enumerate() {
                unknown_fields(value, kept, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
    // EXERCISE_END: lab03-unknown-fields
}
// ANCHOR_END: unknown_fields
