//! The eviction subresource: a delete of a pod that disruption budgets
//! may refuse (`kubectl drain` uses it). There are no budgets yet, so
//! an eviction is the delete its DeleteOptions describe.

use axum::http::StatusCode;

use crate::apiserver::handlers::delete::{delete_object, DeleteOptions};
use crate::apiserver::handlers::{Call, Reply};
use crate::apiserver::status::ApiError;
use crate::apiserver::typed::{self, FieldValidation};

/// POST …/pods/<name>/eviction with a policy/v1 Eviction.
pub async fn create(call: &Call) -> Result<Reply, ApiError> {
    let tree = call.body_object(Some(("policy/v1", "Eviction")))?;
    let options = tree.get("deleteOptions").cloned();
    let (eviction, _) = typed::strict::<k8s_openapi::api::policy::v1::Eviction>(
        tree,
        FieldValidation::Ignore,
    )?;
    if eviction.metadata.name.as_deref() != Some(call.name()) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options: DeleteOptions = match options {
        Some(o) => serde::Deserialize::deserialize(&o).map_err(|e| {
            ApiError::bad_request(format!("deleteOptions: {e}"))
        })?,
        None => DeleteOptions::default(),
    };
    delete_object(call, &options, call.dry_run()).await?;
    Ok(Reply::new(StatusCode::CREATED, super::success(201)))
}
