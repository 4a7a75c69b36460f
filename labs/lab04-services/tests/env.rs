//! What the kubelet tells a container about Services: the service
//! environment variables and the resolv.conf of `dnsPolicy: ClusterFirst`.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{EnvVar, Service};
use lab04::env::{env_name, resolv_conf, service_env};
use lab04::manifest::parse_service;

fn service(yaml: &str, namespace: &str, cluster_ip: &str) -> Service {
    let mut s = parse_service(yaml).unwrap();
    s.metadata.namespace = Some(namespace.into());
    s.spec.as_mut().unwrap().cluster_ip = Some(cluster_ip.into());
    s
}

fn file(name: &str) -> String {
    let path = format!("{}/tests/services/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

const KUBERNETES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: kubernetes}
spec:
  ports:
  - {name: https, port: 443, targetPort: 6443}
"#;

const OTHER: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: other-db}
spec:
  ports:
  - {port: 5432}
  selector: {app: db}
"#;

/// kubernetes and kubia (two named ports) in default, a headless Service
/// there too, and one in another namespace.
fn services() -> Vec<Service> {
    vec![
        service(
            &file("kubia-svc-named-ports.yaml"),
            "default",
            "198.19.0.12",
        ),
        service(KUBERNETES, "default", "198.19.0.1"),
        service(&file("kubia-headless.yaml"), "default", "None"),
        service(OTHER, "other", "198.19.0.40"),
    ]
}

fn show(vars: &[EnvVar]) -> String {
    vars.iter()
        .map(|v| format!("{}={}\n", v.name, v.value.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn names_are_upper_case_with_underscores() {
    assert_eq!(env_name("kubia-headless"), "KUBIA_HEADLESS");
}

#[test]
fn kubia_with_named_ports() {
    insta::assert_snapshot!(show(&service_env(&services(), "default", true)));
}

#[test]
fn only_services_of_the_pods_namespace_and_the_master() {
    let vars = service_env(&services(), "other", true);
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    assert!(names.contains(&"OTHER_DB_SERVICE_HOST"), "{names:?}");
    assert!(names.contains(&"KUBERNETES_SERVICE_HOST"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("KUBIA")), "{names:?}");
    // The unnamed only port has no _SERVICE_PORT_<NAME>.
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("OTHER_DB_SERVICE_PORT_")),
        "{names:?}"
    );
}

#[test]
fn without_service_links_only_the_master_is_left() {
    let vars = service_env(&services(), "default", false);
    assert!(!vars.is_empty());
    assert!(
        vars.iter().all(|v| v.name.starts_with("KUBERNETES_")),
        "{}",
        show(&vars)
    );
    // All of the master's, the Docker-link ones too.
    assert!(vars
        .iter()
        .any(|v| v.name == "KUBERNETES_PORT_443_TCP_ADDR"));
}

#[test]
fn cluster_first_resolv_conf() {
    let text = resolv_conf(
        "default",
        &[Ipv4Addr::new(198, 19, 0, 10)],
        "cluster.local",
    );
    assert_eq!(
        text,
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 198.19.0.10\n\
         options ndots:5\n"
    );
    insta::assert_snapshot!("resolv_conf", text);
}
