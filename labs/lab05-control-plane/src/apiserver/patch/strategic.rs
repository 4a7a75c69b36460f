//! Kubernetes' strategic merge patch (k8s.io/apimachinery
//! pkg/util/strategicpatch): a JSON merge patch that knows which lists
//! are sets of named things.
//!
//! Maps merge key by key and `null` deletes a key, as in RFC 7386. A list
//! whose Go field says `patchStrategy:"merge"` ([`super::schema`]) merges
//! element by element, matched by its merge key; any other list is
//! replaced. The directives:
//! - `$patch: delete` on a list element removes the element with that key;
//!   on a map, empties the map;
//! - `$patch: replace` on a map or in a list: the patch's value replaces
//!   the current one instead of merging;
//! - `$retainKeys: [..]` (volumes, a deployment's strategy): keys of the
//!   current map not listed are dropped, as upstream does;
//! - `$deleteFromPrimitiveList/<field>: [..]`: those values leave the
//!   list of strings `<field>`;
//! - `$setElementOrder/<field>: [..]` (kubectl apply sends it): the
//!   elements it lists take its order; others keep their places among
//!   them. Without it, merged elements keep their place and new ones are
//!   appended.
//!
//! One difference on purpose: a value the current object lacks is taken
//! from the patch with its directives applied (to nothing), where
//! upstream stores it as sent.

use serde_json::{Map, Value};

use super::schema::{Field, Type, UNKNOWN};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// `patch` merged into `original`, both objects of type `ty`.
pub fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: &'static Type,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => Ok(patch),
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_directive(&directive)),
        };
    }
    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        retain_keys(&mut original, &patch, &retain)?;
    }
    // Each ordered list's elements before the merge, for their places.
    let mut orders = Vec::new();
    for (key, order) in &patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let before = match original.get(field) {
                Some(Value::Array(list)) => list.clone(),
                _ => Vec::new(),
            };
            orders.push((field.to_string(), order.clone(), before));
        }
    }
    for (key, patch_value) in patch {
        if key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            delete_from_primitive_list(&mut original, field, &patch_value)?;
            continue;
        }
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let field = ty.field(&key);
        let current = original.remove(&key).unwrap_or(Value::Null);
        let merged = merge_value(current, patch_value, field)?;
        original.insert(key, merged);
    }
    for (field, order, before) in orders {
        let key = match ty.field(&field) {
            Some(Field::MergeByKey { key, .. }) => Some(*key),
            Some(Field::MergePrimitives) => None,
            _ => continue,
        };
        let (Some(Value::Array(list)), Value::Array(order)) =
            (original.remove(&field), order)
        else {
            continue;
        };
        let list = set_element_order(list, &order, &before, key);
        original.insert(field, Value::Array(list));
    }
    Ok(original)
}

/// `$setElementOrder`: the listed elements in the listed order, and
/// each other element (one the server added) back before the first
/// listed element that came after it; a new element stays with the one
/// listed before it.
fn set_element_order(
    merged: Vec<Value>,
    order: &[Value],
    before: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let id = |v: &Value| match key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    };
    let place = |list: &[Value], v: &Value| {
        let wanted = id(v)?;
        list.iter().position(|o| id(o).as_ref() == Some(&wanted))
    };
    let (mut listed, server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| place(order, v).is_some());
    listed.sort_by_key(|v| place(order, v));
    let mut out = Vec::new();
    let mut server_only = server_only.into_iter().peekable();
    let mut last = None;
    for item in listed {
        let at = place(before, &item).or(last);
        while let Some(s) = server_only.peek() {
            let earlier =
                matches!((place(before, s), at), (Some(b), Some(a)) if b < a);
            if !earlier {
                break;
            }
            out.extend(server_only.next());
        }
        last = at;
        out.push(item);
    }
    out.extend(server_only);
    out
}

/// One field's value: maps merge, lists by the field's strategy, anything
/// else (or a change of JSON type) is replaced.
fn merge_value(
    current: Value,
    patch: Value,
    field: Option<&Field>,
) -> Result<Value, PatchError> {
    match (current, patch) {
        (Value::Object(current), Value::Object(patch)) => {
            let ty = match field {
                Some(Field::Struct(ty)) => ty,
                _ => &UNKNOWN,
            };
            Ok(Value::Object(merge_map(current, patch, ty)?))
        }
        (Value::Array(current), Value::Array(patch)) => {
            Ok(Value::Array(merge_list(current, patch, field)?))
        }
        // New (or retyped) value: merged into nothing, which applies and
        // drops its directives.
        (_, Value::Object(patch)) => {
            merge_value(Value::Object(Map::new()), Value::Object(patch), field)
        }
        (_, Value::Array(patch)) => {
            merge_value(Value::Array(Vec::new()), Value::Array(patch), field)
        }
        (_, scalar) => Ok(scalar),
    }
}

/// A list, by its field's strategy.
fn merge_list(
    current: Vec<Value>,
    patch: Vec<Value>,
    field: Option<&Field>,
) -> Result<Vec<Value>, PatchError> {
    match field {
        Some(Field::MergeByKey { key, elem }) => {
            if has_replace_directive(&patch) {
                // `$patch: replace` in a list: the other elements are the
                // whole new list.
                return Ok(patch
                    .into_iter()
                    .filter(|e| e.get(DIRECTIVE).is_none())
                    .collect());
            }
            merge_by_key(current, patch, key, elem)
        }
        Some(Field::MergePrimitives) => {
            let mut merged = current;
            for value in patch {
                if !merged.contains(&value) {
                    merged.push(value);
                }
            }
            Ok(merged)
        }
        // No patchStrategy: the list is atomic.
        _ => Ok(patch),
    }
}

fn has_replace_directive(patch: &[Value]) -> bool {
    patch
        .iter()
        .any(|e| e.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"))
}

// ANCHOR: merge_by_key
/// A `patchStrategy:"merge"` list of objects: each patch element merges
/// into the current element with the same `key` (or is appended), and an
/// element `{key: v, "$patch": "delete"}` removes the current one.
pub fn merge_by_key(
    current: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    elem: &'static Type,
) -> Result<Vec<Value>, PatchError> {
    // EXERCISE: lab05-strategic-merge
    let mut merged = current;
    let mut updates = Vec::new();
    // Deletions first, as upstream: a patch may delete an element and
    // add a new one of the same key.
    for element in patch {
        let element = as_object(element, key)?;
        let value = merge_key_value(&element, key)?;
        match element.get(DIRECTIVE) {
            None => updates.push((value, element)),
            Some(d) if d == "delete" => {
                merged.retain(|e| e.get(key) != Some(&value));
            }
            Some(other) => return Err(bad_directive(other)),
        }
    }
    for (value, element) in updates {
        match merged.iter_mut().find(|e| e.get(key) == Some(&value)) {
            Some(existing) => {
                let current = as_object(existing.take(), key)?;
                *existing = Value::Object(merge_map(current, element, elem)?);
            }
            None => merged.push(Value::Object(merge_map(
                Map::new(),
                element,
                elem,
            )?)),
        }
    }
    Ok(merged)
    // EXERCISE_END: lab05-strategic-merge
}
// ANCHOR_END: merge_by_key

/// A list element as an object (a merge list holds only objects).
pub fn as_object(
    element: Value,
    key: &str,
) -> Result<Map<String, Value>, PatchError> {
    match element {
        Value::Object(map) => Ok(map),
        other => Err(PatchError::NotApplicable(format!(
            "a list merged by key {key:?} holds a non-object: {other}"
        ))),
    }
}

/// The merge key's value of a patch element (it must have one).
pub fn merge_key_value(
    element: &Map<String, Value>,
    key: &str,
) -> Result<Value, PatchError> {
    element.get(key).cloned().ok_or_else(|| {
        PatchError::NotApplicable(format!(
            "map: {} does not contain declared merge key: {key}",
            Value::Object(element.clone())
        ))
    })
}

fn bad_directive(directive: &Value) -> PatchError {
    PatchError::Malformed(format!("unknown patch type: {directive}"))
}

/// `$retainKeys`: drop the current keys it does not list; every key the
/// patch sets must be listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
) -> Result<(), PatchError> {
    let bad = || {
        PatchError::Malformed(
            "doesn't satisfy strategic merge patch format: invalid \
             retainKeys directive"
                .into(),
        )
    };
    let keep = retain.as_array().ok_or_else(bad)?;
    let kept = |k: &str| keep.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch {
        let directive = k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER);
        if !v.is_null() && !directive && !kept(k) {
            return Err(bad());
        }
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>: [values]`.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    field: &str,
    values: &Value,
) -> Result<(), PatchError> {
    let values = values.as_array().ok_or_else(|| {
        PatchError::Malformed(format!(
            "$deleteFromPrimitiveList/{field} must be a list"
        ))
    })?;
    if let Some(Value::Array(list)) = original.get_mut(field) {
        list.retain(|v| !values.contains(v));
    }
    Ok(())
}
