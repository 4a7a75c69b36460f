//! Images as one file: an OCI archive is a tar of an image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) holding just the images
//! saved, as `docker save` and `skopeo copy … oci-archive:FILE` write them.
//!
//! Saving is deterministic (entries sorted, owners and times fixed), so the
//! same images always make the same archive. Loading trusts nothing in the
//! file: every blob is checked against its digest before it becomes visible
//! in the store, and entries that are not part of a layout are refused.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

use oci_spec::image::{Descriptor, ImageIndex};
use tar::{EntryType, Header};

use crate::digest::Digest;
use crate::layout::{self, ImageStore, StoreError};
use crate::reference::{Reference, ReferenceError};
use crate::spec::{self, ANNOTATION_REF_NAME, IMAGE_LAYOUT_VERSION};

/// containerd (and so `docker save`) puts the full image name here and only
/// the tag in the ref.name annotation.
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Largest `index.json` or `oci-layout` read into memory.
const MAX_DOCUMENT: u64 = 4 << 20;

/// Why an archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("writing the archive: {0}")]
    Write(io::Error),
    #[error("reading the archive: {0}")]
    Read(io::Error),
    #[error("archive entry {path:?} is not part of an image layout (expected oci-layout, index.json or blobs/sha256/<hex>)")]
    UnexpectedPath { path: String },
    #[error("archive entry {path:?} is a {kind}, where a {expected} belongs")]
    WrongType {
        path: String,
        kind: String,
        expected: &'static str,
    },
    #[error("archive entry {path:?} is {size} bytes, more than the {MAX_DOCUMENT} allowed")]
    TooLarge { path: String, size: u64 },
    #[error("the archive has no {0}")]
    Missing(&'static str),
    #[error("the archive's {path} is malformed: {reason}")]
    Malformed { path: &'static str, reason: String },
    #[error("archive entry {path:?}: {source}")]
    Blob {
        path: String,
        source: Box<StoreError>,
    },
    #[error("the archive names an image {name:?}: {source}")]
    Name {
        name: String,
        source: ReferenceError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an archive entry is, by its path.
enum Member {
    Dir,
    OciLayout,
    Index,
    Blob(Digest),
    /// Files `docker save` adds beside the layout for older readers.
    Ignored,
}

// ANCHOR: save
/// Writes the images `names` (tags or digests, as [`ImageStore::resolve`]
/// takes them) and every blob they need to `out` as an OCI archive.
pub fn save(
    store: &ImageStore,
    names: &[&str],
    out: impl Write,
) -> Result<(), ArchiveError> {
    let mut index = spec::empty_index();
    let mut blobs = BTreeSet::new();
    for name in names {
        let desc = store.resolve(name)?;
        // Check everything first, so a broken store never yields half an
        // archive.
        store.check(&desc)?;
        let manifest = store.manifest(&desc)?;
        blobs.insert(spec::digest_of(&desc).map_err(StoreError::from)?);
        for blob in std::iter::once(manifest.config()).chain(manifest.layers())
        {
            blobs.insert(spec::digest_of(blob).map_err(StoreError::from)?);
        }
        add_entry(&mut index, &desc);
    }

    let mut tar = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        append(&mut tar, EntryType::Directory, dir, 0o755, 0, io::empty())?;
    }
    // A BTreeSet iterates in order, so the entries are sorted by digest.
    for digest in &blobs {
        let path = format!("blobs/sha256/{}", digest.hex());
        let file = store.open_blob(digest)?;
        let size = file
            .metadata()
            .map_err(|source| StoreError::Io {
                path: store.blob_path(digest),
                source,
            })?
            .len();
        append(
            &mut tar,
            EntryType::Regular,
            &path,
            0o644,
            size,
            file.take(size),
        )?;
    }
    let index_json =
        spec::to_canonical_json(&index).map_err(StoreError::from)?;
    let layout_json =
        format!(r#"{{"imageLayoutVersion":"{IMAGE_LAYOUT_VERSION}"}}"#);
    for (path, bytes) in [
        ("index.json", index_json.as_slice()),
        ("oci-layout", layout_json.as_bytes()),
    ] {
        append(
            &mut tar,
            EntryType::Regular,
            path,
            0o644,
            bytes.len() as u64,
            bytes,
        )?;
    }
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(ArchiveError::Write)
}
// ANCHOR_END: save

/// Adds a resolved descriptor to the archive's index once, under its name.
fn add_entry(index: &mut ImageIndex, desc: &Descriptor) {
    match spec::annotation(desc, ANNOTATION_REF_NAME) {
        Some(name) => {
            let name = name.to_string();
            layout::add_tag(index, &name, desc);
        }
        None if index
            .manifests()
            .iter()
            .any(|d| d.digest() == desc.digest()) => {}
        None => {
            let mut entries = index.manifests().clone();
            entries.push(desc.clone());
            index.set_manifests(entries);
        }
    }
    // The same order ImageStore::tag keeps: by name.
    let mut entries = index.manifests().clone();
    entries.sort_by(|a, b| {
        spec::annotation(a, ANNOTATION_REF_NAME)
            .cmp(&spec::annotation(b, ANNOTATION_REF_NAME))
    });
    index.set_manifests(entries);
}

/// One entry, owned by root, dated the epoch: nothing about when or by
/// whom the archive was made leaks into its bytes.
fn append(
    tar: &mut tar::Builder<impl Write>,
    kind: EntryType,
    path: &str,
    mode: u32,
    size: u64,
    data: impl Read,
) -> Result<(), ArchiveError> {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, path, data)
        .map_err(ArchiveError::Write)
}

// ANCHOR: load
/// Imports an OCI archive into `store` and tags its images. Returns the
/// names tagged (or the digest, for an image the archive leaves unnamed).
pub fn load(
    store: &ImageStore,
    input: impl Read,
) -> Result<Vec<String>, ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut index_json = None;
    let mut layout_json = None;
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let member = classify(&path)?;
        check_type(&path, &member, entry.header().entry_type())?;
        match member {
            Member::Dir | Member::Ignored => {}
            Member::Blob(digest) => {
                // The blob writer hashes as it copies and refuses to
                // publish content that does not match the name.
                let mut writer = store.blob_writer()?;
                io::copy(&mut entry, &mut writer)
                    .map_err(ArchiveError::Read)?;
                writer.commit(Some(&digest)).map_err(|source| {
                    ArchiveError::Blob {
                        path,
                        source: Box::new(source),
                    }
                })?;
            }
            Member::Index => {
                index_json = Some(read_document(&path, &mut entry)?)
            }
            Member::OciLayout => {
                layout_json = Some(read_document(&path, &mut entry)?)
            }
        }
    }
    // ANCHOR_END: load

    let layout_json = layout_json.ok_or(ArchiveError::Missing("oci-layout"))?;
    check_layout(&layout_json)?;
    let index_json = index_json.ok_or(ArchiveError::Missing("index.json"))?;
    let index = spec::parse_index(&index_json).map_err(|e| {
        ArchiveError::Malformed {
            path: "index.json",
            reason: e.to_string(),
        }
    })?;

    // Check every image and every name before tagging any, so a bad
    // archive changes no names.
    let mut images = Vec::new();
    for desc in index.manifests() {
        store.check(desc)?;
        let name = match image_name(desc) {
            Some(name) => Some(
                name.parse::<Reference>()
                    .map_err(|source| ArchiveError::Name {
                        name: name.to_string(),
                        source,
                    })?
                    .local_name(),
            ),
            None => None,
        };
        images.push((name, desc));
    }
    let mut loaded = Vec::new();
    for (name, desc) in images {
        match name {
            Some(name) => {
                store.tag(&name, &without_names(desc))?;
                loaded.push(name);
            }
            None => loaded.push(desc.digest().to_string()),
        }
    }
    Ok(loaded)
}

/// Where an entry belongs in a layout, if anywhere. Paths are taken apart
/// into components, so `./index.json` is fine and `../x` or `/x` are not.
fn classify(path: &str) -> Result<Member, ArchiveError> {
    let unexpected = || ArchiveError::UnexpectedPath {
        path: path.to_string(),
    };
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => {
                parts.push(part.to_str().ok_or_else(unexpected)?)
            }
            Component::ParentDir
            | Component::RootDir
            | Component::Prefix(_) => return Err(unexpected()),
        }
    }
    Ok(match parts.as_slice() {
        [] | ["blobs"] | ["blobs", "sha256"] => Member::Dir,
        ["oci-layout"] => Member::OciLayout,
        ["index.json"] => Member::Index,
        ["manifest.json"] | ["repositories"] => Member::Ignored,
        ["blobs", "sha256", hex] => Member::Blob(
            format!("sha256:{hex}").parse().map_err(|_| unexpected())?,
        ),
        _ => return Err(unexpected()),
    })
}

/// Directories where directories belong, regular files everywhere else:
/// no links, devices or fifos.
fn check_type(
    path: &str,
    member: &Member,
    kind: EntryType,
) -> Result<(), ArchiveError> {
    let (ok, expected) = match member {
        Member::Dir => (kind == EntryType::Directory, "directory"),
        _ => (
            matches!(kind, EntryType::Regular | EntryType::Continuous),
            "regular file",
        ),
    };
    if ok {
        return Ok(());
    }
    let kind = match kind {
        EntryType::Directory => "directory".to_string(),
        EntryType::Symlink => "symbolic link".to_string(),
        EntryType::Link => "hard link".to_string(),
        EntryType::Char | EntryType::Block => "device".to_string(),
        EntryType::Fifo => "fifo".to_string(),
        other => format!("{other:?} entry"),
    };
    Err(ArchiveError::WrongType {
        path: path.to_string(),
        kind,
        expected,
    })
}

fn read_document(
    path: &str,
    entry: &mut impl Read,
) -> Result<Vec<u8>, ArchiveError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)
        .map_err(ArchiveError::Read)?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(ArchiveError::TooLarge {
            path: path.to_string(),
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

fn check_layout(bytes: &[u8]) -> Result<(), ArchiveError> {
    layout::check_layout_version(bytes).map_err(|reason| {
        ArchiveError::Malformed {
            path: "oci-layout",
            reason,
        }
    })
}

/// The name an archive gives an image: containerd's full name if present,
/// else the ref.name annotation.
fn image_name(desc: &Descriptor) -> Option<&str> {
    spec::annotation(desc, ANNOTATION_CONTAINERD_NAME)
        .or_else(|| spec::annotation(desc, ANNOTATION_REF_NAME))
}

/// The descriptor without the archive's naming annotations; the store adds
/// its own.
fn without_names(desc: &Descriptor) -> Descriptor {
    let mut desc = desc.clone();
    let annotations = desc.annotations().clone().map(|mut a| {
        a.remove(ANNOTATION_REF_NAME);
        a.remove(ANNOTATION_CONTAINERD_NAME);
        a
    });
    desc.set_annotations(annotations.filter(|a| !a.is_empty()));
    desc
}
