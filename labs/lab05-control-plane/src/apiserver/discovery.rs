//! Discovery: what `GET /api`, `/apis`, `/api/v1` and `/apis/<g>/<v>`
//! answer, read from the table of resources. These are the legacy JSON
//! shapes; kubectl takes them when the answer's Content-Type is plain
//! `application/json` (it asks for aggregated discovery first).

use serde_json::{json, Value};

use super::resources::{self, Resource, RESOURCES};

/// `GET /api`: the core group's one version.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

/// One group with its one version, as `/apis` lists it.
fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({
        "groupVersion": format!("{group}/{version}"),
        "version": version,
    });
    json!({
        "name": group,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    })
}

/// `GET /apis`: every other group, each with its one version.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(group, version)| group_entry(group, version))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/<group>`: that group, or `None`.
pub fn api_group(name: &str) -> Option<Value> {
    let (group, version) =
        resources::groups().into_iter().find(|(g, _)| *g == name)?;
    let mut entry = group_entry(group, version);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

// ANCHOR: resource_list
/// `GET /api/v1` or `/apis/<group>/<version>`: the version's resources
/// and their subresources; `None` for a version the server lacks.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        list.push(resource_entry(r));
        for sub in r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if sub.kind.is_empty() { r.kind } else { sub.kind },
                "verbs": sub.verbs,
            });
            if let Some((g, v)) = sub.group_version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    if list.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}
// ANCHOR_END: resource_list

fn resource_entry(r: &Resource) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_subresources_with_their_groups() {
        let list = api_resource_list("", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/status"));
        let scale = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "replicationcontrollers/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert!(api_resource_list("nope", "v1").is_none());
    }
}
