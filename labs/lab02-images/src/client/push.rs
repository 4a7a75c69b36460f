//! Pushing: every blob the registry lacks, then the manifest, last, so the
//! registry never holds a manifest whose parts are missing.

use std::collections::HashSet;

use super::errors::ClientError;
use super::http::{header, with_query, Conn, Payload, Scope};
use super::progress::Progress;
use super::PushReport;
use crate::digest::Digest;
use crate::layout::ImageStore;
use crate::reference::Reference;
use crate::spec;

/// Blobs larger than this go up in PATCH chunks of this size; smaller ones
/// in a single PUT.
pub const CHUNK: u64 = 8 << 20;

pub fn push(
    conn: &Conn,
    progress: &Progress,
    store: &ImageStore,
    local: &str,
    target: &Reference,
) -> Result<PushReport, ClientError> {
    let desc = store.resolve(local)?;
    let digest = spec::digest_of(&desc)?;
    // Parsing checks it is a manifest; the bytes go up exactly as stored,
    // so the registry computes the same digest.
    let manifest = store.manifest(&desc)?;
    let bytes = store.read_blob(&digest)?;
    if let Some(pinned) = &target.digest {
        if pinned != &digest {
            return Err(ClientError::DigestMismatch {
                what: format!("pushing {local} as {target}"),
                expected: pinned.clone(),
                actual: digest,
            });
        }
    }
    conn.ping()?;
    let repository = target.repository.as_str();
    let mut report = PushReport {
        reference: target.to_string(),
        manifest: digest.clone(),
        blobs_sent: 0,
        blobs_skipped: 0,
        bytes_sent: 0,
    };
    // ANCHOR: push
    let mut seen = HashSet::new();
    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let blob_digest = spec::digest_of(blob)?;
        if !seen.insert(blob_digest.clone()) {
            continue;
        }
        if remote_has(conn, repository, &blob_digest)? {
            progress.skipped(&blob_digest, "already in the registry");
            report.blobs_skipped += 1;
            continue;
        }
        let size =
            upload_blob(conn, progress, store, repository, &blob_digest)?;
        report.blobs_sent += 1;
        report.bytes_sent += size;
    }
    let reference = target.tag_or_digest();
    let response = conn.call(
        "PUT",
        &format!("/v2/{repository}/manifests/{reference}"),
        &[("Content-Type", desc.media_type().to_string())],
        Payload::Bytes(&bytes),
        Some(Scope {
            repository,
            push: true,
        }),
    )?;
    // ANCHOR_END: push
    let response = conn.expect(response, &[200, 201], || {
        format!("PUT manifest {repository}:{reference}")
    })?;
    check_echoed_digest(
        header(&response, "Docker-Content-Digest"),
        &digest,
        || format!("manifest {target} as the registry stored it"),
    )?;
    Ok(report)
}

/// Whether the repository already has the blob (HEAD: 200 or 404).
fn remote_has(
    conn: &Conn,
    repository: &str,
    digest: &Digest,
) -> Result<bool, ClientError> {
    let response = conn.call(
        "HEAD",
        &format!("/v2/{repository}/blobs/{digest}"),
        &[],
        Payload::Empty,
        // Ask for push rights from the start: the uploads that follow need them.
        Some(Scope {
            repository,
            push: true,
        }),
    )?;
    match response.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        _ => conn
            .expect(response, &[200], || format!("HEAD blob {digest}"))
            .map(|_| true),
    }
}

/// POST to open an upload, then either one PUT with the whole blob, or
/// PATCHes of [`CHUNK`] bytes and an empty PUT naming the digest.
fn upload_blob(
    conn: &Conn,
    progress: &Progress,
    store: &ImageStore,
    repository: &str,
    digest: &Digest,
) -> Result<u64, ClientError> {
    let path = store.blob_path(digest);
    let size = std::fs::metadata(&path)
        .map_err(|source| ClientError::Read {
            path: path.clone(),
            source,
        })?
        .len();
    let scope = Some(Scope {
        repository,
        push: true,
    });
    let bar = progress.blob(digest, size);
    let what = || format!("uploading blob {digest} to {repository}");
    let response = conn.call(
        "POST",
        &format!("/v2/{repository}/blobs/uploads/"),
        &[],
        Payload::Empty,
        scope,
    )?;
    let response = conn.expect(response, &[202], what)?;
    let mut location = location(&response, what)?;
    let octets = ("Content-Type", "application/octet-stream".to_string());
    // ANCHOR: upload_blob
    let last = if size > CHUNK {
        let mut offset = 0;
        while offset < size {
            let len = CHUNK.min(size - offset);
            let range =
                ("Content-Range", format!("{offset}-{}", offset + len - 1));
            let response = conn.call(
                "PATCH",
                &location,
                &[octets.clone(), range],
                Payload::File {
                    path: &path,
                    offset,
                    len,
                    bar: &bar,
                },
                scope,
            )?;
            let response = conn.expect(response, &[202], what)?;
            location = self::location(&response, what)?;
            offset += len;
        }
        Payload::Empty
    } else {
        Payload::File {
            path: &path,
            offset: 0,
            len: size,
            bar: &bar,
        }
    };
    // ANCHOR_END: upload_blob
    let response = conn.call(
        "PUT",
        &with_query(&location, "digest", &digest.to_string()),
        &[octets],
        last,
        scope,
    )?;
    let response = conn.expect(response, &[201], what)?;
    check_echoed_digest(
        header(&response, "Docker-Content-Digest"),
        digest,
        what,
    )?;
    bar.finish_with_message("pushed");
    Ok(size)
}

/// Where the upload goes on: the Location of the last answer.
fn location(
    response: &super::http::Response,
    what: impl FnOnce() -> String,
) -> Result<String, ClientError> {
    match header(response, "Location") {
        "" => Err(ClientError::Protocol {
            what: what(),
            reason: "the registry sent no Location for the upload".into(),
        }),
        location => Ok(location.to_string()),
    }
}

/// A registry that says it stored other bytes than we sent is broken.
pub fn check_echoed_digest(
    echoed: &str,
    expected: &Digest,
    what: impl FnOnce() -> String,
) -> Result<(), ClientError> {
    if echoed.is_empty() {
        return Ok(());
    }
    let actual: Digest = match echoed.parse() {
        Ok(actual) => actual,
        Err(err) => {
            return Err(ClientError::Protocol {
                what: what(),
                reason: format!("bad Docker-Content-Digest: {err}"),
            })
        }
    };
    if &actual == expected {
        Ok(())
    } else {
        Err(ClientError::DigestMismatch {
            what: what(),
            expected: expected.clone(),
            actual,
        })
    }
}
