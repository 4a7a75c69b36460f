//! EndpointSlices as the endpoint-slice controller writes them.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lab04::endpoints::{
    conditions, endpoint_slices, find_port, MAX_ENDPOINTS_PER_SLICE,
};
use lab04::manifest::parse_service;

mod support;
use support::pod;

fn service(file: &str) -> k8s_openapi::api::core::v1::Service {
    let path = format!("{}/tests/services/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut s = parse_service(&std::fs::read_to_string(path).unwrap()).unwrap();
    s.metadata.uid = Some("uid-svc".into());
    s
}

fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time(Default::default()));
    p
}

#[test]
fn conditions_follow_readiness_and_deletion() {
    let c = conditions(&pod("a", "198.18.1.2", true), false);
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(true), Some(true), Some(false))
    );
    let c = conditions(&pod("a", "198.18.1.2", false), false);
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(false), Some(false))
    );
    let c = conditions(&terminating(pod("a", "198.18.1.2", true)), false);
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(true), Some(true))
    );
    // publishNotReadyAddresses: ready whatever the pod says.
    let c = conditions(&pod("a", "198.18.1.2", false), true);
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(true), Some(false), Some(false))
    );
}

#[test]
fn named_target_ports_are_looked_up_in_the_pod() {
    let svc = service("kubia-svc-named-ports.yaml");
    let ports = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap();
    let p = pod("a", "198.18.1.2", true);
    assert_eq!(find_port(&p, &ports[0]), Some(8080));
    assert_eq!(find_port(&p, &ports[1]), Some(8443));
    let numbered = service("kubia-svc.yaml");
    assert_eq!(
        find_port(&p, &numbered.spec.unwrap().ports.unwrap()[0]),
        Some(8080)
    );
    let mut other = ports[0].clone();
    other.target_port = Some(
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
            "grpc".into(),
        ),
    );
    assert_eq!(find_port(&p, &other), None);
}

#[test]
fn a_slice_lists_the_selected_pods() {
    let mut stranger = pod("other", "198.18.1.9", true);
    stranger.metadata.labels =
        Some([("app".to_string(), "db".to_string())].into());
    let mut done = pod("done", "198.18.1.8", false);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut no_ip = pod("pending", "", false);
    no_ip.status.as_mut().unwrap().pod_ip = None;
    let pods = vec![
        pod("kubia-b", "198.18.1.3", false),
        pod("kubia-a", "198.18.1.2", true),
        terminating(pod("kubia-c", "198.18.1.4", true)),
        stranger,
        done,
        no_ip,
    ];
    let slices = endpoint_slices(
        &service("kubia-svc-named-ports.yaml"),
        &pods,
        MAX_ENDPOINTS_PER_SLICE,
    );
    insta::assert_yaml_snapshot!(slices);
}

#[test]
fn slices_hold_at_most_the_maximum() {
    let pods: Vec<Pod> = (0..250)
        .map(|i| {
            pod(
                &format!("kubia-{i:03}"),
                &format!("198.18.{}.{}", i / 200, i % 200 + 2),
                true,
            )
        })
        .collect();
    let slices = endpoint_slices(
        &service("kubia-svc.yaml"),
        &pods,
        MAX_ENDPOINTS_PER_SLICE,
    );
    let sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
}

#[test]
fn no_selector_means_no_slices() {
    let mut svc = service("kubia-svc.yaml");
    svc.spec.as_mut().unwrap().selector = None;
    assert!(
        endpoint_slices(&svc, &[pod("a", "198.18.1.2", true)], 100).is_empty()
    );
}
