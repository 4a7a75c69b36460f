//! The local image store: a directory in the OCI image layout.
//!
//! ```text
//! oci-layout            {"imageLayoutVersion":"1.0.0"}
//! index.json            an image index: one entry per tag
//! blobs/sha256/<hex>    every manifest, config and layer, named by digest
//! ```
//!
//! That is all the spec asks for, so skopeo (`oci:DIR:kubia:v1`), umoci and
//! buildah read our store and we read theirs. A tag is an entry in
//! `index.json` whose `org.opencontainers.image.ref.name` annotation is the
//! name.
//!
//! Two rules keep the store consistent when several processes use it at
//! once: a blob appears under its digest only complete and verified (it is
//! written to a temporary file first and renamed), and `index.json` is only
//! rewritten whole, by one writer at a time, under a lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifest,
};
use tempfile::NamedTempFile;

use crate::digest::{Digest, DigestError, DigestWriter};
use crate::reference::{Reference, ReferenceError};
use crate::spec::{self, SpecError, ANNOTATION_REF_NAME, IMAGE_LAYOUT_VERSION};

const OCI_LAYOUT: &str = "oci-layout";
const INDEX_JSON: &str = "index.json";
/// Held (flock) while `index.json` is read, changed and replaced.
const INDEX_LOCK: &str = "index.json.lock";

/// What went wrong in the store, and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is not an OCI image layout: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    #[error("{} is malformed: {source}", path.display())]
    Malformed { path: PathBuf, source: SpecError },
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(
        "blob {digest} is {actual} bytes, but its descriptor says {expected}"
    )]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("no image {0:?} in the store")]
    NotFound(String),
    #[error("invalid image name {name:?}: {source}")]
    Name {
        name: String,
        source: ReferenceError,
    },
    #[error("{digest} is {what}, not an image manifest")]
    NotAManifest { digest: String, what: String },
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// Writes one blob, hashing as it goes; nothing is visible in the store
/// until [`BlobWriter::commit`] has checked the digest.
pub struct BlobWriter {
    out: DigestWriter<BufWriter<NamedTempFile>>,
    dir: PathBuf,
}

impl ImageStore {
    // ANCHOR: open
    /// Opens the layout at `root`, creating it (and `root`) if missing.
    pub fn open(root: &Path) -> Result<ImageStore, StoreError> {
        let store = ImageStore {
            root: root.to_path_buf(),
        };
        let blobs = store.blobs_dir();
        fs::create_dir_all(&blobs).map_err(io_at(&blobs))?;
        let layout = root.join(OCI_LAYOUT);
        match fs::read(&layout) {
            Ok(bytes) => check_layout_file(&layout, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let text = format!(
                    r#"{{"imageLayoutVersion":"{IMAGE_LAYOUT_VERSION}"}}"#
                );
                write_atomic(&layout, text.as_bytes())?;
            }
            Err(e) => return Err(io_at(&layout)(e)),
        }
        if !store.index_path().exists() {
            // Under the lock, so two openers do not race to create it.
            store.update_index(|_| Ok(()))?;
        }
        Ok(store)
    }
    // ANCHOR_END: open

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_JSON)
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// `blobs/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// The blob's bytes, checked against its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(blob_err(digest, &path))?;
        digest.verify(&bytes)?;
        Ok(bytes)
    }

    /// The blob to stream from; the reader must check the digest itself.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(blob_err(digest, &path))
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let mut writer = self.blob_writer()?;
        writer
            .write_all(bytes)
            .map_err(io_at(&self.root.join("blobs")))?;
        Ok(writer.commit(None)?.0)
    }

    /// A writer for a blob whose digest is known only at the end.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        // The temporary file lives in blobs/, not blobs/sha256/, so nothing
        // but complete blobs ever appears there; and on the same
        // filesystem, so the final rename is atomic.
        let dir = self.root.join("blobs");
        let temp = tempfile::Builder::new()
            .prefix(".blob-")
            .tempfile_in(&dir)
            .map_err(io_at(&dir))?;
        Ok(BlobWriter {
            // Big writes: a layer is tens of megabytes.
            out: DigestWriter::new(BufWriter::with_capacity(1 << 20, temp)),
            dir: self.blobs_dir(),
        })
    }

    /// Stores a manifest as canonical JSON; returns the descriptor naming it.
    pub fn put_manifest(
        &self,
        manifest: &ImageManifest,
    ) -> Result<Descriptor, StoreError> {
        let (bytes, desc) = spec::manifest_blob(manifest)?;
        self.write_blob(&bytes)?;
        Ok(desc)
    }

    // ANCHOR: tag
    /// Names the manifest `name` (`kubia` means `kubia:latest`), replacing
    /// whatever that name named before.
    pub fn tag(
        &self,
        name: &str,
        manifest: &Descriptor,
    ) -> Result<(), StoreError> {
        let name = ref_name(name)?;
        let media_type = manifest.media_type().to_string();
        if !spec::is_manifest(&media_type) && !spec::is_index(&media_type) {
            return Err(StoreError::NotAManifest {
                digest: manifest.digest().to_string(),
                what: format!("a {media_type}"),
            });
        }
        let digest = spec::digest_of(manifest)?;
        if !self.has_blob(&digest) {
            return Err(StoreError::BlobNotFound(digest));
        }
        self.update_index(|index| {
            add_tag(index, &name, manifest);
            // Sorted by name, so index.json does not depend on the order
            // tags were made in.
            let mut entries = index.manifests().clone();
            entries.sort_by(|a, b| ref_name_of(a).cmp(&ref_name_of(b)));
            index.set_manifests(entries);
            Ok(())
        })
    }
    // ANCHOR_END: tag

    /// Removes the name; the blobs stay. False if there was no such name.
    pub fn untag(&self, name: &str) -> Result<bool, StoreError> {
        let names = candidate_names(name);
        self.update_index(|index| {
            let before = index.manifests().len();
            let mut entries = index.manifests().clone();
            entries.retain(|d| {
                !ref_name_of(d).is_some_and(|n| names.iter().any(|c| c == n))
            });
            index.set_manifests(entries);
            Ok(index.manifests().len() != before)
        })
    }

    // ANCHOR: resolve
    /// The manifest descriptor for a name (`kubia:v1`; `kubia` means
    /// `kubia:latest`), or for `sha256:…` / `name@sha256:…` naming a
    /// manifest in the store.
    pub fn resolve(
        &self,
        name_or_digest: &str,
    ) -> Result<Descriptor, StoreError> {
        let index = self.read_index()?;
        if name_or_digest.starts_with("sha256:") {
            let digest: Digest = name_or_digest.parse()?;
            return self.resolve_digest(&index, &digest);
        }
        // A digest pins the content, whatever a tag says now.
        if let Ok(Reference {
            digest: Some(digest),
            ..
        }) = name_or_digest.parse::<Reference>()
        {
            return self.resolve_digest(&index, &digest);
        }
        candidate_names(name_or_digest)
            .iter()
            .find_map(|name| {
                index
                    .manifests()
                    .iter()
                    .find(|d| ref_name_of(d) == Some(name.as_str()))
            })
            .cloned()
            .ok_or_else(|| StoreError::NotFound(name_or_digest.to_string()))
    }
    // ANCHOR_END: resolve

    fn resolve_digest(
        &self,
        index: &ImageIndex,
        digest: &Digest,
    ) -> Result<Descriptor, StoreError> {
        let text = digest.to_string();
        if let Some(desc) = index
            .manifests()
            .iter()
            .find(|d| d.digest().to_string() == text)
        {
            return Ok(desc.clone());
        }
        if !self.has_blob(digest) {
            return Err(StoreError::NotFound(text));
        }
        // Not tagged, but present: describe it from its own bytes.
        let bytes = self.read_blob(digest)?;
        let manifest = spec::parse_manifest(&bytes).map_err(|_| {
            StoreError::NotAManifest {
                digest: text,
                what: "a blob".to_string(),
            }
        })?;
        let media_type = manifest
            .media_type()
            .as_ref()
            .map_or(spec::MEDIA_TYPE_MANIFEST.to_string(), |m| m.to_string());
        Ok(spec::descriptor(&media_type, digest, bytes.len() as u64))
    }

    /// Every tag and the manifest it names, sorted by name.
    pub fn images(&self) -> Result<Vec<(String, Descriptor)>, StoreError> {
        let mut images: Vec<(String, Descriptor)> = self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| {
                ref_name_of(d).map(|name| (name.to_string(), d.clone()))
            })
            .collect();
        images.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(images)
    }

    /// The whole `index.json`.
    pub fn index(&self) -> Result<ImageIndex, StoreError> {
        self.read_index()
    }

    /// The manifest `desc` names, checked against its digest and size.
    pub fn manifest(
        &self,
        desc: &Descriptor,
    ) -> Result<ImageManifest, StoreError> {
        let media_type = desc.media_type().to_string();
        if !spec::is_manifest(&media_type) {
            return Err(StoreError::NotAManifest {
                digest: desc.digest().to_string(),
                what: format!("a {media_type}"),
            });
        }
        let digest = spec::digest_of(desc)?;
        let bytes = self.read_sized(&digest, desc.size())?;
        spec::parse_manifest(&bytes).map_err(|source| StoreError::Malformed {
            path: self.blob_path(&digest),
            source,
        })
    }

    /// The config a manifest names, checked against its digest and size.
    pub fn config(
        &self,
        manifest: &ImageManifest,
    ) -> Result<ImageConfiguration, StoreError> {
        let digest = spec::digest_of(manifest.config())?;
        let bytes = self.read_sized(&digest, manifest.config().size())?;
        spec::parse_config(&bytes).map_err(|source| StoreError::Malformed {
            path: self.blob_path(&digest),
            source,
        })
    }

    /// Checks that the manifest and every blob it names are present and
    /// match their digests and sizes.
    pub fn check(&self, desc: &Descriptor) -> Result<(), StoreError> {
        let manifest = self.manifest(desc)?;
        std::iter::once(manifest.config())
            .chain(manifest.layers())
            .try_for_each(|blob| self.check_blob(blob))
    }

    /// Checks one blob by streaming it, since layers can be large.
    fn check_blob(&self, desc: &Descriptor) -> Result<(), StoreError> {
        let digest = spec::digest_of(desc)?;
        let path = self.blob_path(&digest);
        let file = self.open_blob(&digest)?;
        let len = file.metadata().map_err(io_at(&path))?.len();
        check_size(&digest, desc.size(), len)?;
        let actual = Digest::of_reader(file).map_err(io_at(&path))?;
        if actual != digest {
            return Err(DigestError::Mismatch {
                expected: digest,
                actual,
            }
            .into());
        }
        Ok(())
    }

    /// A blob that must be `size` bytes: checked before reading, so a
    /// wrong descriptor cannot make us read a huge file.
    fn read_sized(
        &self,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let len = fs::metadata(&path).map_err(blob_err(digest, &path))?.len();
        check_size(digest, size, len)?;
        self.read_blob(digest)
    }

    fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => spec::parse_index(&bytes)
                .map_err(|source| StoreError::Malformed { path, source }),
            // Only before open() has created it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(spec::empty_index())
            }
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    // ANCHOR: update_index
    /// Reads `index.json`, lets `change` edit it, and replaces it, all under
    /// an exclusive lock so concurrent writers take turns instead of
    /// overwriting each other's changes.
    fn update_index<T>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _lock = IndexLock::acquire(&self.root.join(INDEX_LOCK))?;
        let mut index = self.read_index()?;
        let result = change(&mut index)?;
        write_atomic(&self.index_path(), &spec::to_canonical_json(&index)?)?;
        Ok(result)
    }
    // ANCHOR_END: update_index
}

impl BlobWriter {
    /// Makes the blob visible under its digest. If `expected` is given and
    /// the content does not match it, the temporary file is removed and
    /// nothing appears in the store.
    pub fn commit(
        self,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let (buffer, digest, len) = self.out.finish();
        let temp = buffer
            .into_inner()
            .map_err(|e| io_at(&self.dir)(e.into_error()))?;
        if let Some(expected) = expected {
            if *expected != digest {
                // Dropping `temp` deletes the file.
                return Err(DigestError::Mismatch {
                    expected: expected.clone(),
                    actual: digest,
                }
                .into());
            }
        }
        let path = self.dir.join(digest.hex());
        persist(temp, &path)?;
        Ok((digest, len))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

// ANCHOR: add_tag
/// Makes `name` name `manifest` in `index`: the entry is a copy of the
/// manifest's descriptor carrying the annotation
/// `org.opencontainers.image.ref.name: <name>`. An older entry with the same
/// name is replaced, since a name names one image.
pub fn add_tag(index: &mut ImageIndex, name: &str, manifest: &Descriptor) {
    // EXERCISE: lab02-tag-index
    let mut entries = index.manifests().clone();
    entries.retain(|entry| {
        spec::annotation(entry, ANNOTATION_REF_NAME) != Some(name)
    });
    let mut entry = manifest.clone();
    let mut annotations = entry.annotations().clone().unwrap_or_default();
    annotations.insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
    entry.set_annotations(Some(annotations));
    entries.push(entry);
    index.set_manifests(entries);
    // EXERCISE_END: lab02-tag-index
}
// ANCHOR_END: add_tag

fn ref_name_of(desc: &Descriptor) -> Option<&str> {
    spec::annotation(desc, ANNOTATION_REF_NAME)
}

/// The name the store files a reference under: `kubia` → `kubia:latest`.
fn ref_name(name: &str) -> Result<String, StoreError> {
    name.parse::<Reference>()
        .map(|r| r.local_name())
        .map_err(|source| StoreError::Name {
            name: name.to_string(),
            source,
        })
}

/// Names to look for: the text as given (layouts made by other tools may
/// use bare tags such as `latest`), then its normalized form.
fn candidate_names(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    if let Ok(normalized) = ref_name(name) {
        if normalized != name {
            names.push(normalized);
        }
    }
    names
}

fn check_layout_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    check_layout_version(bytes).map_err(|reason| StoreError::Layout {
        path: path.to_path_buf(),
        reason,
    })
}

/// Checks the contents of an `oci-layout` file: JSON with an
/// `imageLayoutVersion` we can read (any 1.x).
pub(crate) fn check_layout_version(bytes: &[u8]) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("oci-layout is not JSON: {e}"))?;
    match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(version) if version.split('.').next() == Some("1") => Ok(()),
        Some(version) => {
            Err(format!("unsupported imageLayoutVersion {version:?}"))
        }
        None => Err("oci-layout has no imageLayoutVersion".to_string()),
    }
}

fn check_size(
    digest: &Digest,
    expected: u64,
    actual: u64,
) -> Result<(), StoreError> {
    if expected == actual {
        Ok(())
    } else {
        Err(StoreError::Size {
            digest: digest.clone(),
            expected,
            actual,
        })
    }
}

/// Replaces `path` with `bytes` in one step: readers see the old file or
/// the new one, never a half-written one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_at(dir))?;
    temp.write_all(bytes).map_err(io_at(temp.path()))?;
    persist(temp, path)
}

/// fsync, then rename into place, then fsync the directory so the rename
/// itself survives a crash.
fn persist(temp: NamedTempFile, path: &Path) -> Result<(), StoreError> {
    let file = temp.as_file();
    // Temporary files are created 0600; blobs are for everyone to read.
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_at(temp.path()))?;
    file.sync_all().map_err(io_at(temp.path()))?;
    temp.persist(path).map_err(|e| io_at(path)(e.error))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
    }
    Ok(())
}

/// An exclusive `flock` on the lock file, released when dropped (closing
/// the file releases it, even if the process dies).
struct IndexLock {
    _file: File,
}

impl IndexLock {
    fn acquire(path: &Path) -> Result<IndexLock, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_at(path))?;
        loop {
            // SAFETY: flock only takes a file descriptor, which `file` keeps
            // open for the whole call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(IndexLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(io_at(path)(err));
            }
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A missing blob file is a missing blob, not an I/O failure.
fn blob_err<'a>(
    digest: &'a Digest,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| {
        if source.kind() == io::ErrorKind::NotFound {
            StoreError::BlobNotFound(digest.clone())
        } else {
            StoreError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}
