//! Field selectors: parsing `a=b,c!=d,e==f` with its escapes, the fields
//! each kind offers, and matching objects (a missing field is "").

use lab05::apiserver::fields::{
    escape, FieldSelector, FieldSelectorError, Op, Requirement,
};
use lab05::apiserver::resources::{self, Resource};
use serde_json::json;

fn resource(plural: &str) -> &'static Resource {
    resources::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .unwrap()
}

fn req(field: &str, op: Op, value: &str) -> Requirement {
    Requirement {
        field: field.into(),
        op,
        value: value.into(),
    }
}

#[test]
fn parses_the_three_operators() {
    let s = FieldSelector::parse(
        "spec.nodeName=node-1,status.phase!=Failed,metadata.name==web",
    )
    .unwrap();
    assert_eq!(
        s.requirements(),
        [
            req("metadata.name", Op::Equals, "web"),
            req("spec.nodeName", Op::Equals, "node-1"),
            req("status.phase", Op::NotEquals, "Failed"),
        ]
    );
    // An empty value is a value (the unscheduled pods).
    let s = FieldSelector::parse("spec.nodeName=").unwrap();
    assert_eq!(s.requirements(), [req("spec.nodeName", Op::Equals, "")]);
    // Empty terms are skipped; the empty selector selects everything.
    assert!(FieldSelector::parse("").unwrap().is_everything());
    let s = FieldSelector::parse("a=b,,").unwrap();
    assert_eq!(s.requirements(), [req("a", Op::Equals, "b")]);
}

#[test]
fn the_first_operator_wins() {
    // `!=` is one operator, not `!` in the field and `=`.
    let s = FieldSelector::parse("a!=b").unwrap();
    assert_eq!(s.requirements(), [req("a", Op::NotEquals, "b")]);
    // `==` is one operator; a third `=` belongs to the value, escaped.
    let s = FieldSelector::parse(r"a==\=b").unwrap();
    assert_eq!(s.requirements(), [req("a", Op::Equals, "=b")]);
    let s = FieldSelector::parse("a=!b").unwrap();
    assert_eq!(s.requirements(), [req("a", Op::Equals, "!b")]);
}

#[test]
fn escapes_in_values() {
    let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,type=x").unwrap();
    assert_eq!(
        s.requirements(),
        [
            req("metadata.name", Op::Equals, r"a,b=c\d"),
            req("type", Op::Equals, "x"),
        ]
    );
    assert_eq!(escape(r"a,b=c\d"), r"a\,b\=c\\d");
    assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d,type=x");
}

#[test]
fn syntax_errors_read_as_upstream() {
    let e = FieldSelector::parse("spec.nodeName").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"
    );
    let e = FieldSelector::parse(r"a=b\x").unwrap_err();
    assert_eq!(
        e.to_string(),
        r"invalid field selector: invalid escape sequence: \x"
    );
    let e = FieldSelector::parse(r"a=b\").unwrap_err();
    assert!(matches!(e, FieldSelectorError::InvalidEscape { .. }));
    let e = FieldSelector::parse("a=b=c").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid field selector: unescaped character in value: 61"
    );
}

#[test]
fn each_kind_offers_its_own_fields() {
    let ok = |plural: &str, text: &str| {
        FieldSelector::parse(text).unwrap().check(resource(plural))
    };
    assert_eq!(ok("pods", "spec.nodeName=n,status.phase!=Failed"), Ok(()));
    assert_eq!(
        ok("pods", "spec.hostNetwork=true,status.podIP=1.2.3.4"),
        Ok(())
    );
    assert_eq!(ok("nodes", "spec.unschedulable=false"), Ok(()));
    assert_eq!(ok("secrets", "type=Opaque"), Ok(()));
    assert_eq!(ok("namespaces", "status.phase=Active"), Ok(()));
    assert_eq!(ok("replicasets", "status.replicas=3"), Ok(()));
    assert_eq!(
        ok(
            "events",
            "involvedObject.name=x,involvedObject.uid=u,source=kubelet"
        ),
        Ok(())
    );
    assert_eq!(
        ok("configmaps", "metadata.name=x,metadata.namespace=y"),
        Ok(())
    );

    let e = ok("pods", "spec.containers=x").unwrap_err();
    assert_eq!(e.to_string(), "field label not supported: spec.containers");
    let e = ok("configmaps", "data.key=x").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#""data.key" is not a known field selector: only "metadata.name", "metadata.namespace""#
    );
}

#[test]
fn matches_pods_as_kubelet_and_describe_ask() {
    let pods = resource("pods");
    let on_node = json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "node-1", "restartPolicy": "Always"},
        "status": {"phase": "Running", "podIP": "10.0.0.5"},
    });
    let unscheduled = json!({
        "metadata": {"name": "new", "namespace": "default"},
        "spec": {},
        "status": {"phase": "Pending"},
    });
    let m = |text: &str, o: &serde_json::Value| {
        FieldSelector::parse(text).unwrap().matches(pods, o)
    };
    // The kubelet's watch.
    assert!(m("spec.nodeName=node-1", &on_node));
    assert!(!m("spec.nodeName=node-1", &unscheduled));
    // The scheduler's: a missing field is "".
    assert!(m("spec.nodeName=", &unscheduled));
    assert!(!m("spec.nodeName=", &on_node));
    // `kubectl describe node`.
    let describe =
        "spec.nodeName=node-1,status.phase!=Succeeded,status.phase!=Failed";
    assert!(m(describe, &on_node));
    let mut done = on_node.clone();
    done["status"]["phase"] = json!("Succeeded");
    assert!(!m(describe, &done));
    // Booleans default to false.
    assert!(m("spec.hostNetwork=false", &unscheduled));
    assert!(m(
        "status.podIP=10.0.0.5,metadata.namespace=default",
        &on_node
    ));
    assert!(m("metadata.name!=other", &on_node));
}

#[test]
fn matches_events_and_counts() {
    let events = resource("events");
    let event = json!({
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u-1"},
        "source": {"component": "kubelet"},
        "reason": "Started",
        "type": "Normal",
    });
    let s = FieldSelector::parse(
        "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u-1",
    )
    .unwrap();
    assert!(s.matches(events, &event));
    let s = FieldSelector::parse("source=kubelet,type=Normal,reason=Started")
        .unwrap();
    assert!(s.matches(events, &event));
    let s = FieldSelector::parse("involvedObject.kind=Node").unwrap();
    assert!(!s.matches(events, &event));

    let rs = resource("replicasets");
    let s = FieldSelector::parse("status.replicas=0").unwrap();
    assert!(s.matches(rs, &json!({"metadata": {"name": "x"}, "status": {}})));
    assert!(!s.matches(
        rs,
        &json!({"metadata": {"name": "x"}, "status": {"replicas": 2}})
    ));
}
