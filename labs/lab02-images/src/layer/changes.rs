//! Finding what changed in a tree, to write only that as a layer.
//!
//! With overlayfs the kernel has already done it: the upper directory holds
//! exactly what was added or modified, plus overlay's own whiteouts. Without
//! overlayfs, a build copies the tree and compares the copy with the
//! original afterwards.
//!
//! Not handled: overlay's `redirect_dir` (a renamed directory recorded as an
//! xattr; off by default) and xattr-only whiteouts made in user namespaces.

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{Change, LayerError};

// ANCHOR: changes_from_overlay_upper
/// The changes recorded in an overlayfs upper directory: every entry is an
/// addition, except overlay's whiteouts (a character device 0/0: a
/// deletion) and directories marked opaque (`trusted.overlay.opaque="y"`).
pub fn changes_from_overlay_upper(
    upper: &Path,
) -> Result<Vec<Change>, LayerError> {
    let mut changes = Vec::new();
    visit_upper(upper, Path::new(""), &mut changes)?;
    Ok(changes)
}

fn visit_upper(
    upper: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), LayerError> {
    for name in sorted_names(&upper.join(rel))? {
        let path = rel.join(&name);
        let full = upper.join(&path);
        let meta = lstat(&full)?;
        if is_overlay_whiteout(&meta) {
            out.push(Change::Deleted(path));
            continue;
        }
        out.push(Change::Added(path.clone()));
        if meta.is_dir() {
            if is_opaque(&full)? {
                out.push(Change::Opaque(path.clone()));
            }
            visit_upper(upper, &path, out)?;
        }
    }
    Ok(())
}
// ANCHOR_END: changes_from_overlay_upper

/// overlayfs marks a deleted path with a character device numbered 0/0.
pub fn is_overlay_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether overlayfs treats the directory `dir` as opaque.
#[cfg(target_os = "linux")]
pub fn is_opaque(dir: &Path) -> Result<bool, LayerError> {
    use std::os::unix::ffi::OsStrExt;

    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| LayerError::io("read xattr", dir, io::Error::other(e)))?;
    let mut value = [0u8; 8];
    // SAFETY: both strings are NUL-terminated, the buffer is as long as we say.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            // No such attribute, or a filesystem without xattrs: not opaque.
            // (Unprivileged readers do not see trusted.* at all.)
            Some(libc::ENODATA) | Some(libc::ENOTSUP) | Some(libc::ERANGE) => {
                Ok(false)
            }
            _ => Err(LayerError::io("read xattr", dir, err)),
        };
    }
    Ok(&value[..n as usize] == b"y")
}

/// Without Linux there is no overlayfs, so no opaque directories.
#[cfg(not(target_os = "linux"))]
pub fn is_opaque(_dir: &Path) -> Result<bool, LayerError> {
    Ok(false)
}

// ANCHOR: changes_between
/// The changes that turn the tree `lower` into the tree `upper`: entries
/// only in `upper`, or different there (type, size, mode, owner, mtime,
/// link target, device number or content), are added; entries only in
/// `lower` are deleted. Everything under a new directory is added too.
pub fn changes_between(
    lower: &Path,
    upper: &Path,
) -> Result<Vec<Change>, LayerError> {
    let mut changes = Vec::new();
    compare(lower, upper, Path::new(""), &mut changes)?;
    Ok(changes)
}
// ANCHOR_END: changes_between

fn compare(
    lower: &Path,
    upper: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), LayerError> {
    let old = sorted_names(&lower.join(rel))?;
    let new = sorted_names(&upper.join(rel))?;
    // Both lists are sorted: walk them side by side.
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push(Change::Deleted(rel.join(&old[i])));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                add_all(upper, &rel.join(&new[j]), out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let path = rel.join(&new[j]);
                let a = lstat(&lower.join(&path))?;
                let b = lstat(&upper.join(&path))?;
                if a.is_dir() && b.is_dir() {
                    if !same_metadata(&a, &b) {
                        out.push(Change::Added(path.clone()));
                    }
                    compare(lower, upper, &path, out)?;
                } else if b.is_dir() {
                    // A file became a directory: all of it is new.
                    add_all(upper, &path, out)?;
                } else if !same_entry(
                    &lower.join(&path),
                    &a,
                    &upper.join(&path),
                    &b,
                )? {
                    out.push(Change::Added(path));
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// `path` and, for a directory, everything under it.
fn add_all(
    root: &Path,
    path: &Path,
    out: &mut Vec<Change>,
) -> Result<(), LayerError> {
    out.push(Change::Added(path.to_path_buf()));
    if lstat(&root.join(path))?.is_dir() {
        for name in sorted_names(&root.join(path))? {
            add_all(root, &path.join(name), out)?;
        }
    }
    Ok(())
}

fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

/// Two non-directories: the same file, as far as a layer can tell?
fn same_entry(
    a_path: &Path,
    a: &Metadata,
    b_path: &Path,
    b: &Metadata,
) -> Result<bool, LayerError> {
    if !same_metadata(a, b) || a.len() != b.len() || a.rdev() != b.rdev() {
        return Ok(false);
    }
    if a.file_type().is_symlink() {
        let read = |p: &Path| {
            fs::read_link(p).map_err(|e| LayerError::io("read link", p, e))
        };
        return Ok(read(a_path)? == read(b_path)?);
    }
    if a.is_file() {
        // Same size, same time: still compare the bytes (a copy with the
        // time kept, then edited within the same clock tick, would fool us).
        return same_content(a_path, b_path);
    }
    Ok(true)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, LayerError> {
    let open =
        |p: &Path| File::open(p).map_err(|e| LayerError::io("open", p, e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba)
            .map_err(|e| LayerError::io("read", a, e))?;
        let nb = read_full(&mut fb, &mut bb)
            .map_err(|e| LayerError::io("read", b, e))?;
        if ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` unless the reader ends first; returns how much it read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn lstat(path: &Path) -> Result<Metadata, LayerError> {
    path.symlink_metadata()
        .map_err(|e| LayerError::io("stat", path, e))
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>, LayerError> {
    let mut names = Vec::new();
    for child in fs::read_dir(dir)
        .map_err(|e| LayerError::io("read directory", dir, e))?
    {
        names.push(
            child
                .map_err(|e| LayerError::io("read directory", dir, e))?
                .file_name(),
        );
    }
    names.sort();
    Ok(names)
}
