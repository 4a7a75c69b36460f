//! zstd layers (`application/vnd.oci.image.layer.v1.tar+zstd`), as skopeo
//! writes them with `--dest-compress-format zstd`: pulled through our
//! registry, verified, unpacked to the tar the config names, and run.
//!
//! Needs Debian's skopeo (skips without it, fails under `CI=true`); the run
//! at the end needs root too.

use std::path::Path;
use std::process::Command;

use lab01::probe::{require, require_program, Privilege};
use lab02::build::base::build_base;
use lab02::client::Client;
use lab02::digest::Digest;
use lab02::home::Home;
use lab02::layer::compression::{sniff, uncompressed, Compression};
use lab02::layout::ImageStore;
use lab02::reference::Reference;
use lab02::registry::{RegistryConfig, RegistryHandle};

/// Runs a command; panics with its output if it fails.
fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_zstd_image_from_skopeo_pulls_unpacks_and_runs() {
    if !require_program("skopeo") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("layout");
    let ours = ImageStore::open(&layout).expect("store");
    let built = build_base(&ours, "kubelings/base:latest").expect("base image");
    ours.tag("base", &built.manifest).expect("tag");

    let mut config = RegistryConfig::new(work.path().join("registry"));
    config.addr = "127.0.0.1:0".parse().expect("addr");
    let registry = RegistryHandle::start(config).expect("registry");
    let remote = format!("{}/zstd/base:v1", registry.host());
    sh(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{}:base:latest", layout.display()),
        &format!("docker://{remote}"),
    ]));

    // Pulled into an empty store: every blob checked against its digest.
    let store = ImageStore::open(&work.path().join("pulled")).expect("store");
    let reference: Reference = remote.parse().expect("reference");
    Client::new(None)
        .quiet(true)
        .pull(&store, &reference)
        .expect("pull the zstd image");
    registry.shutdown().expect("shutdown");
    let desc = store.resolve(&reference.local_name()).expect("resolve");
    store.check(&desc).expect("blobs match their digests");
    let manifest = store.manifest(&desc).expect("manifest");
    let config = store.config(&manifest).expect("config");
    let layer = &manifest.layers()[0];
    assert_eq!(
        layer.media_type().to_string(),
        lab02::spec::MEDIA_TYPE_LAYER_ZSTD,
        "skopeo recompressed the layer"
    );
    let digest: Digest = layer.digest().to_string().parse().expect("digest");
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(
        &mut store.open_blob(&digest).expect("blob"),
        &mut magic,
    )
    .expect("read");
    assert_eq!(sniff(&magic), Compression::Zstd);

    // The same tar inside as the one we built: the config's diff ID.
    let tar =
        uncompressed(store.open_blob(&digest).expect("blob")).expect("zstd");
    let diff_id = Digest::of_reader(tar).expect("decompress");
    assert_eq!(
        diff_id.to_string(),
        config.rootfs().diff_ids()[0],
        "the zstd layer holds the tar the config names"
    );
    assert_eq!(diff_id, built.layers[0].diff_id);

    // Unpacked, as any user can.
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("rootfs");
    let report = lab02::unpack::apply_layer(
        &rootfs,
        store.open_blob(&digest).expect("blob"),
    )
    .expect("unpack the zstd layer");
    assert!(report.entries > 0);
    assert!(
        rootfs.join("bin/sh").symlink_metadata().is_ok(),
        "no /bin/sh"
    );

    if !require(Privilege::Root) {
        return;
    }
    run_it(&work.path().join("home"), &store, &manifest, &config);
}

fn run_it(
    home: &Path,
    store: &ImageStore,
    manifest: &oci_spec::image::ImageManifest,
    config: &oci_spec::image::ImageConfiguration,
) {
    let home = Home::at(home.to_path_buf());
    let rootfs = lab02::run::prepare_rootfs(
        &home,
        store,
        manifest,
        "zstd",
        lab02::run::Assembly::best(),
    )
    .expect("rootfs");
    let command = [
        "/bin/sh".to_string(),
        "-c".into(),
        "echo ran from zstd".into(),
    ];
    let spec = lab02::run::container_spec(config, rootfs.path(), &command)
        .expect("spec")
        .hostname("zstd");
    let out = lab01::run_captured(&spec).expect("run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "ran from zstd\n");
}
