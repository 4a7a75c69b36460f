//! Unpacking an image's layers into a root filesystem.
//!
//! Two ways. The fallback works everywhere: apply each layer in order onto
//! one directory, carrying out its whiteouts as deletions
//! ([`apply_layer`]). The default, where the kernel allows it (root, and
//! `overlay` in /proc/filesystems): extract each layer once into a
//! directory of its own, its whiteouts turned into overlayfs's form
//! ([`extract_layer_dir`]), and stack them with an overlayfs mount, with a
//! fresh upper and work directory per container ([`OverlayMount`]). Layers
//! are then shared between containers, and starting one copies nothing.
//!
//! # Extracting safely
//!
//! A layer comes from the network, and a tar file can say anything: its
//! entries are checked one by one, and the policy is this.
// ANCHOR: policy
//!
//! - A path with a `..` component is **refused**. An absolute path is
//!   **re-rooted**: `/etc/passwd` lands at `etc/passwd` inside the rootfs.
//! - The parent directories of an entry are opened one at a time, starting
//!   from the rootfs, each with `O_NOFOLLOW | O_DIRECTORY`: a parent that is
//!   a symlink, put there by an earlier entry or an earlier layer, is
//!   **refused**, never followed. Missing parents are created (mode 0755).
//! - Whatever is already at the entry's path is replaced: a symlink there is
//!   removed, not followed; a directory stays only if the entry is one too.
//! - Symlinks are created as they are: their targets are not looked at now
//!   (inside the container, the rootfs is `/`, so they resolve within it).
//! - A hardlink's target is resolved like a path (re-rooted, no `..`, no
//!   symlinked parents) and must already be in the rootfs, and not be a
//!   directory; anything else is **refused**.
//! - Whiteouts delete through the same walk, so they cannot delete outside.
//! - Content is streamed: an entry that declares more bytes than the layer
//!   holds writes what is there and fails when the layer ends.
//! - Device nodes need `CAP_MKNOD`: without it they are skipped and counted.
//! - Modes are kept as the layer has them, setuid and setgid included
//!   (images legitimately have them); owners too, when running as root.
//!
//! The first refused entry stops the extraction with
//! [`UnpackError::Hostile`], which names it; what was already written stays,
//! so extract into a fresh directory and throw it away on error.
//! [`ApplyOptions::skip_hostile`] lists refused entries in
//! [`ApplyReport::refused`] and goes on instead.
// ANCHOR_END: policy

use std::io;
use std::path::PathBuf;

#[cfg(target_os = "linux")]
pub mod extract;
#[cfg(target_os = "linux")]
pub mod overlay;
pub mod path;
#[cfg(target_os = "linux")]
mod pipeline;
#[cfg(target_os = "linux")]
pub mod resolve;

#[cfg(target_os = "linux")]
pub use extract::{
    apply_layer, apply_layer_with, extract_layer_dir, extract_layer_dir_with,
};
#[cfg(target_os = "linux")]
pub use overlay::{overlay_available, OverlayMount};
pub use path::sanitize;
#[cfg(target_os = "linux")]
pub use resolve::{open_dir_beneath, Unsafe};

/// What unpacking one layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Tar entries read (files, directories, links, whiteouts...).
    pub entries: u64,
    /// Device nodes not created for lack of `CAP_MKNOD`.
    pub skipped_devices: u64,
    /// `entry: reason` for each refused entry (only with
    /// [`ApplyOptions::skip_hostile`]; otherwise the first one is an error).
    pub refused: Vec<String>,
}

/// How to unpack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Skip refused entries (recording them) instead of stopping at the first.
    pub skip_hostile: bool,
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("refused layer entry {entry:?}: {reason}")]
    Hostile { entry: String, reason: String },

    #[error("layer entry {entry:?} declares {declared} bytes, but the layer ends after {found}")]
    Truncated {
        entry: String,
        declared: u64,
        found: u64,
    },

    #[error("reading the layer{}: {source}", at_entry(.entry))]
    Read {
        entry: Option<String>,
        #[source]
        source: io::Error,
    },

    #[error("{op} {path}{}: {source}", for_entry(.entry))]
    Io {
        op: &'static str,
        path: PathBuf,
        /// The entry being unpacked; empty for the rootfs itself.
        entry: String,
        #[source]
        source: io::Error,
    },

    #[error("overlayfs: {0}")]
    Overlay(String),

    #[error("mounting overlayfs on {target}: {source}")]
    Mount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn for_entry(entry: &str) -> String {
    match entry {
        "" => String::new(),
        entry => format!(" (layer entry {entry:?})"),
    }
}

fn at_entry(entry: &Option<String>) -> String {
    match entry {
        Some(entry) => format!(" at entry {entry:?}"),
        None => String::new(),
    }
}

impl UnpackError {
    pub(crate) fn hostile(entry: &str, reason: impl Into<String>) -> Self {
        UnpackError::Hostile {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }
}
