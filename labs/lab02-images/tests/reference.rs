//! Self-checks for §2.1: image references. Pure code: runs anywhere.

mod common;
use common::wrap;

use lab02::reference::{Reference, ReferenceError};
use proptest::prelude::*;

const DIGEST: &str =
    "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

/// The reference and what it parses to, fields wrapped to fit the book;
/// the one long digest is shortened to its first 12 hex digits.
fn show(text: &str) -> String {
    let shown = match text.parse::<Reference>() {
        Ok(r) => {
            let parts = format!(
                "registry={:?} repository={:?} tag={:?} digest={:?}",
                r.registry,
                r.repository,
                r.tag,
                r.digest.as_ref().map(|d| d.short().to_string()),
            );
            let names = format!(
                "name={} tag_or_digest={} local_name={}",
                r.name(),
                r.tag_or_digest(),
                r.local_name(),
            );
            format!(
                "{}\n{}",
                wrap(&parts, "  ", "    "),
                wrap(&names, "  ", "    ")
            )
        }
        Err(e) => wrap(&format!("error: {e}"), "  ", "    "),
    };
    let text = if text.is_empty() { "\"\"" } else { text };
    format!("{text}\n{shown}")
        .replace(&DIGEST[7..], &format!("{}…", &DIGEST[7..19]))
}

#[test]
fn parses_good_references() {
    let cases = [
        "kubia".to_string(),
        "kubia:v1".to_string(),
        "team/kubia:1.0-rc_2".to_string(),
        "127.0.0.1:5000/kubia:v1".to_string(),
        "localhost/kubia".to_string(),
        "localhost:5000/team/kubia".to_string(),
        format!("localhost:5000/team/kubia@{DIGEST}"),
        format!("kubia:v1@{DIGEST}"),
        "registry.example.com/a.b/c__d/e---f:_x".to_string(),
        "[::1]:5000/kubia:v1".to_string(),
    ];
    let shown: Vec<String> = cases.iter().map(|c| show(c)).collect();
    insta::assert_snapshot!(shown.join("\n"));
}

#[test]
fn rejects_bad_references() {
    let cases = [
        "",
        "Kubia:v1",
        "127.0.0.1:5000/Team/kubia",
        "kubia:",
        "kubia:-v1",
        "kubia:v1!",
        "kubia@sha256:abc",
        "kubia@md5:d41d8cd98f00b204e9800998ecf8427e",
        "kubia_",
        "ku..bia",
        "ku___bia",
        "team//kubia",
        "127.0.0.1:5000/",
        "my_host:5000/kubia",
        "host:port/kubia",
        "/kubia",
    ];
    let shown: Vec<String> = cases.iter().map(|c| show(c)).collect();
    insta::assert_snapshot!(shown.join("\n"));
}

#[test]
fn error_names_the_bad_part() {
    assert_eq!(
        "Kubia".parse::<Reference>(),
        Err(ReferenceError::Uppercase {
            reference: "Kubia".into(),
            component: "Kubia".into(),
            lowercase: "kubia".into(),
        })
    );
    let long_tag = format!("kubia:{}", "a".repeat(129));
    assert!(matches!(
        long_tag.parse::<Reference>(),
        Err(ReferenceError::BadTag { .. })
    ));
    let ok_tag = format!("kubia:{}", "a".repeat(128));
    assert!(ok_tag.parse::<Reference>().is_ok());
    let long_name = format!("{}:v1", "a".repeat(256));
    assert!(matches!(
        long_name.parse::<Reference>(),
        Err(ReferenceError::TooLong { .. })
    ));
}

#[test]
fn default_tag_is_latest_unless_there_is_a_digest() {
    let r: Reference = "kubia".parse().unwrap();
    assert_eq!(r.tag.as_deref(), Some("latest"));
    assert_eq!(r.to_string(), "kubia:latest");
    let r: Reference = format!("kubia@{DIGEST}").parse().unwrap();
    assert_eq!(r.tag, None);
    assert_eq!(r.tag_or_digest(), DIGEST);
    assert_eq!(r.local_name(), format!("kubia@{DIGEST}"));
}

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}"
}

fn registry() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("localhost".to_string())),
        "[a-z][a-z0-9-]{0,6}[a-z0-9](\\.[a-z0-9]{1,6}){1,2}(:[0-9]{1,5})?"
            .prop_map(Some),
        "([0-9]{1,3}\\.){3}[0-9]{1,3}:[0-9]{1,5}".prop_map(Some),
    ]
}

fn reference() -> impl Strategy<Value = Reference> {
    (
        registry(),
        prop::collection::vec(component(), 1..4),
        proptest::option::of("[A-Za-z0-9_][A-Za-z0-9._-]{0,20}"),
        proptest::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(registry, parts, tag, hex)| {
            let digest = hex.map(|h| format!("sha256:{h}").parse().unwrap());
            // Without either, parsing adds the default tag.
            let tag = match (&tag, &digest) {
                (None, None) => Some("latest".to_string()),
                _ => tag,
            };
            Reference {
                registry,
                repository: parts.join("/"),
                tag,
                digest,
            }
        })
        // `a.b/c` reads as registry `a.b`: a first component that looks like
        // a host is one.
        .prop_filter("ambiguous first component", |r| {
            r.registry.is_some() || !r.repository.contains('/') || {
                let first = r.repository.split('/').next().unwrap_or("");
                !first.contains('.') && first != "localhost"
            }
        })
}

proptest! {
    #[test]
    fn display_then_parse_round_trips(r in reference()) {
        let text = r.to_string();
        let parsed: Reference = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&parsed, &r);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,80}") {
        let _ = text.parse::<Reference>();
    }
}

/// Docker's own cases (the normalization tests of distribution/reference,
/// `ParseNormalizedNamed`): what `docker pull NAME` resolves to, and the
/// short name `docker images` shows for it.
#[test]
fn short_names_resolve_as_docker_resolves_them() {
    let cases = [
        (
            "busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "docker.io/library/busybox:1.36",
            "docker.io/library/busybox:1.36",
            "busybox:1.36",
        ),
        (
            "index.docker.io/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "luksa/kubia",
            "docker.io/luksa/kubia:latest",
            "luksa/kubia:latest",
        ),
        (
            "docker.io/library/a/b",
            "docker.io/library/a/b:latest",
            "library/a/b:latest",
        ),
        (
            "localhost:5000/x",
            "localhost:5000/x:latest",
            "localhost:5000/x:latest",
        ),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        (
            "127.0.0.1:5000/team/x:v1",
            "127.0.0.1:5000/team/x:v1",
            "127.0.0.1:5000/team/x:v1",
        ),
        ("quay.io/x/y", "quay.io/x/y:latest", "quay.io/x/y:latest"),
    ];
    for (typed, normalized, familiar) in cases {
        let r: Reference = typed.parse().expect(typed);
        assert_eq!(r.normalized().to_string(), normalized, "{typed}");
        assert_eq!(r.normalized().familiar().to_string(), familiar, "{typed}");
        // Normalizing twice changes nothing.
        assert_eq!(r.normalized().normalized(), r.normalized(), "{typed}");
    }
    // Digests: kept, and no tag is invented beside them.
    let r: Reference = format!("host.example/x@{DIGEST}").parse().unwrap();
    assert_eq!(
        r.normalized().to_string(),
        format!("host.example/x@{DIGEST}")
    );
    let r: Reference = format!("busybox@{DIGEST}").parse().unwrap();
    assert_eq!(
        r.normalized().to_string(),
        format!("docker.io/library/busybox@{DIGEST}")
    );
    assert_eq!(
        r.normalized().familiar().local_name(),
        format!("busybox@{DIGEST}")
    );
    // Uppercase is refused before any of this, as Docker refuses it.
    assert!("Busybox".parse::<Reference>().is_err());
}

#[test]
fn docker_hub_answers_on_its_api_host() {
    use lab02::reference::{api_host, is_loopback};
    assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
    assert_eq!(api_host("quay.io"), "quay.io");
    assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    for host in [
        "localhost",
        "localhost:5000",
        "127.0.0.1:5000",
        "127.8.9.1",
        "[::1]:5000",
    ] {
        assert!(is_loopback(host), "{host}");
    }
    for host in [
        "docker.io",
        "10.0.0.1:5000",
        "localhost.example:5000",
        "[::2]:1",
    ] {
        assert!(!is_loopback(host), "{host}");
    }
}
