//! What a layer holds, or a tree, as `tar tv` would list it: for tests, for
//! the book's demos, and for comparing a tree with its layer.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::compression::uncompressed;
use super::LayerError;
use crate::digest::{Digest, DigestWriter};

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedEntry {
    /// Relative, without a trailing slash.
    pub path: String,
    /// `-` file, `d` directory, `l` symlink, `h` hardlink, `c`/`b` device, `p` fifo.
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Content bytes (files only).
    pub size: u64,
    /// Symlink or hardlink target.
    pub link: Option<String>,
    /// Device numbers (devices only).
    pub device: Option<(u32, u32)>,
    /// SHA-256 of the content (files only).
    pub content: Option<Digest>,
}

impl fmt::Display for ListedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = format!("{}/{}", self.uid, self.gid);
        write!(
            f,
            "{}{:04o} {owner:>9} {:>6} {}",
            self.kind, self.mode, self.size, self.path
        )?;
        if let Some((major, minor)) = self.device {
            write!(f, " [{major},{minor}]")?;
        }
        match (self.kind, &self.link) {
            ('l', Some(target)) => write!(f, " -> {target}"),
            (_, Some(target)) => write!(f, " link to {target}"),
            _ => Ok(()),
        }
    }
}

// ANCHOR: list_layer
/// The entries of a layer (gzip or plain tar), in archive order.
pub fn list_layer(layer: impl Read) -> Result<Vec<ListedEntry>, LayerError> {
    let mut archive =
        tar::Archive::new(uncompressed(layer).map_err(LayerError::Read)?);
    let mut listed = Vec::new();
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        let header = entry.header().clone();
        let path = String::from_utf8_lossy(&entry.path_bytes())
            .trim_end_matches('/')
            .to_string();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let field = |r: io::Result<u64>| r.map_err(LayerError::Read);
        let kind = header.entry_type();
        let mut item = ListedEntry {
            path,
            kind: match kind {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                tar::EntryType::Char => 'c',
                tar::EntryType::Block => 'b',
                tar::EntryType::Fifo => 'p',
                _ => '-',
            },
            mode: header.mode().map_err(LayerError::Read)?,
            uid: field(header.uid())?,
            gid: field(header.gid())?,
            size: entry.size(),
            link,
            device: None,
            content: None,
        };
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let major = header.device_major().map_err(LayerError::Read)?;
            let minor = header.device_minor().map_err(LayerError::Read)?;
            item.device = Some((major.unwrap_or(0), minor.unwrap_or(0)));
        }
        if item.kind == '-' {
            let mut hasher = DigestWriter::hasher();
            io::copy(&mut entry, &mut hasher).map_err(LayerError::Read)?;
            item.content = Some(hasher.finish().1);
        } else {
            item.link = item.link.filter(|_| matches!(item.kind, 'l' | 'h'));
        }
        listed.push(item);
    }
    Ok(listed)
}
// ANCHOR_END: list_layer

/// Every entry under `root` (not `root` itself), sorted by path, without
/// following symlinks. Hardlinks show as the files they are.
pub fn list_tree(root: &Path) -> Result<Vec<ListedEntry>, LayerError> {
    let mut listed = Vec::new();
    visit(root, Path::new(""), &mut listed)?;
    listed.sort();
    Ok(listed)
}

fn visit(
    root: &Path,
    rel: &Path,
    out: &mut Vec<ListedEntry>,
) -> Result<(), LayerError> {
    let dir = root.join(rel);
    for child in std::fs::read_dir(&dir)
        .map_err(|e| LayerError::io("read directory", &dir, e))?
    {
        let child =
            child.map_err(|e| LayerError::io("read directory", &dir, e))?;
        let path = rel.join(child.file_name());
        let full = root.join(&path);
        let meta = full
            .symlink_metadata()
            .map_err(|e| LayerError::io("stat", &full, e))?;
        let file_type = meta.file_type();
        let mut item = ListedEntry {
            path: String::from_utf8_lossy(path.as_os_str().as_bytes())
                .into_owned(),
            kind: '-',
            mode: meta.mode() & 0o7777,
            uid: meta.uid() as u64,
            gid: meta.gid() as u64,
            size: 0,
            link: None,
            device: None,
            content: None,
        };
        if file_type.is_dir() {
            item.kind = 'd';
        } else if file_type.is_symlink() {
            item.kind = 'l';
            let target = std::fs::read_link(&full)
                .map_err(|e| LayerError::io("read link", &full, e))?;
            item.link = Some(
                String::from_utf8_lossy(target.as_os_str().as_bytes())
                    .into_owned(),
            );
        } else if file_type.is_char_device() || file_type.is_block_device() {
            item.kind = if file_type.is_char_device() { 'c' } else { 'b' };
            item.device = Some(super::tar::split_dev(meta.rdev()));
        } else if file_type.is_fifo() {
            item.kind = 'p';
        } else if file_type.is_socket() {
            item.kind = 's';
        } else {
            item.size = meta.len();
            let file = std::fs::File::open(&full)
                .map_err(|e| LayerError::io("open", &full, e))?;
            item.content = Some(
                Digest::of_reader(file)
                    .map_err(|e| LayerError::io("read", &full, e))?,
            );
        }
        out.push(item);
        if file_type.is_dir() {
            visit(root, &path, out)?;
        }
    }
    Ok(())
}
