//! The registry's files. Under its root directory:
//!
//! ```text
//! blobs/sha256/<hex>                                  every blob, once, by digest
//! uploads/<id>                                        uploads in progress (same filesystem, so a rename is atomic)
//! repositories/<name>/_layers/sha256/<hex>            link: this repository may serve that blob
//! repositories/<name>/_manifests/revisions/sha256/<hex>   link to a manifest; holds its media type
//! repositories/<name>/_manifests/tags/<tag>           the digest the tag points at
//! ```
//!
//! Blobs are shared between repositories, but each repository serves only
//! the blobs linked into it: otherwise anyone could read a private
//! repository's layers through a public repository's name.
//!
//! Every file appears by rename only after its bytes are on disk (write to a
//! temporary name, fsync, rename, fsync the directory), so a crash or a cut
//! connection never leaves a half-written blob, link or tag visible.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::digest::Digest;

/// The registry's storage, rooted at one directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    root: Arc<PathBuf>,
}

/// One manifest as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Makes temporary names unique within this process; the pid covers others.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Storage {
    /// Opens (creating) the storage under `root`. Uploads left over from an
    /// earlier run are deleted: their sessions died with that run.
    pub fn open(root: &Path) -> io::Result<Storage> {
        let storage = Storage {
            root: Arc::new(root.to_path_buf()),
        };
        fs::create_dir_all(storage.root.join("blobs/sha256"))?;
        fs::create_dir_all(storage.root.join("repositories"))?;
        let uploads = storage.root.join("uploads");
        if uploads.exists() {
            fs::remove_dir_all(&uploads)?;
        }
        fs::create_dir_all(&uploads)?;
        Ok(storage)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs blocking file work off the async runtime's worker threads.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Storage) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let storage = self.clone();
        tokio::task::spawn_blocking(move || work(&storage))
            .await
            .map_err(io::Error::other)?
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn repository(&self, name: &str) -> PathBuf {
        // `name` has been checked against the name grammar: no "..", no leading '/'.
        self.root.join("repositories").join(name)
    }

    fn layer_link(&self, name: &str, digest: &Digest) -> PathBuf {
        self.repository(name)
            .join("_layers/sha256")
            .join(digest.hex())
    }

    fn revision_link(&self, name: &str, digest: &Digest) -> PathBuf {
        self.repository(name)
            .join("_manifests/revisions/sha256")
            .join(digest.hex())
    }

    fn tag_link(&self, name: &str, tag: &str) -> PathBuf {
        self.repository(name).join("_manifests/tags").join(tag)
    }

    /// Whether the repository exists (has ever received a blob or manifest).
    pub fn has_repository(&self, name: &str) -> bool {
        let dir = self.repository(name);
        dir.join("_layers").is_dir() || dir.join("_manifests").is_dir()
    }

    /// The size of a blob this repository may serve, if it has it.
    pub fn blob_size(
        &self,
        name: &str,
        digest: &Digest,
    ) -> io::Result<Option<u64>> {
        if !self.layer_link(name, digest).exists() {
            return Ok(None);
        }
        match fs::metadata(self.blob_path(digest)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    // ANCHOR: commit_blob
    /// Moves a complete, verified upload into the blob store. If the blob is
    /// already there (another push of the same layer) the rename replaces it
    /// with identical bytes: readers holding the old file keep reading it.
    pub fn commit_blob(&self, temp: &Path, digest: &Digest) -> io::Result<()> {
        File::open(temp)?.sync_all()?;
        let target = self.blob_path(digest);
        fs::rename(temp, &target)?;
        sync_dir(&target)
    }
    // ANCHOR_END: commit_blob

    /// Lets repository `name` serve blob `digest`.
    pub fn link_blob(&self, name: &str, digest: &Digest) -> io::Result<()> {
        write_atomic(
            &self.layer_link(name, digest),
            digest.to_string().as_bytes(),
        )
    }

    /// Stores a manifest (as a blob too) and links it into the repository,
    /// then points `tag` at it. The tag moves last, so it never names a
    /// manifest that is not there yet.
    pub fn put_manifest(
        &self,
        name: &str,
        manifest: &StoredManifest,
        tag: Option<&str>,
    ) -> io::Result<()> {
        write_atomic(&self.blob_path(&manifest.digest), &manifest.bytes)?;
        write_atomic(
            &self.revision_link(name, &manifest.digest),
            manifest.media_type.as_bytes(),
        )?;
        if let Some(tag) = tag {
            write_atomic(
                &self.tag_link(name, tag),
                manifest.digest.to_string().as_bytes(),
            )?;
        }
        Ok(())
    }

    /// The digest a tag points at.
    pub fn tag(&self, name: &str, tag: &str) -> io::Result<Option<Digest>> {
        match fs::read_to_string(self.tag_link(name, tag)) {
            Ok(text) => {
                text.trim().parse().map(Some).map_err(|err| {
                    io::Error::new(io::ErrorKind::InvalidData, err)
                })
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// A manifest of this repository, by digest.
    pub fn manifest(
        &self,
        name: &str,
        digest: &Digest,
    ) -> io::Result<Option<StoredManifest>> {
        let media_type =
            match fs::read_to_string(self.revision_link(name, digest)) {
                Ok(text) => text.trim().to_string(),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    return Ok(None)
                }
                Err(err) => return Err(err),
            };
        let bytes = fs::read(self.blob_path(digest))?;
        Ok(Some(StoredManifest {
            digest: digest.clone(),
            media_type,
            bytes,
        }))
    }

    /// Whether this repository has the manifest `digest`.
    pub fn has_manifest(&self, name: &str, digest: &Digest) -> bool {
        self.revision_link(name, digest).exists()
    }

    /// The repository's tags, sorted; `None` if there is no such repository.
    pub fn tags(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        if !self.has_repository(name) {
            return Ok(None);
        }
        let dir = self.repository(name).join("_manifests/tags");
        let mut tags = Vec::new();
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let name = entry?.file_name();
                    let name = name.to_string_lossy();
                    // Temporary files of write_atomic start with '.'; tags never do.
                    if !name.starts_with('.') {
                        tags.push(name.into_owned());
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        tags.sort();
        Ok(Some(tags))
    }

    /// Every repository, sorted by name.
    pub fn repositories(&self) -> io::Result<Vec<String>> {
        let mut found = Vec::new();
        walk_repositories(&self.root.join("repositories"), "", &mut found)?;
        found.sort();
        Ok(found)
    }
}

/// Repositories nest (`team` and `team/app`); their own files sit in
/// directories starting with '_', which no name component may.
fn walk_repositories(
    dir: &Path,
    prefix: &str,
    found: &mut Vec<String>,
) -> io::Result<()> {
    let mut is_repository = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with('_') {
            is_repository = true;
        } else if entry.file_type()?.is_dir() {
            let name = if prefix.is_empty() {
                file_name.into_owned()
            } else {
                format!("{prefix}/{file_name}")
            };
            walk_repositories(&entry.path(), &name, found)?;
        }
    }
    if is_repository && !prefix.is_empty() {
        found.push(prefix.to_string());
    }
    Ok(())
}

/// Writes `bytes` to `path` so that readers see either the old file or the
/// complete new one: a temporary file beside it, fsync, rename, fsync the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        io::Error::other(format!("{} has no parent", path.display()))
    })?;
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Makes a rename into `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_nest() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let d = Digest::of(b"x");
        storage.link_blob("team", &d).unwrap();
        storage.link_blob("team/app", &d).unwrap();
        storage.link_blob("other", &d).unwrap();
        assert_eq!(
            storage.repositories().unwrap(),
            ["other", "team", "team/app"]
        );
        assert!(!storage.has_repository("nobody"));
        // Linked but not stored: the blob is not there.
        assert_eq!(storage.blob_size("team", &d).unwrap(), None);
    }
}
