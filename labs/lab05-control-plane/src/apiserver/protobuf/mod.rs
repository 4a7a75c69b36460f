//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which
//! `kubectl create deployment|namespace|configmap` send and never retry
//! as JSON: decoded to the object's JSON.
//!
//! A body is the magic `k8s\0`, then a `runtime.Unknown` message: the
//! object's `typeMeta` (apiVersion, kind) and its own message, `raw`. We
//! read the wire format by hand ([`wire`]) guided by a table of the
//! messages involved ([`messages`]): no generated code, no protoc.
//!
//! Go writes every non-pointer field, zero or not, so a body is full of
//! empty strings and empty messages; they become nothing, as Go's JSON
//! `omitempty` would have it. A field the table lacks is dropped when
//! empty and refused when not, so nothing is lost silently.

use base64::Engine;
use serde_json::{Map, Value};

pub mod messages;
pub mod wire;

use messages::{Field, Kind, Message};
use wire::{WireField, WireValue};

#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("not a Kubernetes protobuf body: {0}")]
    Envelope(String),
    #[error("kind {0} cannot be read from protobuf")]
    UnsupportedKind(String),
    #[error("{kind}: {reason}")]
    Decode { kind: String, reason: String },
}

const MAGIC: &[u8] = b"k8s\0";

// ANCHOR: decode
/// The JSON of the object a protobuf body carries (`k8s\0` magic, then a
/// `runtime.Unknown` with the type and the raw message).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = |m: String| ProtobufError::Envelope(m);
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| envelope("it does not start with k8s\\0".into()))?;
    let mut type_meta = Map::new();
    let mut raw: &[u8] = &[];
    for field in wire::fields(unknown).map_err(envelope)? {
        match (field.number, field.value) {
            (1, WireValue::Bytes(b)) => {
                type_meta =
                    message(b, &messages::TYPE_META).map_err(envelope)?
            }
            (2, WireValue::Bytes(b)) => raw = b,
            (3, WireValue::Bytes(b)) if !b.is_empty() => {
                return Err(envelope(
                    "a content encoding is not supported".into(),
                ))
            }
            _ => {}
        }
    }
    let api_version = type_meta.get("apiVersion").and_then(Value::as_str);
    let kind = type_meta.get("kind").and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(envelope("the typeMeta lacks apiVersion or kind".into()));
    };
    let msg = messages::of_kind(api_version, kind).ok_or_else(|| {
        ProtobufError::UnsupportedKind(format!("{api_version}/{kind}"))
    })?;
    let mut object =
        message(raw, msg).map_err(|reason| ProtobufError::Decode {
            kind: kind.to_string(),
            reason,
        })?;
    object.insert("apiVersion".into(), Value::from(api_version));
    object.insert("kind".into(), Value::from(kind));
    Ok(Value::Object(object))
}
// ANCHOR_END: decode

/// One message as a JSON object, each field read by the table's kind.
fn message(bytes: &[u8], msg: &Message) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for wf in wire::fields(bytes)? {
        let Some(field) = msg.field(wf.number) else {
            if wire_is_empty(&wf) {
                continue;
            }
            return Err(format!(
                "{} field {} is not understood by this server",
                msg.name, wf.number
            ));
        };
        let context = |e: String| format!("{}.{}: {e}", msg.name, field.json);
        match &field.kind {
            Kind::Inline(inner) => {
                let WireValue::Bytes(b) = wf.value else {
                    return Err(context("not a message".into()));
                };
                out.extend(message(b, inner).map_err(context)?);
            }
            Kind::Map(value_kind) => {
                let (k, v) = map_entry(&wf, value_kind).map_err(context)?;
                let entries = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(entries) = entries {
                    entries.insert(k, v);
                }
            }
            _ if field.repeated => {
                let items =
                    repeated_values(field, wf.value).map_err(context)?;
                let list = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(list) = list {
                    list.extend(items);
                }
            }
            _ => {
                if let Some(v) = value(field, wf.value).map_err(context)? {
                    out.insert(field.json.into(), v);
                }
            }
        }
    }
    Ok(out)
}

fn wire_is_empty(wf: &WireField) -> bool {
    match wf.value {
        WireValue::Varint(v) | WireValue::Fixed64(v) => v == 0,
        WireValue::Fixed32(v) => v == 0,
        WireValue::Bytes(b) => wire::is_empty_message(b),
    }
}

/// The elements one wire field adds to a repeated field: one, or many for
/// packed integers.
fn repeated_values(field: &Field, wv: WireValue) -> Result<Vec<Value>, String> {
    if let (Kind::Int, WireValue::Bytes(mut b)) = (&field.kind, wv) {
        let mut items = Vec::new();
        while !b.is_empty() {
            items.push(Value::from(wire::varint(&mut b)? as i64));
        }
        return Ok(items);
    }
    // An element stays even when empty: `args: [""]` has one.
    Ok(vec![element(&field.kind, wv)?])
}

/// A field's JSON value, or `None` for Go's zero value of a field that
/// is not a pointer (JSON would omit it).
fn value(field: &Field, wv: WireValue) -> Result<Option<Value>, String> {
    let v = element(&field.kind, wv)?;
    let zero = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
    };
    let keep = field.keep_zero && !matches!(v, Value::Null | Value::Object(_));
    Ok(if zero && !keep { None } else { Some(v) })
}

/// One value of a kind (an empty message reads as `{}`, an empty time as
/// `null`).
fn element(kind: &Kind, wv: WireValue) -> Result<Value, String> {
    Ok(match (kind, wv) {
        (Kind::Str, WireValue::Bytes(b)) => Value::from(utf8(b)?),
        (Kind::Int, WireValue::Varint(v)) => Value::from(v as i64),
        (Kind::Bool, WireValue::Varint(v)) => Value::from(v != 0),
        (Kind::Bytes, WireValue::Bytes(b)) => {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Time, WireValue::Bytes(b)) => time(b)?,
        (Kind::IntOrString, WireValue::Bytes(b)) => int_or_string(b)?,
        (Kind::Quantity, WireValue::Bytes(b)) => {
            let q = message(b, &messages::QUANTITY)?;
            q.get("string").cloned().unwrap_or(Value::from(""))
        }
        (Kind::Message(m), WireValue::Bytes(b)) => {
            Value::Object(message(b, m)?)
        }
        (kind, wv) => return Err(format!("{wv:?} cannot be a {kind:?}")),
    })
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
}

/// A map entry: a message of key (1) and value (2).
fn map_entry(
    wf: &WireField,
    value_kind: &Kind,
) -> Result<(String, Value), String> {
    let WireValue::Bytes(b) = wf.value else {
        return Err("a map entry is not a message".into());
    };
    let mut key = String::new();
    let mut value = match value_kind {
        Kind::Str | Kind::Bytes | Kind::Quantity => Value::from(""),
        _ => Value::Null,
    };
    for f in wire::fields(b)? {
        match (f.number, f.value) {
            (1, WireValue::Bytes(k)) => key = utf8(k)?,
            (2, v) => value = element(value_kind, v)?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// metav1.Time `{seconds, nanos}`: RFC 3339 to the second, as its JSON.
fn time(b: &[u8]) -> Result<Value, String> {
    let mut seconds = 0i64;
    for f in wire::fields(b)? {
        if let (1, WireValue::Varint(v)) = (f.number, f.value) {
            seconds = v as i64;
        }
    }
    if seconds == 0 {
        return Ok(Value::Null);
    }
    let t = k8s_openapi::chrono::DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| format!("{seconds} is not a time"))?;
    Ok(Value::from(t.to_rfc3339_opts(
        k8s_openapi::chrono::SecondsFormat::Secs,
        true,
    )))
}

/// intstr.IntOrString `{type, intVal, strVal}`: a number or a string.
fn int_or_string(b: &[u8]) -> Result<Value, String> {
    let (mut is_string, mut int, mut string) = (false, 0i64, String::new());
    for f in wire::fields(b)? {
        match (f.number, f.value) {
            (1, WireValue::Varint(t)) => is_string = t == 1,
            (2, WireValue::Varint(v)) => int = i64::from(v as i32),
            (3, WireValue::Bytes(s)) => string = utf8(s)?,
            _ => {}
        }
    }
    Ok(if is_string {
        Value::from(string)
    } else {
        Value::from(int)
    })
}
