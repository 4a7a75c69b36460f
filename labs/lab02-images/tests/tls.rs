//! HTTPS between the client and registries: ours (`RegistryConfig::tls`)
//! and Debian's docker-registry, with a CA that each test makes (rcgen).
//! The CA is trusted through `certs.d/<host:port>/ca.crt` or `--ca-file`;
//! without it, and with an expired certificate or one for another name,
//! the pull fails with a message that says which, and stores nothing.

mod peers;
use peers::{build_image, digest, store, DockerRegistry, TestCa};

use lab02::client::tls::Transport;
use lab02::client::{Client, ClientError, Credentials, TlsOptions};
use lab02::layout::ImageStore;
use lab02::reference::Reference;
use lab02::registry::tls::TlsFiles;
use lab02::registry::{Challenge, RegistryConfig, RegistryHandle};

/// Our registry serving HTTPS with `cert` on a free loopback port.
fn tls_registry(
    dir: &std::path::Path,
    cert: &peers::CertFiles,
    challenge: Challenge,
    users: bool,
) -> RegistryHandle {
    let mut config = RegistryConfig::new(dir.join("registry"));
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.tls = Some(TlsFiles {
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    });
    if users {
        let path = dir.join("htpasswd");
        let hash = bcrypt::hash("secret", 4).expect("bcrypt");
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        config.users = Some(path);
    }
    RegistryHandle::start_with(config, challenge).expect("start registry")
}

/// TLS options whose certs.d holds `ca` for `host`, as `ch02` reads
/// `$KUBELINGS_HOME/certs.d/<host>/ca.crt`.
fn certs_d(dir: &std::path::Path, host: &str, ca: &TestCa) -> TlsOptions {
    let certs = dir.join("certs.d");
    std::fs::create_dir_all(certs.join(host)).unwrap();
    std::fs::copy(&ca.cert, certs.join(host).join("ca.crt")).unwrap();
    TlsOptions {
        certs_dir: Some(certs),
        ..TlsOptions::default()
    }
}

/// The pull failed on the certificate, said `problem`, named the
/// reference and the registry, and left the store empty.
fn refused(
    result: Result<lab02::client::PullReport, ClientError>,
    problem: &str,
    source: &Reference,
    store: &ImageStore,
) {
    let err = result.expect_err("a refused certificate");
    let text = err.to_string();
    assert!(
        matches!(err, ClientError::Certificate { .. }),
        "not a certificate error: {text}"
    );
    assert!(text.contains(problem), "{text}");
    assert!(text.contains(&source.to_string()), "{text}");
    assert!(text.contains("ca.crt"), "says where a CA goes: {text}");
    assert!(store.images().expect("list").is_empty(), "nothing stored");
}

#[test]
fn our_registry_over_https_with_a_ca_from_certs_d() {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&work.path().join("pki"));
    let cert = ca.server("registry", &["127.0.0.1", "localhost"], false);
    let registry = tls_registry(work.path(), &cert, Challenge::Basic, false);
    assert_eq!(registry.scheme(), "https");
    let host = registry.host();
    let tls = certs_d(work.path(), &host, &ca);
    let (_a, store_a) = store();
    let desc = build_image(&store_a, "kubia:v1", b"over https", "amd64");
    let target: Reference = format!("{host}/kubia:v1").parse().unwrap();
    Client::new(None)
        .quiet(true)
        .tls(tls.clone())
        .push(&store_a, "kubia:v1", &target)
        .expect("push over https");
    let (_b, store_b) = store();
    let pulled = Client::new(None)
        .quiet(true)
        .tls(tls)
        .pull(&store_b, &target)
        .expect("pull over https");
    assert_eq!(pulled.manifest, digest(&desc));

    // Without the CA: the certificate is refused, and nothing falls back
    // to plain HTTP.
    let (_c, store_c) = store();
    let result = Client::new(None).quiet(true).pull(&store_c, &target);
    refused(result, "unknown certificate authority", &target, &store_c);
}

#[test]
fn expired_and_misnamed_certificates_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&work.path().join("pki"));
    for (label, names, expired, problem) in [
        ("expired", &["127.0.0.1"][..], true, "expired"),
        (
            "misnamed",
            &["registry.example"][..],
            false,
            "not for this host",
        ),
    ] {
        let dir = work.path().join(label);
        let cert = ca.server(label, names, expired);
        let registry = tls_registry(&dir, &cert, Challenge::Basic, false);
        let tls = certs_d(&dir, &registry.host(), &ca);
        let source: Reference =
            format!("{}/kubia:v1", registry.host()).parse().unwrap();
        let (_s, store) = store();
        let result =
            Client::new(None).quiet(true).tls(tls).pull(&store, &source);
        refused(result, problem, &source, &store);
    }
}

#[test]
fn bearer_tokens_from_a_realm_on_another_host_over_https() {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&work.path().join("pki"));
    let cert = ca.server("registry", &["127.0.0.1", "localhost"], false);
    let registry = tls_registry(work.path(), &cert, Challenge::Bearer, true);
    // The client speaks to localhost:PORT; the realm the registry names is
    // https://127.0.0.1:PORT/token: another host, as auth.docker.io is
    // for registry-1.docker.io. One CA file serves both (--ca-file).
    let host = format!("localhost:{}", registry.addr().port());
    let tls = TlsOptions {
        ca_files: vec![ca.cert.clone()],
        ..TlsOptions::default()
    };
    let alice = || {
        Client::new(Some(Credentials::new("alice", "secret")))
            .quiet(true)
            .tls(tls.clone())
    };
    let (_a, store_a) = store();
    let desc = build_image(&store_a, "kubia:v1", b"token over https", "amd64");
    let target: Reference = format!("{host}/kubia:v1").parse().unwrap();
    alice()
        .push(&store_a, "kubia:v1", &target)
        .expect("push with a token");
    // Anonymous pull: an anonymous token, as Docker Hub hands out.
    let (_b, store_b) = store();
    let pulled = Client::new(None)
        .quiet(true)
        .tls(tls.clone())
        .pull(&store_b, &target)
        .expect("anonymous pull with a token");
    assert_eq!(pulled.manifest, digest(&desc));
    alice().login_check(&host).expect("login over https");
}

#[test]
fn docker_registry_over_https() {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&work.path().join("pki"));
    let cert = ca.server("docker-registry", &["127.0.0.1"], false);
    let Some(registry) = DockerRegistry::start_tls(&cert) else {
        return;
    };
    let host = registry.host();
    let (_a, store_a) = store();
    let desc =
        build_image(&store_a, "kubia:v1", b"docker's registry, https", "amd64");
    let target: Reference = format!("{host}/team/kubia:v1").parse().unwrap();
    // --ca-file to push, certs.d to pull.
    Client::new(None)
        .quiet(true)
        .tls(TlsOptions {
            ca_files: vec![ca.cert.clone()],
            ..TlsOptions::default()
        })
        .push(&store_a, "kubia:v1", &target)
        .expect("push to docker-registry over https");
    let (_b, store_b) = store();
    let pulled = Client::new(None)
        .quiet(true)
        .tls(certs_d(work.path(), &host, &ca))
        .pull(&store_b, &target)
        .expect("pull from docker-registry over https");
    assert_eq!(pulled.manifest, digest(&desc));
    store_b
        .check(&store_b.resolve(&pulled.local_name).unwrap())
        .expect("intact");
    let (_c, store_c) = store();
    let result = Client::new(None).quiet(true).pull(&store_c, &target);
    refused(result, "unknown certificate authority", &target, &store_c);
}

#[test]
fn plain_http_only_on_loopback_or_when_named_insecure() {
    let none = TlsOptions::default();
    assert_eq!(none.transport("registry-1.docker.io"), Transport::Https);
    assert_eq!(none.transport("quay.io:443"), Transport::Https);
    assert_eq!(none.transport("127.0.0.1:5000"), Transport::HttpsOrHttp);
    assert_eq!(none.transport("localhost:5000"), Transport::HttpsOrHttp);
    assert_eq!(none.transport("[::1]:5000"), Transport::HttpsOrHttp);
    let insecure = TlsOptions {
        insecure: vec!["registry.lan".into(), "other.lan:5000".into()],
        ..TlsOptions::default()
    };
    assert_eq!(
        insecure.transport("registry.lan:5000"),
        Transport::HttpsOrHttp
    );
    assert_eq!(insecure.transport("other.lan:5000"), Transport::HttpsOrHttp);
    assert_eq!(insecure.transport("other.lan:5001"), Transport::Https);
    assert!(!none.allows_http("storage.example"));
}

#[test]
fn a_ca_file_that_holds_no_certificate_is_named() {
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("not-a-ca.crt");
    std::fs::write(&bad, "hello\n").unwrap();
    let (_s, store) = store();
    let err = Client::new(None)
        .quiet(true)
        .tls(TlsOptions {
            ca_files: vec![bad.clone()],
            ..TlsOptions::default()
        })
        .pull(&store, &"127.0.0.1:9/kubia:v1".parse().unwrap())
        .expect_err("bad CA file");
    assert!(matches!(err, ClientError::CaFile { .. }), "{err}");
    assert!(err.to_string().contains("not-a-ca.crt"), "{err}");
}
