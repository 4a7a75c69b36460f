//! REST paths to resources: which resource, namespace, object and
//! subresource a path names.
//!
//! The shapes are few but overlap: `/api/v1/namespaces/<ns>/pods` is a
//! collection of pods, while `/api/v1/namespaces/<ns>` and
//! `/api/v1/namespaces/<ns>/status` are the Namespace object itself. A
//! router's pattern table says this badly, so the path is read here, by
//! hand, segment by segment.

use super::resources::{self, Resource};

/// What a resource path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub resource: &'static Resource,
    /// The namespace of a namespaced path; `None` for a cluster scoped
    /// resource, or a namespaced one listed across every namespace.
    pub namespace: Option<String>,
    /// The object; `None` for the collection.
    pub name: Option<String>,
    /// `status`, `scale`, `binding`, …
    pub subresource: Option<String>,
}

// ANCHOR: parse
/// The resource `path` names, or `None` when it names none we serve.
pub fn parse(path: &str) -> Option<ResourcePath> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    // A leading '/' gives an empty first segment.
    let (group, version, rest) = match segments.as_slice() {
        ["", "api", version, rest @ ..] => ("", *version, rest),
        ["", "apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    let find = |plural: &str| resources::find(group, version, plural);
    let path = |r, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Some(ResourcePath {
            resource: r,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        // `/namespaces/<ns>/<plural>…` inside a namespace, when <plural>
        // is a namespaced resource; otherwise it is the Namespace itself.
        ["namespaces", ns, plural, tail @ ..]
            if find(plural).is_some_and(|r| r.namespaced) =>
        {
            let r = find(plural)?;
            match tail {
                [] => path(r, Some(ns), None, None),
                [name] => path(r, Some(ns), Some(name), None),
                [name, sub] => {
                    r.subresource(sub)?;
                    path(r, Some(ns), Some(name), Some(sub))
                }
                _ => None,
            }
        }
        [plural] => path(find(plural)?, None, None, None),
        [plural, name] => {
            let r = find(plural).filter(|r| !r.namespaced)?;
            path(r, None, Some(name), None)
        }
        [plural, name, sub] => {
            let r = find(plural).filter(|r| !r.namespaced)?;
            r.subresource(sub)?;
            path(r, None, Some(name), Some(sub))
        }
        _ => None,
    }
}
// ANCHOR_END: parse

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (String, Option<String>, Option<String>, Option<String>);

    fn p(path: &str) -> Option<Parsed> {
        parse(path).map(|r| {
            (
                r.resource.plural.to_string(),
                r.namespace,
                r.name,
                r.subresource,
            )
        })
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn namespaced_paths() {
        assert_eq!(
            p("/api/v1/namespaces/default/pods"),
            Some(("pods".into(), s("default"), None, None))
        );
        assert_eq!(
            p("/api/v1/namespaces/default/pods/kubia"),
            Some(("pods".into(), s("default"), s("kubia"), None))
        );
        assert_eq!(
            p("/api/v1/namespaces/default/pods/kubia/status"),
            Some(("pods".into(), s("default"), s("kubia"), s("status")))
        );
        assert_eq!(
            p("/apis/apps/v1/namespaces/x/deployments/d/scale"),
            Some(("deployments".into(), s("x"), s("d"), s("scale")))
        );
        assert_eq!(p("/api/v1/pods"), Some(("pods".into(), None, None, None)));
    }

    #[test]
    fn namespaces_themselves() {
        assert_eq!(
            p("/api/v1/namespaces"),
            Some(("namespaces".into(), None, None, None))
        );
        assert_eq!(
            p("/api/v1/namespaces/foo"),
            Some(("namespaces".into(), None, s("foo"), None))
        );
        assert_eq!(
            p("/api/v1/namespaces/foo/status"),
            Some(("namespaces".into(), None, s("foo"), s("status")))
        );
    }

    #[test]
    fn cluster_scoped() {
        assert_eq!(
            p("/api/v1/nodes/n1"),
            Some(("nodes".into(), None, s("n1"), None))
        );
        assert_eq!(
            p("/api/v1/nodes/n1/status"),
            Some(("nodes".into(), None, s("n1"), s("status")))
        );
    }

    #[test]
    fn unknown_paths() {
        assert_eq!(p("/api/v1/pods/kubia"), None);
        assert_eq!(p("/api/v1/namespaces/default/pods/kubia/exec2"), None);
        assert_eq!(p("/api/v1/widgets"), None);
        assert_eq!(p("/apis/apps/v1/pods"), None);
        assert_eq!(p("/api/v2/pods"), None);
        assert_eq!(p("/api/v1/namespaces/default/pods/a/b/c"), None);
        assert_eq!(p("/api/v1/nodes/n1/scale"), None);
        assert_eq!(p("/api/v1/namespaces//pods"), None);
        assert_eq!(p("/version"), None);
    }
}
