//! The resources the API server serves: what discovery lists, what the
//! REST paths name, where each kind lives in the store.
//!
//! One table, read by discovery, the router, OpenAPI and the printers, so
//! adding a resource is adding a row.

/// A subresource: a path below an object (`pods/status`) with verbs and a
/// kind of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// `status`, `scale`, `binding`, `log`, `eviction`.
    pub name: &'static str,
    /// The kind its requests and answers carry (`Scale`, `Binding`).
    pub kind: &'static str,
    /// Where that kind is from when it is not the parent's group/version
    /// (`Scale` is `autoscaling/v1`, `Eviction` is `policy/v1`).
    pub group_version: Option<(&'static str, &'static str)>,
    pub verbs: &'static [&'static str],
}

/// One resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group: "" for core.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The path segment: `pods`, `replicationcontrollers`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// `all` puts it in `kubectl get all`.
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// The key prefix in kube-apiserver's layout, below `/registry/`
    /// (`pods`, `services/specs`, `minions`, `controllers`).
    pub store_prefix: &'static str,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store key of one object (`namespace` is ignored for cluster
    /// scoped resources).
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("/registry/{}/{namespace}/{name}", self.store_prefix)
        } else {
            format!("/registry/{}/{name}", self.store_prefix)
        }
    }

    /// The key prefix of a list: one namespace, or all of them when
    /// `namespace` is `None`. Ends with '/', so `pods/default/` never
    /// matches `pods/default2/`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!("/registry/{}/{ns}/", self.store_prefix)
            }
            _ => format!("/registry/{}/", self.store_prefix),
        }
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The REST verbs of the resource itself.
    pub fn verbs(&self) -> &'static [&'static str] {
        VERBS
    }
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const STATUS: Subresource = Subresource {
    name: "status",
    kind: "",
    group_version: None,
    verbs: &["get", "patch", "update"],
};

const SCALE: Subresource = Subresource {
    name: "scale",
    kind: "Scale",
    group_version: Some(("autoscaling", "v1")),
    verbs: &["get", "patch", "update"],
};

/// Every resource the server knows, in discovery order.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[
            STATUS,
            Subresource {
                name: "finalize",
                kind: "",
                group_version: None,
                verbs: &["update"],
            },
        ],
        store_prefix: "namespaces",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            STATUS,
            Subresource {
                name: "binding",
                kind: "Binding",
                group_version: None,
                verbs: &["create"],
            },
            Subresource {
                name: "log",
                kind: "Pod",
                group_version: None,
                verbs: &["get"],
            },
            Subresource {
                name: "exec",
                kind: "PodExecOptions",
                group_version: None,
                verbs: &["create", "get"],
            },
            Subresource {
                name: "eviction",
                kind: "Eviction",
                group_version: Some(("policy", "v1")),
                verbs: &["create"],
            },
        ],
        store_prefix: "pods",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[STATUS],
        store_prefix: "minions",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[STATUS],
        store_prefix: "services/specs",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        store_prefix: "services/endpoints",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        store_prefix: "events",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        store_prefix: "configmaps",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        store_prefix: "secrets",
    },
    Resource {
        group: "",
        version: "v1",
        kind: "ReplicationController",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        subresources: &[STATUS, SCALE],
        store_prefix: "controllers",
    },
    Resource {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &[STATUS, SCALE],
        store_prefix: "deployments",
    },
    Resource {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[STATUS, SCALE],
        store_prefix: "replicasets",
    },
    Resource {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        subresources: &[STATUS],
        store_prefix: "daemonsets",
    },
    Resource {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        subresources: &[STATUS],
        store_prefix: "jobs",
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        store_prefix: "endpointslices",
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        store_prefix: "leases",
    },
];

/// The resource a REST path names: group ("" for `/api/v1`), version,
/// plural.
pub fn find(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| {
        r.group == group && r.version == version && r.plural == plural
    })
}

/// The resource of a kind in a group.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// The API groups other than core, each with its one version, in
/// discovery order.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    groups
}
