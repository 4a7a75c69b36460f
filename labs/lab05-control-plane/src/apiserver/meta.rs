//! What the server writes into `metadata` itself: the uid, the
//! creation time, the generation, a name for `generateName`. Clients
//! cannot set these; whatever they send is replaced.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::status::ApiError;

/// A random UUID, version 4 (RFC 9562): 122 random bits.
pub fn new_uid() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // the RFC's variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// A time as the API writes it: RFC 3339, whole seconds, UTC
/// (`2024-05-01T12:00:00Z`).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The characters generateName's suffix is made of: no vowels (no
/// words), no look-alikes (0/o, 1/l).
pub const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A name for `generateName: prefix`: the prefix, cut so the name stays
/// within 63 characters, and five random characters.
pub fn generate_name(prefix: &str) -> Result<String, ApiError> {
    let mut random = [0u8; 5];
    getrandom::fill(&mut random)
        .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    let keep: String = prefix.chars().take(63 - 5).collect();
    let suffix: String = random
        .iter()
        .map(|r| {
            char::from(SUFFIX_ALPHABET[*r as usize % SUFFIX_ALPHABET.len()])
        })
        .collect();
    Ok(format!("{keep}{suffix}"))
}

/// The object's metadata map, made if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    // Every object here passed through its typed form, so it is a map;
    // anything else is replaced rather than indexed (which would panic).
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = Value::Object(Map::new());
    }
    match object.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // Just made an object there.
        _ => unreachable!("metadata is an object"),
    }
}

/// `metadata.<field>` as text.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// Metadata of a new object: the server's own fields set, the client's
/// versions of them dropped. `name` is the final name (generateName
/// already resolved).
pub fn on_create(
    object: &mut Value,
    name: &str,
    namespace: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let uid = new_uid()?;
    let meta = metadata_mut(object);
    meta.insert("name".into(), name.into());
    match namespace {
        Some(ns) => meta.insert("namespace".into(), ns.into()),
        None => meta.remove("namespace"),
    };
    meta.insert("uid".into(), uid.into());
    meta.insert("creationTimestamp".into(), timestamp(now).into());
    meta.insert("generation".into(), 1.into());
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(field);
    }
    drop_empty(meta);
    Ok(())
}

/// Go's `omitempty`: an empty list or map of metadata is not written.
/// (A controller that releases a pod patches its last owner reference
/// away; the pod then has no `ownerReferences`, not an empty one.)
fn drop_empty(meta: &mut Map<String, Value>) {
    for field in ["ownerReferences", "finalizers", "labels", "annotations"] {
        let empty = match meta.get(field) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(field);
        }
    }
}

// ANCHOR: on_update
/// Metadata of an update: what the server owns is kept from `old`, and
/// the generation counts a change to anything but metadata and status.
pub fn on_update(old: &Value, new: &mut Value) {
    let changed = without_meta_and_status(old) != without_meta_and_status(new);
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let meta = metadata_mut(new);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    meta.remove("managedFields");
    drop_empty(meta);
    if changed {
        let generation = old_meta["generation"].as_i64().unwrap_or(0) + 1;
        meta.insert("generation".into(), generation.into());
    }
}
// ANCHOR_END: on_update

fn without_meta_and_status(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uids_are_version_4() {
        let uid = new_uid().unwrap();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert!("89ab".contains(&uid[19..20]));
        assert_ne!(uid, new_uid().unwrap());
    }

    #[test]
    fn generated_names_stay_short() {
        let name = generate_name(&"a".repeat(70)).unwrap();
        assert_eq!(name.len(), 63);
        let name = generate_name("kubia-").unwrap();
        assert!(name.starts_with("kubia-") && name.len() == 11);
        assert!(name[6..].bytes().all(|c| SUFFIX_ALPHABET.contains(&c)));
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let old = json!({"metadata": {"name": "a", "uid": "u", "generation": 1,
            "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {}});
        let mut labels = json!({"metadata": {"name": "a", "labels": {}},
            "spec": {"replicas": 1}, "status": {"x": 1}});
        on_update(&old, &mut labels);
        assert_eq!(labels["metadata"]["generation"], 1);
        assert_eq!(labels["metadata"]["uid"], "u");
        let mut spec = json!({"metadata": {"name": "a", "uid": "evil"},
            "spec": {"replicas": 2}});
        on_update(&old, &mut spec);
        assert_eq!(spec["metadata"]["generation"], 2);
        assert_eq!(spec["metadata"]["uid"], "u");
    }

    #[test]
    fn empty_metadata_lists_and_maps_are_omitted() {
        let old = json!({"metadata": {"name": "a", "uid": "u", "generation": 1,
            "ownerReferences": [{"kind": "ReplicationController"}]}});
        let mut new = json!({"metadata": {"name": "a", "ownerReferences": [],
            "finalizers": [], "labels": {"app": "foo"}, "annotations": {}}});
        on_update(&old, &mut new);
        let meta = new["metadata"].as_object().unwrap();
        assert!(!meta.contains_key("ownerReferences"), "{meta:?}");
        assert!(!meta.contains_key("finalizers"), "{meta:?}");
        assert!(!meta.contains_key("annotations"), "{meta:?}");
        assert_eq!(meta["labels"]["app"], "foo");
    }
}
