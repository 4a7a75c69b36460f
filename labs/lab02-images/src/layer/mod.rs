//! Layers: a directory tree, or the changes made to one, as a tar+gzip blob.
//!
//! A layer is named by the digest of its compressed bytes, and an image
//! config lists the digest of each layer's uncompressed tar (its *diff ID*).
//! Both are only useful if the same tree always gives the same bytes, so
//! every layer written here is deterministic: entries in a fixed order, every
//! timestamp zero, no user or group names, and a gzip header without a time
//! or file name. Build the same tree twice, on two machines, and the digests
//! match.
//!
//! A layer on top of another also has to say what it *removed*. Tar has no
//! way to, so the OCI image spec uses marker files called whiteouts
//! ([`whiteout`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use crate::digest::Digest;

pub mod changes;
pub mod compression;
pub mod listing;
pub mod pgzip;
pub mod tar;
pub mod whiteout;

pub use self::tar::{append_entry, Entry, EntryKind};
pub use changes::{changes_between, changes_from_overlay_upper};
pub use listing::{list_layer, list_tree, ListedEntry};
pub use whiteout::{whiteout_path, Whiteout, OPAQUE_MARKER, WHITEOUT_PREFIX};

/// What a written layer is called, and how big it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// SHA-256 of the gzip bytes: the blob's name in a layout or a registry.
    pub digest: Digest,
    /// SHA-256 of the uncompressed tar: what the image config lists.
    pub diff_id: Digest,
    /// Bytes of gzip written.
    pub size: u64,
}

/// One change to a tree, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// The entry at this path (a file, a link, or a directory alone, not its
    /// content) is new or modified: the layer takes it from the tree.
    Added(PathBuf),
    /// This path (and everything under it) is gone: a whiteout.
    Deleted(PathBuf),
    /// This directory replaces the one below it instead of merging with it:
    /// nothing of the lower layers' content shows through.
    Opaque(PathBuf),
}

impl Change {
    pub fn path(&self) -> &Path {
        match self {
            Change::Added(p) | Change::Deleted(p) | Change::Opaque(p) => p,
        }
    }
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("writing {path} into the layer: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("finishing the layer stream: {0}")]
    Finish(#[source] io::Error),

    #[error("bad change {path:?}: {reason}")]
    BadChange { path: PathBuf, reason: &'static str },

    #[error(
        "{path}: names starting with {prefix:?} are reserved for whiteouts and cannot be put in a layer",
        prefix = WHITEOUT_PREFIX
    )]
    Reserved { path: PathBuf },

    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
}

impl LayerError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        LayerError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

// ANCHOR: write_layer_from_dir
/// Writes the whole tree under `root` as one layer: a base image, or the
/// files of a `COPY`.
pub fn write_layer_from_dir(
    root: &Path,
    out: impl Write,
) -> Result<LayerInfo, LayerError> {
    let mut paths = Vec::new();
    walk(root, Path::new(""), &mut paths)?;
    let items = paths.into_iter().map(|p| (p, Item::Tree)).collect();
    write_items(root, items, out)
}
// ANCHOR_END: write_layer_from_dir

/// Writes the `changes` made to a tree as a layer. Added entries are read
/// from `root` (the tree after the changes: an overlayfs upper directory or
/// the new tree of a comparison); their parent directories come along, so
/// the layer can be applied on its own.
// ANCHOR: write_layer
pub fn write_layer(
    root: &Path,
    changes: &[Change],
    out: impl Write,
) -> Result<LayerInfo, LayerError> {
    let mut items = BTreeMap::new();
    for change in changes {
        let path = check_change(change)?;
        // The parents first, as they are in the tree.
        for ancestor in ancestors(path) {
            if root
                .join(&ancestor)
                .symlink_metadata()
                .is_ok_and(|m| m.is_dir())
            {
                items.insert(ancestor, Item::Tree);
            }
        }
        match change {
            Change::Added(p) => {
                items.insert(p.clone(), Item::Tree);
            }
            Change::Deleted(_) | Change::Opaque(_) => {
                if let Change::Opaque(dir) = change {
                    if !dir.as_os_str().is_empty() {
                        items.insert(dir.clone(), Item::Tree);
                    }
                }
                let marker =
                    whiteout_path(change).ok_or(LayerError::BadChange {
                        path: path.to_path_buf(),
                        reason: "a deletion needs a file name",
                    })?;
                items.insert(marker, Item::Marker);
            }
        }
    }
    write_items(root, items.into_iter().collect(), out)
}
// ANCHOR_END: write_layer

/// What goes in the layer at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// The entry at that path in the tree.
    Tree,
    /// An empty whiteout file.
    Marker,
}

fn write_items(
    root: &Path,
    mut items: Vec<(PathBuf, Item)>,
    out: impl Write,
) -> Result<LayerInfo, LayerError> {
    items.sort_by(|a, b| layer_order(&a.0, &b.0));
    items.dedup_by(|a, b| a.0 == b.0);
    let mut stream = self::tar::LayerStream::new(out);
    // Files with several names: the first name in the layer carries the data,
    // the others become hardlinks to it.
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for (path, item) in items {
        match item {
            Item::Marker => {
                stream.append(&whiteout::marker_entry(path), io::empty())?
            }
            Item::Tree => {
                if let Some((entry, data)) =
                    self::tar::entry_from_disk(root, &path, &mut inodes)?
                {
                    match data {
                        Some(file) => stream.append(&entry, file)?,
                        None => stream.append(&entry, io::empty())?,
                    }
                }
            }
        }
    }
    stream.finish()
}

// ANCHOR: layer_order
/// The order of entries in a layer: by path, one component at a time (so a
/// directory comes right before its content), with a directory's opaque
/// marker first in it, before anything the same layer puts there.
pub fn layer_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    sort_key(a).cmp(&sort_key(b))
}

fn sort_key(path: &Path) -> Vec<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.iter()
        .map(|c| {
            if c == OPAQUE_MARKER {
                &b""[..]
            } else {
                c.as_bytes()
            }
        })
        .collect()
}
// ANCHOR_END: layer_order

/// Every path under `root` (not `root` itself), in layer order.
fn walk(
    root: &Path,
    rel: &Path,
    out: &mut Vec<PathBuf>,
) -> Result<(), LayerError> {
    let dir = root.join(rel);
    let mut names = Vec::new();
    for child in std::fs::read_dir(&dir)
        .map_err(|e| LayerError::io("read directory", &dir, e))?
    {
        let child =
            child.map_err(|e| LayerError::io("read directory", &dir, e))?;
        names.push(child.file_name());
    }
    names.sort();
    for name in names {
        let path = rel.join(&name);
        let full = root.join(&path);
        let meta = full
            .symlink_metadata()
            .map_err(|e| LayerError::io("stat", &full, e))?;
        out.push(path.clone());
        if meta.is_dir() {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// Checks that a change names a plain relative path and returns it.
fn check_change(change: &Change) -> Result<&Path, LayerError> {
    let path = change.path();
    let bad = |reason| LayerError::BadChange {
        path: path.to_path_buf(),
        reason,
    };
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("paths in a layer are relative, without `.` or `..`"));
    }
    if path.as_os_str().is_empty() && !matches!(change, Change::Opaque(_)) {
        return Err(bad("only an opaque change may name the root"));
    }
    Ok(path)
}

/// `a`, `a/b` for `a/b/c`: the directories above a path, outermost first.
fn ancestors(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = path
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    out.reverse();
    out
}
