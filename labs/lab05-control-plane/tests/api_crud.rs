//! The API server's REST machinery, driven in-process: discovery,
//! create/get/update/delete with kube-apiserver's answers, defaults,
//! metadata, the spec/status split, deletion, namespaces.

mod support;

use axum::http::{Method, StatusCode};
use lab05::apiserver::Options;
use serde_json::{json, Value};
use support::{api, api_with, kubia_pod, redactions, PODS};

#[tokio::test]
async fn discovery_lists_groups_resources_and_subresources() {
    let api = api().await;
    let root = api.get("/api").await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.body["versions"], json!(["v1"]));
    assert_eq!(
        root.headers["content-type"], "application/json",
        "kubectl reads legacy discovery by its content type"
    );
    let groups = api.get("/apis").await.body;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"apps") && names.contains(&"coordination.k8s.io"));
    let core = api.get("/api/v1").await.body;
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    assert_eq!(pods["namespaced"], true);
    let apps = api.get("/apis/apps/v1").await.body;
    let scale = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .unwrap();
    assert_eq!(
        (&scale["group"], &scale["version"], &scale["kind"]),
        (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
    );
    let version = api.get("/version").await.body;
    assert_eq!(
        (&version["major"], &version["minor"]),
        (&json!("1"), &json!("32"))
    );
    assert_eq!(api.get("/healthz").await.text, "ok");
    let apps = api.get("/apis/apps").await.body;
    assert_eq!(apps["kind"], "APIGroup");
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    let wrong = api.post("/api/v1", &json!({})).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.body["kind"], "Status");
    let missing = api.get("/apis/nope/v1").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let missing = api.get("/api/v1/widgets").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.message(),
        "the server could not find the requested resource"
    );
}

#[tokio::test]
async fn bootstrap_makes_namespaces_and_the_kubernetes_service() {
    let api = api().await;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let got = api.get(&format!("/api/v1/namespaces/{ns}")).await;
        assert_eq!(got.status, StatusCode::OK, "{ns}");
        assert_eq!(got.body["status"]["phase"], "Active");
        assert_eq!(got.body["spec"]["finalizers"], json!(["kubernetes"]));
    }
    let svc = api
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await;
    assert_eq!(svc.body["spec"]["clusterIP"], "198.19.0.1");
    assert_eq!(svc.body["spec"]["ports"][0]["name"], "https");
    assert_eq!(svc.body["metadata"]["labels"]["provider"], "kubernetes");
    let ep = api
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(ep.status, StatusCode::OK);
    assert_eq!(ep.body["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
    assert_eq!(ep.body["subsets"][0]["ports"][0]["port"], 6443);
    // A second server over the same store finds them and makes nothing.
    let rv = svc.body["metadata"]["resourceVersion"].clone();
    let again = lab05::apiserver::ApiServer::new(
        api.store.clone(),
        std::sync::Arc::new(lab05::apiserver::guard::AllowAll),
        Options::default(),
    )
    .await
    .unwrap();
    drop(again);
    let svc = api
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await;
    assert_eq!(svc.body["metadata"]["resourceVersion"], rv);
}

#[tokio::test]
async fn created_pod_has_metadata_and_defaults() {
    let api = api().await;
    let created = api.post(PODS, &kubia_pod("kubia-manual")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let pod = &created.body;
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(pod["metadata"]["generation"], 1);
    assert!(pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let got = api.get(&format!("{PODS}/kubia-manual")).await;
    assert_eq!(&got.body, pod, "GET gives what POST answered");
    redactions().bind(|| insta::assert_yaml_snapshot!("created_pod", pod));
}

#[tokio::test]
async fn created_service_gets_a_cluster_ip_and_defaults() {
    let api = api().await;
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubia"},
        "spec": {"selector": {"app": "kubia"}, "ports": [{"port": 80}]}});
    let created = api.post("/api/v1/namespaces/default/services", &svc).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let ip = created.body["spec"]["clusterIP"].as_str().unwrap();
    let parsed: std::net::Ipv4Addr = ip.parse().unwrap();
    assert_eq!(parsed.octets()[..2], [198, 19]);
    assert_ne!(ip, "198.19.0.1", "the kubernetes Service has that one");
    assert_eq!(created.body["spec"]["clusterIPs"], json!([ip]));
    let mut settings = redactions();
    settings.add_redaction(".spec.clusterIP", "[ip]");
    settings.add_redaction(".spec.clusterIPs[0]", "[ip]");
    settings
        .bind(|| insta::assert_yaml_snapshot!("created_service", created.body));
}

#[tokio::test]
async fn service_addresses_and_node_ports_are_taken_once() {
    let api = api().await;
    let svcs = "/api/v1/namespaces/default/services";
    let svc = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "NodePort", "clusterIP": "198.19.0.10",
                 "ports": [{"port": 80, "nodePort": 30123}]}})
    };
    let first = api.post(svcs, &svc("a")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["spec"]["ports"][0]["nodePort"], 30123);
    assert_eq!(first.body["spec"]["externalTrafficPolicy"], "Cluster");
    let taken = api.post(svcs, &svc("b")).await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        taken.message(),
        "Service \"b\" is invalid: spec.clusterIPs: Invalid value: \
         \"198.19.0.10\": provided IP is already allocated"
    );
    // Deleting the Service gives its address and port back.
    let deleted = api.delete(&format!("{svcs}/a"), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let again = api.post(svcs, &svc("b")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    // An update that leaves the ClusterIP out keeps it.
    let mut changed = svc("b");
    changed["spec"].as_object_mut().unwrap().remove("clusterIP");
    changed["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("nodePort");
    let updated = api.put(&format!("{svcs}/b"), &changed).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.body["spec"]["clusterIP"], "198.19.0.10");
    assert_eq!(updated.body["spec"]["ports"][0]["nodePort"], 30123);
}

#[tokio::test]
async fn a_service_turned_node_port_gets_a_port() {
    let api = api().await;
    let svcs = "/api/v1/namespaces/default/services";
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubia-http"},
        "spec": {"selector": {"app": "kubia"}, "ports": [{"port": 80,
                 "targetPort": 8080}]}});
    let created = api.post(svcs, &svc).await.body;
    assert!(created["spec"]["ports"][0].get("nodePort").is_none());
    let mut balanced = created.clone();
    balanced["spec"]["type"] = json!("LoadBalancer");
    let updated = api.put(&format!("{svcs}/kubia-http"), &balanced).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    let port = updated.body["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    assert_eq!(
        updated.body["spec"]["clusterIP"],
        created["spec"]["clusterIP"]
    );
    let mut moved = updated.body.clone();
    moved["spec"]["clusterIP"] = json!("198.19.9.9");
    moved["spec"]["clusterIPs"] = json!(["198.19.9.9"]);
    let refused = api.put(&format!("{svcs}/kubia-http"), &moved).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.message().contains("may not change once set"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn get_of_a_missing_object_is_not_found() {
    let api = api().await;
    let got = api.get(&format!("{PODS}/x")).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(got.body["kind"], "Status");
    assert_eq!(got.body["reason"], "NotFound");
    assert_eq!(got.message(), "pods \"x\" not found");
    assert_eq!(got.body["details"], json!({"name": "x", "kind": "pods"}));
    let got = api
        .get("/apis/apps/v1/namespaces/default/deployments/d")
        .await;
    assert_eq!(got.message(), "deployments.apps \"d\" not found");
}

#[tokio::test]
async fn a_taken_name_is_already_exists() {
    let api = api().await;
    assert_eq!(
        api.post(PODS, &kubia_pod("kubia")).await.status,
        StatusCode::CREATED
    );
    let again = api.post(PODS, &kubia_pod("kubia")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["reason"], "AlreadyExists");
    assert_eq!(again.message(), "pods \"kubia\" already exists");
}

#[tokio::test]
async fn generate_name_appends_five_characters() {
    let api = api().await;
    let mut pod = kubia_pod("");
    pod["metadata"] = json!({"generateName": "kubia-"});
    let created = api.post(PODS, &pod).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let name = created.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("kubia-") && name.len() == 11, "{name}");
    assert!(name[6..]
        .bytes()
        .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c)));
    let second = api.post(PODS, &pod).await;
    assert_ne!(
        second.body["metadata"]["name"],
        created.body["metadata"]["name"]
    );
}

#[tokio::test]
async fn server_fields_are_the_servers() {
    let api = api().await;
    let mut pod = kubia_pod("kubia");
    pod["metadata"]["uid"] = json!("mine");
    pod["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    pod["metadata"]["deletionTimestamp"] = json!("2000-01-01T00:00:00Z");
    pod["status"] = json!({"phase": "Running"});
    let created = api.post(PODS, &pod).await.body;
    assert_ne!(created["metadata"]["uid"], "mine");
    assert_ne!(
        created["metadata"]["creationTimestamp"],
        "2000-01-01T00:00:00Z"
    );
    assert!(created["metadata"].get("deletionTimestamp").is_none());
    assert_eq!(created["status"]["phase"], "Pending");
}

#[tokio::test]
async fn invalid_objects_are_422_with_the_field() {
    let api = api().await;
    let bad = api.post(PODS, &kubia_pod("Kubia")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["reason"], "Invalid");
    assert!(
        bad.message().starts_with(
            "Pod \"Kubia\" is invalid: metadata.name: Invalid value: \"Kubia\": \
             a lowercase RFC 1123 subdomain must consist of"
        ),
        "{}",
        bad.message()
    );
    let cause = &bad.body["details"]["causes"][0];
    assert_eq!(cause["field"], "metadata.name");
    assert_eq!(cause["reason"], "FieldValueInvalid");
    assert!(
        cause["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid value: \"Kubia\": a lowercase"),
        "kubectl prints the field before the message: {cause}"
    );
    let mut pod = kubia_pod("kubia");
    pod["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let bad = api.post(PODS, &pod).await;
    assert_eq!(
        bad.message(),
        "Pod \"kubia\" is invalid: spec.containers[0].image: Required value"
    );
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}});
    let bad = api.post("/api/v1/namespaces/default/services", &svc).await;
    assert!(
        bad.message().contains("a DNS-1035 label"),
        "{}",
        bad.message()
    );
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "kubia"},
        "spec": {"selector": {"app": "other"}, "template": {
            "metadata": {"labels": {"app": "kubia"}},
            "spec": {"containers": [{"name": "k", "image": "luksa/kubia"}]}}}});
    let bad = api
        .post("/api/v1/namespaces/default/replicationcontrollers", &rc)
        .await;
    assert!(
        bad.message().contains(
            "spec.template.metadata.labels: Invalid value: \
             map[string]string{\"app\":\"kubia\"}: `selector` does not match \
             template `labels`"
        ),
        "{}",
        bad.message()
    );
}

#[tokio::test]
async fn unknown_fields_follow_field_validation() {
    let api = api().await;
    let mut pod = kubia_pod("kubia");
    pod["spec"]["foo"] = json!(1);
    pod["spec"]["containers"][0]["imagePullPolizy"] = json!("Always");
    let strict = api
        .post(&format!("{PODS}?fieldValidation=Strict"), &pod)
        .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        strict.message(),
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding \
         error: unknown field \"spec.containers[0].imagePullPolizy\", \
         unknown field \"spec.foo\""
    );
    let warn = api
        .post(&format!("{PODS}?fieldValidation=Warn"), &pod)
        .await;
    assert_eq!(warn.status, StatusCode::CREATED);
    let warnings: Vec<&str> = warn
        .headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            "299 - \"unknown field \\\"spec.containers[0].imagePullPolizy\\\"\"",
            "299 - \"unknown field \\\"spec.foo\\\"\""
        ]
    );
    // Never stored, whatever the mode.
    assert!(warn.body["spec"].get("foo").is_none());
    pod["metadata"]["name"] = json!("kubia2");
    let ignore = api
        .post(&format!("{PODS}?fieldValidation=Ignore"), &pod)
        .await;
    assert_eq!(ignore.status, StatusCode::CREATED);
    assert!(ignore.headers.get("warning").is_none());
    let got = api.get(&format!("{PODS}/kubia2")).await.body;
    assert!(got["spec"].get("foo").is_none());
}

#[tokio::test]
async fn request_bodies_are_checked() {
    let api = api().await;
    let broken = api
        .call(
            Method::POST,
            PODS,
            "application/json",
            b"{\"a\": }".to_vec(),
            None,
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert!(
        broken.message().contains("line 1 column"),
        "{}",
        broken.message()
    );
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: y\nspec:\n  \
                containers:\n  - name: a\n    image: luksa/kubia\n";
    let from_yaml = api
        .call(Method::POST, PODS, "application/yaml", yaml.into(), None)
        .await;
    assert_eq!(from_yaml.status, StatusCode::CREATED, "{}", from_yaml.text);
    let text = api
        .call(Method::POST, PODS, "text/plain", b"x".to_vec(), None)
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        text.message(),
        "the body of the request was in an unknown format - accepted media \
         types include: application/json, application/yaml"
    );
    let mut big = kubia_pod("big");
    big["metadata"]["annotations"] = json!({"a": "x".repeat(2 * 1024 * 1024)});
    let too_big = api.post(PODS, &big).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.body["reason"], "RequestEntityTooLarge");
    let mut svc = kubia_pod("kubia");
    svc["kind"] = json!("Service");
    let wrong_kind = api.post(PODS, &svc).await;
    assert_eq!(wrong_kind.status, StatusCode::BAD_REQUEST);
    let mut other = kubia_pod("kubia");
    other["apiVersion"] = json!("apps/v1");
    let wrong_version = api.post(PODS, &other).await;
    assert_eq!(
        wrong_version.message(),
        "the API version in the data (apps/v1) does not match the expected \
         API version (v1)"
    );
    let mut elsewhere = kubia_pod("kubia");
    elsewhere["metadata"]["namespace"] = json!("kube-system");
    let mismatch = api.post(PODS, &elsewhere).await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        mismatch.message(),
        "the namespace of the provided object does not match the namespace \
         sent on the request"
    );
    api.post(PODS, &kubia_pod("kubia")).await;
    let renamed = api.put(&format!("{PODS}/kubia"), &kubia_pod("other")).await;
    assert_eq!(renamed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        renamed.message(),
        "the name of the object (other) does not match the name on the URL \
         (kubia)"
    );
}

fn rc(replicas: i64) -> Value {
    json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "kubia"},
        "spec": {"replicas": replicas, "template": {
            "metadata": {"labels": {"app": "kubia"}},
            "spec": {"containers": [{"name": "k", "image": "luksa/kubia"}]}}}})
}

const RCS: &str = "/api/v1/namespaces/default/replicationcontrollers";

#[tokio::test]
async fn rc_defaults_its_selector_and_labels() {
    let api = api().await;
    let created = api.post(RCS, &rc(3)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let spec = &created.body["spec"];
    assert_eq!(spec["selector"], json!({"app": "kubia"}));
    assert_eq!(created.body["metadata"]["labels"], json!({"app": "kubia"}));
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert!(created.body.get("status").is_none());
}

#[tokio::test]
async fn updates_conflict_on_a_stale_resource_version() {
    let api = api().await;
    let created = api.post(RCS, &rc(1)).await.body;
    let stale = created["metadata"]["resourceVersion"].clone();
    let mut two = rc(2);
    two["metadata"]["resourceVersion"] = stale.clone();
    let first = api.put(&format!("{RCS}/kubia"), &two).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_ne!(first.body["metadata"]["resourceVersion"], stale);
    let mut three = rc(3);
    three["metadata"]["resourceVersion"] = stale;
    let second = api.put(&format!("{RCS}/kubia"), &three).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.body["reason"], "Conflict");
    assert_eq!(
        second.message(),
        "Operation cannot be fulfilled on replicationcontrollers \"kubia\": \
         the object has been modified; please apply your changes to the \
         latest version and try again"
    );
    // Without a resourceVersion, the update is unconditional.
    let blind = api.put(&format!("{RCS}/kubia"), &rc(3)).await;
    assert_eq!(blind.status, StatusCode::OK);
    assert_eq!(blind.body["spec"]["replicas"], 3);
    assert_eq!(blind.body["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        blind.body["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    let missing = api.put(&format!("{RCS}/nope"), &rc(1)).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "name differs");
}

#[tokio::test]
async fn generation_counts_spec_changes_not_labels() {
    let api = api().await;
    api.post(RCS, &rc(1)).await;
    let mut labelled = rc(1);
    labelled["metadata"]["labels"] = json!({"app": "kubia", "env": "prod"});
    let same = api.put(&format!("{RCS}/kubia"), &labelled).await.body;
    assert_eq!(same["metadata"]["labels"]["env"], "prod");
    assert_eq!(same["metadata"]["generation"], 1);
    let mut scaled = labelled.clone();
    scaled["spec"]["replicas"] = json!(5);
    let bumped = api.put(&format!("{RCS}/kubia"), &scaled).await.body;
    assert_eq!(bumped["metadata"]["generation"], 2);
    // Writing the same object again changes nothing, not even the version.
    let again = api.put(&format!("{RCS}/kubia"), &scaled).await.body;
    assert_eq!(
        again["metadata"]["resourceVersion"],
        bumped["metadata"]["resourceVersion"]
    );
    assert_eq!(again["metadata"]["generation"], 2);
}

#[tokio::test]
async fn pod_spec_is_fixed_but_for_images() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    // The whole object as read: a manifest without imagePullPolicy would
    // default it anew for the new tag, and that is a change too.
    let mut image = api.get(&format!("{PODS}/kubia")).await.body;
    image["spec"]["containers"][0]["image"] = json!("luksa/kubia:v2");
    let ok = api.put(&format!("{PODS}/kubia"), &image).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["spec"]["containers"][0]["image"], "luksa/kubia:v2");
    let mut port = ok.body.clone();
    port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9090);
    let refused = api.put(&format!("{PODS}/kubia"), &port).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .message()
            .contains("spec: Forbidden: pod updates may not change fields"),
        "{}",
        refused.message()
    );
}

// The spec/status split (exercise lab05-status-split).

#[tokio::test]
async fn a_write_to_the_object_keeps_its_status() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let mut pod = api.get(&format!("{PODS}/kubia")).await.body;
    pod["metadata"]["labels"]["env"] = json!("prod");
    pod["status"] = json!({"phase": "Succeeded", "podIP": "10.0.0.9"});
    let updated = api.put(&format!("{PODS}/kubia"), &pod).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.body["metadata"]["labels"]["env"], "prod");
    assert_eq!(updated.body["status"]["phase"], "Pending");
    assert!(updated.body["status"].get("podIP").is_none());
    assert_eq!(updated.body["status"]["qosClass"], "BestEffort");
}

#[tokio::test]
async fn a_write_to_status_changes_only_the_status() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let mut pod = api.get(&format!("{PODS}/kubia")).await.body;
    pod["metadata"]["labels"]["env"] = json!("prod");
    pod["spec"]["containers"][0]["image"] = json!("luksa/kubia:v9");
    pod["status"] = json!({"phase": "Running", "podIP": "10.0.0.9"});
    let updated = api.put(&format!("{PODS}/kubia/status"), &pod).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.body["status"]["phase"], "Running");
    assert_eq!(updated.body["status"]["podIP"], "10.0.0.9");
    assert!(updated.body["metadata"]["labels"].get("env").is_none());
    assert_eq!(
        updated.body["spec"]["containers"][0]["image"],
        "luksa/kubia"
    );
    assert_eq!(updated.body["metadata"]["generation"], 1);
    let got = api.get(&format!("{PODS}/kubia/status")).await.body;
    assert_eq!(got["status"]["podIP"], "10.0.0.9");
}

#[tokio::test]
async fn status_writes_keep_the_spec_of_controllers_too() {
    let api = api().await;
    api.post(RCS, &rc(3)).await;
    let mut rc_now = api.get(&format!("{RCS}/kubia")).await.body;
    rc_now["spec"]["replicas"] = json!(10);
    rc_now["status"] = json!({"replicas": 2, "observedGeneration": 1});
    let updated = api.put(&format!("{RCS}/kubia/status"), &rc_now).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.body["spec"]["replicas"], 3);
    assert_eq!(updated.body["status"]["replicas"], 2);
    assert_eq!(updated.body["metadata"]["generation"], 1);
    // And a write to the object keeps that status.
    let mut spec = updated.body.clone();
    spec["spec"]["replicas"] = json!(4);
    spec.as_object_mut().unwrap().remove("status");
    let main = api.put(&format!("{RCS}/kubia"), &spec).await.body;
    assert_eq!(main["status"]["replicas"], 2);
    assert_eq!(main["spec"]["replicas"], 4);
}

// Deletion.

#[tokio::test]
async fn an_unscheduled_pod_is_deleted_at_once() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let deleted = api
        .delete(
            &format!("{PODS}/kubia"),
            Some(&json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["metadata"]["name"], "kubia");
    assert_eq!(
        api.get(&format!("{PODS}/kubia")).await.status,
        StatusCode::NOT_FOUND
    );
    let again = api.delete(&format!("{PODS}/kubia"), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_pod_on_a_node_gets_its_grace_period() {
    let api = api().await;
    let mut pod = kubia_pod("kubia");
    pod["spec"]["nodeName"] = json!("node-1");
    api.post(PODS, &pod).await;
    let deleted = api.delete(&format!("{PODS}/kubia"), None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let m = &deleted.body["metadata"];
    assert_eq!(m["deletionGracePeriodSeconds"], 30);
    let due = chrono::DateTime::parse_from_rfc3339(
        m["deletionTimestamp"].as_str().unwrap(),
    )
    .unwrap();
    let ahead = due.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((25..=31).contains(&ahead), "{ahead}");
    let still = api.get(&format!("{PODS}/kubia")).await;
    assert_eq!(still.status, StatusCode::OK);
    // A shorter grace period replaces it; the node's grace-0 delete ends it.
    let shorter = api
        .delete(&format!("{PODS}/kubia?gracePeriodSeconds=5"), None)
        .await;
    assert_eq!(shorter.body["metadata"]["deletionGracePeriodSeconds"], 5);
    let done = api
        .delete(
            &format!("{PODS}/kubia"),
            Some(&json!({"gracePeriodSeconds": 0})),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(
        api.get(&format!("{PODS}/kubia")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn finalizers_hold_an_object_until_removed() {
    let api = api().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["example.com/cleanup"]},
        "data": {"a": "1"}});
    api.post(cms, &cm).await;
    let deleted = api.delete(&format!("{cms}/c"), None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(deleted.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleted.body["metadata"]["deletionGracePeriodSeconds"], 0);
    let held = api.get(&format!("{cms}/c")).await;
    assert_eq!(held.status, StatusCode::OK);
    // An update cannot take deletionTimestamp away ...
    let mut edit = held.body.clone();
    let m = edit["metadata"].as_object_mut().unwrap();
    m.remove("deletionTimestamp");
    m.remove("resourceVersion");
    edit["data"]["a"] = json!("2");
    let edited = api.put(&format!("{cms}/c"), &edit).await.body;
    assert!(edited["metadata"]["deletionTimestamp"].is_string());
    // ... and removing the last finalizer removes the object.
    edit["metadata"]["finalizers"] = json!([]);
    let last = api.put(&format!("{cms}/c"), &edit).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text);
    assert_eq!(
        api.get(&format!("{cms}/c")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn propagation_policies_are_recorded_as_finalizers() {
    let api = api().await;
    api.post(RCS, &rc(1)).await;
    let fg = api
        .delete(
            &format!("{RCS}/kubia"),
            Some(&json!({"propagationPolicy": "Foreground"})),
        )
        .await;
    assert_eq!(
        fg.body["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    let orphan = api
        .delete(&format!("{RCS}/kubia?propagationPolicy=Orphan"), None)
        .await;
    assert_eq!(orphan.body["metadata"]["finalizers"], json!(["orphan"]));
    assert_eq!(
        api.get(&format!("{RCS}/kubia")).await.status,
        StatusCode::OK
    );
    let bad = api
        .delete(&format!("{RCS}/kubia?propagationPolicy=Sideways"), None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let wrong = api
        .delete(
            &format!("{PODS}/kubia"),
            Some(&json!({"preconditions": {"uid": "nope"}})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);
    assert!(wrong
        .message()
        .contains("Precondition failed: UID in precondition: nope"));
}

// Namespaces.

#[tokio::test]
async fn objects_need_a_live_namespace() {
    let api = api_with(Options {
        finalize_namespaces: false,
        ..Options::default()
    })
    .await;
    let missing = api
        .post("/api/v1/namespaces/nope/pods", &kubia_pod("kubia"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.message(), "namespaces \"nope\" not found");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}});
    let created = api.post("/api/v1/namespaces", &ns).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.body["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "foo"
    );
    let deleted = api.delete("/api/v1/namespaces/foo", None).await;
    assert_eq!(deleted.body["status"]["phase"], "Terminating");
    let refused = api
        .post("/api/v1/namespaces/foo/pods", &kubia_pod("kubia"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.message(),
        "pods \"kubia\" is forbidden: unable to create new content in \
         namespace foo because it is being terminated"
    );
    let kept = api.delete("/api/v1/namespaces/default", None).await;
    assert_eq!(kept.status, StatusCode::FORBIDDEN);
    // The namespace controller's last step: its finalizer off, it is gone.
    let mut last = deleted.body.clone();
    last["spec"]["finalizers"] = json!([]);
    let finalized = api.put("/api/v1/namespaces/foo/finalize", &last).await;
    assert_eq!(finalized.status, StatusCode::OK, "{}", finalized.text);
    assert_eq!(
        api.get("/api/v1/namespaces/foo").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let api = api().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}});
    api.post("/api/v1/namespaces", &ns).await;
    let pod = api
        .post("/api/v1/namespaces/foo/pods", &kubia_pod("kubia"))
        .await;
    assert_eq!(pod.status, StatusCode::CREATED);
    let deleted = api.delete("/api/v1/namespaces/foo", None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["status"]["phase"], "Terminating");
    assert_eq!(
        api.get("/api/v1/namespaces/foo").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/v1/namespaces/foo/pods/kubia").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn cluster_scoped_objects_have_no_namespace() {
    let api = api().await;
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1"},
        "status": {"capacity": {"cpu": 4, "memory": "32Gi", "pods": "110"}}});
    let created = api.post("/api/v1/nodes", &node).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(created.body["metadata"].get("namespace").is_none());
    assert_eq!(
        created.body["status"]["capacity"]["cpu"], "4",
        "a node keeps its status"
    );
    let got = api.get("/api/v1/nodes/node-1").await;
    assert_eq!(got.status, StatusCode::OK);
}

#[tokio::test]
async fn table_of_one_object() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let accept =
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let got = api
        .call(
            Method::GET,
            &format!("{PODS}/kubia"),
            "",
            Vec::new(),
            Some(accept),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.headers["content-type"],
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    );
    assert_eq!(got.body["kind"], "Table");
    assert_eq!(got.body["rows"][0]["cells"][0], "kubia");
}

#[tokio::test]
async fn writes_need_the_namespace_in_the_path() {
    let api = api().await;
    let across = api.post("/api/v1/pods", &kubia_pod("kubia")).await;
    assert_eq!(across.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(across.body["reason"], "MethodNotAllowed");
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let api = api().await;
    let created = api
        .post(&format!("{PODS}?dryRun=All"), &kubia_pod("kubia"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        api.get(&format!("{PODS}/kubia")).await.status,
        StatusCode::NOT_FOUND
    );
}
