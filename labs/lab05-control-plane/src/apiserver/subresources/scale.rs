//! The scale subresource: a controller's replica count as a small
//! `autoscaling/v1` Scale, so `kubectl scale` (and an autoscaler) can
//! change it without knowing the controller's kind.

use serde_json::{json, Value};

use crate::apiserver::handlers::patch::{patch_type, patched};
use crate::apiserver::handlers::{get as get_one, update, Call, Reply};
use crate::apiserver::status::ApiError;
use crate::apiserver::subresources::status::Part;
use crate::apiserver::typed::FieldValidation;

const SCALE: (&str, &str) = ("autoscaling/v1", "Scale");

// ANCHOR: selector_string
/// A label selector as text, as `labels.Selector.String()` writes it:
/// the requirements sorted by key, `k=v`, `k in (a,b)`, `k notin
/// (a,b)`, `k`, `!k`, joined by commas.
pub fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    // An RC's selector is a plain map; the others' a LabelSelector.
    let is_label_selector = selector.get("matchLabels").is_some()
        || selector.get("matchExpressions").is_some();
    let labels = if is_label_selector {
        &selector["matchLabels"]
    } else {
        selector
    };
    for (k, v) in labels.as_object().into_iter().flatten() {
        parts.push((
            k.clone(),
            format!("{k}={}", v.as_str().unwrap_or_default()),
        ));
    }
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        };
        parts.push((key.to_string(), text));
    }
    parts.sort();
    let texts: Vec<String> = parts.into_iter().map(|(_, t)| t).collect();
    texts.join(",")
}
// ANCHOR_END: selector_string

/// The Scale of a controller object.
pub fn scale_of(object: &Value) -> Value {
    let m = &object["metadata"];
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(field) {
            metadata[field] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": { "replicas": object["spec"]["replicas"].as_i64().unwrap_or(0) },
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&object["spec"]["selector"]),
        },
    })
}

/// GET …/scale.
pub async fn get(call: &Call) -> Result<Reply, ApiError> {
    let mut reply = get_one::get(call).await?;
    reply.body = scale_of(&reply.body);
    reply.table = false;
    Ok(reply)
}

/// Writes the replicas of `scale` into the object.
async fn set_scale(call: &Call, scale: Value) -> Result<Reply, ApiError> {
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    let rv = scale["metadata"]["resourceVersion"].clone();
    let mut reply = update::change(
        call,
        Part::Main,
        "update",
        FieldValidation::Ignore,
        |current| {
            let mut object = current.clone();
            object["spec"]["replicas"] = json!(replicas);
            // The Scale's resourceVersion is the object's: a precondition.
            if rv.is_string() {
                object["metadata"]["resourceVersion"] = rv.clone();
            }
            Ok(object)
        },
    )
    .await?;
    reply.body = scale_of(&reply.body);
    Ok(reply)
}

/// PUT …/scale with a Scale.
pub async fn put(call: &Call) -> Result<Reply, ApiError> {
    let scale = call.body_object(Some(SCALE))?;
    set_scale(call, scale).await
}

/// PATCH …/scale: the patch applies to the Scale.
pub async fn patch(call: &Call) -> Result<Reply, ApiError> {
    let kind = patch_type(call)?;
    let current = get_one::read(call).await?;
    let mut base = scale_of(&current);
    // Only a resourceVersion the patch itself carries is a precondition.
    if let Some(m) = base["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let scale = patched(call.resource(), &base, &call.body, kind)?;
    set_scale(call, scale).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_as_text() {
        assert_eq!(selector_string(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        let s = json!({"matchLabels": {"app": "kubia"}, "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "beta", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(&s), "app=kubia,!beta,env in (dev,prod)");
    }
}
