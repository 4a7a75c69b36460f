//! Objects through their typed form: a JSON tree decoded into the
//! kind's k8s-openapi type, strictly or not (`fieldValidation`),
//! defaulted, validated, and written back as JSON.
//!
//! The generic REST machinery works on JSON; this is where a kind's own
//! rules come in. The re-serialized typed object is what gets stored, so
//! a field the kind does not have is never kept, whatever the mode.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, ReplicationController,
    Secret, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lab03::manifest::{unknown_fields, UnknownField};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::defaults::Defaults;
use super::resources::Resource;
use super::status::ApiError;
use super::validation::Validate;

/// `?fieldValidation=`: what to do with fields the kind does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refuse the request (400), listing them: kubectl's default.
    Strict,
    /// Drop them, and say so in a `Warning` header: the server's default.
    #[default]
    Warn,
    /// Drop them silently.
    Ignore,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") => Ok(FieldValidation::default()),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

/// What a typed pass gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The object as its type writes it, defaults filled in.
    pub object: Value,
    /// `unknown field "spec.foo"`, for the `Warning` header.
    pub warnings: Vec<String>,
}

/// One of the kinds the server has a type for.
pub trait Kind:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + DeserializeOwned
    + Serialize
    + Defaults
    + Validate
{
}

impl<T> Kind for T where
    T: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + DeserializeOwned
        + Serialize
        + Defaults
        + Validate
{
}

/// Runs `$body` with `$t` the type of `$resource`'s kind.
macro_rules! with_kind {
    ($resource:expr, $t:ident => $body:expr) => {
        match $resource.kind {
            "Pod" => {
                type $t = Pod;
                $body
            }
            "Service" => {
                type $t = Service;
                $body
            }
            "Namespace" => {
                type $t = Namespace;
                $body
            }
            "Node" => {
                type $t = Node;
                $body
            }
            "ConfigMap" => {
                type $t = ConfigMap;
                $body
            }
            "Secret" => {
                type $t = Secret;
                $body
            }
            "Event" => {
                type $t = Event;
                $body
            }
            "Endpoints" => {
                type $t = Endpoints;
                $body
            }
            "ReplicationController" => {
                type $t = ReplicationController;
                $body
            }
            "ReplicaSet" => {
                type $t = ReplicaSet;
                $body
            }
            "Deployment" => {
                type $t = Deployment;
                $body
            }
            "DaemonSet" => {
                type $t = DaemonSet;
                $body
            }
            "Job" => {
                type $t = Job;
                $body
            }
            "EndpointSlice" => {
                type $t = EndpointSlice;
                $body
            }
            "Lease" => {
                type $t = Lease;
                $body
            }
            other => {
                Err(ApiError::internal(format!("no type for kind {other}")))
            }
        }
    };
}

/// `tree` as an object of `resource`'s kind, defaulted: the tree must
/// carry the kind's apiVersion and kind (the handlers fill them in).
pub fn decode(
    resource: &Resource,
    tree: Value,
    mode: FieldValidation,
) -> Result<Decoded, ApiError> {
    with_kind!(resource, T => {
        let (mut object, warnings) = strict::<T>(tree, mode)?;
        object.set_defaults();
        Ok(Decoded { object: to_json(&object)?, warnings })
    })
}

/// Checks `object` (already decoded once, so it has no unknown fields)
/// by its kind's rules; `old` for an update. 422 with every error.
pub fn validate(
    resource: &Resource,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    with_kind!(resource, T => {
        let new: T = from_json(object)?;
        let errors = match old {
            Some(old) => new.validate_update(&from_json::<T>(old)?),
            None => new.validate(),
        };
        if errors.is_empty() {
            return Ok(());
        }
        let name = k8s_openapi::Metadata::metadata(&new).name.clone().unwrap_or_default();
        Err(ApiError::invalid(resource.group, resource.kind, &name, &errors))
    })
}

/// A strict decoding error as the create and update handlers word it:
/// after the kind the body could not be decoded as (kube-apiserver's
/// `transformDecodeError`); PATCH words it bare.
pub fn handled_as(resource: &Resource, e: ApiError) -> ApiError {
    if !e.message.starts_with("strict decoding error: ") {
        return e;
    }
    let api_version = resource.api_version();
    let version = api_version.rsplit('/').next().unwrap_or_default();
    let kind = resource.kind;
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: {}",
        e.message
    ))
}

// ANCHOR: strict
/// Decodes a `T` from `tree`, dealing with unknown fields as `mode`
/// says.
pub fn strict<T>(
    mut tree: Value,
    mode: FieldValidation,
) -> Result<(T, Vec<String>), ApiError>
where
    T: k8s_openapi::Resource + DeserializeOwned + Serialize,
{
    quantities_as_strings(&mut tree, false);
    let object: T = serde_path_to_error::deserialize(&tree).map_err(|e| {
        let at = e.path().to_string();
        let (kind, version) = (T::KIND, T::VERSION);
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: \
             {at}: {}",
            e.inner()
        ))
    })?;
    let known = to_json(&object)?;
    let mut unknown: Vec<UnknownField> = Vec::new();
    unknown_fields(&tree, &known, "", &mut unknown);
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {:?}", f.path))
        .collect();
    match mode {
        FieldValidation::Strict if !messages.is_empty() => {
            Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                messages.join(", ")
            )))
        }
        FieldValidation::Warn => Ok((object, messages)),
        _ => Ok((object, Vec::new())),
    }
}
// ANCHOR_END: strict

fn to_json<T: Serialize>(object: &T) -> Result<Value, ApiError> {
    serde_json::to_value(object)
        .map_err(|e| ApiError::internal(format!("encoding an object: {e}")))
}

fn from_json<T: DeserializeOwned>(object: &Value) -> Result<T, ApiError> {
    T::deserialize(object)
        .map_err(|e| ApiError::internal(format!("decoding an object: {e}")))
}

/// YAML (and kubectl's JSON of it) writes `cpu: 1` as a number, but a
/// `Quantity` is read from text only: the numbers in quantity maps
/// (`limits`, `requests`, `capacity`, …) become their text, as the API
/// server's Quantity takes both.
fn quantities_as_strings(tree: &mut Value, in_quantities: bool) {
    match tree {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if in_quantities || key == "sizeLimit" {
                    if let Value::Number(n) = value {
                        *value = Value::String(n.to_string());
                        continue;
                    }
                }
                let quantities = matches!(
                    key.as_str(),
                    "limits"
                        | "requests"
                        | "overhead"
                        | "capacity"
                        | "allocatable"
                        | "hard"
                        | "used"
                );
                quantities_as_strings(value, quantities);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| quantities_as_strings(v, false)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn strict_names_every_unknown_field() {
        let tree = pod(json!({"foo": 1, "containers": [
            {"name": "a", "image": "x", "imagePullPolizy": "Always"}]}));
        let e =
            strict::<Pod>(tree.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(
            e.message,
            "strict decoding error: unknown field \"spec.containers[0].imagePullPolizy\", \
             unknown field \"spec.foo\""
        );
        let (_, warnings) =
            strict::<Pod>(tree.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
        let (_, warnings) =
            strict::<Pod>(tree, FieldValidation::Ignore).unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn numeric_quantities_are_read() {
        let tree = pod(json!({"containers": [{"name": "a", "image": "x",
            "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}));
        let (p, _) = strict::<Pod>(tree, FieldValidation::Strict).unwrap();
        let limits = p.spec.unwrap().containers[0]
            .resources
            .clone()
            .unwrap()
            .limits
            .unwrap();
        assert_eq!(limits["cpu"].0, "1");
    }

    #[test]
    fn wrong_types_say_where() {
        let tree = pod(json!({"containers": "nope"}));
        let e = strict::<Pod>(tree, FieldValidation::Strict).unwrap_err();
        assert!(e.message.starts_with(
            "Pod in version \"v1\" cannot be handled as a Pod: spec.containers"
        ), "{}", e.message);
    }
}
