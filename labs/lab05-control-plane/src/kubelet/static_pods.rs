//! Static pods: pods a node runs from files in its manifest directory
//! (the kubelet's `staticPodPath`), with no API server asking. The API
//! server learns of each through a *mirror pod*: a copy the node agent
//! creates, marked with the `kubernetes.io/config.mirror` annotation and
//! owned by the Node, so `kubectl get pods` shows it. Deleting the mirror
//! pod does not stop the static pod: the agent makes it again.
//!
//! As the kubelet's file source (`pkg/kubelet/config/common.go`): a static
//! pod is named `<name>-<node>`, lands in `default` if it names no
//! namespace, is bound to the node, and gets a uid that is a hash of the
//! manifest, the node and the source — the same file on the same node is
//! the same pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sha2::{Digest, Sha256};

use crate::auth::restriction::MIRROR_POD_ANNOTATION;

/// The hash the kubelet gives a static pod (its uid, too).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Where a pod came from: `file`, `http` or `api`.
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";

/// Why a manifest is not a static pod.
#[derive(Debug, thiserror::Error)]
pub enum StaticPodError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// The pod a manifest becomes on node `node`.
pub fn static_pod(
    text: &str,
    node: &str,
    path: &Path,
) -> Result<Pod, StaticPodError> {
    let mut pod = lab03::manifest::parse_pod(text).map_err(|e| {
        StaticPodError::Manifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    })?;
    let hash = hex(&Sha256::digest(format!(
        "{text}\nhost:{node}\nfile:{}",
        path.display()
    )));
    let uid = uuid_of(&hash);
    let meta = &mut pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    meta.name = Some(format!("{name}-{node}"));
    meta.namespace.get_or_insert_with(|| "default".into());
    meta.uid = Some(uid.clone());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.into(), uid);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
        // A static pod tolerates every NoExecute taint: nobody could
        // evict it anyway.
        spec.tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                effect: Some("NoExecute".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            });
    }
    Ok(pod)
}

/// The static pods of `dir`, by uid; and the files that are not pods.
/// Dot files are skipped, as the kubelet skips them.
pub fn read_dir(
    dir: &Path,
    node: &str,
) -> (BTreeMap<String, Pod>, Vec<StaticPodError>) {
    let mut pods = BTreeMap::new();
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            problems.push(StaticPodError::Read {
                path: dir.to_path_buf(),
                source,
            });
            return (pods, problems);
        }
    };
    let mut paths: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let wanted =
            [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
        if name.starts_with('.') || !wanted {
            continue;
        }
        let read = std::fs::read_to_string(&path).map_err(|source| {
            StaticPodError::Read {
                path: path.clone(),
                source,
            }
        });
        match read.and_then(|text| static_pod(&text, node, &path)) {
            Ok(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                pods.insert(uid, pod);
            }
            Err(e) => problems.push(e),
        }
    }
    (pods, problems)
}

// ANCHOR: mirror_pod
/// The mirror pod of a static pod: the same pod for the API, with the
/// static pod's hash as its `config.mirror` annotation, owned by the
/// Node, and without the uid (the API server gives it its own).
pub fn mirror_pod(pod: &Pod, node: &Node) -> Pod {
    let mut mirror = pod.clone();
    let meta = &mut mirror.metadata;
    let hash = meta.uid.take().unwrap_or_default();
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(MIRROR_POD_ANNOTATION.into(), hash);
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.metadata.name.clone().unwrap_or_default(),
        uid: node.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    meta.creation_timestamp = None;
    meta.resource_version = None;
    mirror.status = None;
    mirror
}
// ANCHOR_END: mirror_pod

/// Whether an API pod is a mirror pod, and of which static pod (its
/// hash).
pub fn mirror_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(MIRROR_POD_ANNOTATION)
        .map(String::as_str)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A uid in a UUID's shape from a hex digest.
fn uuid_of(d: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &d[..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: kubia\n";

    #[test]
    fn a_static_pod_is_named_for_its_node_and_keeps_its_uid() {
        let p = Path::new("/m/web.yaml");
        let a = static_pod(WEB, "node-1", p).unwrap();
        let b = static_pod(WEB, "node-1", p).unwrap();
        let c = static_pod(WEB, "node-2", p).unwrap();
        assert_eq!(a.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(a.metadata.uid, b.metadata.uid);
        assert_ne!(a.metadata.uid, c.metadata.uid);
        let spec = a.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    }

    #[test]
    fn the_mirror_pod_names_its_static_pod_and_node() {
        let pod = static_pod(WEB, "node-1", Path::new("/m/web.yaml")).unwrap();
        let mut node = Node::default();
        node.metadata.name = Some("node-1".into());
        node.metadata.uid = Some("n-uid".into());
        let m = mirror_pod(&pod, &node);
        assert_eq!(m.metadata.uid, None);
        assert_eq!(mirror_of(&m), pod.metadata.uid.as_deref());
        let owner = &m.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Node", "n-uid")
        );
    }
}
