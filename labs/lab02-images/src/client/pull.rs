//! Pulling: the manifest (through an index to this machine's platform, if
//! the registry has several), then every blob the local store lacks, each
//! checked against its digest before it is stored, then the local tag.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use indicatif::ProgressBar;

use super::errors::ClientError;
use super::http::{header, Conn, Payload, Scope};
use super::platform::Platform;
use super::progress::Progress;
use super::push::check_echoed_digest;
use super::PullReport;
use crate::digest::{Digest, DigestError};
use crate::layout::{ImageStore, StoreError};
use crate::reference::Reference;
use crate::spec;

/// What the client can read, best first: it asks the registry for these.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest the client reads (as large as registries accept).
const MAX_MANIFEST: u64 = 4 << 20;

/// A manifest as the registry sent it.
struct Fetched {
    media_type: String,
    bytes: Vec<u8>,
    digest: Digest,
}

/// Pulls `source` for `platform` into `store`, under `local_name`.
pub fn pull(
    conn: &Conn,
    progress: &Progress,
    store: &ImageStore,
    source: &Reference,
    platform: &Platform,
    local_name: &str,
) -> Result<PullReport, ClientError> {
    conn.ping()?;
    let repository = source.repository.as_str();
    let mut fetched = fetch_manifest(
        conn,
        source,
        &source.tag_or_digest(),
        source.digest.as_ref(),
    )?;
    // Everything that can be refused is refused before the first blob is
    // fetched: an index without this platform, a manifest we cannot read.
    let mut chosen = None;
    if spec::is_index(&fetched.media_type) {
        let (child, entry) = choose_platform(source, &fetched.bytes, platform)?;
        fetched =
            fetch_manifest(conn, source, &child.to_string(), Some(&child))?;
        chosen = Some(entry);
    }
    if !spec::is_manifest(&fetched.media_type) {
        return Err(ClientError::MediaType {
            reference: source.to_string(),
            media_type: fetched.media_type,
        });
    }
    let manifest = spec::parse_manifest(&fetched.bytes)?;
    let mut report = PullReport {
        reference: source.to_string(),
        local_name: local_name.to_string(),
        platform: chosen.map(|p| p.to_string()),
        manifest: fetched.digest.clone(),
        blobs_fetched: 0,
        blobs_skipped: 0,
        bytes_fetched: 0,
    };
    // ANCHOR: pull
    let mut seen = HashSet::new();
    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let digest = spec::digest_of(blob)?;
        if !seen.insert(digest.clone()) {
            continue;
        }
        if store.has_blob(&digest) {
            progress.skipped(&digest, "already in the store");
            report.blobs_skipped += 1;
            continue;
        }
        let bar = progress.blob(&digest, blob.size());
        report.bytes_fetched +=
            fetch_blob(conn, store, repository, &digest, blob.size(), &bar)?;
        report.blobs_fetched += 1;
    }
    // The manifest last, byte for byte as received (its digest is its name),
    // and only then the tag: a tag never names an incomplete image.
    let mut writer = store.blob_writer()?;
    writer
        .write_all(&fetched.bytes)
        .map_err(|source| StoreError::Io {
            path: store.root().to_path_buf(),
            source,
        })?;
    writer.commit(Some(&fetched.digest))?;
    let desc = spec::descriptor(
        &fetched.media_type,
        &fetched.digest,
        fetched.bytes.len() as u64,
    );
    store.tag(local_name, &desc)?;
    // ANCHOR_END: pull
    Ok(report)
}

/// GETs a manifest and checks its digest: against the reference when
/// pulling by digest, and against what the registry says it is.
fn fetch_manifest(
    conn: &Conn,
    source: &Reference,
    reference: &str,
    pinned: Option<&Digest>,
) -> Result<Fetched, ClientError> {
    let repository = source.repository.as_str();
    let what = || format!("GET manifest {repository}:{reference}");
    let response = conn.call(
        "GET",
        &format!("/v2/{repository}/manifests/{reference}"),
        &[("Accept", ACCEPT.to_string())],
        Payload::Empty,
        Some(Scope {
            repository,
            push: false,
        }),
    )?;
    let mut response = conn.expect(response, &[200], what)?;
    let content_type = header(&response, "Content-Type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let echoed = header(&response, "Docker-Content-Digest").to_string();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_MANIFEST)
        .read_to_vec()
        .map_err(|source| ClientError::Http {
            method: "GET".into(),
            url: what(),
            cause: Box::new(source),
        })?;
    let digest = Digest::of(&bytes);
    if let Some(pinned) = pinned {
        if pinned != &digest {
            return Err(ClientError::DigestMismatch {
                what: format!("manifest {repository}@{pinned}"),
                expected: pinned.clone(),
                actual: digest,
            });
        }
    }
    check_echoed_digest(&echoed, &digest, || {
        format!("manifest {repository}:{reference} (Docker-Content-Digest)")
    })?;
    let media_type =
        if spec::is_manifest(&content_type) || spec::is_index(&content_type) {
            content_type
        } else if !matches!(
            content_type.as_str(),
            "" | "application/json" | "text/plain"
        ) {
            // Schema 1 (`…manifest.v1+prettyjws`), an artifact, anything else:
            // named, not guessed at.
            return Err(ClientError::MediaType {
                reference: source.to_string(),
                media_type: content_type,
            });
        } else {
            // Some registries answer application/json: the body says what it is.
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or_default();
            match value["mediaType"].as_str() {
                Some(media_type) => media_type.to_string(),
                None if value.get("manifests").is_some() => {
                    spec::MEDIA_TYPE_INDEX.to_string()
                }
                None => spec::MEDIA_TYPE_MANIFEST.to_string(),
            }
        };
    Ok(Fetched {
        media_type,
        bytes,
        digest,
    })
}

/// The platform images run on here: Linux on this machine's CPU, in Go's
/// names (which indexes use).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

// ANCHOR: choose_platform
/// The index entry for `platform`: the best-ranked one (an exact match,
/// else for arm an older variant), the first of equals.
fn choose_platform(
    source: &Reference,
    index: &[u8],
    platform: &Platform,
) -> Result<(Digest, Platform), ClientError> {
    let index = spec::parse_index(index)?;
    let mut best: Option<(usize, &oci_spec::image::Descriptor, Platform)> =
        None;
    let mut available = Vec::new();
    for entry in index.manifests() {
        let Some(p) = entry.platform() else { continue };
        let candidate = Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref().unwrap_or(""),
        );
        if let Some(rank) = platform.rank(&candidate) {
            if best.as_ref().is_none_or(|(b, _, _)| rank < *b) {
                best = Some((rank, entry, candidate.clone()));
            }
        }
        available.push(candidate.to_string());
    }
    match best {
        Some((_, entry, chosen)) => Ok((spec::digest_of(entry)?, chosen)),
        None => Err(ClientError::NoPlatform {
            reference: source.to_string(),
            platform: platform.to_string(),
            available: if available.is_empty() {
                "no platform named".into()
            } else {
                available.join(", ")
            },
        }),
    }
}
// ANCHOR_END: choose_platform

// ANCHOR: fetch_blob
/// Downloads one blob into the store. It streams through the store's blob
/// writer, which hashes every byte; the blob appears in the store only if
/// it is exactly `size` bytes and hashes to `digest`.
pub fn fetch_blob(
    conn: &Conn,
    store: &ImageStore,
    repository: &str,
    digest: &Digest,
    size: u64,
    bar: &ProgressBar,
) -> Result<u64, ClientError> {
    // EXERCISE: lab02-pull-verify
    let what = || format!("GET blob {digest} from {repository}");
    let response = conn.call(
        "GET",
        &format!("/v2/{repository}/blobs/{digest}"),
        &[],
        Payload::Empty,
        Some(Scope {
            repository,
            push: false,
        }),
    )?;
    let response = conn.expect(response, &[200], what)?;
    let mut writer = store.blob_writer()?;
    // One byte more than promised is enough to tell that too much came.
    let mut body =
        bar.wrap_read(response.into_body().into_reader().take(size + 1));
    let received = io::copy(&mut body, &mut writer).map_err(|err| {
        ClientError::Protocol {
            what: what(),
            reason: err.to_string(),
        }
    })?;
    if received != size {
        // Dropping the writer deletes its temporary file.
        return Err(ClientError::Size {
            digest: digest.clone(),
            expected: size,
            actual: received,
        });
    }
    writer.commit(Some(digest)).map_err(|err| match err {
        StoreError::Digest(DigestError::Mismatch { expected, actual }) => {
            ClientError::DigestMismatch {
                what: what(),
                expected,
                actual,
            }
        }
        other => other.into(),
    })?;
    bar.finish_with_message("pulled");
    Ok(received)
    // EXERCISE_END: lab02-pull-verify
}
// ANCHOR_END: fetch_blob
