//! Protobuf bodies as `kubectl create <generator>` (v1.32) sends them,
//! captured from the real kubectl into `fixtures/protobuf/*.bin`, decode
//! to the object kubectl's `--dry-run=client -o json` prints (the `.json`
//! next to each), less the nulls and empty objects JSON would omit.

use std::path::PathBuf;

use lab05::apiserver::protobuf::{decode, ProtobufError};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/protobuf");
    std::fs::read(dir.join(name)).unwrap()
}

/// Without `null`s and `{}`s, recursively (`creationTimestamp: null`,
/// `status: {}`, `resources: {}`).
fn pruned(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, pruned(v)))
                .filter(|(_, v)| {
                    !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty())
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(pruned).collect())
        }
        other => other,
    }
}

fn check(name: &str) {
    let got = decode(&fixture(&format!("{name}.bin"))).unwrap();
    let want: Value =
        serde_json::from_slice(&fixture(&format!("{name}.json"))).unwrap();
    assert_eq!(got, pruned(want), "{name}");
}

#[test]
fn create_namespace() {
    check("namespaces");
}

#[test]
fn create_deployment() {
    check("deployments");
    check("deployments-two");
}

#[test]
fn create_configmap() {
    check("configmaps");
}

#[test]
fn create_secrets_keep_their_bytes_base64() {
    check("secrets");
    check("secrets-docker");
    let secret = decode(&fixture("secrets.bin")).unwrap();
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}));
}

#[test]
fn create_service() {
    check("services");
    check("services-nodeport");
}

#[test]
fn create_job() {
    check("jobs");
}

#[test]
fn bad_bodies_say_why() {
    assert!(matches!(
        decode(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::Envelope(_))
    ));
    let mut truncated = fixture("deployments.bin");
    truncated.truncate(truncated.len() - 10);
    assert!(decode(&truncated).is_err());
    // runtime.Unknown{typeMeta: {apiVersion: v1, kind: Binding}}.
    let binding = b"k8s\0\x0a\x0d\x0a\x02v1\x12\x07Binding";
    assert!(matches!(
        decode(binding),
        Err(ProtobufError::UnsupportedKind(k)) if k == "v1/Binding"
    ));
}

#[test]
fn unknown_fields_with_content_are_refused() {
    // A Namespace whose message has field 9 = "x": nothing we know.
    let body = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x03\x4a\x01x";
    match decode(body) {
        Err(ProtobufError::Decode { kind, reason }) => {
            assert_eq!(kind, "Namespace");
            assert!(reason.contains("field 9"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
