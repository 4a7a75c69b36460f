//! Whiteouts: how a layer says that something of the layers below is gone.
//!
//! Tar can only add files, so the OCI image spec marks a deletion with an
//! empty file named after the deleted one: deleting `a/b` puts `a/.wh.b` in
//! the layer. A directory that replaces the lower one wholesale (deleted,
//! then made again) holds the marker `.wh..wh..opq`, listed first in it: the
//! lower layers' content of that directory no longer shows, only what this
//! layer puts there.
//!
//! overlayfs says the same in its own way: a deletion is a character device
//! 0/0 at the deleted path, an opaque directory has the extended attribute
//! `trusted.overlay.opaque="y"`. [`super::changes_from_overlay_upper`]
//! reads that form; [`crate::unpack`] writes it back.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{Change, Entry, EntryKind};

/// Names starting with this mark a deletion.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// In a directory, this name makes the directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// overlayfs's attribute for an opaque directory, and its value.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

// ANCHOR: whiteout_path
/// The path of the whiteout file that records `change` in a layer:
/// `a/.wh.b` for the deletion of `a/b`, `d/.wh..wh..opq` for an opaque `d`.
/// `None` for an addition (it needs no marker) or a deletion without a file
/// name.
pub fn whiteout_path(change: &Change) -> Option<PathBuf> {
    // EXERCISE: lab02-whiteouts
    match change {
        Change::Added(_) => None,
        Change::Deleted(path) => {
            let mut name = OsString::from(WHITEOUT_PREFIX);
            name.push(path.file_name()?);
            Some(path.with_file_name(name))
        }
        Change::Opaque(dir) => Some(dir.join(OPAQUE_MARKER)),
    }
    // EXERCISE_END: lab02-whiteouts
}
// ANCHOR_END: whiteout_path

/// What a whiteout-like file name in a layer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// `.wh.NAME`: NAME, beside the marker, is deleted.
    Deleted(&'a OsStr),
    /// `.wh..wh..opq`: the directory holding the marker is opaque.
    Opaque,
    /// Another `.wh..wh.` name: aufs bookkeeping, ignored.
    Meta,
}

impl<'a> Whiteout<'a> {
    /// Reads a file name; `None` when it is an ordinary name.
    pub fn parse(name: &'a OsStr) -> Option<Whiteout<'a>> {
        let bytes = name.as_bytes();
        if bytes == OPAQUE_MARKER.as_bytes() {
            Some(Whiteout::Opaque)
        } else if bytes.starts_with(b".wh..wh.") {
            Some(Whiteout::Meta)
        } else {
            let deleted = bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes())?;
            Some(Whiteout::Deleted(OsStr::from_bytes(deleted)))
        }
    }
}

/// The entry for a whiteout file: empty, owned by root, always the same.
pub(crate) fn marker_entry(path: PathBuf) -> Entry {
    Entry {
        path,
        kind: EntryKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            Whiteout::parse(OsStr::new(".wh.b")),
            Some(Whiteout::Deleted(OsStr::new("b")))
        );
        assert_eq!(
            Whiteout::parse(OsStr::new(".wh..wh..opq")),
            Some(Whiteout::Opaque)
        );
        assert_eq!(
            Whiteout::parse(OsStr::new(".wh..wh.plnk")),
            Some(Whiteout::Meta)
        );
        assert_eq!(Whiteout::parse(OsStr::new("b.wh.")), None);
    }
}
