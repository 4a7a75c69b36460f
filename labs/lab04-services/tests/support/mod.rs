//! Pods for lab04's tests: kubia with its two named ports, running on
//! node-1 with an address and a Ready condition.

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: kubia-x
  labels: {app: kubia}
spec:
  nodeName: node-1
  containers:
  - name: kubia
    image: kubia
    ports:
    - {name: http, containerPort: 8080}
    - {name: https, containerPort: 8443}
"#;

/// kubia pod `name` at `ip`, Ready or not.
#[allow(dead_code)]
pub fn pod(name: &str, ip: &str, ready: bool) -> Pod {
    let mut pod = lab03::manifest::parse_pod(POD).expect("the kubia pod");
    pod.metadata.name = Some(name.into());
    running(pod, ip, ready)
}

/// `pod` in namespace `default` with a uid, Running at `ip`, Ready or not.
pub fn running(mut pod: Pod, ip: &str, ready: bool) -> Pod {
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some(format!("uid-{name}"));
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(ip.into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pod
}
