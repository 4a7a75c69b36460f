//! Blob uploads: sessions that collect a blob's bytes in a temporary file,
//! chunk by chunk, until the client names the digest and the registry checks
//! it. Nothing becomes visible before that check passes.

use std::collections::HashMap;
use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use futures_util::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::errors::{ApiError, ErrorCode};
use super::storage::Storage;
use crate::digest::Digest;

/// Open uploads beyond this are refused with TOOMANYREQUESTS: each one holds
/// a file and memory until it finishes or expires.
const MAX_UPLOADS: usize = 256;
/// An upload nobody touched for this long is dropped, with its file.
const EXPIRY: Duration = Duration::from_secs(3600);
/// A request body that sends nothing for this long is cut off, so a stalled
/// client cannot hold an upload forever.
const STALL: Duration = Duration::from_secs(60);

/// One upload in progress.
#[derive(Debug)]
pub struct Upload {
    id: String,
    repository: String,
    path: PathBuf,
    /// Bytes received so far: the temporary file's length.
    offset: u64,
    touched: Instant,
}

impl Upload {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The repository the upload was started in (and the blob goes to).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The temporary file holding the bytes so far.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The spec's Range header value: the bytes received, inclusive. An
    /// empty upload says "0-0", as Docker's registry does.
    pub fn range(&self) -> String {
        format!("0-{}", self.offset.saturating_sub(1))
    }

    /// Where the client sends the next request for this upload.
    pub fn location(&self) -> String {
        format!("/v2/{}/blobs/uploads/{}", self.repository, self.id)
    }

    /// Appends a request body to the upload and returns how many bytes it
    /// held. If the body breaks off (the client went away, or stalled), the
    /// file is cut back to where it was: a chunk counts whole or not at all.
    pub async fn append(&mut self, body: Body) -> Result<u64, ApiError> {
        self.touched = Instant::now();
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .await
            .map_err(|err| ApiError::internal("opening an upload", err))?;
        let mut written = 0u64;
        let result: Result<(), ApiError> =
            async {
                file.seek(SeekFrom::Start(self.offset)).await.map_err(
                    |err| ApiError::internal("seeking in an upload", err),
                )?;
                let mut stream = body.into_data_stream();
                loop {
                    let next = tokio::time::timeout(STALL, stream.next())
                        .await
                        .map_err(|_| {
                            ApiError::new(
                                ErrorCode::BlobUploadInvalid,
                                "upload stalled: no data for 60 s",
                            )
                        })?;
                    let Some(chunk) = next else { break };
                    let chunk = chunk.map_err(|err| {
                        ApiError::new(
                            ErrorCode::BlobUploadInvalid,
                            format!("upload interrupted: {err}"),
                        )
                    })?;
                    file.write_all(&chunk).await.map_err(|err| {
                        ApiError::internal("writing an upload", err)
                    })?;
                    written += chunk.len() as u64;
                }
                // tokio's File finishes writes in the background: wait for them.
                file.flush()
                    .await
                    .map_err(|err| ApiError::internal("writing an upload", err))
            }
            .await;
        match result {
            Ok(()) => {
                self.offset += written;
                Ok(written)
            }
            Err(err) => {
                let _ = file.flush().await;
                let _ = file.set_len(self.offset).await;
                Err(err)
            }
        }
    }

    /// Drops the bytes past `offset` (a chunk that arrived but was refused).
    pub async fn truncate(&mut self, offset: u64) -> Result<(), ApiError> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .await
            .map_err(|err| ApiError::internal("opening an upload", err))?;
        file.set_len(offset)
            .await
            .map_err(|err| ApiError::internal("truncating an upload", err))?;
        self.offset = offset;
        Ok(())
    }
}

/// The digest of a whole file, computed off the async workers.
pub async fn digest_of_file(
    path: &std::path::Path,
) -> Result<Digest, ApiError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        Digest::of_reader(io::BufReader::new(file))
    })
    .await
    .map_err(|err| ApiError::internal("hashing an upload", err))?
    .map_err(|err| ApiError::internal("hashing an upload", err))
}

// ANCHOR: finish_upload
/// Finishes an upload: appends the final chunk (possibly empty), checks that
/// the complete upload hashes to `expected`, and only then moves it into the
/// blob store and links it into the upload's repository. On a mismatch it
/// answers DIGEST_INVALID and the blob stays unknown.
pub async fn finish_upload(
    storage: &Storage,
    upload: &mut Upload,
    expected: &Digest,
    last_chunk: Body,
) -> Result<(), ApiError> {
    // EXERCISE: lab02-upload
    upload.append(last_chunk).await?;
    // Hash what is on disk, not what the client says it sent.
    let actual = digest_of_file(upload.path()).await?;
    if &actual != expected {
        return Err(ApiError::digest_invalid(expected, &actual));
    }
    let (temp, repository, digest) = (
        upload.path().to_path_buf(),
        upload.repository().to_string(),
        expected.clone(),
    );
    storage
        .run(move |storage| {
            storage.commit_blob(&temp, &digest)?;
            storage.link_blob(&repository, &digest)
        })
        .await
        .map_err(|err| ApiError::internal("storing a blob", err))
    // EXERCISE_END: lab02-upload
}
// ANCHOR_END: finish_upload

/// The open uploads, by id. Each has its own lock, held for the whole of a
/// request on it: two requests on one upload take turns.
#[derive(Default)]
pub struct Uploads {
    open: Mutex<HashMap<String, Entry>>,
}

/// The repository is kept outside the upload's lock, so a request can be
/// checked against it while another request holds the upload.
struct Entry {
    repository: String,
    upload: Arc<tokio::sync::Mutex<Upload>>,
}

impl Uploads {
    /// Starts an upload into repository `name`.
    pub fn create(
        &self,
        storage: &Storage,
        name: &str,
    ) -> Result<Arc<tokio::sync::Mutex<Upload>>, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        Self::expire(storage, &mut open);
        if open.len() >= MAX_UPLOADS {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                format!("too many uploads in progress (at most {MAX_UPLOADS})"),
            ));
        }
        let id = new_id()
            .map_err(|err| ApiError::internal("naming an upload", err))?;
        let upload = Arc::new(tokio::sync::Mutex::new(Upload {
            path: storage.upload_path(&id),
            id: id.clone(),
            repository: name.to_string(),
            offset: 0,
            touched: Instant::now(),
        }));
        open.insert(
            id,
            Entry {
                repository: name.to_string(),
                upload: upload.clone(),
            },
        );
        Ok(upload)
    }

    /// The upload `id`, if it is open and belongs to repository `name`.
    pub fn get(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Arc<tokio::sync::Mutex<Upload>>, ApiError> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(id) {
            // An upload belongs to the repository it was started in: its id
            // under another name (maybe one the client may not push to) is
            // unknown.
            Some(entry) if entry.repository == name => Ok(entry.upload.clone()),
            _ => Err(ApiError::new(
                ErrorCode::BlobUploadUnknown,
                "blob upload unknown to registry",
            )
            .detail(serde_json::json!({ "uuid": id }))),
        }
    }

    /// Forgets an upload and deletes its file (if it is still there: a
    /// finished upload's file has been renamed into the blob store).
    pub fn remove(&self, upload: &Upload) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&upload.id);
        let _ = std::fs::remove_file(&upload.path);
    }

    fn expire(storage: &Storage, open: &mut HashMap<String, Entry>) {
        open.retain(|id, entry| match entry.upload.try_lock() {
            Ok(upload) if upload.touched.elapsed() > EXPIRY => {
                let _ = std::fs::remove_file(storage.upload_path(id));
                false
            }
            _ => true,
        });
    }
}

/// A fresh upload id: 128 random bits, hex.
pub fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    Ok(hex::encode(bytes))
}
