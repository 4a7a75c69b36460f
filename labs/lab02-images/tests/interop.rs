//! Real tools accept our artefacts, and we accept theirs (§2.7): skopeo
//! copies through our registry (with and without credentials), umoci
//! unpacks our layout and runc runs the bundle, oci-image-tool validates
//! our layout, and our runtime runs an image that umoci built.
//!
//! Each test needs its tool (Debian's skopeo, umoci, oci-image-tool, runc;
//! `.ci/run` installs them) and skips, saying why, where it is missing;
//! under CI=true a missing tool is a failure.

use std::path::Path;
use std::process::Command;

use lab01::probe::{require, require_program, Privilege};
use lab02::build::base::build_base;
use lab02::home::Home;
use lab02::layout::ImageStore;
use lab02::registry::{RegistryConfig, RegistryHandle};

mod peers;

/// Runs a command; panics with its output if it fails.
fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A store holding our base image, also tagged `base` (which the store
/// keeps as `base:latest`, a name the other tools read as a plain tag).
fn base_store(dir: &Path) -> ImageStore {
    let store = ImageStore::open(dir).expect("store");
    let built =
        build_base(&store, "kubelings/base:latest").expect("base image");
    store.tag("base", &built.manifest).expect("tag");
    store
}

#[test]
fn oci_image_tool_validates_our_layout() {
    if !require_program("oci-image-tool") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    base_store(&layout);
    sh(Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=base:latest"])
        .arg(&layout));
}

#[test]
fn umoci_unpacks_ours_and_runc_runs_it() {
    if !require(Privilege::Root)
        || !require_program("umoci")
        || !require_program("runc")
    {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    base_store(&layout);
    let bundle = work.path().join("bundle");
    sh(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:base:latest", layout.display()))
        .arg(&bundle));
    // umoci writes the runtime config; we only change what to run and
    // where runc may put its cgroups (beneath ours).
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&config_path).expect("config.json"),
    )
    .expect("json");
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!([
        "/bin/sh",
        "-c",
        "echo hello from runc; cat /etc/passwd"
    ]);
    let cgroups = lab01::cgroup::peer::PeerCgroups::new().expect("cgroups");
    let id = format!("kubelings-interop-{}", std::process::id());
    config["linux"]["cgroupsPath"] = cgroups.path_for(&id).into();
    std::fs::write(&config_path, config.to_string())
        .expect("write config.json");
    let out = sh(Command::new("runc")
        .arg("--root")
        .arg(work.path().join("runc-state"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id));
    assert!(out.starts_with("hello from runc\nroot:x:0:0:"), "{out}");
}

#[test]
fn our_runtime_runs_an_image_umoci_built() {
    if !require(Privilege::Root) || !require_program("umoci") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    let image = format!("{}:made-by-umoci", layout.display());
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    sh(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = work.path().join("bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    // Fill umoci's rootfs with programs from this machine, then let umoci
    // make the layer and the config.
    let programs = work.path().join("programs");
    lab01::RootfsBuilder::new()
        .busybox(false)
        .build(&programs)
        .expect("programs");
    sh(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", programs.display()))
        .arg(bundle.join("rootfs")));
    sh(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    sh(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo our runtime ran the umoci image; hostname",
    ]));

    let home = Home::at(work.path().join("home"));
    let store =
        ImageStore::open(&layout).expect("umoci's layout opens as our store");
    let desc = store.resolve("made-by-umoci").expect("resolve");
    store
        .check(&desc)
        .expect("every blob umoci wrote matches its digest");
    let manifest = store.manifest(&desc).expect("manifest");
    let config = store.config(&manifest).expect("config");
    let rootfs = lab02::run::prepare_rootfs(
        &home,
        &store,
        &manifest,
        "umoci",
        lab02::run::Assembly::Overlay,
    )
    .expect("rootfs");
    let spec = lab02::run::container_spec(&config, rootfs.path(), &[])
        .expect("spec")
        .hostname("from-umoci");
    let out = lab01::run_captured(&spec).expect("run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "our runtime ran the umoci image\nfrom-umoci\n");
}

fn htpasswd(path: &Path, user: &str, password: &str) {
    let hash = bcrypt::hash(password, 4).expect("bcrypt");
    std::fs::write(path, format!("{user}:{hash}\n")).expect("htpasswd");
}

/// Runs skopeo and checks that it failed because the registry answered 401
/// (credentials needed), not for any other reason: skopeo reports a 401's
/// UNAUTHORIZED body as `unauthorized: <message>` (a 403 would be
/// `denied:`, a missing repository `manifest unknown`, a dead registry a
/// connection error).
fn refused_with_401(args: &[&str], what: &str) {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded");
    assert!(
        stderr.contains("unauthorized: authentication required"),
        "{what} failed, but not with 401 Unauthorized:\n{stderr}"
    );
}

#[test]
fn skopeo_copies_through_our_registry() {
    if !require_program("skopeo") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    let store = base_store(&layout);
    let users = work.path().join("htpasswd");
    htpasswd(&users, "student", "secret");
    let mut config = RegistryConfig::new(work.path().join("registry"));
    config.addr = "127.0.0.1:0".parse().expect("addr");
    config.users = Some(users);
    config.private = vec!["private".into()];
    let registry = RegistryHandle::start(config).expect("registry");
    let host = registry.host();
    let src = format!("oci:{}:base:latest", layout.display());

    // Pushing needs credentials.
    refused_with_401(
        &[
            "copy",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{host}/public/base:v1"),
        ],
        "an anonymous push",
    );
    for repo in ["public", "private"] {
        sh(Command::new("skopeo").args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "student:secret",
            &src,
            &format!("docker://{host}/{repo}/base:v1"),
        ]));
    }
    // Public: anyone pulls. Private: only with credentials.
    let back = work.path().join("back");
    sh(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/public/base:v1"),
        &format!("oci:{}:public", back.display()),
    ]));
    refused_with_401(
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{host}/private/base:v1"),
            &format!("oci:{}:private", back.display()),
        ],
        "an anonymous pull of a private repository",
    );
    sh(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        "student:secret",
        &format!("docker://{host}/private/base:v1"),
        &format!("oci:{}:private", back.display()),
    ]));

    // What came back is what went in: same config and layers.
    let original = store
        .manifest(&store.resolve("base:latest").expect("resolve"))
        .expect("manifest");
    let returned = ImageStore::open(&back).expect("store");
    for tag in ["public", "private"] {
        let desc = returned.resolve(tag).expect("resolve");
        returned.check(&desc).expect("blobs match their digests");
        let manifest = returned.manifest(&desc).expect("manifest");
        assert_eq!(manifest.config().digest(), original.config().digest());
        let layers = |m: &oci_spec::image::ImageManifest| {
            m.layers()
                .iter()
                .map(|l| l.digest().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(layers(&manifest), layers(&original));
    }
    registry.shutdown().expect("shutdown");
}

/// A layout with two images of the same program for two platforms, arm64
/// listed first (so the first entry is never simply the answer), tagged
/// `multi` as an OCI index; and the amd64 one alone, tagged `single`.
/// Returns the amd64 and arm64 manifests' digests.
fn multi_platform_layout(store: &ImageStore) -> (lab02::Digest, lab02::Digest) {
    use peers::{build_image, digest};
    let amd64 = build_image(store, "amd", b"built for amd64", "amd64");
    let arm64 = build_image(store, "arm", b"built for arm64", "arm64");
    store.tag("single", &amd64).expect("tag single");
    let entry = |desc: &oci_spec::image::Descriptor,
                 arch: &str,
                 variant: Option<&str>| {
        let mut platform =
            serde_json::json!({ "os": "linux", "architecture": arch });
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        serde_json::json!({
            "mediaType": lab02::spec::MEDIA_TYPE_MANIFEST,
            "digest": digest(desc).to_string(),
            "size": desc.size(),
            "platform": platform,
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": lab02::spec::MEDIA_TYPE_INDEX,
        "manifests": [entry(&arm64, "arm64", Some("v8")), entry(&amd64, "amd64", None)],
    }))
    .unwrap();
    let index_digest = store.write_blob(&index).expect("index blob");
    let desc = lab02::spec::descriptor(
        lab02::spec::MEDIA_TYPE_INDEX,
        &index_digest,
        index.len() as u64,
    );
    store.tag("multi", &desc).expect("tag multi");
    (digest(&amd64), digest(&arm64))
}

/// skopeo fills `host` (plain HTTP on loopback) with `multi:v1` (the
/// index, `--all`) and `docker:v1` (the amd64 image in Docker's format,
/// `--format v2s2`); then our client pulls the right platform of each and
/// pushes what it pulled back under another name, digests unchanged.
fn skopeo_then_pull_and_push_back(host: &str) {
    use lab02::client::{Client, Platform};
    use lab02::reference::Reference;
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    let source = ImageStore::open(&layout).expect("store");
    let (amd64, arm64) = multi_platform_layout(&source);
    sh(Command::new("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi:latest", layout.display()),
        &format!("docker://{host}/multi:v1"),
    ]));
    sh(Command::new("skopeo").args([
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:single:latest", layout.display()),
        &format!("docker://{host}/docker:v1"),
    ]));
    let client = || Client::new(None).quiet(true);
    let reference =
        |name: &str| -> Reference { format!("{host}/{name}").parse().unwrap() };

    // This machine's platform by default (x86_64 here: amd64, the second
    // entry); --platform linux/arm64 for the other, which also matches
    // the entry's spelled-out v8.
    let (_d, pulled_store) = peers::store();
    let host_pull = client()
        .pull(&pulled_store, &reference("multi:v1"))
        .expect("pull the index");
    if lab02::client::pull::host_platform().1 == "amd64" {
        assert_eq!(host_pull.manifest, amd64);
    }
    let arm = client()
        .platform("linux/arm64".parse::<Platform>().unwrap())
        .pull(&pulled_store, &reference("multi:v1"))
        .expect("pull linux/arm64");
    assert_eq!(arm.manifest, arm64);
    let (_e, empty) = peers::store();
    let err = client()
        .platform("linux/s390x".parse::<Platform>().unwrap())
        .pull(&empty, &reference("multi:v1"))
        .expect_err("no s390x");
    let text = err.to_string();
    assert!(text.contains("linux/arm64/v8, linux/amd64"), "{text}");
    assert!(empty.images().unwrap().is_empty(), "nothing stored: {text}");

    // Docker's format: its media types, as skopeo converted them.
    let docker = client()
        .pull(&pulled_store, &reference("docker:v1"))
        .expect("pull the Docker-format image");
    let desc = pulled_store.resolve(&docker.local_name).expect("tagged");
    assert_eq!(
        desc.media_type().to_string(),
        lab02::spec::DOCKER_MEDIA_TYPE_MANIFEST
    );
    pulled_store.check(&desc).expect("intact");

    // Push back what was pulled: every digest stays what it was.
    for (pulled, again) in
        [(&docker, "docker-again:v1"), (&arm, "arm-again:v1")]
    {
        let pushed = client()
            .push(&pulled_store, &pulled.local_name, &reference(again))
            .expect("push back");
        assert_eq!(pushed.manifest, pulled.manifest, "{again}");
        let (_f, fresh) = peers::store();
        let back = client()
            .pull(&fresh, &reference(again))
            .expect("pull again");
        assert_eq!(back.manifest, pulled.manifest, "{again}");
        let a = pulled_store
            .manifest(&pulled_store.resolve(&pulled.local_name).unwrap())
            .unwrap();
        let b = fresh
            .manifest(&fresh.resolve(&back.local_name).unwrap())
            .unwrap();
        assert_eq!(a.config().digest(), b.config().digest());
        assert_eq!(a.layers(), b.layers());
    }
}

#[test]
fn skopeo_docker_format_and_index_through_our_registry() {
    if !require_program("skopeo") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let mut config = RegistryConfig::new(work.path().join("registry"));
    config.addr = "127.0.0.1:0".parse().expect("addr");
    let registry = RegistryHandle::start(config).expect("registry");
    skopeo_then_pull_and_push_back(&registry.host());
    registry.shutdown().expect("shutdown");
}

#[test]
fn skopeo_docker_format_and_index_through_docker_registry() {
    if !require_program("skopeo") {
        return;
    }
    let Some(registry) = peers::DockerRegistry::start() else {
        return;
    };
    skopeo_then_pull_and_push_back(&registry.host());
}
