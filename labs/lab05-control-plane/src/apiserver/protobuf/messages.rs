//! The messages a protobuf body may hold, field by field: number, JSON
//! name, and how to read the value. The numbers are those of Kubernetes'
//! `generated.proto` files (k8s.io/api/core/v1, apps/v1, batch/v1 and
//! apimachinery's meta/v1, intstr, resource); the JSON names are the Go
//! types' `json:` tags. Only the kinds `kubectl create <generator>`
//! sends, and what their objects hold, are listed; a field missing here
//! is dropped if empty and refused if not (see [`super::decode`]).

/// How one field's value reads.
#[derive(Debug)]
pub enum Kind {
    Str,
    /// Any varint integer (int32 and int64 alike).
    Int,
    Bool,
    /// Bytes, base64 in JSON.
    Bytes,
    /// metav1.Time: `{seconds, nanos}`, RFC 3339 in JSON.
    Time,
    /// intstr.IntOrString: a number or a string in JSON.
    IntOrString,
    /// resource.Quantity: its string in JSON.
    Quantity,
    Message(&'static Message),
    /// A Go embedded struct: its fields join the parent's JSON object
    /// (`LocalObjectReference` in `imagePullSecrets`, `ProbeHandler`).
    Inline(&'static Message),
    /// A map with string keys; the value reads as the given kind.
    Map(&'static Kind),
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub number: u32,
    pub json: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    /// A Go pointer field: a zero value was set on purpose (`replicas:
    /// 0`) and stays. Zero values of other fields are Go's defaults,
    /// which JSON omits.
    pub keep_zero: bool,
}

impl Field {
    const fn repeated(self) -> Field {
        Field {
            repeated: true,
            ..self
        }
    }
    const fn keep_zero(self) -> Field {
        Field {
            keep_zero: true,
            ..self
        }
    }
}

const fn f(number: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        number,
        json,
        kind,
        repeated: false,
        keep_zero: false,
    }
}
const fn s(number: u32, json: &'static str) -> Field {
    f(number, json, Kind::Str)
}
const fn int(number: u32, json: &'static str) -> Field {
    f(number, json, Kind::Int)
}
const fn b(number: u32, json: &'static str) -> Field {
    f(number, json, Kind::Bool)
}
const fn m(number: u32, json: &'static str, msg: &'static Message) -> Field {
    f(number, json, Kind::Message(msg))
}
const fn strings(number: u32, json: &'static str) -> Field {
    s(number, json).repeated()
}
const fn list(number: u32, json: &'static str, msg: &'static Message) -> Field {
    m(number, json, msg).repeated()
}
const fn string_map(number: u32, json: &'static str) -> Field {
    f(number, json, Kind::Map(&Kind::Str))
}

/// A message type: its name (for errors) and fields.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, number: u32) -> Option<&Field> {
        self.fields.iter().find(|f| f.number == number)
    }
}

// --- runtime, meta/v1, resource ---------------------------------------

/// resource.Quantity: one string.
pub static QUANTITY: Message = Message {
    name: "Quantity",
    fields: &[s(1, "string")],
};

/// runtime.Unknown's typeMeta.
pub static TYPE_META: Message = Message {
    name: "TypeMeta",
    fields: &[s(1, "apiVersion"), s(2, "kind")],
};

static OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        s(5, "apiVersion"),
        s(1, "kind"),
        s(3, "name"),
        s(4, "uid"),
        b(6, "controller").keep_zero(),
        b(7, "blockOwnerDeletion").keep_zero(),
    ],
};

static OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        s(1, "name"),
        s(2, "generateName"),
        s(3, "namespace"),
        s(5, "uid"),
        s(6, "resourceVersion"),
        int(7, "generation"),
        f(8, "creationTimestamp", Kind::Time),
        f(9, "deletionTimestamp", Kind::Time),
        int(10, "deletionGracePeriodSeconds").keep_zero(),
        string_map(11, "labels"),
        string_map(12, "annotations"),
        list(13, "ownerReferences", &OWNER_REFERENCE),
        strings(14, "finalizers"),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[s(1, "key"), s(2, "operator"), strings(3, "values")],
};

static LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[
        string_map(1, "matchLabels"),
        list(2, "matchExpressions", &LABEL_SELECTOR_REQUIREMENT),
    ],
};

// --- core/v1: pods ----------------------------------------------------

static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[s(1, "name")],
};

static CONTAINER_PORT: Message = Message {
    name: "ContainerPort",
    fields: &[
        s(1, "name"),
        int(2, "hostPort"),
        int(3, "containerPort"),
        s(4, "protocol"),
        s(5, "hostIP"),
    ],
};

static OBJECT_FIELD_SELECTOR: Message = Message {
    name: "ObjectFieldSelector",
    fields: &[s(1, "apiVersion"), s(2, "fieldPath")],
};

static KEY_SELECTOR: Message = Message {
    name: "KeySelector",
    fields: &[
        f(1, "", Kind::Inline(&LOCAL_OBJECT_REFERENCE)),
        s(2, "key"),
        b(3, "optional").keep_zero(),
    ],
};

static ENV_VAR_SOURCE: Message = Message {
    name: "EnvVarSource",
    fields: &[
        m(1, "fieldRef", &OBJECT_FIELD_SELECTOR),
        m(3, "configMapKeyRef", &KEY_SELECTOR),
        m(4, "secretKeyRef", &KEY_SELECTOR),
    ],
};

static ENV_VAR: Message = Message {
    name: "EnvVar",
    fields: &[
        s(1, "name"),
        s(2, "value"),
        m(3, "valueFrom", &ENV_VAR_SOURCE),
    ],
};

static ENV_SOURCE_REF: Message = Message {
    name: "EnvSource",
    fields: &[
        f(1, "", Kind::Inline(&LOCAL_OBJECT_REFERENCE)),
        b(2, "optional").keep_zero(),
    ],
};

static ENV_FROM_SOURCE: Message = Message {
    name: "EnvFromSource",
    fields: &[
        s(1, "prefix"),
        m(2, "configMapRef", &ENV_SOURCE_REF),
        m(3, "secretRef", &ENV_SOURCE_REF),
    ],
};

static RESOURCE_REQUIREMENTS: Message = Message {
    name: "ResourceRequirements",
    fields: &[
        f(1, "limits", Kind::Map(&Kind::Quantity)),
        f(2, "requests", Kind::Map(&Kind::Quantity)),
    ],
};

static VOLUME_MOUNT: Message = Message {
    name: "VolumeMount",
    fields: &[
        s(1, "name"),
        b(2, "readOnly"),
        s(3, "mountPath"),
        s(4, "subPath"),
        s(5, "mountPropagation"),
        s(6, "subPathExpr"),
        s(7, "recursiveReadOnly"),
    ],
};

static CONTAINER: Message = Message {
    name: "Container",
    fields: &[
        s(1, "name"),
        s(2, "image"),
        strings(3, "command"),
        strings(4, "args"),
        s(5, "workingDir"),
        list(6, "ports", &CONTAINER_PORT),
        list(7, "env", &ENV_VAR),
        m(8, "resources", &RESOURCE_REQUIREMENTS),
        list(9, "volumeMounts", &VOLUME_MOUNT),
        s(13, "terminationMessagePath"),
        s(14, "imagePullPolicy"),
        b(16, "stdin"),
        b(17, "stdinOnce"),
        b(18, "tty"),
        list(19, "envFrom", &ENV_FROM_SOURCE),
        s(20, "terminationMessagePolicy"),
        s(24, "restartPolicy"),
    ],
};

static TOLERATION: Message = Message {
    name: "Toleration",
    fields: &[
        s(1, "key"),
        s(2, "operator"),
        s(3, "value"),
        s(4, "effect"),
        int(5, "tolerationSeconds").keep_zero(),
    ],
};

static POD_SECURITY_CONTEXT: Message = Message {
    name: "PodSecurityContext",
    fields: &[
        int(2, "runAsUser").keep_zero(),
        b(3, "runAsNonRoot").keep_zero(),
        f(4, "supplementalGroups", Kind::Int).repeated(),
        int(5, "fsGroup").keep_zero(),
        int(6, "runAsGroup").keep_zero(),
    ],
};

static HOST_ALIAS: Message = Message {
    name: "HostAlias",
    fields: &[s(1, "ip"), strings(2, "hostnames")],
};

static POD_SPEC: Message = Message {
    name: "PodSpec",
    fields: &[
        list(2, "containers", &CONTAINER),
        s(3, "restartPolicy"),
        int(4, "terminationGracePeriodSeconds").keep_zero(),
        int(5, "activeDeadlineSeconds").keep_zero(),
        s(6, "dnsPolicy"),
        string_map(7, "nodeSelector"),
        s(8, "serviceAccountName"),
        s(9, "serviceAccount"),
        s(10, "nodeName"),
        b(11, "hostNetwork"),
        b(12, "hostPID"),
        b(13, "hostIPC"),
        m(14, "securityContext", &POD_SECURITY_CONTEXT),
        list(15, "imagePullSecrets", &LOCAL_OBJECT_REFERENCE),
        s(16, "hostname"),
        s(17, "subdomain"),
        s(19, "schedulerName"),
        list(20, "initContainers", &CONTAINER),
        b(21, "automountServiceAccountToken").keep_zero(),
        list(22, "tolerations", &TOLERATION),
        list(23, "hostAliases", &HOST_ALIAS),
        s(24, "priorityClassName"),
        int(25, "priority").keep_zero(),
        b(27, "shareProcessNamespace").keep_zero(),
        s(29, "runtimeClassName"),
        b(30, "enableServiceLinks").keep_zero(),
        s(31, "preemptionPolicy"),
        b(35, "setHostnameAsFQDN").keep_zero(),
        b(37, "hostUsers").keep_zero(),
    ],
};

static POD_TEMPLATE_SPEC: Message = Message {
    name: "PodTemplateSpec",
    fields: &[m(1, "metadata", &OBJECT_META), m(2, "spec", &POD_SPEC)],
};

/// What every top-level object starts with; its status is never sent.
const fn object(spec: &'static Message) -> [Field; 2] {
    [m(1, "metadata", &OBJECT_META), m(2, "spec", spec)]
}

static POD: Message = Message {
    name: "Pod",
    fields: &object(&POD_SPEC),
};

// --- core/v1: the rest --------------------------------------------------

static NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[strings(1, "finalizers")],
};

static NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &object(&NAMESPACE_SPEC),
};

static CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        m(1, "metadata", &OBJECT_META),
        string_map(2, "data"),
        f(3, "binaryData", Kind::Map(&Kind::Bytes)),
        b(4, "immutable").keep_zero(),
    ],
};

static SECRET: Message = Message {
    name: "Secret",
    fields: &[
        m(1, "metadata", &OBJECT_META),
        f(2, "data", Kind::Map(&Kind::Bytes)),
        s(3, "type"),
        string_map(4, "stringData"),
        b(5, "immutable").keep_zero(),
    ],
};

static SERVICE_PORT: Message = Message {
    name: "ServicePort",
    fields: &[
        s(1, "name"),
        s(2, "protocol"),
        int(3, "port"),
        f(4, "targetPort", Kind::IntOrString),
        int(5, "nodePort"),
        s(6, "appProtocol"),
    ],
};

static SERVICE_SPEC: Message = Message {
    name: "ServiceSpec",
    fields: &[
        list(1, "ports", &SERVICE_PORT),
        string_map(2, "selector"),
        s(3, "clusterIP"),
        s(4, "type"),
        strings(5, "externalIPs"),
        s(7, "sessionAffinity"),
        s(8, "loadBalancerIP"),
        strings(9, "loadBalancerSourceRanges"),
        s(10, "externalName"),
        s(11, "externalTrafficPolicy"),
        int(12, "healthCheckNodePort"),
        b(13, "publishNotReadyAddresses"),
        s(17, "ipFamilyPolicy"),
        strings(18, "clusterIPs"),
        strings(19, "ipFamilies"),
        b(20, "allocateLoadBalancerNodePorts").keep_zero(),
        s(21, "loadBalancerClass"),
        s(22, "internalTrafficPolicy"),
        s(23, "trafficDistribution"),
    ],
};

static SERVICE: Message = Message {
    name: "Service",
    fields: &object(&SERVICE_SPEC),
};

// --- apps/v1 and batch/v1 ---------------------------------------------

static ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "RollingUpdateDeployment",
    fields: &[
        f(1, "maxUnavailable", Kind::IntOrString),
        f(2, "maxSurge", Kind::IntOrString),
    ],
};

static DEPLOYMENT_STRATEGY: Message = Message {
    name: "DeploymentStrategy",
    fields: &[
        s(1, "type"),
        m(2, "rollingUpdate", &ROLLING_UPDATE_DEPLOYMENT),
    ],
};

static DEPLOYMENT_SPEC: Message = Message {
    name: "DeploymentSpec",
    fields: &[
        int(1, "replicas").keep_zero(),
        m(2, "selector", &LABEL_SELECTOR),
        m(3, "template", &POD_TEMPLATE_SPEC),
        m(4, "strategy", &DEPLOYMENT_STRATEGY),
        int(5, "minReadySeconds"),
        int(6, "revisionHistoryLimit").keep_zero(),
        b(7, "paused"),
        int(9, "progressDeadlineSeconds").keep_zero(),
    ],
};

static DEPLOYMENT: Message = Message {
    name: "Deployment",
    fields: &object(&DEPLOYMENT_SPEC),
};

static JOB_SPEC: Message = Message {
    name: "JobSpec",
    fields: &[
        int(1, "parallelism").keep_zero(),
        int(2, "completions").keep_zero(),
        int(3, "activeDeadlineSeconds").keep_zero(),
        m(4, "selector", &LABEL_SELECTOR),
        b(5, "manualSelector").keep_zero(),
        m(6, "template", &POD_TEMPLATE_SPEC),
        int(7, "backoffLimit").keep_zero(),
        int(8, "ttlSecondsAfterFinished").keep_zero(),
        s(9, "completionMode"),
        b(10, "suspend").keep_zero(),
        int(12, "backoffLimitPerIndex").keep_zero(),
        int(13, "maxFailedIndexes").keep_zero(),
        s(14, "podReplacementPolicy"),
        s(15, "managedBy"),
    ],
};

static JOB: Message = Message {
    name: "Job",
    fields: &object(&JOB_SPEC),
};

/// The message of a top-level kind, by its apiVersion and kind.
pub fn of_kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    Some(match (api_version, kind) {
        ("v1", "Pod") => &POD,
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ConfigMap") => &CONFIG_MAP,
        ("v1", "Secret") => &SECRET,
        ("v1", "Service") => &SERVICE,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        ("batch/v1", "Job") => &JOB,
        _ => return None,
    })
}
