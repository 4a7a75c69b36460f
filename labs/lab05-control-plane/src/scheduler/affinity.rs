//! Node selectors as a pod states them: `spec.nodeSelector` (every pair
//! equal) and node affinity's terms (`matchExpressions` with In, NotIn,
//! Exists, DoesNotExist, Gt, Lt; `matchFields` on `metadata.name`), read
//! once per pod (component-helpers' nodeaffinity).
//!
//! Terms are ORed, a term's requirements ANDed. A term that does not
//! parse (a bad label value, Gt with no integer) matches no node, and an
//! empty term matches none either.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use lab03::validate::{label_key_messages, label_value_message};
use lab04::selector::{Operator, Requirement, Selector};

use super::node_info::NodeInfo;

/// One parsed requirement on a node's labels.
#[derive(Debug, Clone)]
enum LabelRequirement {
    /// In, NotIn, Exists, DoesNotExist: lab04's label requirement.
    Set(Requirement),
    /// Gt and Lt compare the label as an integer.
    Greater(String, i64),
    Less(String, i64),
}

impl LabelRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let number =
            |k: &String| labels.get(k).and_then(|v| v.parse::<i64>().ok());
        match self {
            LabelRequirement::Set(r) => r.matches(labels),
            LabelRequirement::Greater(k, n) => {
                number(k).is_some_and(|v| v > *n)
            }
            LabelRequirement::Less(k, n) => number(k).is_some_and(|v| v < *n),
        }
    }
}

/// `metadata.name` In or NotIn one name.
#[derive(Debug, Clone)]
struct FieldRequirement {
    name: String,
    equal: bool,
}

/// One node selector term, parsed.
#[derive(Debug, Clone, Default)]
pub struct Term {
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

fn parse_label_requirement(
    r: &NodeSelectorRequirement,
) -> Option<LabelRequirement> {
    if !label_key_messages(&r.key).is_empty() {
        return None;
    }
    let values = r.values.clone().unwrap_or_default();
    let set = |operator| {
        let ok = match operator {
            Operator::In | Operator::NotIn => !values.is_empty(),
            _ => values.is_empty(),
        } && values.iter().all(|v| label_value_message(v).is_none());
        ok.then(|| {
            LabelRequirement::Set(Requirement {
                key: r.key.clone(),
                operator,
                values: values.iter().cloned().collect::<BTreeSet<_>>(),
            })
        })
    };
    let number = || match values.as_slice() {
        [v] => v.parse::<i64>().ok(),
        _ => None,
    };
    match r.operator.as_str() {
        "In" => set(Operator::In),
        "NotIn" => set(Operator::NotIn),
        "Exists" => set(Operator::Exists),
        "DoesNotExist" => set(Operator::DoesNotExist),
        "Gt" => number().map(|n| LabelRequirement::Greater(r.key.clone(), n)),
        "Lt" => number().map(|n| LabelRequirement::Less(r.key.clone(), n)),
        _ => None,
    }
}

fn parse_field_requirement(
    r: &NodeSelectorRequirement,
) -> Option<FieldRequirement> {
    let values = r.values.as_deref().unwrap_or_default();
    match (r.key.as_str(), r.operator.as_str(), values) {
        ("metadata.name", "In", [v]) => Some(FieldRequirement {
            name: v.clone(),
            equal: true,
        }),
        ("metadata.name", "NotIn", [v]) => Some(FieldRequirement {
            name: v.clone(),
            equal: false,
        }),
        _ => None,
    }
}

impl Term {
    /// The term, or `None` if it is empty or does not parse: it then
    /// matches no node.
    pub fn parse(term: &NodeSelectorTerm) -> Option<Term> {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if expressions.is_empty() && fields.is_empty() {
            return None;
        }
        Some(Term {
            labels: expressions
                .iter()
                .map(parse_label_requirement)
                .collect::<Option<_>>()?,
            fields: fields
                .iter()
                .map(parse_field_requirement)
                .collect::<Option<_>>()?,
        })
    }

    pub fn matches(&self, node: &NodeInfo) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        let labels = node.labels().unwrap_or(&EMPTY);
        self.labels.iter().all(|r| r.matches(labels))
            && self.fields.iter().all(|f| (node.name == f.name) == f.equal)
    }
}

/// What a pod asks of its node's labels.
#[derive(Debug, Clone, Default)]
pub struct NodeAffinity {
    /// `spec.nodeSelector`.
    selector: Option<Selector>,
    /// Required terms (`None`: none required); an unparsable term is
    /// kept as `None`, matching nothing.
    required: Option<Vec<Option<Term>>>,
    /// Preferred terms with their weights (weight 0 and empty terms are
    /// dropped, as upstream does).
    pub preferred: Vec<(i64, Term)>,
}

impl NodeAffinity {
    pub fn of(pod: &Pod) -> NodeAffinity {
        let Some(spec) = &pod.spec else {
            return NodeAffinity::default();
        };
        let selector = spec.node_selector.as_ref().map(Selector::from_map);
        let affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let required = affinity
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| s.node_selector_terms.iter().map(Term::parse).collect());
        let preferred = affinity
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0)
            .filter_map(|p| {
                Term::parse(&p.preference).map(|t| (i64::from(p.weight), t))
            })
            .collect();
        NodeAffinity {
            selector,
            required,
            preferred,
        }
    }

    /// Whether the pod asks nothing of labels (the filter's PreFilter
    /// then skips it).
    pub fn requires_nothing(&self) -> bool {
        self.selector.is_none() && self.required.is_none()
    }

    /// Whether the node satisfies the nodeSelector and one required term.
    pub fn required_match(&self, node: &NodeInfo) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        if let Some(selector) = &self.selector {
            if !selector.matches(node.labels().unwrap_or(&EMPTY)) {
                return false;
            }
        }
        match &self.required {
            None => true,
            Some(terms) => terms.iter().flatten().any(|t| t.matches(node)),
        }
    }

    /// The sum of the weights of the preferred terms the node matches.
    pub fn preferred_score(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .filter(|(_, t)| t.matches(node))
            .map(|(w, _)| w)
            .sum()
    }
}
