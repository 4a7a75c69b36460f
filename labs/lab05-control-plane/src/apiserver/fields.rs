//! Field selectors (`fieldSelector=spec.nodeName=node-1,status.phase!=Failed`):
//! the few fields each kind lets lists and watches filter on.
//!
//! Unlike a label selector, a field selector cannot name any field: each
//! kind offers a short list (a Pod its node, phase and a few more, every
//! kind its name and namespace), because kube-apiserver computes those
//! fields for every object its watch cache holds. The syntax is small:
//! terms joined by `,`, each `field=value`, `field==value` or
//! `field!=value`, with `\,`, `\=` and `\\` escaping those characters in a
//! value. A field the object lacks has the value `""`, so
//! `spec.nodeName=` selects the pods no node has been chosen for yet (the
//! scheduler's watch).

use std::fmt;

use serde_json::Value;

use super::resources::Resource;

/// How a requirement compares a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `field=value` (also written `field==value`).
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    pub field: String,
    pub op: Op,
    /// The value, unescaped.
    pub value: String,
}

/// Terms that must all hold; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<Requirement>,
}

/// A field selector that cannot be used, with the message kube-apiserver
/// answers (400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term with no operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax { selector: String, term: String },
    /// A `\` followed by something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {sequence}")]
    InvalidEscape { sequence: String },
    /// A bare `,` or `=` in a value (apimachinery prints the rune as a
    /// number).
    #[error("invalid field selector: unescaped character in value: {}", *.character as u32)]
    UnescapedCharacter { character: char },
    /// A field a kind with its own field list does not offer
    /// (pkg/apis/core/v1/conversion.go).
    #[error("field label not supported: {field}")]
    NotSupported { field: String },
    /// A field a kind with only the default fields does not offer
    /// (apimachinery's DefaultMetaV1FieldSelectorConversion).
    #[error(
        "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    )]
    NotKnown { field: String },
}

/// The operators, longest first at each position: `!=` and `==` must win
/// over the `=` inside them.
pub const OPERATORS: [(&str, Op); 3] =
    [("!=", Op::NotEquals), ("==", Op::Equals), ("=", Op::Equals)];

// ANCHOR: parse_requirement
/// One term: `spec.nodeName=node-1`, `status.phase!=Failed`,
/// `metadata.name==a\,b`.
pub fn parse_requirement(
    selector: &str,
    term: &str,
) -> Result<Requirement, FieldSelectorError> {
    // EXERCISE: lab05-field-selector
    // The first position where an operator starts splits the term; at
    // that position the two-character operators are tried first.
    for (at, _) in term.char_indices() {
        let rest = &term[at..];
        let Some((text, op)) =
            OPERATORS.iter().find(|(text, _)| rest.starts_with(text))
        else {
            continue;
        };
        return Ok(Requirement {
            field: term[..at].to_string(),
            op: *op,
            value: unescape(&rest[text.len()..])?,
        });
    }
    Err(FieldSelectorError::Syntax {
        selector: selector.to_string(),
        term: term.to_string(),
    })
    // EXERCISE_END: lab05-field-selector
}
// ANCHOR_END: parse_requirement

/// A value with its escapes undone: `a\,b` is `a,b`; a bare `,` or `=`,
/// or any other escape, is an error.
pub fn unescape(value: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(other) => {
                    return Err(FieldSelectorError::InvalidEscape {
                        sequence: format!("\\{other}"),
                    })
                }
                None => {
                    return Err(FieldSelectorError::InvalidEscape {
                        sequence: "\\".into(),
                    })
                }
            },
            ',' | '=' => {
                return Err(FieldSelectorError::UnescapedCharacter {
                    character: c,
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A value escaped for a selector string (the inverse of [`unescape`]).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Split at the commas that are not escaped.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

impl FieldSelector {
    /// Parse `a=b,c!=d`; empty terms are skipped, as upstream does.
    pub fn parse(text: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(text, term)?);
        }
        requirements.sort();
        Ok(FieldSelector { requirements })
    }

    /// The selector of one name (`kubectl delete` waits with
    /// `metadata.name=<name>`).
    pub fn name(name: &str) -> FieldSelector {
        FieldSelector {
            requirements: vec![Requirement {
                field: "metadata.name".into(),
                op: Op::Equals,
                value: name.into(),
            }],
        }
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Every field named must be one `resource` offers.
    pub fn check(&self, resource: &Resource) -> Result<(), FieldSelectorError> {
        let fields = supported(resource);
        for r in &self.requirements {
            if !fields.contains(&r.field.as_str()) {
                return Err(if has_own_fields(resource) {
                    FieldSelectorError::NotSupported {
                        field: r.field.clone(),
                    }
                } else {
                    FieldSelectorError::NotKnown {
                        field: r.field.clone(),
                    }
                });
            }
        }
        Ok(())
    }

    /// Whether `object` (of `resource`) satisfies every requirement.
    pub fn matches(&self, resource: &Resource, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let value = field_value(resource, object, &r.field);
            match r.op {
                Op::Equals => value == r.value,
                Op::NotEquals => value != r.value,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let op = match r.op {
                    Op::Equals => "=",
                    Op::NotEquals => "!=",
                };
                format!("{}{op}{}", r.field, escape(&r.value))
            })
            .collect();
        f.write_str(&terms.join(","))
    }
}

/// The fields every kind offers.
const META: &[&str] = &["metadata.name", "metadata.namespace"];

// ANCHOR: supported
/// The selectable fields of a kind, as kube-apiserver's
/// `GetAttrs`/`ToSelectableFields` (pkg/registry/*/strategy.go) build them.
pub fn supported(resource: &Resource) -> &'static [&'static str] {
    match (resource.group, resource.kind) {
        ("", "Pod") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Node") => {
            &["metadata.name", "metadata.namespace", "spec.unschedulable"]
        }
        ("", "Secret") => &["metadata.name", "metadata.namespace", "type"],
        ("", "Namespace") => {
            &["metadata.name", "metadata.namespace", "status.phase"]
        }
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        _ => META,
    }
}

// ANCHOR_END: supported

/// Kinds that register their own field conversion, whose error for an
/// unknown field reads `field label not supported: …`.
fn has_own_fields(resource: &Resource) -> bool {
    supported(resource).len() > META.len()
}

/// The value of a selectable field of `object`, as the strategy's
/// field set renders it: absent strings are `""`, booleans `true`/`false`
/// (absent is `false`), counts decimal (absent is `0`).
pub fn field_value(resource: &Resource, object: &Value, field: &str) -> String {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let flag = |pointer: &str| {
        let on = object.pointer(pointer).and_then(Value::as_bool);
        on.unwrap_or(false).to_string()
    };
    match field {
        "metadata.name" => text("/metadata/name"),
        // A cluster scoped object's namespace is "" whatever it says.
        "metadata.namespace" if !resource.namespaced => String::new(),
        "metadata.namespace" => text("/metadata/namespace"),
        "spec.hostNetwork" => flag("/spec/hostNetwork"),
        "spec.unschedulable" => flag("/spec/unschedulable"),
        "status.replicas" => object
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        // An Event's `source` is its source's component.
        "source" => text("/source/component"),
        other => text(&format!("/{}", other.replace('.', "/"))),
    }
}
