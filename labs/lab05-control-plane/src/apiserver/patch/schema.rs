//! What strategic merge knows about each kind: which lists merge element
//! by element, and by which key.
//!
//! kube-apiserver reads this from the Go types' struct tags
//! (`patchStrategy:"merge" patchMergeKey:"name"` on `PodSpec.Containers`,
//! in k8s.io/api/core/v1/types.go and friends). We keep the same facts as
//! a small table of types: a field not in the table merges as a map if
//! it is one and is replaced if it is a list (a list without
//! `patchStrategy` is atomic).

/// What one field's struct tags say.
#[derive(Debug)]
pub enum Field {
    /// A struct of a known type: its own fields have strategies too.
    Struct(&'static Type),
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: a list of objects,
    /// merged element by element, matched by `key`.
    MergeByKey {
        key: &'static str,
        elem: &'static Type,
    },
    /// `patchStrategy:"merge"` on a list of strings: a set union.
    MergePrimitives,
}

/// One Go struct, by the fields that have a strategy (or lead to one).
#[derive(Debug)]
pub struct Type {
    pub name: &'static str,
    pub fields: &'static [(&'static str, Field)],
}

impl Type {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }
}

/// A type we know nothing about: maps merge, lists are replaced.
pub static UNKNOWN: Type = Type {
    name: "",
    fields: &[],
};

const fn by(key: &'static str, elem: &'static Type) -> Field {
    Field::MergeByKey { key, elem }
}

static OBJECT_META: Type = Type {
    name: "ObjectMeta",
    fields: &[
        ("ownerReferences", by("uid", &UNKNOWN)),
        ("finalizers", Field::MergePrimitives),
    ],
};

static CONTAINER: Type = Type {
    name: "Container",
    fields: &[
        ("ports", by("containerPort", &UNKNOWN)),
        ("env", by("name", &UNKNOWN)),
        ("volumeMounts", by("mountPath", &UNKNOWN)),
        ("volumeDevices", by("devicePath", &UNKNOWN)),
    ],
};

static POD_SPEC: Type = Type {
    name: "PodSpec",
    fields: &[
        ("containers", by("name", &CONTAINER)),
        ("initContainers", by("name", &CONTAINER)),
        ("ephemeralContainers", by("name", &CONTAINER)),
        // `patchStrategy:"merge,retainKeys"`: the retainKeys half is
        // driven by the patch's own `$retainKeys` directive.
        ("volumes", by("name", &UNKNOWN)),
        ("imagePullSecrets", by("name", &UNKNOWN)),
        ("hostAliases", by("ip", &UNKNOWN)),
        ("topologySpreadConstraints", by("topologyKey", &UNKNOWN)),
        ("schedulingGates", by("name", &UNKNOWN)),
        ("resourceClaims", by("name", &UNKNOWN)),
    ],
};

/// `containerStatuses` has no patchStrategy upstream: the kubelet sends
/// the whole list.
static POD_STATUS: Type = Type {
    name: "PodStatus",
    fields: &[
        ("conditions", by("type", &UNKNOWN)),
        ("podIPs", by("ip", &UNKNOWN)),
        ("hostIPs", by("ip", &UNKNOWN)),
        ("resourceClaimStatuses", by("name", &UNKNOWN)),
    ],
};

static POD: Type = Type {
    name: "Pod",
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        ("spec", Field::Struct(&POD_SPEC)),
        ("status", Field::Struct(&POD_STATUS)),
    ],
};

static POD_TEMPLATE_SPEC: Type = Type {
    name: "PodTemplateSpec",
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        ("spec", Field::Struct(&POD_SPEC)),
    ],
};

/// The spec of every workload with a pod template (RC, Deployment,
/// ReplicaSet, DaemonSet, Job).
static TEMPLATED_SPEC: Type = Type {
    name: "WorkloadSpec",
    fields: &[("template", Field::Struct(&POD_TEMPLATE_SPEC))],
};

/// Statuses whose only strategy is `conditions` merged by `type`.
static CONDITIONS_STATUS: Type = Type {
    name: "Status",
    fields: &[("conditions", by("type", &UNKNOWN))],
};

static WORKLOAD: Type = Type {
    name: "Workload",
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        ("spec", Field::Struct(&TEMPLATED_SPEC)),
        ("status", Field::Struct(&CONDITIONS_STATUS)),
    ],
};

static NODE: Type = Type {
    name: "Node",
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        // `taints` has no strategy: it is replaced.
        (
            "spec",
            Field::Struct(&Type {
                name: "NodeSpec",
                fields: &[("podCIDRs", Field::MergePrimitives)],
            }),
        ),
        (
            "status",
            Field::Struct(&Type {
                name: "NodeStatus",
                fields: &[
                    ("conditions", by("type", &UNKNOWN)),
                    ("addresses", by("type", &UNKNOWN)),
                ],
            }),
        ),
    ],
};

static SERVICE: Type = Type {
    name: "Service",
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        (
            "spec",
            Field::Struct(&Type {
                name: "ServiceSpec",
                fields: &[("ports", by("port", &UNKNOWN))],
            }),
        ),
        ("status", Field::Struct(&CONDITIONS_STATUS)),
    ],
};

static NAMESPACE: Type = Type {
    name: "Namespace",
    fields: &[
        ("metadata", Field::Struct(&OBJECT_META)),
        ("status", Field::Struct(&CONDITIONS_STATUS)),
    ],
};

/// Kinds whose only strategies are in their metadata (ConfigMap, Secret,
/// Event, Endpoints, EndpointSlice, Lease).
static METADATA_ONLY: Type = Type {
    name: "Object",
    fields: &[("metadata", Field::Struct(&OBJECT_META))],
};

/// The patch metadata of a kind's top-level object.
pub fn of_kind(kind: &str) -> &'static Type {
    match kind {
        "Pod" => &POD,
        "Node" => &NODE,
        "Service" => &SERVICE,
        "Namespace" => &NAMESPACE,
        "ReplicationController"
        | "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "Job" => &WORKLOAD,
        _ => &METADATA_ONLY,
    }
}
