//! The query parameters of list and watch requests, as the API defines
//! them (`?labelSelector=app%3Dkubia&watch=true&resourceVersion=5`).

use lab03::validate::FieldError;
use serde::Deserialize;

use super::status::ApiError;

/// `GET` of a collection: a list, or with `watch=true` a watch.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    #[serde(default)]
    pub label_selector: Option<String>,
    #[serde(default)]
    pub field_selector: Option<String>,
    /// Unset: the newest (a consistent read); "0": any (the server may
    /// answer from its cache); a number: with `resourceVersionMatch`.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// `Exact` or `NotOlderThan`.
    #[serde(default)]
    pub resource_version_match: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(rename = "continue", default)]
    pub continue_token: Option<String>,
    #[serde(default)]
    pub watch: Option<String>,
    #[serde(default)]
    pub allow_watch_bookmarks: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    #[serde(default)]
    pub send_initial_events: Option<String>,
    /// For Table output: `None`, `Object` or `Metadata` (the default).
    #[serde(default)]
    pub include_object: Option<String>,
}

/// A query flag is on when it is `true` or `1` (Go's strconv.ParseBool
/// also takes `t`, `T`, `TRUE`, `True`).
pub fn flag(value: &Option<String>) -> bool {
    matches!(
        value.as_deref(),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

impl ListParams {
    pub fn is_watch(&self) -> bool {
        flag(&self.watch)
    }
}

/// The combinations of `resourceVersion`, `resourceVersionMatch`,
/// `continue` and `sendInitialEvents` the API refuses, checked as
/// apimachinery's ValidateListOptions does: a 422 on the `ListOptions`
/// kind, each broken rule a field error.
fn invalid(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", &errors))
    }
}

const MATCH: &str = "resourceVersionMatch";
const EXACT: &str = "Exact";
const NOT_OLDER_THAN: &str = "NotOlderThan";

impl ListParams {
    /// The rules of a list request.
    pub fn validate_list(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        let rv = self.resource_version.as_deref().unwrap_or("");
        let matching = self.resource_version_match.as_deref().unwrap_or("");
        if !matching.is_empty() {
            if rv.is_empty() {
                errors.push(FieldError::forbidden(
                    MATCH,
                    "resourceVersionMatch is forbidden unless resourceVersion \
                     is provided",
                ));
            }
            if self
                .continue_token
                .as_deref()
                .is_some_and(|c| !c.is_empty())
            {
                errors.push(FieldError::forbidden(
                    MATCH,
                    "resourceVersionMatch is forbidden when continue is \
                     provided",
                ));
            }
            if matching != EXACT && matching != NOT_OLDER_THAN {
                errors.push(FieldError::not_supported(
                    MATCH,
                    matching,
                    &[EXACT, NOT_OLDER_THAN, ""],
                ));
            }
            if matching == EXACT && rv == "0" {
                errors.push(FieldError::forbidden(
                    MATCH,
                    "resourceVersionMatch \"exact\" is forbidden for \
                     resourceVersion \"0\"",
                ));
            }
        }
        if self.send_initial_events.is_some() {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        invalid(errors)
    }

    /// The rules of a watch request.
    pub fn validate_watch(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        let matching = self.resource_version_match.as_deref().unwrap_or("");
        if self.send_initial_events.is_some() && matching != NOT_OLDER_THAN {
            errors.push(FieldError::forbidden(
                MATCH,
                "sendInitialEvents requires setting resourceVersionMatch to \
                 NotOlderThan",
            ));
        }
        if !matching.is_empty() {
            if self.send_initial_events.is_none() {
                errors.push(FieldError::forbidden(
                    MATCH,
                    "resourceVersionMatch is forbidden for watch unless \
                     sendInitialEvents is provided",
                ));
            }
            if matching != NOT_OLDER_THAN {
                errors.push(FieldError::not_supported(
                    MATCH,
                    matching,
                    &[NOT_OLDER_THAN],
                ));
            }
        }
        invalid(errors)
    }
}
