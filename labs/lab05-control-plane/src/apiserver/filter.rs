//! The selection a list or a watch applies: a label selector and a field
//! selector together, parsed once per request and checked per object (as
//! kube-apiserver's `SelectionPredicate`).

use serde_json::Value;

use lab04::selector::{Labels, Selector};

use super::fields::FieldSelector;
use super::params::ListParams;
use super::resources::Resource;
use super::status::ApiError;
use super::stored;
use crate::store::KeyValue;

/// Which objects of one resource a request wants.
#[derive(Debug, Clone)]
pub struct Filter {
    resource: &'static Resource,
    labels: Selector,
    fields: FieldSelector,
}

impl Filter {
    /// The selectors of `params`; a bad one is a 400 with kube-apiserver's
    /// words.
    pub fn from_params(
        resource: &'static Resource,
        params: &ListParams,
    ) -> Result<Filter, ApiError> {
        let labels = match params.label_selector.as_deref() {
            None => Selector::default(),
            // lab04's message begins as kube-apiserver's does
            // ("unable to parse requirement …").
            Some(text) => Selector::parse(text)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        };
        let fields = match params.field_selector.as_deref() {
            None => FieldSelector::default(),
            Some(text) => {
                let fields = FieldSelector::parse(text)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                fields
                    .check(resource)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                fields
            }
        };
        Ok(Filter {
            resource,
            labels,
            fields,
        })
    }

    /// Whether every object passes (no selector at all): the watch then
    /// skips decoding the previous value.
    pub fn is_everything(&self) -> bool {
        self.labels.is_everything() && self.fields.is_everything()
    }

    /// Whether the object `kv` holds passes, parsed only when a selector
    /// must look at it: `None` if it does not pass, else `Some` of the
    /// parsed object (`None` inside when there was no need to parse).
    pub fn admit(
        &self,
        kv: &KeyValue,
    ) -> Result<Option<Option<Value>>, ApiError> {
        if self.is_everything() {
            return Ok(Some(None));
        }
        let object = stored::decode(kv)?;
        Ok(self.matches(&object).then_some(Some(object)))
    }

    /// Whether `object` passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        if self.is_everything() {
            return true;
        }
        self.labels.matches(&labels_of(object))
            && self.fields.matches(self.resource, object)
    }
}

/// `metadata.labels` as a map (non-string values are skipped: the
/// validation before the store never lets them in).
pub fn labels_of(object: &Value) -> Labels {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
