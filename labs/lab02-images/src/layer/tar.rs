//! One tar entry, written the same way every time, and the stream that
//! hashes the tar and its gzip as they are written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::pgzip::ParallelGz;

use super::{LayerError, LayerInfo, WHITEOUT_PREFIX};
use crate::digest::DigestWriter;

/// What kind of file an entry is, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// A symbolic link and its target, byte for byte as the link holds it.
    Symlink(PathBuf),
    /// Another name for a file that comes earlier in the same layer.
    Hardlink(PathBuf),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One file of a layer, as its tar header will describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the layer's root, without a leading `./` or `/`.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Permission bits, with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Bytes of content: regular files only, 0 for everything else.
    pub size: u64,
}

// ANCHOR: append_entry
/// Appends `entry` to `tar`, with `data` as its content (read to exactly
/// `entry.size` bytes), so that the same entry always gives the same bytes:
/// only what describes the file is kept (type, mode, owner numbers, size,
/// link target, device numbers); what describes the moment or the machine
/// (times, user and group names) is left out.
pub fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    entry: &Entry,
    data: impl Read,
) -> Result<(), LayerError> {
    // EXERCISE: lab02-layer-tar
    // A fresh GNU header is all zeros: no user or group names, no access or
    // change times, no PAX records.
    let mut header = tar::Header::new_gnu();
    let mut name = entry.path.as_os_str().as_bytes().to_vec();
    let mut size = 0;
    let mut link = None;
    let kind = match &entry.kind {
        EntryKind::File => {
            size = entry.size;
            tar::EntryType::Regular
        }
        EntryKind::Dir => {
            // Directories end in a slash, as every tar writes them.
            name.push(b'/');
            tar::EntryType::Directory
        }
        EntryKind::Symlink(target) => {
            link = Some(target);
            tar::EntryType::Symlink
        }
        EntryKind::Hardlink(target) => {
            link = Some(target);
            tar::EntryType::Link
        }
        EntryKind::CharDevice { .. } => tar::EntryType::Char,
        EntryKind::BlockDevice { .. } => tar::EntryType::Block,
        EntryKind::Fifo => tar::EntryType::Fifo,
    };
    header.set_entry_type(kind);
    header.set_mode(entry.mode & 0o7777);
    header.set_uid(entry.uid);
    header.set_gid(entry.gid);
    // The one field that would differ on every build.
    header.set_mtime(0);
    header.set_size(size);
    if let EntryKind::CharDevice { major, minor }
    | EntryKind::BlockDevice { major, minor } = entry.kind
    {
        set_device(&mut header, major, minor)
            .map_err(|e| write_error(entry, e))?;
    }
    let link = link.map(|target| target.as_os_str().as_bytes());
    set_names(tar, &mut header, &name, link)
        .map_err(|e| write_error(entry, e))?;
    header.set_cksum();
    tar.append(&header, Exact::new(data, size))
        .map_err(|e| write_error(entry, e))
    // EXERCISE_END: lab02-layer-tar
}
// ANCHOR_END: append_entry

fn write_error(entry: &Entry, source: io::Error) -> LayerError {
    LayerError::Write {
        path: entry.path.clone(),
        source,
    }
}

fn set_device(
    header: &mut tar::Header,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    header.set_device_major(major)?;
    header.set_device_minor(minor)
}

/// Puts the path (and link target) in the header, byte for byte; one that
/// does not fit in the header's 100 bytes goes first in a GNU long-name
/// entry, as GNU tar does. (The tar crate's own setters would normalise
/// them, `a//b` into `a/b`, and a symlink's target must stay what it is.)
fn set_names<W: Write>(
    tar: &mut tar::Builder<W>,
    header: &mut tar::Header,
    path: &[u8],
    link: Option<&[u8]>,
) -> io::Result<()> {
    let fields = header.as_old_mut();
    if path.len() > fields.name.len() {
        append_long_name(tar, b'L', path)?;
    }
    let n = path.len().min(fields.name.len());
    fields.name[..n].copy_from_slice(&path[..n]);
    if let Some(link) = link {
        if link.len() > fields.linkname.len() {
            append_long_name(tar, b'K', link)?;
        }
        let n = link.len().min(fields.linkname.len());
        fields.linkname[..n].copy_from_slice(&link[..n]);
    }
    Ok(())
}

fn append_long_name<W: Write>(
    tar: &mut tar::Builder<W>,
    kind: u8,
    name: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    let label = b"././@LongLink";
    header.as_old_mut().name[..label.len()].copy_from_slice(label);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    // NUL-terminated, as GNU tar writes it.
    header.set_size(name.len() as u64 + 1);
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_cksum();
    tar.append(&header, name.chain(&[0u8][..]))
}

/// Reads exactly `size` bytes from `inner`: fewer is an error, so the archive
/// never gets a header that promises more data than follows it.
struct Exact<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, size: u64) -> Self {
        Exact {
            inner: inner.take(size),
            left: size,
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "content ended {} bytes early (changed while being archived?)",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The entry for `rel` under `root`, read without following symlinks, and
/// the open file for a regular file's content. `None` for what a layer
/// cannot hold (sockets).
pub(crate) fn entry_from_disk(
    root: &Path,
    rel: &Path,
    inodes: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<Option<(Entry, Option<File>)>, LayerError> {
    let full = root.join(rel);
    if rel
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()))
    {
        return Err(LayerError::Reserved { path: full });
    }
    let mut meta = full
        .symlink_metadata()
        .map_err(|e| LayerError::io("stat", &full, e))?;
    let file_type = meta.file_type();
    let mut file = None;
    let kind = if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_symlink() {
        let target = std::fs::read_link(&full)
            .map_err(|e| LayerError::io("read link", &full, e))?;
        EntryKind::Symlink(target)
    } else if file_type.is_file() {
        let key = (meta.dev(), meta.ino());
        match inodes.get(&key) {
            Some(first) if meta.nlink() > 1 => {
                EntryKind::Hardlink(first.clone())
            }
            _ => {
                if meta.nlink() > 1 {
                    inodes.insert(key, rel.to_path_buf());
                }
                // O_NOFOLLOW: if it became a symlink since the stat, fail
                // rather than archive whatever it points to.
                let opened = File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&full)
                    .map_err(|e| LayerError::io("open", &full, e))?;
                // The size of what was opened, not of what was stat'ed.
                meta = opened
                    .metadata()
                    .map_err(|e| LayerError::io("stat", &full, e))?;
                file = Some(opened);
                EntryKind::File
            }
        }
    } else if file_type.is_char_device() || file_type.is_block_device() {
        let (major, minor) = split_dev(meta.rdev());
        if file_type.is_char_device() {
            EntryKind::CharDevice { major, minor }
        } else {
            EntryKind::BlockDevice { major, minor }
        }
    } else if file_type.is_fifo() {
        EntryKind::Fifo
    } else {
        // A socket belongs to a running program; tar cannot carry one.
        return Ok(None);
    };
    let size = if kind == EntryKind::File {
        meta.len()
    } else {
        0
    };
    let entry = Entry {
        path: rel.to_path_buf(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid() as u64,
        gid: meta.gid() as u64,
        size,
    };
    Ok(Some((entry, file)))
}

/// Linux's `dev_t` encoding: 12 bits of major and 20 of minor, interleaved.
pub(crate) fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    (major as u32, minor as u32)
}

// ANCHOR: layer_stream
/// tar → hash (diff ID) → gzip → hash (digest) and count → `out`.
pub(crate) struct LayerStream<W: Write> {
    tar: tar::Builder<DigestWriter<ParallelGz<DigestWriter<W>>>>,
}

impl<W: Write> LayerStream<W> {
    pub(crate) fn new(out: W) -> Self {
        // Gzip members without a name or a time, at level 1 (a few percent
        // bigger than the default level 6, several times faster), on every
        // core: see pgzip.rs.
        let gzip = ParallelGz::new(DigestWriter::new(out));
        LayerStream {
            tar: tar::Builder::new(DigestWriter::new(gzip)),
        }
    }
    // ANCHOR_END: layer_stream

    pub(crate) fn append(
        &mut self,
        entry: &Entry,
        data: impl Read,
    ) -> Result<(), LayerError> {
        append_entry(&mut self.tar, entry, data)
    }

    pub(crate) fn finish(self) -> Result<LayerInfo, LayerError> {
        // into_inner writes the two zero blocks that end a tar.
        let tar = self.tar.into_inner().map_err(LayerError::Finish)?;
        let (gzip, diff_id, _) = tar.finish();
        let compressed = gzip.finish().map_err(LayerError::Finish)?;
        let (mut out, digest, size) = compressed.finish();
        out.flush().map_err(LayerError::Finish)?;
        Ok(LayerInfo {
            digest,
            diff_id,
            size,
        })
    }
}
