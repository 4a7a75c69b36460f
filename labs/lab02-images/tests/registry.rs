//! Self-checks for §2.3: raw HTTP conversations with the registry, as the
//! OCI distribution spec writes them down. Every registry here listens on a
//! free loopback port and is stopped when its test ends (also on failure:
//! `RegistryHandle` shuts down on drop).

mod common;
use common::short_digests;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use lab02::registry::{Challenge, RegistryConfig, RegistryHandle};
use lab02::Digest;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry on a free port over a temporary directory, with an agent that
/// never follows a proxy and gives up on any request after 30 s.
struct Registry {
    handle: RegistryHandle,
    root: PathBuf,
    base: String,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(|_, _| {}, Challenge::Basic)
    }

    fn start_with(
        configure: impl FnOnce(&mut RegistryConfig, &std::path::Path),
        challenge: Challenge,
    ) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("registry");
        let mut config = RegistryConfig::new(&root);
        config.addr = "127.0.0.1:0".parse().unwrap();
        configure(&mut config, dir.path());
        let handle = RegistryHandle::start_with(config, challenge)
            .expect("start the registry");
        let base = format!("http://{}", handle.addr());
        Registry {
            handle,
            root,
            base,
            agent: agent(),
            _dir: dir,
        }
    }

    /// With users alice/secret (bcrypt, as `htpasswd -B` writes it) and
    /// the repository `vault` private.
    fn start_with_users(challenge: Challenge) -> Registry {
        Registry::start_with(
            |config, dir| {
                let users = dir.join("htpasswd");
                // Cost 4: the lowest bcrypt allows, so the tests stay fast.
                let hash = bcrypt::hash_with_result("secret", 4)
                    .expect("bcrypt")
                    .format_for_version(bcrypt::Version::TwoY);
                std::fs::write(&users, format!("# test users\nalice:{hash}\n"))
                    .unwrap();
                config.users = Some(users);
                config.private = vec!["vault".to_string()];
            },
            challenge,
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

type Response = ureq::http::Response<ureq::Body>;

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn body_json(response: &mut Response) -> serde_json::Value {
    let text = response.body_mut().read_to_string().expect("read body");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn error_code(response: &mut Response) -> String {
    body_json(response)["errors"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{password}"))
    )
}

/// Request helpers that add credentials when given.
struct Conversation<'a> {
    registry: &'a Registry,
    auth: Option<String>,
}

impl<'a> Conversation<'a> {
    fn new(registry: &'a Registry) -> Self {
        Conversation {
            registry,
            auth: None,
        }
    }

    fn as_user(registry: &'a Registry, user: &str, password: &str) -> Self {
        Conversation {
            registry,
            auth: Some(basic(user, password)),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
    ) -> ureq::http::request::Builder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.registry.url(path)
        };
        let mut builder =
            ureq::http::Request::builder().method(method).uri(url);
        if let Some(auth) = &self.auth {
            builder = builder.header("Authorization", auth);
        }
        builder
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut builder = self.request(method, path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.to_vec()).expect("request");
        self.registry
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn get(&self, path: &str) -> Response {
        let request = self.request("GET", path).body(()).expect("request");
        self.registry.agent.run(request).expect("GET")
    }

    fn head(&self, path: &str) -> Response {
        let request = self.request("HEAD", path).body(()).expect("request");
        self.registry.agent.run(request).expect("HEAD")
    }

    /// POST to start an upload; returns its Location.
    fn start_upload(&self, name: &str) -> String {
        let response =
            self.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], b"");
        assert_eq!(response.status(), 202, "POST upload");
        header(&response, "Location")
    }

    /// A whole blob in one POST.
    fn push_blob(&self, name: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        let response = self.send(
            "POST",
            &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(response.status(), 201, "monolithic upload");
        digest
    }

    fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        manifest: &[u8],
    ) -> Response {
        self.send(
            "PUT",
            &format!("/v2/{name}/manifests/{reference}"),
            &[("Content-Type", OCI_MANIFEST)],
            manifest,
        )
    }
}

/// `location` with `?digest=` (or `&digest=`) appended.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// A manifest naming a config and layers of these digests and sizes.
fn manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(digest, size)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest.to_string(),
                "size": size,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0.to_string(),
            "size": config.1,
        },
        "layers": layers,
    }))
    .unwrap()
}

/// Pushes a config and one layer, then a manifest tagged `tag`; returns the
/// manifest's bytes.
fn push_image(
    talk: &Conversation,
    name: &str,
    tag: &str,
    layer: &[u8],
) -> Vec<u8> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = talk.push_blob(name, config);
    let layer_digest = talk.push_blob(name, layer);
    let body = manifest(
        (&config_digest, config.len()),
        &[(&layer_digest, layer.len())],
    );
    let response = talk.put_manifest(name, tag, &body);
    assert_eq!(response.status(), 201, "PUT manifest");
    body
}

#[test]
fn version_check_answers_200() {
    let registry = Registry::start();
    let response = Conversation::new(&registry).get("/v2/");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "Docker-Distribution-API-Version"),
        "registry/2.0"
    );
}

#[test]
fn monolithic_upload_then_blob_is_served() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let bytes = b"hello, layer";
    let digest = talk.push_blob("kubia", bytes);

    let head = talk.head(&format!("/v2/kubia/blobs/{digest}"));
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "Content-Length"), bytes.len().to_string());
    assert_eq!(header(&head, "Docker-Content-Digest"), digest.to_string());

    let mut get = talk.get(&format!("/v2/kubia/blobs/{digest}"));
    assert_eq!(get.status(), 200);
    assert_eq!(get.body_mut().read_to_vec().unwrap(), bytes);

    // Blobs belong to repositories: another name does not serve it.
    let other = talk.head(&format!("/v2/other/blobs/{digest}"));
    assert_eq!(other.status(), 404);
}

#[test]
fn post_then_put_uploads_a_blob() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let response = talk.send("POST", "/v2/team/app/blobs/uploads/", &[], b"");
    assert_eq!(response.status(), 202);
    let location = header(&response, "Location");
    assert!(
        location.starts_with("/v2/team/app/blobs/uploads/"),
        "{location}"
    );
    assert_eq!(header(&response, "Range"), "0-0");
    assert_eq!(
        location.rsplit('/').next().unwrap(),
        header(&response, "Docker-Upload-UUID")
    );

    let bytes = b"one request, the whole blob";
    let digest = Digest::of(bytes);
    let response =
        talk.send("PUT", &with_digest(&location, &digest), &[], bytes);
    assert_eq!(response.status(), 201);
    assert_eq!(
        header(&response, "Location"),
        format!("/v2/team/app/blobs/{digest}")
    );
    assert_eq!(
        header(&response, "Docker-Content-Digest"),
        digest.to_string()
    );
    let mut get = talk.get(&format!("/v2/team/app/blobs/{digest}"));
    assert_eq!(get.body_mut().read_to_vec().unwrap(), bytes);
}

#[test]
fn chunked_upload_in_two_patches() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let location = talk.start_upload("kubia");

    let first = talk.send(
        "PATCH",
        &location,
        &[
            ("Content-Range", "0-4"),
            ("Content-Type", "application/octet-stream"),
        ],
        b"01234",
    );
    assert_eq!(first.status(), 202);
    assert_eq!(header(&first, "Range"), "0-4");
    let location = header(&first, "Location");

    let second =
        talk.send("PATCH", &location, &[("Content-Range", "5-9")], b"56789");
    assert_eq!(second.status(), 202);
    assert_eq!(header(&second, "Range"), "0-9");

    let status = talk.get(&location);
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "Range"), "0-9");

    let digest = Digest::of(b"0123456789");
    let done = talk.send("PUT", &with_digest(&location, &digest), &[], b"");
    assert_eq!(done.status(), 201);
    let mut get = talk.get(&format!("/v2/kubia/blobs/{digest}"));
    assert_eq!(get.body_mut().read_to_vec().unwrap(), b"0123456789");

    // The upload is over: its location is gone.
    let mut gone = talk.get(&location);
    assert_eq!(gone.status(), 404);
    assert_eq!(error_code(&mut gone), "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn final_chunk_may_come_with_the_put() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let location = talk.start_upload("kubia");
    let first = talk.send("PATCH", &location, &[], b"head-");
    assert_eq!(first.status(), 202);
    let digest = Digest::of(b"head-tail");
    let done = talk.send(
        "PUT",
        &with_digest(&header(&first, "Location"), &digest),
        &[("Content-Range", "5-8")],
        b"tail",
    );
    assert_eq!(done.status(), 201);
}

#[test]
fn out_of_order_patch_is_416() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let location = talk.start_upload("kubia");
    let first =
        talk.send("PATCH", &location, &[("Content-Range", "0-4")], b"01234");
    assert_eq!(first.status(), 202);

    // Skips bytes 5-9.
    let mut skipped =
        talk.send("PATCH", &location, &[("Content-Range", "10-14")], b"abcde");
    assert_eq!(skipped.status(), 416);
    assert_eq!(header(&skipped, "Range"), "0-4");
    assert_eq!(header(&skipped, "Location"), location);
    assert_eq!(error_code(&mut skipped), "BLOB_UPLOAD_INVALID");

    // Repeats bytes 0-4.
    let again =
        talk.send("PATCH", &location, &[("Content-Range", "0-4")], b"01234");
    assert_eq!(again.status(), 416);

    // The upload is unharmed and goes on from byte 5.
    let next =
        talk.send("PATCH", &location, &[("Content-Range", "5-9")], b"56789");
    assert_eq!(next.status(), 202);
    assert_eq!(header(&next, "Range"), "0-9");
}

#[test]
fn wrong_digest_is_digest_invalid_and_blob_stays_unknown() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let location = talk.start_upload("kubia");
    let claimed = Digest::of(b"what the client claims");
    let mut response = talk.send(
        "PUT",
        &with_digest(&location, &claimed),
        &[],
        b"what the client sent",
    );
    assert_eq!(response.status(), 400);
    assert_eq!(header(&response, "Content-Type"), "application/json");
    let body = body_json(&mut response);
    insta::assert_snapshot!(short_digests(
        &serde_json::to_string_pretty(&body).unwrap()
    ));

    for digest in [&claimed, &Digest::of(b"what the client sent")] {
        let head = talk.head(&format!("/v2/kubia/blobs/{digest}"));
        assert_eq!(head.status(), 404, "{digest} must stay unknown");
        assert!(!registry
            .root
            .join("blobs/sha256")
            .join(digest.hex())
            .exists());
    }
    // Nothing is left in the upload area either.
    assert_eq!(
        std::fs::read_dir(registry.root.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn monolithic_post_with_a_wrong_digest_is_refused() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let claimed = Digest::of(b"x");
    let mut response = talk.send(
        "POST",
        &format!("/v2/kubia/blobs/uploads/?digest={claimed}"),
        &[],
        b"y",
    );
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(&mut response), "DIGEST_INVALID");
    assert_eq!(
        talk.head(&format!("/v2/kubia/blobs/{claimed}")).status(),
        404
    );
}

#[test]
fn unknown_blob_is_blob_unknown() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let mut response =
        talk.get(&format!("/v2/kubia/blobs/{}", Digest::of(b"nope")));
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(&mut response), "BLOB_UNKNOWN");
    let mut response = talk.get("/v2/kubia/blobs/sha256:nothex");
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(&mut response), "DIGEST_INVALID");
}

#[test]
fn manifests_round_trip_by_tag_and_digest() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let body = push_image(&talk, "kubia", "v1", b"layer one");
    let digest = Digest::of(&body);

    for reference in ["v1".to_string(), digest.to_string()] {
        let mut get = talk.get(&format!("/v2/kubia/manifests/{reference}"));
        assert_eq!(get.status(), 200);
        assert_eq!(header(&get, "Content-Type"), OCI_MANIFEST);
        assert_eq!(header(&get, "Docker-Content-Digest"), digest.to_string());
        assert_eq!(get.body_mut().read_to_vec().unwrap(), body);
    }
    let head = talk.head("/v2/kubia/manifests/v1");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "Content-Length"), body.len().to_string());

    // By digest, the digest must be the body's.
    let mut wrong =
        talk.put_manifest("kubia", &Digest::of(b"other").to_string(), &body);
    assert_eq!(wrong.status(), 400);
    assert_eq!(error_code(&mut wrong), "DIGEST_INVALID");
    let right = talk.put_manifest("kubia", &digest.to_string(), &body);
    assert_eq!(right.status(), 201);
    assert_eq!(header(&right, "Docker-Content-Digest"), digest.to_string());

    let mut missing = talk.get("/v2/kubia/manifests/v2");
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(&mut missing), "MANIFEST_UNKNOWN");
}

#[test]
fn manifest_naming_a_missing_blob_is_manifest_blob_unknown() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let config = br#"{"os":"linux"}"#;
    let config_digest = talk.push_blob("kubia", config);
    let missing = Digest::of(b"never uploaded");
    let body = manifest((&config_digest, config.len()), &[(&missing, 14)]);
    let mut response = talk.put_manifest("kubia", "v1", &body);
    assert_eq!(response.status(), 400);
    let json = body_json(&mut response);
    assert_eq!(json["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(json["errors"][0]["detail"]["digest"], missing.to_string());
    assert_eq!(talk.get("/v2/kubia/manifests/v1").status(), 404);
}

#[test]
fn malformed_manifest_is_manifest_invalid() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    for body in [
        &b"{not json"[..],
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
    ] {
        let mut response = talk.put_manifest("kubia", "v1", body);
        assert_eq!(response.status(), 400);
        assert_eq!(error_code(&mut response), "MANIFEST_INVALID");
    }
}

#[test]
fn bad_name_is_name_invalid() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    for path in [
        "/v2/Kubia/tags/list",
        "/v2/a..b/blobs/uploads/",
        "/v2/a//b/manifests/v1",
    ] {
        let method = if path.ends_with("uploads/") {
            "POST"
        } else {
            "GET"
        };
        let mut response = talk.send(method, path, &[], b"");
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(error_code(&mut response), "NAME_INVALID", "{path}");
    }
}

#[test]
fn tags_list_paginates() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let body = push_image(&talk, "kubia", "v1", b"layer");
    for tag in ["v3", "latest", "v2"] {
        assert_eq!(talk.put_manifest("kubia", tag, &body).status(), 201);
    }

    let mut all = talk.get("/v2/kubia/tags/list");
    assert_eq!(all.status(), 200);
    assert_eq!(
        body_json(&mut all),
        serde_json::json!({ "name": "kubia", "tags": ["latest", "v1", "v2", "v3"] })
    );

    let mut page = talk.get("/v2/kubia/tags/list?n=2");
    assert_eq!(
        header(&page, "Link"),
        "</v2/kubia/tags/list?n=2&last=v1>; rel=\"next\""
    );
    assert_eq!(
        body_json(&mut page)["tags"],
        serde_json::json!(["latest", "v1"])
    );
    let mut rest = talk.get("/v2/kubia/tags/list?n=2&last=v1");
    assert_eq!(header(&rest, "Link"), "");
    assert_eq!(
        body_json(&mut rest)["tags"],
        serde_json::json!(["v2", "v3"])
    );

    let mut unknown = talk.get("/v2/nobody/tags/list");
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(&mut unknown), "NAME_UNKNOWN");
}

#[test]
fn catalog_lists_repositories() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    push_image(&talk, "team/app", "v1", b"a");
    push_image(&talk, "kubia", "v1", b"b");
    let mut catalog = talk.get("/v2/_catalog");
    assert_eq!(
        body_json(&mut catalog),
        serde_json::json!({ "repositories": ["kubia", "team/app"] })
    );
}

#[test]
fn cross_repository_mount() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let digest = talk.push_blob("base", b"shared layer");
    let mounted = talk.send(
        "POST",
        &format!("/v2/kubia/blobs/uploads/?mount={digest}&from=base"),
        &[],
        b"",
    );
    assert_eq!(mounted.status(), 201);
    assert_eq!(
        header(&mounted, "Docker-Content-Digest"),
        digest.to_string()
    );
    assert_eq!(
        talk.head(&format!("/v2/kubia/blobs/{digest}")).status(),
        200
    );

    // Not in `from`: an ordinary upload starts instead.
    let absent = Digest::of(b"absent");
    let fallback = talk.send(
        "POST",
        &format!("/v2/kubia/blobs/uploads/?mount={absent}&from=base"),
        &[],
        b"",
    );
    assert_eq!(fallback.status(), 202);
    assert!(header(&fallback, "Location").contains("/blobs/uploads/"));
}

#[test]
fn cancelled_upload_is_forgotten() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let location = talk.start_upload("kubia");
    assert_eq!(talk.send("PATCH", &location, &[], b"partial").status(), 202);
    assert_eq!(talk.send("DELETE", &location, &[], b"").status(), 204);
    assert_eq!(talk.get(&location).status(), 404);
    assert_eq!(
        std::fs::read_dir(registry.root.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn push_without_credentials_is_challenged() {
    let registry = Registry::start_with_users(Challenge::Basic);
    let talk = Conversation::new(&registry);
    let mut response = talk.send("POST", "/v2/kubia/blobs/uploads/", &[], b"");
    assert_eq!(response.status(), 401);
    assert_eq!(
        header(&response, "WWW-Authenticate"),
        "Basic realm=\"kubelings\""
    );
    assert_eq!(error_code(&mut response), "UNAUTHORIZED");
    // The version check tells clients that credentials are wanted.
    assert_eq!(talk.get("/v2/").status(), 401);
    let alice = Conversation::as_user(&registry, "alice", "secret");
    assert_eq!(alice.get("/v2/").status(), 200);
    push_image(&alice, "kubia", "v1", b"pushed with credentials");
}

#[test]
fn wrong_password_is_refused() {
    let registry = Registry::start_with_users(Challenge::Basic);
    for talk in [
        Conversation::as_user(&registry, "alice", "guess"),
        Conversation::as_user(&registry, "mallory", "secret"),
    ] {
        let response = talk.send("POST", "/v2/kubia/blobs/uploads/", &[], b"");
        assert_eq!(response.status(), 401);
        assert_eq!(
            header(&response, "WWW-Authenticate"),
            "Basic realm=\"kubelings\""
        );
        assert_eq!(talk.get("/v2/").status(), 401);
    }
}

#[test]
fn private_repository_needs_credentials_to_pull() {
    let registry = Registry::start_with_users(Challenge::Basic);
    let alice = Conversation::as_user(&registry, "alice", "secret");
    let body = push_image(&alice, "vault", "v1", b"secret layer");
    let layer = Digest::of(b"secret layer");
    let anonymous = Conversation::new(&registry);
    for path in [
        "/v2/vault/manifests/v1".to_string(),
        format!("/v2/vault/manifests/{}", Digest::of(&body)),
        format!("/v2/vault/blobs/{layer}"),
        "/v2/vault/tags/list".to_string(),
        // Whether something exists in a private repository is private too.
        "/v2/vault/manifests/no-such-tag".to_string(),
    ] {
        assert_eq!(anonymous.get(&path).status(), 401, "GET {path}");
        assert_eq!(anonymous.head(&path).status(), 401, "HEAD {path}");
        assert_ne!(alice.get(&path).status(), 401, "{path} with credentials");
    }
    let mut manifest = alice.get("/v2/vault/manifests/v1");
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.body_mut().read_to_vec().unwrap(), body);
    // Nor can its layers be mounted into, or seen from, a public repository.
    let mount = alice.send(
        "POST",
        &format!("/v2/kubia/blobs/uploads/?mount={layer}&from=vault"),
        &[],
        b"",
    );
    assert_eq!(mount.status(), 201, "alice may mount what she may pull");
    assert_eq!(
        anonymous.head(&format!("/v2/other/blobs/{layer}")).status(),
        404
    );
    let mut catalog = anonymous.get("/v2/_catalog");
    assert_eq!(
        body_json(&mut catalog)["repositories"],
        serde_json::json!(["kubia"])
    );
}

#[test]
fn public_repository_pulls_without_credentials() {
    let registry = Registry::start_with_users(Challenge::Basic);
    let alice = Conversation::as_user(&registry, "alice", "secret");
    let body = push_image(&alice, "kubia", "v1", b"public layer");
    let anonymous = Conversation::new(&registry);
    let mut manifest = anonymous.get("/v2/kubia/manifests/v1");
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.body_mut().read_to_vec().unwrap(), body);
    let layer = Digest::of(b"public layer");
    assert_eq!(
        anonymous.get(&format!("/v2/kubia/blobs/{layer}")).status(),
        200
    );
}

#[test]
fn bearer_tokens_are_issued_for_credentials() {
    let registry = Registry::start_with_users(Challenge::Bearer);
    let anonymous = Conversation::new(&registry);
    let response = anonymous.send("POST", "/v2/kubia/blobs/uploads/", &[], b"");
    assert_eq!(response.status(), 401);
    let challenge = header(&response, "WWW-Authenticate");
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{}/token\",service=\"kubelings\",scope=\"repository:kubia:pull,push\"",
            registry.base
        )
    );

    // Basic credentials are no good here: only tokens are.
    let alice_basic = Conversation::as_user(&registry, "alice", "secret");
    assert_eq!(
        alice_basic
            .send("POST", "/v2/kubia/blobs/uploads/", &[], b"")
            .status(),
        401
    );

    let token_url = "/token?service=kubelings&scope=repository:kubia:pull,push";
    assert_eq!(
        Conversation::as_user(&registry, "alice", "guess")
            .get(token_url)
            .status(),
        401
    );
    let mut issued = alice_basic.get(token_url);
    assert_eq!(issued.status(), 200);
    let token = body_json(&mut issued)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let with_token = Conversation {
        registry: &registry,
        auth: Some(format!("Bearer {token}")),
    };
    push_image(&with_token, "kubia", "v1", b"pushed with a token");
    // The token is for kubia only.
    assert_eq!(
        with_token
            .send("POST", "/v2/other/blobs/uploads/", &[], b"")
            .status(),
        401
    );
    // A forged token is refused.
    let forged = Conversation {
        registry: &registry,
        auth: Some(format!("Bearer {}x", token)),
    };
    assert_eq!(
        forged
            .send("POST", "/v2/kubia/blobs/uploads/", &[], b"")
            .status(),
        401
    );
    // Anonymous tokens grant pull on public repositories, nothing more.
    let mut anonymous_token = anonymous.get(token_url);
    assert_eq!(anonymous_token.status(), 200);
    let token = body_json(&mut anonymous_token)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let weak = Conversation {
        registry: &registry,
        auth: Some(format!("Bearer {token}")),
    };
    assert_eq!(weak.get("/v2/kubia/manifests/v1").status(), 200);
    assert_eq!(
        weak.send("POST", "/v2/kubia/blobs/uploads/", &[], b"")
            .status(),
        401
    );
}

#[test]
fn concurrent_pushes_of_the_same_image_both_succeed() {
    let registry = Registry::start();
    let layer: Vec<u8> =
        (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#;
    let body = manifest(
        (&Digest::of(config), config.len()),
        &[(&Digest::of(&layer), layer.len())],
    );
    let push = || {
        let talk = Conversation::new(&registry);
        for blob in [&config[..], &layer[..]] {
            // Chunked, so the two pushes interleave on the same blob.
            let digest = Digest::of(blob);
            let mut location = talk.start_upload("kubia");
            let half = blob.len() / 2;
            for (start, chunk) in [(0, &blob[..half]), (half, &blob[half..])] {
                let range = format!("{start}-{}", start + chunk.len() - 1);
                let response = talk.send(
                    "PATCH",
                    &location,
                    &[("Content-Range", &range)],
                    chunk,
                );
                assert_eq!(response.status(), 202);
                location = header(&response, "Location");
            }
            let done =
                talk.send("PUT", &with_digest(&location, &digest), &[], b"");
            assert_eq!(done.status(), 201);
        }
        talk.put_manifest("kubia", "v1", &body).status()
    };
    let statuses = std::thread::scope(|s| {
        let a = s.spawn(push);
        let b = s.spawn(push);
        [a.join().expect("push a"), b.join().expect("push b")]
    });
    assert_eq!(statuses, [201, 201]);

    let talk = Conversation::new(&registry);
    let mut got = talk.get("/v2/kubia/manifests/v1");
    assert_eq!(got.body_mut().read_to_vec().unwrap(), body);
    let mut blob = talk.get(&format!("/v2/kubia/blobs/{}", Digest::of(&layer)));
    let bytes = blob
        .body_mut()
        .with_config()
        .limit(10 << 20)
        .read_to_vec()
        .unwrap();
    assert_eq!(Digest::of(&bytes), Digest::of(&layer));
    // One copy of each blob, plus the manifest; no stray files.
    let blobs = std::fs::read_dir(registry.root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 3);
    assert_eq!(
        std::fs::read_dir(registry.root.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn interrupted_upload_leaves_no_blob() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let location = talk.start_upload("kubia");
    let whole: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();

    // A client that announces 1000 bytes, sends 500 and goes away.
    {
        let mut stream =
            TcpStream::connect(registry.handle.addr()).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            registry.handle.addr(),
            whole.len()
        )
        .unwrap();
        stream.write_all(&whole[..500]).unwrap();
        stream.flush().unwrap();
        // Dropping the stream closes the connection mid-body.
    }

    // The server notices and cuts the upload back to where it was; the
    // status request waits for the broken PATCH to let go of the upload.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = talk.get(&location);
        assert_eq!(status.status(), 204);
        if header(&status, "Range") == "0-0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upload still holds {}",
            header(&status, "Range")
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Finishing with what was meant to be sent fails, and nothing shows.
    let digest = Digest::of(&whole);
    let mut put = talk.send("PUT", &with_digest(&location, &digest), &[], b"");
    assert_eq!(put.status(), 400);
    assert_eq!(error_code(&mut put), "DIGEST_INVALID");
    for digest in [Digest::of(&whole), Digest::of(&whole[..500])] {
        assert_eq!(
            talk.head(&format!("/v2/kubia/blobs/{digest}")).status(),
            404
        );
    }
    assert_eq!(
        std::fs::read_dir(registry.root.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn unsupported_methods_say_so() {
    let registry = Registry::start();
    let talk = Conversation::new(&registry);
    let digest = talk.push_blob("kubia", b"x");
    let mut response =
        talk.send("DELETE", &format!("/v2/kubia/blobs/{digest}"), &[], b"");
    assert_eq!(response.status(), 405);
    assert_eq!(error_code(&mut response), "UNSUPPORTED");
}

#[test]
fn shutdown_frees_the_port() {
    let registry = Registry::start();
    let addr = registry.handle.addr();
    let Registry { handle, _dir, .. } = registry;
    handle.shutdown().expect("shutdown");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
