//! The query parameters of list and watch requests, as the API defines
//! them (`?labelSelector=app%3Dkubia&watch=true&resourceVersion=5`).

use serde::Deserialize;

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
