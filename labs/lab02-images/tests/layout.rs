//! Self-checks for §2.1: manifests, configs and the image layout. Plain
//! files in a temporary directory: no privileges needed.

mod common;
use common::short_digests;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use lab02::digest::{Digest, DigestError};
use lab02::layout::{add_tag, ImageStore, StoreError};
use lab02::spec::{self, ExecConfig, SpecError, ANNOTATION_REF_NAME};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

/// A one-file layer tar with everything that could vary pinned.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o755);
    header.set_size(content.len() as u64);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, name, content).unwrap();
    tar.into_inner().unwrap()
}

fn exec_config() -> ExecConfig {
    ExecConfig {
        entrypoint: Some(vec!["/hello".into()]),
        cmd: Some(vec!["--port".into(), "8080".into()]),
        env: vec!["PATH=/bin".into(), "GREETING=hi".into()],
        working_dir: Some("/".into()),
        user: Some("1000:1000".into()),
        exposed_ports: vec!["8080/tcp".into(), "9090/tcp".into()],
        labels: BTreeMap::from([
            ("book.chapter".into(), "2".into()),
            ("book.title".into(), "kubelings".into()),
        ]),
    }
}

/// The config, its blob and the layer blob of a fixed tiny image.
fn tiny_parts() -> (Vec<u8>, Descriptor, Vec<u8>, Descriptor) {
    parts(false)
}

/// The same image with its layer gzip-compressed: what registries and
/// skopeo expect. (Gzip output is stable within one build, not promised
/// across flate2 versions, so no snapshot depends on it.)
fn parts(gzip: bool) -> (Vec<u8>, Descriptor, Vec<u8>, Descriptor) {
    let tar = layer_tar("hello", b"#!/bin/sh\necho hello from kubia\n");
    // The config names layers by the digest of the uncompressed tar.
    let diff_id = Digest::of(&tar);
    let (layer, media_type) = if gzip {
        let mut gz = flate2::GzBuilder::new()
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        (gz.finish().unwrap(), spec::MEDIA_TYPE_LAYER_GZIP)
    } else {
        (tar, spec::MEDIA_TYPE_LAYER)
    };
    let layer_desc =
        spec::descriptor(media_type, &Digest::of(&layer), layer.len() as u64);
    let config = spec::image_config(
        "linux",
        "amd64",
        &exec_config(),
        &[diff_id],
        &[spec::history_entry("COPY hello /hello", false)],
        None,
    )
    .unwrap();
    let (config_bytes, config_desc) = spec::config_blob(&config).unwrap();
    (config_bytes, config_desc, layer, layer_desc)
}

fn tiny_manifest() -> ImageManifest {
    manifest_of(false)
}

fn manifest_of(gzip: bool) -> ImageManifest {
    let (_, config_desc, _, layer_desc) = parts(gzip);
    spec::image_manifest(
        config_desc,
        vec![layer_desc],
        BTreeMap::from([(
            "org.opencontainers.image.title".into(),
            "tiny".into(),
        )]),
    )
    .unwrap()
}

/// Writes the tiny image's blobs and manifest; returns the manifest's
/// descriptor.
fn put_tiny_image(store: &ImageStore) -> Descriptor {
    put_image(store, false)
}

fn put_image(store: &ImageStore, gzip: bool) -> Descriptor {
    let (config_bytes, _, layer, _) = parts(gzip);
    store.write_blob(&layer).unwrap();
    store.write_blob(&config_bytes).unwrap();
    store.put_manifest(&manifest_of(gzip)).unwrap()
}

/// A document as the book shows it: indented, digests shortened.
fn pretty(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    short_digests(&serde_json::to_string_pretty(&value).unwrap())
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- lab02-manifest -------------------------------------------------------

#[test]
fn manifest_names_config_and_layers() {
    let (config_bytes, config_desc, _, layer_desc) = tiny_parts();
    let manifest = tiny_manifest();
    assert_eq!(manifest.schema_version(), 2);
    assert_eq!(
        manifest.media_type().as_ref().map(|m| m.to_string()),
        Some(spec::MEDIA_TYPE_MANIFEST.to_string())
    );
    assert_eq!(manifest.config(), &config_desc);
    assert_eq!(manifest.layers(), &vec![layer_desc]);
    // The config descriptor names exactly the config's bytes.
    assert_eq!(config_desc.size(), config_bytes.len() as u64);
    assert_eq!(
        config_desc.digest().to_string(),
        Digest::of(&config_bytes).to_string()
    );

    let (manifest_bytes, manifest_desc) =
        spec::manifest_blob(&manifest).unwrap();
    insta::assert_snapshot!(format!(
        "manifest {}\n{}\n\nconfig {}\n{}",
        manifest_desc.digest(),
        pretty(&manifest_bytes),
        config_desc.digest(),
        pretty(&config_bytes)
    ));
}

#[test]
fn manifest_without_annotations_has_none() {
    let (_, config_desc, _, layer_desc) = tiny_parts();
    let manifest =
        spec::image_manifest(config_desc, vec![layer_desc], BTreeMap::new())
            .unwrap();
    assert_eq!(manifest.annotations(), &None);
    let json =
        String::from_utf8(spec::to_canonical_json(&manifest).unwrap()).unwrap();
    assert!(!json.contains("annotations"), "{json}");
}

#[test]
fn manifest_refuses_the_wrong_kind_of_blob() {
    let (_, config_desc, _, layer_desc) = tiny_parts();
    let err = spec::image_manifest(
        layer_desc.clone(),
        vec![layer_desc.clone()],
        BTreeMap::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SpecError::NotAConfig(ref m) if m == spec::MEDIA_TYPE_LAYER),
        "{err}"
    );
    let err = spec::image_manifest(
        config_desc.clone(),
        vec![layer_desc, config_desc],
        BTreeMap::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SpecError::NotALayer { index: 1, .. }),
        "{err}"
    );
}

#[test]
fn the_same_image_always_has_the_same_digest() {
    // Labels and ports live in hash maps; canonical JSON must not care.
    let digests: Vec<String> = (0..5)
        .map(|_| {
            spec::manifest_blob(&tiny_manifest())
                .unwrap()
                .1
                .digest()
                .to_string()
        })
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let (config_bytes, ..) = tiny_parts();
    let config = spec::parse_config(&config_bytes).unwrap();
    assert_eq!(config.created(), &None, "no timestamp unless asked for");
    assert_eq!(spec::ExecConfig::from_image(&config), exec_config());
}

// ---- lab02-tag-index ------------------------------------------------------

#[test]
fn tag_replaces_an_older_entry_of_the_same_name() {
    let (_, config_desc, _, layer_desc) = tiny_parts();
    let one = spec::manifest_blob(&tiny_manifest()).unwrap().1;
    let other = spec::manifest_blob(
        &spec::image_manifest(config_desc, vec![layer_desc], BTreeMap::new())
            .unwrap(),
    )
    .unwrap()
    .1;
    let mut index = spec::empty_index();
    add_tag(&mut index, "kubia:v1", &one);
    add_tag(&mut index, "kubia:v2", &one);
    add_tag(&mut index, "kubia:v1", &other);

    let entries: Vec<(String, String)> = index
        .manifests()
        .iter()
        .map(|d| {
            (
                spec::annotation(d, ANNOTATION_REF_NAME)
                    .unwrap_or("<no name>")
                    .to_string(),
                d.digest().to_string(),
            )
        })
        .collect();
    let mut names: Vec<&str> =
        entries.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["kubia:v1", "kubia:v2"], "one entry per name");
    let v1 = entries.iter().find(|(n, _)| n == "kubia:v1").unwrap();
    assert_eq!(
        v1.1,
        other.digest().to_string(),
        "v1 now names the other image"
    );
    // The entry is the manifest's descriptor plus the name.
    let entry = index
        .manifests()
        .iter()
        .find(|d| spec::annotation(d, ANNOTATION_REF_NAME) == Some("kubia:v2"))
        .unwrap();
    assert_eq!(entry.media_type(), one.media_type());
    assert_eq!(entry.size(), one.size());
}

#[test]
fn tag_keeps_other_annotations() {
    let mut desc = spec::manifest_blob(&tiny_manifest()).unwrap().1;
    desc.set_annotations(Some(
        [(
            "org.opencontainers.image.title".to_string(),
            "tiny".to_string(),
        )]
        .into(),
    ));
    let mut index = ImageIndex::default();
    add_tag(&mut index, "tiny:latest", &desc);
    let entry = &index.manifests()[0];
    assert_eq!(
        spec::annotation(entry, ANNOTATION_REF_NAME),
        Some("tiny:latest")
    );
    assert_eq!(
        spec::annotation(entry, "org.opencontainers.image.title"),
        Some("tiny")
    );
}

#[test]
fn index_json_of_a_tagged_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let desc = put_tiny_image(&store);
    store.tag("kubia:v1", &desc).unwrap();
    store.tag("kubia", &desc).unwrap();
    store.tag("127.0.0.1:5000/kubia:v1", &desc).unwrap();
    let index = fs::read(dir.path().join("index.json")).unwrap();
    insta::assert_snapshot!(pretty(&index));
}

// ---- the store -----------------------------------------------------------

#[test]
fn a_new_store_is_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    ImageStore::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert!(root.join("blobs/sha256").is_dir());
    let index = ImageIndex::from_file(root.join("index.json")).unwrap();
    assert_eq!(index.schema_version(), 2);
    assert!(index.manifests().is_empty());
    // Opening again keeps what is there.
    let store = ImageStore::open(&root).unwrap();
    let desc = put_tiny_image(&store);
    store.tag("kubia:v1", &desc).unwrap();
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.images().unwrap().len(), 1);
}

#[test]
fn store_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();

    let digest = store.write_blob(b"hello").unwrap();
    assert_eq!(digest, Digest::of(b"hello"));
    assert!(store.has_blob(&digest));
    assert_eq!(
        store.blob_path(&digest),
        dir.path().join("blobs/sha256").join(digest.hex())
    );
    assert_eq!(store.read_blob(&digest).unwrap(), b"hello");
    // Writing the same bytes again is harmless.
    assert_eq!(store.write_blob(b"hello").unwrap(), digest);

    let mut writer = store.blob_writer().unwrap();
    writer.write_all(b"hel").unwrap();
    writer.write_all(b"lo, world").unwrap();
    let (streamed, len) =
        writer.commit(Some(&Digest::of(b"hello, world"))).unwrap();
    assert_eq!((streamed, len), (Digest::of(b"hello, world"), 12));

    let desc = put_tiny_image(&store);
    store.tag("kubia:v1", &desc).unwrap();
    store.tag("kubia", &desc).unwrap();
    store.tag("127.0.0.1:5000/kubia:v1", &desc).unwrap();

    for name in [
        "kubia:v1".to_string(),
        "kubia".to_string(),
        "kubia:latest".to_string(),
        "127.0.0.1:5000/kubia:v1".to_string(),
        desc.digest().to_string(),
        format!("kubia@{}", desc.digest()),
    ] {
        let found = store.resolve(&name).unwrap();
        assert_eq!(found.digest(), desc.digest(), "{name}");
        assert_eq!(found.size(), desc.size(), "{name}");
    }
    let names: Vec<String> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        ["127.0.0.1:5000/kubia:v1", "kubia:latest", "kubia:v1"]
    );

    let manifest = store.manifest(&desc).unwrap();
    assert_eq!(manifest, tiny_manifest());
    let config = store.config(&manifest).unwrap();
    assert_eq!(config.rootfs().diff_ids().len(), 1);
    store.check(&desc).unwrap();

    assert!(store.untag("kubia").unwrap());
    assert!(!store.untag("kubia:latest").unwrap());
    assert!(matches!(
        store.resolve("kubia"),
        Err(StoreError::NotFound(ref n)) if n == "kubia"
    ));
    assert!(matches!(
        store.resolve("nginx:v1"),
        Err(StoreError::NotFound(_))
    ));
    // An untagged manifest is still there by digest.
    assert!(store.resolve(desc.digest().as_ref()).is_ok());
    // A layer is not a manifest.
    let (_, _, layer, _) = tiny_parts();
    assert!(matches!(
        store.resolve(&Digest::of(&layer).to_string()),
        Err(StoreError::NotAManifest { .. })
    ));
}

#[test]
fn tag_refuses_bad_names_and_missing_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let desc = spec::manifest_blob(&tiny_manifest()).unwrap().1;
    assert!(matches!(
        store.tag("kubia:v1", &desc),
        Err(StoreError::BlobNotFound(_))
    ));
    let desc = put_tiny_image(&store);
    let err = store.tag("Kubia:v1", &desc).unwrap_err();
    assert!(err.to_string().contains("\"Kubia\""), "{err}");
    // Only manifests (or indexes) get names.
    let (config_bytes, ..) = tiny_parts();
    let config = spec::descriptor(
        spec::MEDIA_TYPE_CONFIG,
        &Digest::of(&config_bytes),
        config_bytes.len() as u64,
    );
    assert!(matches!(
        store.tag("kubia:v1", &config),
        Err(StoreError::NotAManifest { .. })
    ));
}

#[test]
fn concurrent_taggers_both_land() {
    let dir = tempfile::tempdir().unwrap();
    // Not created yet: the threads race to create it, too.
    let root = dir.path().join("store");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                // Each its own store handle, as two processes would have,
                // and each pushing the same image.
                let store = ImageStore::open(&root).unwrap();
                let desc = put_tiny_image(&store);
                for round in 0..10 {
                    store.tag(&format!("kubia:t{i}"), &desc).unwrap();
                    store.tag("kubia:shared", &desc).unwrap();
                    store.tag(&format!("kubia:t{i}-{round}"), &desc).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let index = ImageIndex::from_file(root.join("index.json")).unwrap();
    assert_eq!(index.manifests().len(), 8 + 1 + 80);
    let store = ImageStore::open(&root).unwrap();
    let names: Vec<String> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for i in 0..8 {
        assert!(names.contains(&format!("kubia:t{i}")), "{names:?}");
    }
    assert!(names.contains(&"kubia:shared".to_string()));
    store
        .check(&store.resolve("kubia:shared").unwrap())
        .unwrap();
    // No temporary files left behind.
    let leftovers: Vec<String> = files_under(&root)
        .into_iter()
        .chain(files_under(&root.join("blobs")))
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_mismatched_blob_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut writer = store.blob_writer().unwrap();
    writer.write_all(b"not what was promised").unwrap();
    let promised = Digest::of(b"what was promised");
    let err = writer.commit(Some(&promised)).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Digest(DigestError::Mismatch { expected, actual })
                if *expected == promised && *actual == Digest::of(b"not what was promised")
        ),
        "{err}"
    );
    assert!(!store.has_blob(&promised));
    assert!(files_under(&dir.path().join("blobs/sha256")).is_empty());
    assert_eq!(files_under(&dir.path().join("blobs")), ["sha256"]);

    // An abandoned writer leaves nothing either.
    let mut writer = store.blob_writer().unwrap();
    writer.write_all(b"half").unwrap();
    drop(writer);
    assert_eq!(files_under(&dir.path().join("blobs")), ["sha256"]);
}

#[test]
fn malformed_index_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let index = dir.path().join("index.json");
    fs::write(&index, "{\"schemaVersion\": 2, \"manifests\": [").unwrap();
    let err = store.images().unwrap_err();
    assert!(
        matches!(err, StoreError::Malformed { ref path, .. } if *path == index),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(&index.display().to_string()), "{message}");
    assert!(message.contains("malformed"), "{message}");
    // A writer refuses to build on it rather than overwrite it.
    let desc = put_tiny_image(&store);
    assert!(matches!(
        store.tag("kubia:v1", &desc),
        Err(StoreError::Malformed { .. })
    ));
    assert_eq!(
        fs::read_to_string(&index).unwrap(),
        "{\"schemaVersion\": 2, \"manifests\": ["
    );
}

#[test]
fn malformed_manifest_names_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let bytes = br#"{"schemaVersion":2,"layers":"no"}"#;
    let digest = store.write_blob(bytes).unwrap();
    let desc = spec::descriptor(
        spec::MEDIA_TYPE_MANIFEST,
        &digest,
        bytes.len() as u64,
    );
    let err = store.manifest(&desc).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(digest.hex()), "{message}");
    assert!(message.contains("image manifest"), "{message}");
}

#[test]
fn corrupt_or_wrongly_sized_blobs_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let desc = put_tiny_image(&store);
    let (_, _, layer, _) = tiny_parts();
    let layer_path = store.blob_path(&Digest::of(&layer));

    // Same size, different bytes.
    let mut corrupt = layer.clone();
    corrupt[600] ^= 1;
    fs::write(&layer_path, &corrupt).unwrap();
    assert!(matches!(
        store.check(&desc),
        Err(StoreError::Digest(DigestError::Mismatch { .. }))
    ));
    // Shorter.
    fs::write(&layer_path, &layer[..100]).unwrap();
    let err = store.check(&desc).unwrap_err();
    assert!(
        matches!(err, StoreError::Size { expected, actual: 100, .. } if expected == layer.len() as u64),
        "{err}"
    );
    // Gone.
    fs::remove_file(&layer_path).unwrap();
    assert!(matches!(
        store.check(&desc),
        Err(StoreError::BlobNotFound(_))
    ));
    // A descriptor with the wrong size for the manifest itself.
    let mut wrong = desc.clone();
    wrong.set_size(desc.size() + 1);
    assert!(matches!(
        store.manifest(&wrong),
        Err(StoreError::Size { .. })
    ));
    // read_blob checks the digest.
    let manifest_path = store.blob_path(&spec::digest_of(&desc).unwrap());
    fs::write(&manifest_path, b"{}").unwrap();
    assert!(matches!(
        store.read_blob(&spec::digest_of(&desc).unwrap()),
        Err(StoreError::Digest(_))
    ));
}

#[test]
fn a_foreign_layout_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = ImageStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Layout { .. }), "{err}");
    assert!(err.to_string().contains("2.0.0"), "{err}");
    fs::write(dir.path().join("oci-layout"), "hello").unwrap();
    assert!(matches!(
        ImageStore::open(dir.path()),
        Err(StoreError::Layout { .. })
    ));
}

// ---- interop ---------------------------------------------------------------

#[test]
fn skopeo_copies_our_layout() {
    if !lab01::probe::require_program("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let store = ImageStore::open(&src).unwrap();
    // skopeo compresses uncompressed layers on the way, which would change
    // the manifest; a gzip layer it copies as it is.
    let desc = put_image(&store, true);
    store.tag("kubia:v1", &desc).unwrap();

    let output = Command::new("skopeo")
        .arg("--insecure-policy")
        .arg("copy")
        .arg(format!("oci:{}:kubia:v1", src.display()))
        .arg(format!("oci:{}:kubia:v1", dst.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let copy = ImageStore::open(&dst).unwrap();
    let copied = copy.resolve("kubia:v1").unwrap();
    copy.check(&copied).unwrap();
    // Nothing needed converting, so skopeo kept the manifest byte for byte.
    assert_eq!(copied.digest(), desc.digest());
    let manifest = copy.manifest(&copied).unwrap();
    assert_eq!(
        spec::ExecConfig::from_image(&copy.config(&manifest).unwrap()),
        exec_config()
    );
}
