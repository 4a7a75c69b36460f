//! PATCH: the patch (its type from the Content-Type) applied to the
//! current object, then stored as an update. A server-side apply of an
//! object that does not exist creates it.

use serde_json::{json, Value};

use super::{create, update, Call, Reply};
use crate::apiserver::body;
use crate::apiserver::patch::{apply_patch, PatchError, PatchType};
use crate::apiserver::resources::Resource;
use crate::apiserver::status::ApiError;
use crate::apiserver::subresources::status::Part;

/// The patch type the request's Content-Type names.
pub fn patch_type(call: &Call) -> Result<PatchType, ApiError> {
    let media = body::content_type(&call.headers);
    PatchType::from_content_type(&media).ok_or_else(|| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted \
                 media types include: application/json-patch+json, \
                 application/merge-patch+json, application/apply-patch+yaml, \
                 application/strategic-merge-patch+json (got {media:?})"
            ),
        )
    })
}

/// `current` with the call's patch applied.
pub fn patched(
    resource: &Resource,
    current: &Value,
    patch: &[u8],
    kind: PatchType,
) -> Result<Value, ApiError> {
    apply_patch(resource, current, patch, kind).map_err(|e| match e {
        PatchError::Malformed(m) => ApiError::bad_request(m),
        PatchError::NotApplicable(m) => ApiError::new(422, "Invalid", m),
    })
}

/// PATCH of an object (`part` Main) or of its status.
pub async fn patch_part(call: &Call, part: Part) -> Result<Reply, ApiError> {
    let kind = patch_type(call)?;
    let mode = call.field_validation()?;
    let resource = call.resource();
    let exists = call.server.store().get(&call.key()).await?.is_some();
    if !exists && kind == PatchType::Apply && part == Part::Main {
        let mut object = patched(resource, &json!({}), &call.body, kind)?;
        object["metadata"]["name"] = json!(call.name());
        return create::create_from(call, object, mode).await;
    }
    let body = call.body.clone();
    update::change(call, part, "patch", mode, move |current| {
        patched(resource, current, &body, kind)
    })
    .await
}

/// PATCH of an object.
pub async fn patch(call: &Call) -> Result<Reply, ApiError> {
    patch_part(call, Part::Main).await
}
