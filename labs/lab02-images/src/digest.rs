//! Content addressing: a blob is named by the SHA-256 of its bytes.
//!
//! Everything in an OCI image (layers, configs, manifests) is stored and
//! fetched by digest, so a reader can always check that it got exactly the
//! bytes it asked for, and two equal blobs are stored once.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// `sha256:<64 lowercase hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest, or bytes do not match one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("{0:?} is not a digest (expected sha256:<64 hex digits>)")]
    Malformed(String),
    #[error("unsupported digest algorithm {0:?} (only sha256)")]
    Algorithm(String),
    #[error(
        "content does not match its digest: expected {expected}, got {actual}"
    )]
    Mismatch { expected: Digest, actual: Digest },
}

impl Digest {
    // ANCHOR: of_bytes
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut hasher = DigestWriter::hasher();
        // io::sink takes everything and never fails.
        hasher.write_all(bytes).expect("hashing into io::sink");
        hasher.finish().1
    }
    // ANCHOR_END: of_bytes

    /// The digest of everything `reader` yields.
    pub fn of_reader(mut reader: impl Read) -> io::Result<Digest> {
        let mut hasher = DigestWriter::hasher();
        io::copy(&mut reader, &mut hasher)?;
        Ok(hasher.finish().1)
    }

    /// Checks `bytes` against this digest.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), DigestError> {
        let actual = Digest::of(bytes);
        if &actual == self {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: self.clone(),
                actual,
            })
        }
    }

    /// The 64 hex digits, as used for file names under `blobs/sha256/`.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The first 12 hex digits, as `docker images` shows them.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        if algorithm != "sha256" {
            return Err(DigestError::Algorithm(algorithm.to_string()));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Malformed(s.to_string()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// ANCHOR: digest_writer
/// A writer that hashes and counts the bytes passing through it on their
/// way to `inner`: a layer on its way to disk, a download on its way into
/// the store. Nothing is read twice and nothing is held in memory.
pub struct DigestWriter<W> {
    inner: W,
    sha: Sha256,
    len: u64,
}
// ANCHOR_END: digest_writer

impl DigestWriter<io::Sink> {
    /// A writer that only hashes: what is written goes nowhere.
    pub fn hasher() -> Self {
        DigestWriter::new(io::sink())
    }
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            sha: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes that went through so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The writer back, with the digest and length of what went through.
    pub fn finish(self) -> (W, Digest, u64) {
        let digest = Digest {
            hex: hex::encode(self.sha.finalize()),
        };
        (self.inner, digest, self.len)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    // ANCHOR: digest_writer_write
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // EXERCISE: lab02-digest
        // A writer may take only part of `buf` (the caller sends the rest
        // later): hash and count exactly what `inner` took, or the digest
        // would name bytes that never arrived, or name some of them twice.
        let taken = self.inner.write(buf)?;
        self.sha.update(&buf[..taken]);
        self.len += taken as u64;
        Ok(taken)
        // EXERCISE_END: lab02-digest
    }
    // ANCHOR_END: digest_writer_write

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
