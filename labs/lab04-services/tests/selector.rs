//! Label selectors: equality- and set-based, from maps, LabelSelectors and
//! the `-l` syntax.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement,
};
use lab04::selector::{Labels, Selector};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn equality_requirements_match_exactly() {
    let s = Selector::parse("app=kubia,env!=dev").unwrap();
    assert!(s.matches(&labels(&[("app", "kubia"), ("env", "prod")])));
    // != also holds where the key is absent.
    assert!(s.matches(&labels(&[("app", "kubia")])));
    assert!(!s.matches(&labels(&[("app", "kubia"), ("env", "dev")])));
    assert!(!s.matches(&labels(&[("app", "kubia-v2")])));
    assert!(!s.matches(&labels(&[])));
    assert!(Selector::parse("app==kubia")
        .unwrap()
        .matches(&labels(&[("app", "kubia")])));
}

#[test]
fn set_requirements_match_as_apimachinery_does() {
    let s = Selector::parse("env in (prod, dev),tier notin (db),!canary,app")
        .unwrap();
    assert!(s.matches(&labels(&[("env", "dev"), ("app", "x")])));
    assert!(s.matches(&labels(&[
        ("env", "prod"),
        ("app", "x"),
        ("tier", "web")
    ])));
    assert!(
        !s.matches(&labels(&[("env", "qa"), ("app", "x")])),
        "in: value not listed"
    );
    assert!(!s.matches(&labels(&[("app", "x")])), "in: key absent");
    assert!(
        !s.matches(&labels(&[("env", "dev"), ("app", "x"), ("tier", "db")])),
        "notin"
    );
    assert!(
        !s.matches(&labels(&[("env", "dev"), ("app", "x"), ("canary", "")])),
        "!key"
    );
    assert!(!s.matches(&labels(&[("env", "dev")])), "key must exist");
    assert_eq!(
        s.to_string(),
        "app,!canary,env in (dev,prod),tier notin (db)"
    );
}

#[test]
fn empty_selects_everything_and_nothing_selects_nothing() {
    assert!(Selector::parse("").unwrap().matches(&labels(&[("a", "b")])));
    assert!(Selector::default().is_everything());
    assert!(!Selector::nothing().matches(&labels(&[])));
}

#[test]
fn a_service_map_is_equality_on_every_pair() {
    let map: BTreeMap<String, String> =
        labels(&[("app", "kubia"), ("rel", "beta")]);
    let s = Selector::from_map(&map);
    assert!(s.matches(&labels(&[
        ("app", "kubia"),
        ("rel", "beta"),
        ("x", "y")
    ])));
    assert!(!s.matches(&labels(&[("app", "kubia")])));
    assert_eq!(s.to_string(), "app=kubia,rel=beta");
}

#[test]
fn match_expressions_are_checked_with_field_paths() {
    let good = LabelSelector {
        match_labels: Some(labels(&[("app", "kubia")])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".into(),
            operator: "NotIn".into(),
            values: Some(vec!["dev".into()]),
        }]),
    };
    let s = Selector::from_label_selector(&good, "spec.selector").unwrap();
    assert!(s.matches(&labels(&[("app", "kubia")])));
    assert!(!s.matches(&labels(&[("app", "kubia"), ("env", "dev")])));

    let bad = LabelSelector {
        match_labels: Some(labels(&[("app", "bad value!")])),
        match_expressions: Some(vec![
            LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: None,
            },
            LabelSelectorRequirement {
                key: "x".into(),
                operator: "Near".into(),
                values: None,
            },
        ]),
    };
    let errors: Vec<String> =
        Selector::from_label_selector(&bad, "spec.selector")
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
    insta::assert_yaml_snapshot!(errors);
}

#[test]
fn bad_selector_strings_name_the_term() {
    let cases = [
        "app=bad value!",
        "app in prod",
        "a,,b",
        "env in ()",
        "-bad=1",
    ];
    let messages: Vec<String> = cases
        .iter()
        .map(|c| Selector::parse(c).unwrap_err().to_string())
        .collect();
    insta::assert_yaml_snapshot!(messages);
}
