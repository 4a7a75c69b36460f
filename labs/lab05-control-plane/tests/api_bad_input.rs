//! Bad requests through the real HTTPS API, with authentication on: each
//! gets the Status kube-apiserver answers (its code, reason and the
//! message kubectl prints after `Error from server (Reason):`), and none
//! of them leaves anything stored.

mod support_rel;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use lab05::client::{Client, ClientError, Patch};
use serde_json::{json, Value};
use support_rel::{Backend, Cluster};

const NS: &str = "default";
const PODS: &str = "/api/v1/namespaces/default/pods";
const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

fn cluster() -> Cluster {
    Cluster::start(Backend::Embedded).unwrap()
}

/// The Status a request failed with: (code, reason, message).
fn refused(
    client: &Client,
    method: &str,
    path: &str,
    media: &str,
    body: impl Into<Vec<u8>>,
) -> (u16, String, String) {
    let started = Instant::now();
    let answer = client.request(method, path, Some((media, body.into())));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{path} is slow"
    );
    match answer {
        Err(ClientError::Api {
            code,
            reason,
            message,
        }) => (code, reason, message),
        other => panic!("{method} {path}: expected a Status, got {other:?}"),
    }
}

/// No pod at all in `default`, and none named `name`.
fn no_pods(admin: &Client, name: &str) {
    assert!(admin.get::<Pod>(Some(NS), name).unwrap_err().is_not_found());
    let pods = admin.list::<Pod>(Some(NS), "").unwrap();
    assert!(pods.items.is_empty(), "{:?}", pods.items);
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "kubia", "image": "luksa/kubia"}]},
    })
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[test]
fn malformed_json_is_400_with_the_parsers_position() {
    let c = cluster();
    let admin = c.admin();
    let body = "{\"apiVersion\": \"v1\", \"kind\": \"Pod\",\n \
                \"metadata\": {\"name\": \"x\",}}";
    let (code, reason, message) =
        refused(&admin, "POST", PODS, "application/json", body);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(
        message.starts_with("couldn't get version/kind; json parse error: "),
        "{message}"
    );
    assert!(message.contains("line 2 column 27"), "{message}");
    no_pods(&admin, "x");
}

#[test]
fn malformed_yaml_is_400() {
    let c = cluster();
    let admin = c.admin();
    let body = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n";
    let (code, reason, message) =
        refused(&admin, "POST", PODS, "application/yaml", body);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(
        message.starts_with("error converting YAML to JSON: yaml: "),
        "{message}"
    );
    assert!(message.contains("line"), "{message}");
    no_pods(&admin, "x");
}

#[test]
fn wrong_api_version_or_kind_for_the_path_is_400() {
    let c = cluster();
    let admin = c.admin();
    let mut body = pod("x");
    body["apiVersion"] = json!("apps/v1");
    let (code, reason, message) =
        refused(&admin, "POST", PODS, "application/json", bytes(&body));
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        message,
        "the API version in the data (apps/v1) does not match the expected \
         API version (v1)"
    );
    let mut body = pod("x");
    body["kind"] = json!("Service");
    let (code, reason, message) =
        refused(&admin, "POST", PODS, "application/json", bytes(&body));
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(
        message.starts_with(
            "Service in version \"v1\" cannot be handled as a Pod: "
        ),
        "{message}"
    );
    // The same on PUT, to an object that is there.
    admin
        .request("POST", PODS, Some(("application/json", bytes(&pod("x")))))
        .unwrap();
    let before: Pod = admin.get(Some(NS), "x").unwrap();
    let mut body = pod("x");
    body["kind"] = json!("ConfigMap");
    let (code, _, message) = refused(
        &admin,
        "PUT",
        &format!("{PODS}/x"),
        "application/json",
        bytes(&body),
    );
    assert_eq!(code, 400, "{message}");
    let after: Pod = admin.get(Some(NS), "x").unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
}

#[test]
fn an_invalid_name_is_422_with_the_dns_1123_message() {
    let c = cluster();
    let admin = c.admin();
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "Bad_Name"}, "data": {"a": "1"},
    });
    let (code, reason, message) = refused(
        &admin,
        "POST",
        CONFIG_MAPS,
        "application/json",
        bytes(&body),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \
         \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower \
         case alphanumeric characters, '-' or '.', and must start and end \
         with an alphanumeric character (e.g. 'example.com', regex used for \
         validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    let maps = admin.list::<ConfigMap>(Some(NS), "").unwrap();
    assert!(maps.items.is_empty(), "{:?}", maps.items);
}

#[test]
fn an_object_over_one_and_a_half_mib_is_413() {
    let c = cluster();
    let admin = c.admin();
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"a": "x".repeat(1536 * 1024 + 1)},
    });
    let (code, reason, message) = refused(
        &admin,
        "POST",
        CONFIG_MAPS,
        "application/json",
        bytes(&body),
    );
    assert_eq!((code, reason.as_str()), (413, "RequestEntityTooLarge"));
    assert_eq!(message, "Request entity too large: limit is 1572864");
    assert!(admin
        .get::<ConfigMap>(Some(NS), "big")
        .unwrap_err()
        .is_not_found());
    // Just under the limit is fine.
    let mut body = body;
    body["data"]["a"] = json!("x".repeat(1024 * 1024));
    admin
        .request(
            "POST",
            CONFIG_MAPS,
            Some(("application/json", bytes(&body))),
        )
        .unwrap();
}

/// A pod with the unknown field `spec.foo`.
fn pod_with_foo() -> Value {
    let mut body = pod("x");
    body["spec"]["foo"] = json!(1);
    body
}

/// A body well over the limit: the client, still sending when the
/// server has read enough, must get the 413 all the same (the server
/// reads on and drops the rest, as Go's lingering close gives it the
/// time to), and its next request must work.
#[test]
fn a_body_well_over_the_limit_gets_its_413() {
    let c = cluster();
    let admin = c.admin();
    let mut broken = Vec::new();
    for size in [2 << 20, 4 << 20] {
        for _ in 0..5 {
            let body = vec![b' '; size];
            let media = "application/json";
            match admin.request("POST", CONFIG_MAPS, Some((media, body))) {
                Err(e) if e.code() == Some(413) => {}
                other => broken.push(format!("POST of {size}: {other:?}")),
            }
            if let Err(e) = admin.request("GET", "/api", None) {
                broken.push(format!("GET after {size}: {e}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn unknown_fields_under_strict_validation_are_400() {
    let c = cluster();
    let admin = c.admin();
    let body = pod_with_foo();
    let path = format!("{PODS}?fieldValidation=Strict");
    let (code, reason, message) =
        refused(&admin, "POST", &path, "application/json", bytes(&body));
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(
        message.ends_with("strict decoding error: unknown field \"spec.foo\""),
        "{message}"
    );
    no_pods(&admin, "x");
    // Without Strict the field is dropped, and the pod is made.
    let made = admin
        .request("POST", PODS, Some(("application/json", bytes(&body))))
        .unwrap();
    assert_eq!(made["spec"].get("foo"), None);
}

/// kube-apiserver's create and update handlers put the decode error after
/// `<kind> in version "<version>" cannot be handled as a <kind>: `
/// (`transformDecodeError`), and kubectl prints all of it.
#[test]
fn unknown_fields_under_strict_validation_are_worded_as_kubectl_prints() {
    let c = cluster();
    let admin = c.admin();
    let path = format!("{PODS}?fieldValidation=Strict");
    let body = bytes(&pod_with_foo());
    let (_, _, message) =
        refused(&admin, "POST", &path, "application/json", body);
    assert_eq!(
        message,
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding \
         error: unknown field \"spec.foo\""
    );
}

/// A config map `cm` with `data.a = "1"`; its resourceVersion.
fn one_config_map(admin: &Client) -> String {
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm"}, "data": {"a": "1"},
    });
    let made = admin
        .request(
            "POST",
            CONFIG_MAPS,
            Some(("application/json", bytes(&body))),
        )
        .unwrap();
    made["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

fn unchanged(admin: &Client, rv: &str) {
    let cm: ConfigMap = admin.get(Some(NS), "cm").unwrap();
    assert_eq!(cm.metadata.resource_version.as_deref(), Some(rv));
    assert_eq!(cm.data.unwrap()["a"], "1");
}

#[test]
fn a_json_patch_that_does_not_apply_is_422_and_changes_nothing() {
    let c = cluster();
    let admin = c.admin();
    let rv = one_config_map(&admin);
    let path = format!("{CONFIG_MAPS}/cm");
    let json_patch = "application/json-patch+json";
    // A failing test op stops the replace after it: all or nothing.
    let ops = json!([
        {"op": "test", "path": "/data/a", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "3"},
    ]);
    let (code, reason, message) =
        refused(&admin, "PATCH", &path, json_patch, bytes(&ops));
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert!(message.contains("/data/a"), "{message}");
    unchanged(&admin, &rv);
    // A path that is not there.
    let ops = json!([
        {"op": "replace", "path": "/data/a", "value": "3"},
        {"op": "replace", "path": "/data/missing/deeper", "value": "4"},
    ]);
    let (code, reason, message) =
        refused(&admin, "PATCH", &path, json_patch, bytes(&ops));
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    unchanged(&admin, &rv);
    // Not a list of operations at all.
    let (code, reason, _) =
        refused(&admin, "PATCH", &path, json_patch, bytes(&json!({"a": 1})));
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    unchanged(&admin, &rv);
}

#[test]
fn a_merge_patch_that_is_not_json_is_400_and_changes_nothing() {
    let c = cluster();
    let admin = c.admin();
    let rv = one_config_map(&admin);
    let path = format!("{CONFIG_MAPS}/cm");
    for media in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        let (code, reason, message) =
            refused(&admin, "PATCH", &path, media, "{\"data\": {\"a\": 2");
        assert_eq!((code, reason.as_str()), (400, "BadRequest"), "{message}");
        assert!(message.contains("EOF"), "{media}: {message}");
        unchanged(&admin, &rv);
    }
}

#[test]
fn no_token_or_a_wrong_token_is_401() {
    let c = cluster();
    let admin = c.admin();
    let body = bytes(&pod("x"));
    for token in [None, Some("not-a-token")] {
        for (method, path) in [("GET", "/api"), ("GET", PODS), ("POST", PODS)] {
            let body = if method == "POST" {
                body.clone()
            } else {
                vec![]
            };
            // A client each: a refused body breaks its connection (see
            // a_refused_body_does_not_break_the_next_request).
            let client = c.client(token);
            let (code, reason, message) =
                refused(&client, method, path, "application/json", body);
            assert_eq!(
                (code, reason.as_str(), message.as_str()),
                (401, "Unauthorized", "Unauthorized"),
                "{method} {path}"
            );
        }
    }
    no_pods(&admin, "x");
}

/// A request refused before its body is read (a 401) must not break the
/// client: Go's server reads and drops up to 256 KiB of such a body, so
/// the client sees the answer, and the connection stays usable; ours
/// closes it unannounced (the next request on it gets no answer) and,
/// while the client is still sending, resets it (EPIPE, no answer).
#[test]
fn a_refused_body_does_not_break_the_next_request() {
    let c = cluster();
    let anonymous = c.client(None);
    let big = vec![b' '; 64 * 1024];
    let mut broken = 0;
    for _ in 0..20 {
        let answer = anonymous.request(
            "POST",
            PODS,
            Some(("application/json", big.clone())),
        );
        if let Err(e) = answer.as_ref() {
            if e.code().is_none() {
                eprintln!("POST: {e}");
                broken += 1;
            }
        }
        if anonymous
            .request("GET", "/api", None)
            .is_err_and(|e| e.code().is_none())
        {
            broken += 1;
        }
    }
    assert_eq!(broken, 0, "requests that got no answer");
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn lease(name: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
    })
}

const NODES: &str = "/api/v1/nodes";
const LEASES: &str =
    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

#[test]
fn a_node_writes_its_own_node_and_lease_only() {
    let c = cluster();
    let admin = c.admin();
    let node1 = c.client(Some(&c.tokens.node1));
    let post = |client: &Client, path: &str, body: &Value| {
        client.request("POST", path, Some(("application/json", bytes(body))))
    };
    // Its own Node and Lease: allowed.
    post(&node1, NODES, &node("node-1")).unwrap();
    post(&node1, LEASES, &lease("node-1")).unwrap();
    // Another node's: 403, NodeRestriction's words, nothing stored.
    let (code, reason, message) = refused(
        &node1,
        "POST",
        NODES,
        "application/json",
        bytes(&node("node-2")),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "nodes \"node-2\" is forbidden: node \"node-1\" is not allowed to \
         modify node \"node-2\""
    );
    assert!(admin
        .get::<Node>(None, "node-2")
        .unwrap_err()
        .is_not_found());
    let (code, _, message) = refused(
        &node1,
        "POST",
        LEASES,
        "application/json",
        bytes(&lease("node-2")),
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "leases.coordination.k8s.io \"node-2\" is forbidden: can only access \
         node lease with the same name as the requesting node"
    );
    let leases = admin.list::<Lease>(Some("kube-node-lease"), "").unwrap();
    assert_eq!(leases.items.len(), 1);
    // Node-2's Node, made by the admin, cannot be changed by node-1.
    post(&admin, NODES, &node("node-2")).unwrap();
    let before: Node = admin.get(None, "node-2").unwrap();
    let (code, _, _) = refused(
        &node1,
        "PATCH",
        &format!("{NODES}/node-2"),
        "application/merge-patch+json",
        bytes(&json!({"metadata": {"labels": {"x": "y"}}})),
    );
    assert_eq!(code, 403);
    let after: Node = admin.get(None, "node-2").unwrap();
    assert_eq!(before.metadata, after.metadata);
    // Its own Node it may label.
    node1
        .patch::<Node>(
            None,
            "node-1",
            Patch::Merge,
            &json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .unwrap();
}

#[test]
fn a_node_changes_only_pods_bound_to_it() {
    let c = cluster();
    let admin = c.admin();
    let node1 = c.client(Some(&c.tokens.node1));
    for (name, on) in [("here", "node-1"), ("there", "node-2")] {
        let mut body = pod(name);
        body["spec"]["nodeName"] = json!(on);
        admin
            .request("POST", PODS, Some(("application/json", bytes(&body))))
            .unwrap();
    }
    let status = json!({"status": {"phase": "Running"}});
    let patch_status = |client: &Client, name: &str| {
        client.request(
            "PATCH",
            &format!("{PODS}/{name}/status"),
            Some(("application/merge-patch+json", bytes(&status))),
        )
    };
    // The pod bound elsewhere: neither its status nor a delete.
    let err = patch_status(&node1, "there").unwrap_err();
    assert_eq!(err.code(), Some(403));
    assert_eq!(
        err.to_string(),
        "403 Forbidden: pods \"there\" is forbidden: node \"node-1\" can \
         only update pod status for pods with spec.nodeName set to itself"
    );
    let err = node1.delete::<Pod>(Some(NS), "there", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "403 Forbidden: pods \"there\" is forbidden: node \"node-1\" can \
         only delete pods with spec.nodeName set to itself"
    );
    let there: Pod = admin.get(Some(NS), "there").unwrap();
    assert_eq!(there.status.unwrap().phase.as_deref(), Some("Pending"));
    assert!(there.metadata.deletion_timestamp.is_none());
    // Nor may it change a pod's spec, even its own.
    let err = node1
        .patch::<Pod>(
            Some(NS),
            "here",
            Patch::Merge,
            &json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(403), "{err}");
    // Its own pod's status it may write.
    patch_status(&node1, "here").unwrap();
    let here: Pod = admin.get(Some(NS), "here").unwrap();
    assert_eq!(here.status.unwrap().phase.as_deref(), Some("Running"));
}

#[test]
fn statuses_are_shaped_as_kube_apiservers() {
    let c = cluster();
    let (code, status) = c.raw("GET", &format!("{PODS}/nope"), None);
    assert_eq!(code, 404);
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "pods \"nope\" not found",
            "reason": "NotFound", "details": {"name": "nope", "kind": "pods"},
            "code": 404,
        })
    );
    let (code, status) =
        support_rel::raw(&c.url, &c.ca_pem, None, "GET", PODS, None);
    assert_eq!(code, 401);
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "Unauthorized",
            "reason": "Unauthorized", "code": 401,
        })
    );
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "Bad_Name"},
    });
    let (code, status) = c.raw(
        "POST",
        CONFIG_MAPS,
        Some(("application/json", bytes(&body))),
    );
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        (&status["details"]["name"], &status["details"]["kind"]),
        (&json!("Bad_Name"), &json!("ConfigMap"))
    );
    let cause = &status["details"]["causes"][0];
    assert_eq!(
        (&cause["reason"], &cause["field"]),
        (&json!("FieldValueInvalid"), &json!("metadata.name"))
    );
}

/// A cause's message is the error without its field (Go's `ErrorBody`):
/// kubectl prints `field: message`.
#[test]
fn a_causes_message_does_not_repeat_its_field() {
    let c = cluster();
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "Bad_Name"},
    });
    let (_, status) = c.raw(
        "POST",
        CONFIG_MAPS,
        Some(("application/json", bytes(&body))),
    );
    let message = status["details"]["causes"][0]["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123"),
        "{message}"
    );
}

#[test]
fn a_stale_resource_version_is_409_conflict() {
    let c = cluster();
    let admin = c.admin();
    let rv = one_config_map(&admin);
    let mut cm: ConfigMap = admin.get(Some(NS), "cm").unwrap();
    cm.data.as_mut().unwrap().insert("a".into(), "2".into());
    admin.replace(Some(NS), "cm", &cm).unwrap();
    // The same change again, from the old read.
    let err = admin.replace(Some(NS), "cm", &cm).unwrap_err();
    assert_eq!(
        err.to_string(),
        "409 Conflict: Operation cannot be fulfilled on configmaps \"cm\": \
         the object has been modified; please apply your changes to the \
         latest version and try again"
    );
    let now: ConfigMap = admin.get(Some(NS), "cm").unwrap();
    assert_ne!(now.metadata.resource_version.as_deref(), Some(rv.as_str()));
    assert_eq!(now.data.unwrap()["a"], "2");
}

// ---------------------------------------------------------------------
// What the real kubectl prints for these Statuses.

/// Runs kubectl with a kubeconfig for `token`; (succeeded, stdout and
/// stderr).
fn kubectl(c: &Cluster, token: &str, args: &[&str]) -> (bool, String) {
    let dir = c.dir.path();
    let config = dir.join(format!("kubeconfig-{}", token.len()));
    lab05::auth::kubeconfig::Kubeconfig {
        server: &c.url,
        ca_pem: Some(&c.ca_pem),
        user: "u",
        token,
    }
    .write(&config)
    .unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&config)
        .arg("--request-timeout=10s")
        .args(args)
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned()
        + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.trim().to_string())
}

/// Writes `object` as a file for `kubectl create -f`.
fn manifest(c: &Cluster, name: &str, object: &Value) -> String {
    let path = c.dir.path().join(name);
    std::fs::write(&path, object.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn kubectl_prints_these_statuses() {
    if !kubelings_probe::require_program("kubectl") {
        return;
    }
    let c = cluster();
    let admin = c.tokens.admin.clone();
    let started = Instant::now();

    let big = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"a": "x".repeat(1536 * 1024 + 1)},
    });
    let file = manifest(&c, "big.json", &big);
    let (ok, out) = kubectl(&c, &admin, &["create", "-f", &file]);
    assert!(!ok);
    assert_eq!(
        out,
        format!(
            "Error from server (RequestEntityTooLarge): error when creating \
             \"{file}\": Request entity too large: limit is 1572864"
        )
    );

    let (ok, out) = kubectl(&c, "not-a-token", &["get", "pods"]);
    assert!(!ok);
    assert_eq!(
        out,
        "error: You must be logged in to the server (Unauthorized)"
    );

    let file = manifest(&c, "node-2.json", &node("node-2"));
    let (ok, out) = kubectl(&c, &c.tokens.node1, &["create", "-f", &file]);
    assert!(!ok);
    assert_eq!(
        out,
        format!(
            "Error from server (Forbidden): error when creating \"{file}\": \
             nodes \"node-2\" is forbidden: node \"node-1\" is not allowed \
             to modify node \"node-2\""
        )
    );
    let file = manifest(&c, "node-1.json", &node("node-1"));
    let (ok, out) = kubectl(&c, &c.tokens.node1, &["create", "-f", &file]);
    assert!(ok, "{out}");
    assert_eq!(out, "node/node-1 created");

    one_config_map(&c.admin());
    let ops = r#"[{"op":"test","path":"/data/a","value":"2"}]"#;
    let (ok, out) = kubectl(
        &c,
        &admin,
        &["patch", "configmap", "cm", "--type=json", "-p", ops],
    );
    assert!(!ok);
    // A 422 without a kind in its details.
    assert!(out.starts_with("The request is invalid: "), "{out}");
    let (ok, out) = kubectl(
        &c,
        &admin,
        &[
            "patch",
            "configmap",
            "cm",
            "--type=merge",
            "-p",
            "{\"data\":",
        ],
    );
    assert!(!ok);
    assert!(out.starts_with("Error from server (BadRequest): "), "{out}");

    let file = manifest(&c, "foo.json", &pod_with_foo());
    let (ok, out) = kubectl(&c, &admin, &["create", "-f", &file]);
    assert!(!ok);
    assert!(
        out.starts_with(&format!(
            "Error from server (BadRequest): error when creating \"{file}\": "
        )),
        "{out}"
    );
    assert!(
        out.ends_with("strict decoding error: unknown field \"spec.foo\""),
        "{out}"
    );
    no_pods(&c.admin(), "x");
    eprintln!("kubectl runs: {:?}", started.elapsed());
}

/// kubectl prints a 422's causes as `field: message`, so a cause's
/// message must not carry its field again (Go's `ErrorBody`).
#[test]
fn kubectl_prints_an_invalid_name_as_kube_apiserver_words_it() {
    if !kubelings_probe::require_program("kubectl") {
        return;
    }
    let c = cluster();
    let bad_name = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "Bad_Name"},
    });
    let file = manifest(&c, "bad-name.json", &bad_name);
    let (ok, out) = kubectl(&c, &c.tokens.admin, &["create", "-f", &file]);
    assert!(!ok);
    assert_eq!(
        out,
        "The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid \
         value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist \
         of lower case alphanumeric characters, '-' or '.', and must start \
         and end with an alphanumeric character (e.g. 'example.com', regex \
         used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
}
