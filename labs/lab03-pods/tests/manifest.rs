//! Pod manifests: the book's own, strict field checks, syntax errors.

use lab03::manifest::{parse_pod, parse_pods, unknown_fields, ManifestError, UnknownField};
use serde_json::json;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/pods/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn paths(found: &[UnknownField]) -> Vec<String> {
    found.iter().map(|f| f.to_string()).collect()
}

#[test]
fn unknown_keys_are_named_with_their_path() {
    let input = json!({
        "metadata": {"name": "kubia", "lables": {"app": "kubia"}},
        "spec": {"containers": [
            {"name": "a", "image": "kubia"},
            {"name": "b", "imagePullPolizy": "Never", "ports": [{"containerPort": 80, "hostPrt": 8}]}
        ]},
        "extra": 1
    });
    let known = json!({
        "metadata": {"name": "kubia"},
        "spec": {"containers": [
            {"name": "a", "image": "kubia"},
            {"name": "b", "ports": [{"containerPort": 80}]}
        ]}
    });
    let mut found = Vec::new();
    unknown_fields(&input, &known, "", &mut found);
    assert_eq!(
        paths(&found),
        [
            "extra: unknown field",
            "metadata.lables: unknown field",
            "spec.containers[1].imagePullPolizy: unknown field",
            "spec.containers[1].ports[0].hostPrt: unknown field",
        ]
    );
}

#[test]
fn known_keys_and_nulls_pass() {
    let tree = json!({"a": {"b": [1, {"c": "d"}]}, "e": "f"});
    let mut found = Vec::new();
    unknown_fields(&tree, &tree, "", &mut found);
    assert!(found.is_empty(), "{found:?}");
    let input = json!({"a": {"b": null}, "e": "f"});
    unknown_fields(&input, &json!({"a": {}, "e": "f"}), "", &mut found);
    assert!(found.is_empty(), "{found:?}");
    // A path given by the caller prefixes every field.
    unknown_fields(&json!({"x": 1}), &json!({}), "spec", &mut found);
    assert_eq!(paths(&found), ["spec.x: unknown field"]);
}

#[test]
fn a_typo_is_refused_like_kubectl_strict() {
    let error = parse_pod(&fixture("typo.yaml")).expect_err("typos must be refused");
    let ManifestError::UnknownFields { fields, .. } = &error else {
        panic!("expected unknown fields, got {error}");
    };
    insta::assert_snapshot!(paths(fields).join("\n"));
    insta::assert_snapshot!("typo_message", error.to_string());
}

#[test]
fn the_books_manifests_parse() {
    let pod = parse_pod(&fixture("kubia-labels.yaml")).expect("labels");
    let labels = pod.metadata.labels.expect("labels kept");
    assert_eq!(labels["app"], "kubia");
    assert_eq!(labels["env"], "dev");
    let spec = pod.spec.expect("spec");
    assert_eq!(
        spec.containers[0].ports.as_ref().expect("ports")[0].container_port,
        8080
    );

    let pod = parse_pod(&fixture("kubia-liveness.yaml")).expect("liveness");
    let probe = pod.spec.expect("spec").containers[0]
        .liveness_probe
        .clone()
        .expect("probe");
    assert_eq!(probe.http_get.expect("httpGet").path.as_deref(), Some("/"));
    assert_eq!(probe.failure_threshold, Some(3));

    let pod = parse_pod(&fixture("kubia-two-containers.yaml")).expect("pair");
    let spec = pod.spec.expect("spec");
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["kubia", "fetcher"]);
    let volume = &spec.volumes.as_ref().expect("volumes")[0];
    let empty_dir = volume.empty_dir.as_ref().expect("emptyDir");
    assert_eq!(empty_dir.medium.as_deref(), Some("Memory"));
    assert_eq!(
        empty_dir.size_limit.as_ref().map(|q| q.0.as_str()),
        Some("16Mi")
    );

    let pod = parse_pod(&fixture("kubia.json")).expect("json");
    assert_eq!(pod.metadata.name.as_deref(), Some("kubia-json"));
}

#[test]
fn numbers_in_resources_are_quantities() {
    let pod = parse_pod(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: n}\nspec:\n  containers:\n  - name: c\n    image: kubia\n    resources:\n      limits: {cpu: 1, memory: 64Mi}\n      requests: {cpu: 0.5}\n",
    )
    .expect("numbers are quantities");
    let resources = pod.spec.expect("spec").containers[0]
        .resources
        .clone()
        .expect("resources");
    assert_eq!(resources.limits.expect("limits")["cpu"].0, "1");
    assert_eq!(resources.requests.expect("requests")["cpu"].0, "0.5");
}

#[test]
fn several_documents_give_several_pods() {
    let text = format!(
        "{}---\n{}\n---\n",
        fixture("kubia-labels.yaml"),
        fixture("kubia-liveness.yaml")
    );
    let pods = parse_pods(&text).expect("two pods");
    let names: Vec<_> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["kubia-labels", "kubia-liveness"]);
}

#[test]
fn bad_yaml_names_line_and_column() {
    let error =
        parse_pod("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [kubia\n").expect_err("bad YAML");
    let ManifestError::Syntax { line, column, .. } = error else {
        panic!("expected a syntax error, got {error}");
    };
    assert_eq!((line, column), (5, 1));
    let error = parse_pod("{\"apiVersion\": \"v1\",\n \"kind\": }").expect_err("bad JSON");
    assert!(
        matches!(
            error,
            ManifestError::Syntax {
                format: "JSON",
                line: 2,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn wrong_kind_or_version_is_named() {
    let error =
        parse_pod("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n").expect_err("kind");
    assert_eq!(
        error.to_string(),
        "document 1: kind \"Service\" is not \"Pod\""
    );
    let error = parse_pod("apiVersion: apps/v1\nkind: Pod\n").expect_err("version");
    assert_eq!(
        error.to_string(),
        "document 1: apiVersion \"apps/v1\" is not \"v1\""
    );
    let error = parse_pod("apiVersion: v1\nkind: Pod\nspec:\n  containers: 5\n").expect_err("type");
    assert!(
        error
            .to_string()
            .starts_with("document 1: spec.containers: invalid type"),
        "{error}"
    );
    assert!(matches!(parse_pods("---\n"), Err(ManifestError::Empty)));
}
