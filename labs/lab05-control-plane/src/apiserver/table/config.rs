//! Rows of ConfigMaps and Secrets: how many keys, never the values.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::json;

use super::{age_of, column, name_of, typed, Printer, AGE, NAME};

pub(super) static CONFIG_MAPS: Printer = Printer {
    columns: &[NAME, column("Data", "The number of keys."), AGE],
    cells: |o, now| {
        let cm: ConfigMap = typed(o);
        let keys = cm.data.as_ref().map_or(0, |d| d.len())
            + cm.binary_data.as_ref().map_or(0, |d| d.len());
        vec![
            name_of(&cm.metadata),
            json!(keys),
            age_of(&cm.metadata, now),
        ]
    },
};

pub(super) static SECRETS: Printer = Printer {
    columns: &[
        NAME,
        column("Type", "What the secret holds (Opaque, a TLS pair...)."),
        column("Data", "The number of keys."),
        AGE,
    ],
    cells: |o, now| {
        let s: Secret = typed(o);
        vec![
            name_of(&s.metadata),
            json!(s.type_.clone().unwrap_or_default()),
            json!(s.data.as_ref().map_or(0, |d| d.len())),
            age_of(&s.metadata, now),
        ]
    },
};
