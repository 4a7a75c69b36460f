//! Label selectors: which objects a Service (or `kubectl get -l`) means.
//!
//! A selector is a list of requirements that must all hold. Equality-based
//! ones (`app=kubia`, `env!=dev`) are what a Service's `spec.selector` map
//! and `matchLabels` say; set-based ones (`env in (prod,dev)`, `!canary`)
//! come from `matchExpressions` and from the `-l` syntax.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use lab03::validate::{
    label_key_messages, label_value_message, BadValue, FieldError,
};

/// Labels as objects carry them.
pub type Labels = BTreeMap<String, String>;

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value` (also written `key==value`).
    Equals,
    /// `key!=value`: also holds where the key is absent.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`: also holds where the key is absent.
    NotIn,
    /// `key`: the key is there, whatever its value.
    Exists,
    /// `!key`.
    DoesNotExist,
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// One value for Equals and NotEquals, one or more for In and NotIn,
    /// none for Exists and DoesNotExist.
    pub values: BTreeSet<String>,
}

// ANCHOR: matches
impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        // EXERCISE: lab04-selector-match
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => {
                !value.is_some_and(|v| self.values.contains(v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
        // EXERCISE_END: lab04-selector-match
    }
}
// ANCHOR_END: matches

impl fmt::Display for Requirement {
    /// As apimachinery prints it: `app=kubia`, `env in (dev,prod)`, `!canary`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values =
            || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.operator {
            Operator::Equals => write!(f, "{}={}", self.key, values()),
            Operator::NotEquals => write!(f, "{}!={}", self.key, values()),
            Operator::In => write!(f, "{} in ({})", self.key, values()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, values()),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// Requirements that must all hold. An empty selector matches every
/// object; [`Selector::nothing`] matches none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

/// A selector string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unable to parse requirement {term:?} of selector {selector:?}: {message}"
)]
pub struct SelectorError {
    pub selector: String,
    pub term: String,
    pub message: String,
}

impl Selector {
    /// The selector that matches no object (a nil `LabelSelector`).
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector matches every object.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// A Service's `spec.selector` or an RC's: every pair must be equal.
    pub fn from_map(map: &Labels) -> Selector {
        let mut requirements: Vec<Requirement> = map
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: BTreeSet::from([v.clone()]),
            })
            .collect();
        requirements.sort();
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// A `LabelSelector` (matchLabels and matchExpressions), checked as the
    /// API server checks it; `path` names where it sits
    /// (`spec.selector`). Errors name the field that is wrong.
    pub fn from_label_selector(
        selector: &LabelSelector,
        path: &str,
    ) -> Result<Selector, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            check_key(key, &format!("{path}.matchLabels"), &mut errors);
            check_value(value, &format!("{path}.matchLabels"), &mut errors);
            requirements.push(Requirement {
                key: key.clone(),
                operator: Operator::Equals,
                values: BTreeSet::from([value.clone()]),
            });
        }
        for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
            let at = format!("{path}.matchExpressions[{i}]");
            check_key(&e.key, &format!("{at}.key"), &mut errors);
            let values: BTreeSet<String> =
                e.values.iter().flatten().cloned().collect();
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    errors.push(FieldError::invalid(
                        format!("{at}.operator"),
                        BadValue::Text(other.to_string()),
                        "not a valid selector operator",
                    ));
                    continue;
                }
            };
            match operator {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    errors.push(FieldError::required(
                        format!("{at}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ))
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    errors.push(FieldError::forbidden(
                        format!("{at}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ))
                }
                _ => {}
            }
            for (j, v) in e.values.iter().flatten().enumerate() {
                check_value(v, &format!("{at}.values[{j}]"), &mut errors);
            }
            requirements.push(Requirement {
                key: e.key.clone(),
                operator,
                values,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        requirements.sort();
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// The `-l` syntax: `app=kubia,env in (prod,dev),!canary`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError {
                    selector: text.to_string(),
                    term: term.to_string(),
                    message:
                        "an empty requirement (two commas, or one at an end)"
                            .into(),
                });
            }
            let requirement =
                parse_term(term).map_err(|message| SelectorError {
                    selector: text.to_string(),
                    term: term.to_string(),
                    message,
                })?;
            requirements.push(requirement);
        }
        requirements.sort();
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> =
            self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&terms.join(","))
    }
}

/// Commas separate requirements, except inside `( )`.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let one =
        |key: &str, operator, value: &str| -> Result<Requirement, String> {
            let key = key.trim();
            let value = value.trim();
            key_ok(key)?;
            value_ok(value)?;
            Ok(Requirement {
                key: key.to_string(),
                operator,
                values: BTreeSet::from([value.to_string()]),
            })
        };
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        key_ok(key)?;
        return Ok(Requirement {
            key: key.to_string(),
            operator: Operator::DoesNotExist,
            values: BTreeSet::new(),
        });
    }
    if let Some((key, value)) = term.split_once("!=") {
        return one(key, Operator::NotEquals, value);
    }
    if let Some((key, value)) = term.split_once("==") {
        return one(key, Operator::Equals, value);
    }
    if let Some((key, value)) = term.split_once('=') {
        return one(key, Operator::Equals, value);
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim_start();
        let (operator, list) = if let Some(list) = rest.strip_prefix("notin") {
            (Operator::NotIn, list)
        } else if let Some(list) = rest.strip_prefix("in") {
            (Operator::In, list)
        } else {
            return Err(format!(
                "expected `=`, `==`, `!=`, `in` or `notin` after {key:?}, found {rest:?}"
            ));
        };
        let list = list.trim();
        let Some(inner) =
            list.strip_prefix('(').and_then(|l| l.strip_suffix(')'))
        else {
            return Err(format!(
                "expected a list in parentheses, found {list:?}"
            ));
        };
        key_ok(key)?;
        let mut values = BTreeSet::new();
        for v in inner.split(',').map(str::trim) {
            value_ok(v)?;
            values.insert(v.to_string());
        }
        if values.iter().all(String::is_empty) && inner.trim().is_empty() {
            return Err("`in` and `notin` need at least one value".into());
        }
        return Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        });
    }
    key_ok(term)?;
    Ok(Requirement {
        key: term.to_string(),
        operator: Operator::Exists,
        values: BTreeSet::new(),
    })
}

fn key_ok(key: &str) -> Result<(), String> {
    match label_key_messages(key).first() {
        None => Ok(()),
        Some(m) => Err(format!("key {key:?}: {m}")),
    }
}

fn value_ok(value: &str) -> Result<(), String> {
    match label_value_message(value) {
        None => Ok(()),
        Some(m) => Err(format!("value {value:?}: {m}")),
    }
}

fn check_key(key: &str, path: &str, errors: &mut Vec<FieldError>) {
    for m in label_key_messages(key) {
        errors.push(FieldError::invalid(path, BadValue::Text(key.into()), &m));
    }
}

fn check_value(value: &str, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(m) = label_value_message(value) {
        errors.push(FieldError::invalid(
            path,
            BadValue::Text(value.into()),
            &m,
        ));
    }
}
