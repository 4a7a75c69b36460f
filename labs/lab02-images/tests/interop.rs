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
