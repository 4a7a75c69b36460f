//! Self-checks for §2.1: saving images to one file and loading them back.

mod common;
use common::short_digests;

use std::collections::BTreeMap;
use std::io::Cursor;

use lab02::archive::{load, save, ArchiveError};
use lab02::digest::Digest;
use lab02::layout::{ImageStore, StoreError};
use lab02::spec::{self, ExecConfig};
use oci_spec::image::Descriptor;

/// A tiny image: one layer with the given content, tagged `name`.
fn put_image(store: &ImageStore, name: &str, content: &[u8]) -> Descriptor {
    let layer = content.to_vec();
    let layer_digest = store.write_blob(&layer).unwrap();
    let config = spec::image_config(
        "linux",
        "amd64",
        &ExecConfig {
            cmd: Some(vec!["/hello".into()]),
            ..ExecConfig::default()
        },
        std::slice::from_ref(&layer_digest),
        &[],
        None,
    )
    .unwrap();
    let (config_bytes, config_desc) = spec::config_blob(&config).unwrap();
    store.write_blob(&config_bytes).unwrap();
    let layer_desc = spec::descriptor(
        spec::MEDIA_TYPE_LAYER,
        &layer_digest,
        layer.len() as u64,
    );
    let manifest =
        spec::image_manifest(config_desc, vec![layer_desc], BTreeMap::new())
            .unwrap();
    let desc = store.put_manifest(&manifest).unwrap();
    store.tag(name, &desc).unwrap();
    desc
}

fn saved(store: &ImageStore, names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    save(store, names, &mut out).unwrap();
    out
}

/// Paths, types and sizes of an archive's entries.
fn listing(archive: &[u8]) -> Vec<String> {
    let mut tar = tar::Archive::new(archive);
    tar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!(
                "{:?} {:o} {} {} {}",
                h.entry_type(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.size().unwrap(),
                e.path().unwrap().display()
            )
        })
        .collect()
}

/// An archive made by hand from (path, type, content) entries. Names are
/// written raw, since the tar crate (rightly) refuses to write `..`.
fn archive_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, kind, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        tar.append(&header, *content).unwrap();
    }
    tar.into_inner().unwrap()
}

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const EMPTY_INDEX: &[u8] = br#"{"schemaVersion":2,"manifests":[]}"#;

#[test]
fn save_then_load_preserves_digests() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("a")).unwrap();
    let v1 = put_image(&store, "kubia:v1", b"one");
    let v2 = put_image(&store, "127.0.0.1:5000/kubia:v2", b"two");
    put_image(&store, "other:v1", b"not saved");

    let archive = saved(&store, &["kubia:v1", "127.0.0.1:5000/kubia:v2"]);
    let empty = ImageStore::open(&dir.path().join("b")).unwrap();
    let loaded = load(&empty, Cursor::new(&archive)).unwrap();
    assert_eq!(loaded, ["127.0.0.1:5000/kubia:v2", "kubia:v1"]);

    for (name, desc) in [("kubia:v1", &v1), ("127.0.0.1:5000/kubia:v2", &v2)] {
        let found = empty.resolve(name).unwrap();
        assert_eq!(found.digest(), desc.digest(), "{name}");
        empty.check(&found).unwrap();
    }
    assert!(empty.resolve("other:v1").is_err());
    assert!(!empty.has_blob(&Digest::of(b"not saved")));
    // Saving again from the new store gives the same bytes.
    let again = saved(&empty, &["kubia:v1", "127.0.0.1:5000/kubia:v2"]);
    assert!(again == archive, "archives differ");
}

#[test]
fn saved_archives_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    put_image(&store, "kubia:v1", b"one");
    put_image(&store, "kubia:v2", b"two");
    let one = saved(&store, &["kubia:v2", "kubia:v1"]);
    let two = saved(&store, &["kubia:v1", "kubia:v2", "kubia:v1"]);
    assert!(one == two, "order and repeats of names do not matter");
    insta::assert_snapshot!(short_digests(&listing(&one).join("\n")));
}

#[test]
fn saving_a_missing_image_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut out = Vec::new();
    let err = save(&store, &["kubia:v9"], &mut out).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Store(StoreError::NotFound(_))),
        "{err}"
    );
    assert!(out.is_empty(), "nothing written");
}

#[test]
fn a_truncated_archive_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("a")).unwrap();
    put_image(&store, "kubia:v1", &vec![7u8; 3000]);
    let archive = saved(&store, &["kubia:v1"]);
    // Cut mid-blob, at a header boundary, and just before the end.
    for cut in [1000, 1536, 2048, archive.len() - 1536, archive.len() - 700] {
        let target =
            ImageStore::open(&dir.path().join(format!("cut{cut}"))).unwrap();
        let result = load(&target, Cursor::new(&archive[..cut]));
        assert!(result.is_err(), "cut at {cut} loaded: {result:?}");
        assert!(
            target.images().unwrap().is_empty(),
            "cut at {cut} tagged something"
        );
        // No half-written blob anywhere.
        for entry in
            std::fs::read_dir(target.root().join("blobs/sha256")).unwrap()
        {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                Digest::of(&bytes).hex(),
                path.file_name().unwrap().to_str().unwrap()
            );
        }
    }
}

#[test]
fn a_blob_that_lies_about_its_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let claimed = Digest::of(b"the real thing");
    let path = format!("blobs/sha256/{}", claimed.hex());
    let archive = archive_of(&[
        ("oci-layout", tar::EntryType::Regular, LAYOUT),
        (&path, tar::EntryType::Regular, b"an impostor"),
        ("index.json", tar::EntryType::Regular, EMPTY_INDEX),
    ]);
    let err = load(&store, Cursor::new(archive)).unwrap_err();
    assert!(matches!(err, ArchiveError::Blob { .. }), "{err}");
    assert!(err.to_string().contains(claimed.hex()), "{err}");
    assert!(!store.has_blob(&claimed));
    assert!(!store.has_blob(&Digest::of(b"an impostor")));
}

#[test]
fn entries_outside_the_layout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    for path in [
        "../escape",
        "blobs/../../escape",
        "etc/passwd",
        "blobs/sha256/not-a-digest",
        "blobs/sha512/abcd",
    ] {
        let archive = archive_of(&[(path, tar::EntryType::Regular, b"x")]);
        let err = load(&store, Cursor::new(archive)).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::UnexpectedPath { .. } | ArchiveError::Read(_)
            ),
            "{path}: {err}"
        );
    }
    assert!(!dir.path().parent().unwrap().join("escape").exists());

    let link = format!("blobs/sha256/{}", Digest::of(b"x").hex());
    for (path, kind) in [
        (link.as_str(), tar::EntryType::Symlink),
        ("index.json", tar::EntryType::Fifo),
        ("index.json", tar::EntryType::Directory),
        ("blobs", tar::EntryType::Regular),
    ] {
        let archive = archive_of(&[(path, kind, b"")]);
        let err = load(&store, Cursor::new(archive)).unwrap_err();
        assert!(
            matches!(err, ArchiveError::WrongType { .. }),
            "{path}: {err}"
        );
    }
    assert!(!store.has_blob(&Digest::of(b"x")));
}

#[test]
fn malformed_archives_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not a tar file at all".to_vec(), ""),
        (
            archive_of(&[("index.json", tar::EntryType::Regular, EMPTY_INDEX)]),
            "no oci-layout",
        ),
        (
            archive_of(&[("oci-layout", tar::EntryType::Regular, LAYOUT)]),
            "no index.json",
        ),
        (
            archive_of(&[
                ("oci-layout", tar::EntryType::Regular, LAYOUT),
                ("index.json", tar::EntryType::Regular, b"{oops"),
            ]),
            "index.json is malformed",
        ),
        (
            archive_of(&[
                (
                    "oci-layout",
                    tar::EntryType::Regular,
                    br#"{"imageLayoutVersion":"9.0"}"#,
                ),
                ("index.json", tar::EntryType::Regular, EMPTY_INDEX),
            ]),
            "9.0",
        ),
    ];
    for (archive, expected) in cases {
        let err = load(&store, Cursor::new(archive)).unwrap_err();
        assert!(err.to_string().contains(expected), "{expected:?}: {err}");
    }
}

#[test]
fn an_index_naming_a_missing_blob_tags_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = ImageStore::open(&dir.path().join("a")).unwrap();
    let desc = put_image(&source, "kubia:v1", b"one");
    let index = std::fs::read(source.root().join("index.json")).unwrap();
    // The index, but none of the blobs.
    let archive = archive_of(&[
        ("oci-layout", tar::EntryType::Regular, LAYOUT),
        ("index.json", tar::EntryType::Regular, &index),
    ]);
    let target = ImageStore::open(&dir.path().join("b")).unwrap();
    let err = load(&target, Cursor::new(archive)).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Store(StoreError::BlobNotFound(ref d)) if d.to_string() == desc.digest().to_string()),
        "{err}"
    );
    assert!(target.images().unwrap().is_empty());
}

#[test]
fn skopeo_reads_our_archive() {
    if !lab01::probe::require_program("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("a")).unwrap();
    let desc = put_image(&store, "kubia:v1", b"one");
    let file = dir.path().join("kubia.tar");
    std::fs::write(&file, saved(&store, &["kubia:v1"])).unwrap();
    let out = dir.path().join("out");
    let output = std::process::Command::new("skopeo")
        .arg("--insecure-policy")
        .arg("copy")
        .arg(format!("oci-archive:{}:kubia:v1", file.display()))
        .arg(format!("oci:{}:kubia:v1", out.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let copy = ImageStore::open(&out).unwrap();
    let copied = copy.resolve("kubia:v1").unwrap();
    copy.check(&copied).unwrap();
    // skopeo gzips the uncompressed layer on the way, so the manifest
    // changes; the config (which names layers by uncompressed digest) not.
    let config = |store: &ImageStore, desc: &Descriptor| {
        store.manifest(desc).unwrap().config().digest().to_string()
    };
    assert_eq!(config(&copy, &copied), config(&store, &desc));

    // And the other way: an archive skopeo writes, we load.
    let theirs = dir.path().join("theirs.tar");
    let output = std::process::Command::new("skopeo")
        .arg("--insecure-policy")
        .arg("copy")
        .arg(format!("oci:{}:kubia:v1", out.display()))
        .arg(format!("oci-archive:{}:kubia:v2", theirs.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fresh = ImageStore::open(&dir.path().join("fresh")).unwrap();
    let loaded = load(&fresh, std::fs::File::open(&theirs).unwrap()).unwrap();
    assert_eq!(loaded, ["kubia:v2"]);
    assert_eq!(fresh.resolve("kubia:v2").unwrap().digest(), copied.digest());
}
