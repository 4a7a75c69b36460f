//! Service manifests, parsed as strictly as lab03 parses Pods (the same
//! code: [`lab03::manifest::parse_objects`]).

use k8s_openapi::api::core::v1::Service;
use lab03::manifest::{parse_objects, ManifestError};

/// Every Service in `text` (YAML documents or one JSON object).
pub fn parse_services(text: &str) -> Result<Vec<Service>, ManifestError> {
    parse_objects(text)
}

/// The one Service in `text`.
pub fn parse_service(text: &str) -> Result<Service, ManifestError> {
    parse_services(text).map(|mut all| all.swap_remove(0))
}
