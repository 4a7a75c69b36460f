//! Self-checks for §2.3's client: pushing from one image store and pulling
//! into another, through our registry and through Debian's docker-registry.
//! Every registry listens on a free loopback port and is stopped when its
//! test ends, also on failure (RegistryHandle and the child guard stop on
//! drop).

use std::path::PathBuf;
use std::time::Duration;

mod peers;
use peers::{blobs, build_image, digest, noise, store, DockerRegistry};

use lab02::client::{Client, ClientError, Credentials};
use lab02::reference::Reference;
use lab02::registry::{Challenge, RegistryConfig, RegistryHandle};
use lab02::{spec, Digest};
use oci_spec::image::Descriptor;

/// A registry of ours on a free port, over a temporary directory.
struct Registry {
    handle: RegistryHandle,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(Challenge::Basic, false)
    }

    /// With `users`: alice/secret in an htpasswd file, and `vault` private.
    fn start_with(challenge: Challenge, users: bool) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("registry");
        let mut config = RegistryConfig::new(&root);
        config.addr = "127.0.0.1:0".parse().unwrap();
        if users {
            let path = dir.path().join("htpasswd");
            // Cost 4: the lowest bcrypt allows, so the tests stay fast.
            let hash = bcrypt::hash_with_result("secret", 4)
                .expect("bcrypt")
                .format_for_version(bcrypt::Version::TwoY);
            std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
            config.users = Some(path);
            config.private = vec!["vault".into()];
        }
        let handle = RegistryHandle::start_with(config, challenge)
            .expect("start the registry");
        Registry {
            handle,
            root,
            _dir: dir,
        }
    }

    fn reference(&self, name: &str) -> Reference {
        format!("{}/{name}", self.handle.addr())
            .parse()
            .expect("reference")
    }
}

fn client() -> Client {
    Client::new(None).quiet(true)
}

fn alice() -> Client {
    Client::new(Some(Credentials::new("alice", "secret"))).quiet(true)
}

#[test]
fn push_then_pull_gives_the_same_image() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let desc =
        build_image(&store_a, "kubia:v1", b"hello from kubia\n", "amd64");
    let target = registry.reference("kubia:v1");

    let pushed = client().push(&store_a, "kubia:v1", &target).expect("push");
    assert_eq!(pushed.manifest, digest(&desc));
    assert_eq!((pushed.blobs_sent, pushed.blobs_skipped), (2, 0));
    assert!(pushed.bytes_sent > 0);

    let pulled = client().pull(&store_b, &target).expect("pull");
    assert_eq!(pulled.manifest, digest(&desc));
    assert_eq!((pulled.blobs_fetched, pulled.blobs_skipped), (2, 0));
    assert_eq!(pulled.bytes_fetched, pushed.bytes_sent);
    assert_eq!(
        pulled.local_name,
        format!("{}/kubia:v1", registry.handle.addr())
    );

    let local = store_b.resolve(&pulled.local_name).expect("tagged locally");
    assert_eq!(digest(&local), digest(&desc));
    store_b
        .check(&local)
        .expect("every blob present and intact");
    assert_eq!(blobs(&store_b, &local), blobs(&store_a, &desc));
}

#[test]
fn pushing_again_skips_every_blob() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    build_image(&store_a, "kubia:v1", b"layer", "amd64");
    let target = registry.reference("kubia:v1");
    client().push(&store_a, "kubia:v1", &target).expect("push");
    let again = client()
        .push(&store_a, "kubia:v1", &target)
        .expect("push again");
    assert_eq!(
        (again.blobs_sent, again.blobs_skipped, again.bytes_sent),
        (0, 2, 0)
    );
    // Under another tag too: only the manifest goes up.
    let v2 = client()
        .push(&store_a, "kubia:v1", &registry.reference("kubia:v2"))
        .expect("push as v2");
    assert_eq!(v2.blobs_sent, 0);
}

#[test]
fn pulling_again_skips_every_blob() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    build_image(&store_a, "kubia:v1", b"layer", "amd64");
    let target = registry.reference("kubia:v1");
    client().push(&store_a, "kubia:v1", &target).expect("push");
    client().pull(&store_b, &target).expect("pull");
    let again = client().pull(&store_b, &target).expect("pull again");
    assert_eq!(
        (
            again.blobs_fetched,
            again.blobs_skipped,
            again.bytes_fetched
        ),
        (0, 2, 0)
    );
    // Pulling into the store the image came from fetches nothing either.
    let home = client().pull(&store_a, &target).expect("pull into A");
    assert_eq!(home.blobs_fetched, 0);
}

#[test]
fn pull_by_digest_checks_the_digest() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let desc = build_image(&store_a, "kubia:v1", b"pinned", "amd64");
    client()
        .push(&store_a, "kubia:v1", &registry.reference("kubia:v1"))
        .expect("push");
    let by_digest = registry.reference(&format!("kubia@{}", digest(&desc)));
    let pulled = client().pull(&store_b, &by_digest).expect("pull by digest");
    assert_eq!(pulled.manifest, digest(&desc));
    assert!(store_b.resolve(&by_digest.local_name()).is_ok());
}

#[test]
fn large_layers_go_up_in_chunks() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    // Noise does not compress: the layer is over 8 MiB, so it goes up in
    // two PATCHes.
    let desc = build_image(&store_a, "big:v1", &noise(9 << 20, 7), "amd64");
    let target = registry.reference("big:v1");
    let pushed = client().push(&store_a, "big:v1", &target).expect("push");
    assert!(pushed.bytes_sent > 8 << 20, "{pushed:?}");
    let pulled = client().pull(&store_b, &target).expect("pull");
    assert_eq!(pulled.manifest, digest(&desc));
    store_b
        .check(&store_b.resolve(&pulled.local_name).unwrap())
        .expect("intact");
}

/// Rewrites a blob in the registry's storage, behind its back.
fn tamper(
    registry: &Registry,
    blob: &Digest,
    change: impl FnOnce(&mut Vec<u8>),
) {
    let path = registry.root.join("blobs/sha256").join(blob.hex());
    let mut bytes = std::fs::read(&path).expect("registry blob");
    change(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn corrupted_blob_fails_the_pull_and_stores_nothing() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let desc = build_image(&store_a, "kubia:v1", b"the real layer", "amd64");
    let target = registry.reference("kubia:v1");
    client().push(&store_a, "kubia:v1", &target).expect("push");
    let layer = blobs(&store_a, &desc)[1].clone();

    // Same length, one byte flipped: only the digest can tell.
    tamper(&registry, &layer, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
    });
    let err = client().pull(&store_b, &target).expect_err("corrupt layer");
    match &err {
        ClientError::DigestMismatch { expected, .. } => {
            assert_eq!(expected, &layer)
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(err.to_string().contains("nothing was stored"), "{err}");
    assert!(!store_b.has_blob(&layer));
    assert!(store_b.resolve(&target.local_name()).is_err(), "no tag");
    assert!(!store_b.has_blob(&digest(&desc)), "no manifest");

    // The right bytes and one more: what was promised is all that is read,
    // and one byte past it is enough to refuse.
    let size = std::fs::metadata(store_a.blob_path(&layer)).unwrap().len();
    tamper(&registry, &layer, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        bytes.push(b'!');
    });
    let err = client().pull(&store_b, &target).expect_err("long layer");
    assert!(
        matches!(err, ClientError::Size { actual, .. } if actual == size + 1),
        "{err}"
    );
    assert!(!store_b.has_blob(&layer));

    // Shorter than the manifest says.
    tamper(&registry, &layer, |bytes| bytes.truncate(3));
    let err = client().pull(&store_b, &target).expect_err("short layer");
    assert!(matches!(err, ClientError::Size { actual: 3, .. }), "{err}");
    assert!(!store_b.has_blob(&layer));
    assert!(store_b.resolve(&target.local_name()).is_err(), "no tag");
}

#[test]
fn tampered_manifest_fails_the_pull() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let desc = build_image(&store_a, "kubia:v1", b"layer", "amd64");
    client()
        .push(&store_a, "kubia:v1", &registry.reference("kubia:v1"))
        .expect("push");
    // Still valid JSON, naming the same blobs: only digests can tell.
    tamper(&registry, &digest(&desc), |bytes| bytes.push(b'\n'));
    for reference in [
        registry.reference("kubia:v1"),
        registry.reference(&format!("kubia@{}", digest(&desc))),
    ] {
        let err = client().pull(&store_b, &reference).expect_err("tampered");
        assert!(matches!(err, ClientError::DigestMismatch { .. }), "{err}");
        assert!(store_b.resolve(&reference.local_name()).is_err());
    }
}

#[test]
fn an_index_resolves_to_this_machines_platform() {
    let registry = Registry::start();
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let (_, host_arch) = lab02::client::pull::host_platform();
    let ours =
        build_image(&store_a, "multi:ours", b"for this machine", host_arch);
    let other =
        build_image(&store_a, "multi:other", b"for another", "other-arch");
    for tag in ["ours", "other"] {
        client()
            .push(
                &store_a,
                &format!("multi:{tag}"),
                &registry.reference(&format!("multi:{tag}")),
            )
            .expect("push");
    }
    let entry = |desc: &Descriptor, arch: &str| {
        serde_json::json!({
            "mediaType": spec::MEDIA_TYPE_MANIFEST,
            "digest": digest(desc).to_string(),
            "size": desc.size(),
            "platform": { "os": "linux", "architecture": arch },
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": spec::MEDIA_TYPE_INDEX,
        "manifests": [entry(&other, "other-arch"), entry(&ours, host_arch)],
    }))
    .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    agent
        .put(format!(
            "http://{}/v2/multi/manifests/v1",
            registry.handle.addr()
        ))
        .header("Content-Type", spec::MEDIA_TYPE_INDEX)
        .send(&index[..])
        .expect("PUT index");

    let pulled = client()
        .pull(&store_b, &registry.reference("multi:v1"))
        .expect("pull through the index");
    assert_eq!(pulled.manifest, digest(&ours));
}

#[test]
fn pushing_needs_credentials_when_users_are_configured() {
    let registry = Registry::start_with(Challenge::Basic, true);
    let (_a, store_a) = store();
    build_image(&store_a, "kubia:v1", b"layer", "amd64");
    let target = registry.reference("kubia:v1");

    let err = client()
        .push(&store_a, "kubia:v1", &target)
        .expect_err("anonymous push");
    assert!(
        matches!(
            err,
            ClientError::Unauthorized {
                anonymous: true,
                ..
            }
        ),
        "{err}"
    );
    let wrong =
        Client::new(Some(Credentials::new("alice", "guess"))).quiet(true);
    let err = wrong
        .push(&store_a, "kubia:v1", &target)
        .expect_err("wrong password");
    assert!(
        matches!(
            err,
            ClientError::Unauthorized {
                anonymous: false,
                ..
            }
        ),
        "{err}"
    );
    alice()
        .push(&store_a, "kubia:v1", &target)
        .expect("push as alice");

    // A public repository: anyone may pull.
    let (_b, store_b) = store();
    client().pull(&store_b, &target).expect("anonymous pull");
}

#[test]
fn private_repository_pulls_need_credentials() {
    let registry = Registry::start_with(Challenge::Basic, true);
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    build_image(&store_a, "vault:v1", b"secret", "amd64");
    let target = registry.reference("vault:v1");
    alice().push(&store_a, "vault:v1", &target).expect("push");
    let err = client()
        .pull(&store_b, &target)
        .expect_err("anonymous pull");
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
    assert!(store_b.resolve(&target.local_name()).is_err());
    alice().pull(&store_b, &target).expect("pull as alice");
}

#[test]
fn login_checks_the_credentials() {
    let registry = Registry::start_with(Challenge::Basic, true);
    let host = registry.handle.addr().to_string();
    alice().login_check(&host).expect("alice logs in");
    let wrong = Client::new(Some(Credentials::new("alice", "guess")));
    assert!(matches!(
        wrong.login_check(&host),
        Err(ClientError::Unauthorized { .. })
    ));
    assert!(client().login_check(&host).is_err());
    // A registry without users lets anyone in.
    let open = Registry::start();
    client()
        .login_check(&open.handle.addr().to_string())
        .expect("open registry");
}

#[test]
fn bearer_token_flow_pushes_and_pulls() {
    let registry = Registry::start_with(Challenge::Bearer, true);
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let desc = build_image(&store_a, "vault:v1", b"behind a token", "amd64");
    let target = registry.reference("vault:v1");
    let err = client()
        .push(&store_a, "vault:v1", &target)
        .expect_err("no credentials");
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
    alice()
        .push(&store_a, "vault:v1", &target)
        .expect("push with a token");
    let pulled = alice().pull(&store_b, &target).expect("pull with a token");
    assert_eq!(pulled.manifest, digest(&desc));
    // Public repositories: an anonymous token is enough to pull.
    let public = registry.reference("kubia:v1");
    alice()
        .push(&store_a, "vault:v1", &public)
        .expect("push kubia");
    let (_c, store_c) = store();
    client()
        .pull(&store_c, &public)
        .expect("anonymous pull with a token");
    alice()
        .login_check(&registry.handle.addr().to_string())
        .expect("login with a token");
    let wrong = Client::new(Some(Credentials::new("alice", "guess")));
    assert!(wrong
        .login_check(&registry.handle.addr().to_string())
        .is_err());
    // An anonymous token is no login.
    assert!(client()
        .login_check(&registry.handle.addr().to_string())
        .is_err());
}

#[test]
fn references_without_a_registry_are_refused() {
    let (_a, store_a) = store();
    let err = client()
        .pull(&store_a, &"kubia:v1".parse().unwrap())
        .expect_err("no registry");
    assert!(matches!(err, ClientError::NoRegistry { .. }), "{err}");
}

#[test]
fn credentials_file_keeps_each_registry() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubelings/auth.json");
    assert_eq!(Credentials::load(&path, "127.0.0.1:5000").unwrap(), None);
    Credentials::new("alice", "secret")
        .save(&path, "127.0.0.1:5000")
        .unwrap();
    Credentials::new("bob", "hunter2")
        .save(&path, "localhost:5001")
        .unwrap();
    assert_eq!(
        Credentials::load(&path, "127.0.0.1:5000").unwrap(),
        Some(Credentials::new("alice", "secret"))
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(Credentials::forget(&path, "127.0.0.1:5000").unwrap());
    assert_eq!(Credentials::load(&path, "127.0.0.1:5000").unwrap(), None);
    assert!(Credentials::load(&path, "localhost:5001")
        .unwrap()
        .is_some());
    // Never printed.
    assert!(!format!("{:?}", Credentials::new("a", "pw")).contains("pw"));
}

#[test]
fn pushes_to_and_pulls_from_debian_docker_registry() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let desc = build_image(
        &store_a,
        "kubia:v1",
        b"through docker's registry",
        "amd64",
    );
    let target: Reference =
        format!("{}/team/kubia:v1", registry.addr).parse().unwrap();

    let pushed = client().push(&store_a, "kubia:v1", &target).expect("push");
    assert_eq!(pushed.blobs_sent, 2);
    let again = client()
        .push(&store_a, "kubia:v1", &target)
        .expect("push again");
    assert_eq!(again.blobs_skipped, 2);

    let pulled = client().pull(&store_b, &target).expect("pull");
    assert_eq!(pulled.manifest, digest(&desc));
    let local = store_b.resolve(&pulled.local_name).unwrap();
    store_b.check(&local).expect("intact");
    let by_digest: Reference =
        format!("{}/team/kubia@{}", registry.addr, digest(&desc))
            .parse()
            .unwrap();
    let again = client().pull(&store_b, &by_digest).expect("pull by digest");
    assert_eq!(again.blobs_skipped, 2);
}

#[test]
fn large_layers_go_to_debian_docker_registry_in_chunks() {
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let (_a, store_a) = store();
    let (_b, store_b) = store();
    let desc = build_image(&store_a, "big:v1", &noise(9 << 20, 11), "amd64");
    let target: Reference =
        format!("{}/big:v1", registry.addr).parse().unwrap();
    client().push(&store_a, "big:v1", &target).expect("push");
    let pulled = client().pull(&store_b, &target).expect("pull");
    assert_eq!(pulled.manifest, digest(&desc));
}

#[test]
fn platforms_match_as_containerd_matches_them() {
    use lab02::client::Platform;
    let p = |s: &str| s.parse::<Platform>().expect(s);
    // Default variants are spelled out: arm64 is arm64/v8, arm is arm/v7.
    assert_eq!(p("linux/arm64").to_string(), "linux/arm64/v8");
    assert_eq!(p("linux/aarch64").to_string(), "linux/arm64/v8");
    assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
    assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
    assert_eq!(p("linux/arm64"), p("linux/arm64/v8"));
    // An arm/v7 machine runs v7 first, then v6 and v5; not v8.
    let v7 = p("linux/arm/v7");
    assert_eq!(v7.rank(&p("linux/arm/v7")), Some(0));
    assert_eq!(v7.rank(&p("linux/arm/v6")), Some(1));
    assert_eq!(v7.rank(&p("linux/arm/v5")), Some(2));
    assert_eq!(v7.rank(&p("linux/arm/v8")), None);
    assert_eq!(p("linux/arm/v6").rank(&v7), None);
    assert_eq!(v7.rank(&p("linux/arm64")), None);
    assert_eq!(p("linux/amd64").rank(&p("windows/amd64")), None);
    for bad in ["linux", "linux/", "a/b/c/d", "linux/arm 64"] {
        let err = bad.parse::<Platform>().expect_err(bad);
        assert!(err.to_string().contains("os/arch[/variant]"), "{err}");
    }
}

#[test]
fn an_index_picks_the_variant_and_names_what_it_has() {
    use lab02::client::Platform;
    let registry = Registry::start();
    let (_a, store_a) = store();
    let v6 = build_image(&store_a, "arm:v6", b"arm v6", "arm");
    let v7 = build_image(&store_a, "arm:v7", b"arm v7", "arm");
    let arm64 = build_image(&store_a, "arm:64", b"arm64", "arm64");
    for tag in ["v6", "v7", "64"] {
        client()
            .push(
                &store_a,
                &format!("arm:{tag}"),
                &registry.reference(&format!("arm:{tag}")),
            )
            .expect("push");
    }
    let entry = |desc: &Descriptor, arch: &str, variant: &str| {
        serde_json::json!({
            "mediaType": spec::MEDIA_TYPE_MANIFEST,
            "digest": digest(desc).to_string(),
            "size": desc.size(),
            "platform": { "os": "linux", "architecture": arch, "variant": variant },
        })
    };
    let put_index = |tag: &str, entries: Vec<serde_json::Value>| {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": spec::MEDIA_TYPE_INDEX,
            "manifests": entries,
        }))
        .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        agent
            .put(format!(
                "http://{}/v2/arm/manifests/{tag}",
                registry.handle.addr()
            ))
            .header("Content-Type", spec::MEDIA_TYPE_INDEX)
            .send(&index[..])
            .expect("PUT index");
    };
    put_index(
        "all",
        vec![
            entry(&v6, "arm", "v6"),
            entry(&arm64, "arm64", "v8"),
            entry(&v7, "arm", "v7"),
        ],
    );
    put_index(
        "old",
        vec![entry(&v6, "arm", "v6"), entry(&arm64, "arm64", "v8")],
    );
    let pull = |platform: &str, tag: &str| {
        let (_dir, target) = store();
        let result = client()
            .platform(platform.parse::<Platform>().unwrap())
            .pull(&target, &registry.reference(&format!("arm:{tag}")));
        let empty = target.images().unwrap().is_empty();
        (result, empty)
    };
    assert_eq!(pull("linux/arm/v7", "all").0.unwrap().manifest, digest(&v7));
    assert_eq!(pull("linux/arm", "all").0.unwrap().manifest, digest(&v7));
    assert_eq!(
        pull("linux/arm64", "all").0.unwrap().manifest,
        digest(&arm64)
    );
    // No v7 in the index: the v6 image runs on v7.
    assert_eq!(pull("linux/arm/v7", "old").0.unwrap().manifest, digest(&v6));
    let (result, empty) = pull("linux/amd64", "all");
    let err = result.expect_err("no amd64");
    assert!(matches!(err, ClientError::NoPlatform { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(
            "linux/amd64 (it has: linux/arm/v6, linux/arm64/v8, linux/arm/v7)"
        ),
        "{text}"
    );
    assert!(text.contains("/arm:all"), "{text}");
    assert!(empty, "nothing stored");
}
