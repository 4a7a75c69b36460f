//! The status subresource, and the split it stands for: a write to the
//! object keeps its status, a write to `…/status` keeps everything but
//! the status. Whoever reports what *is* (the node agent, a controller)
//! and whoever says what *should be* (a user) never undo each other.

use serde_json::Value;

use crate::apiserver::handlers::{get as get_one, patch as patch_one};
use crate::apiserver::handlers::{update, Call, Reply};
use crate::apiserver::status::ApiError;

/// Which part of an object a write is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself (`PUT …/pods/kubia`): spec and metadata.
    Main,
    /// Its status (`PUT …/pods/kubia/status`).
    Status,
}

// ANCHOR: split
/// The object to store when `new` is written as `part` of `old`: the
/// object itself keeps `old`'s status; the status subresource takes
/// only `new`'s status and keeps the rest of `old`. An absent status
/// stays absent.
pub fn split(part: Part, old: &Value, new: Value) -> Value {
    // EXERCISE: lab05-status-split
    let (mut kept, from) = match part {
        Part::Main => (new, old),
        Part::Status => (old.clone(), &new),
    };
    let status = from.get("status").cloned();
    if let Some(map) = kept.as_object_mut() {
        match status {
            Some(status) => map.insert("status".into(), status),
            None => map.remove("status"),
        };
    }
    kept
    // EXERCISE_END: lab05-status-split
}
// ANCHOR_END: split

/// GET …/status: the whole object, as GET of it.
pub async fn get(call: &Call) -> Result<Reply, ApiError> {
    get_one::get(call).await
}

/// PUT …/status.
pub async fn put(call: &Call) -> Result<Reply, ApiError> {
    let tree = call.body_object(None)?;
    let mode = call.field_validation()?;
    update::change(call, Part::Status, "update", mode, |_| Ok(tree.clone()))
        .await
}

/// PATCH …/status.
pub async fn patch(call: &Call) -> Result<Reply, ApiError> {
    patch_one::patch_part(call, Part::Status).await
}
