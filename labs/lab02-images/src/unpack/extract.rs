//! Extracting a layer's entries, by the policy in [`super`]: every file is
//! made relative to a directory descriptor reached by
//! [`open_dir_beneath`], never through a path the kernel would resolve.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat,
    FchmodatFlags, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{
    fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags,
};

use super::pipeline::with_tar_stream;
use super::resolve::{kind, open_dir_beneath, Unsafe, STEP};
use super::{sanitize, ApplyOptions, ApplyReport, UnpackError};
use crate::layer::whiteout::{Whiteout, OVERLAY_OPAQUE_XATTR};

/// Overlay whiteouts are 0/0 character devices: mknod needs root.
const NEEDS_ROOT: &str =
    "making overlay whiteouts (character devices 0/0) needs root";
/// Why an entry could not be made where the layer says.
const NO_PARENT: &str = "its parent directory could not be created";

// ANCHOR: apply_layer
/// Applies `layer` (gzip or plain tar) onto the directory `rootfs`, on top
/// of what earlier layers put there: entries replace what is in their way,
/// whiteouts delete. Stops at the first refused entry (see [`super`]).
pub fn apply_layer(
    rootfs: &Path,
    layer: impl Read,
) -> Result<ApplyReport, UnpackError> {
    apply_layer_with(rootfs, layer, ApplyOptions::default())
}
// ANCHOR_END: apply_layer

/// [`apply_layer`], with options.
pub fn apply_layer_with(
    rootfs: &Path,
    layer: impl Read,
    options: ApplyOptions,
) -> Result<ApplyReport, UnpackError> {
    Extractor::new(rootfs, Target::Rootfs, options)?.run(layer)
}

// ANCHOR: extract_layer_dir
/// Extracts `layer` alone into `dest` (a fresh directory), for use as an
/// overlayfs lower directory: its whiteouts become overlay's own, a
/// character device 0/0 for a deletion and `trusted.overlay.opaque="y"` on
/// an opaque directory (both need root).
pub fn extract_layer_dir(
    dest: &Path,
    layer: impl Read,
) -> Result<ApplyReport, UnpackError> {
    extract_layer_dir_with(dest, layer, ApplyOptions::default())
}
// ANCHOR_END: extract_layer_dir

/// [`extract_layer_dir`], with options.
pub fn extract_layer_dir_with(
    dest: &Path,
    layer: impl Read,
    options: ApplyOptions,
) -> Result<ApplyReport, UnpackError> {
    Extractor::new(dest, Target::OverlayLower, options)?.run(layer)
}

/// Where the layer goes, which decides what a whiteout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Onto the result of the layers below: whiteouts delete.
    Rootfs,
    /// Into a directory of its own: whiteouts are recorded for overlayfs.
    OverlayLower,
}

/// An entry's metadata, from its header.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

struct Extractor<'a> {
    root: OwnedFd,
    root_path: &'a Path,
    target: Target,
    options: ApplyOptions,
    report: ApplyReport,
    /// What this layer has put in place, and their parents: per the OCI
    /// spec, a layer's whiteouts hide the layers below, not its own entries.
    written: HashSet<PathBuf>,
    /// Directories to give their mode and mtime once their content is in
    /// (a read-only directory could not take content; adding content would
    /// change the mtime).
    dirs: Vec<(PathBuf, Meta)>,
    /// The directories of the last entry's parent, open, the root first:
    /// in layer order the next entry is usually in the same directory or
    /// one below, so it is reached from there instead of from the root.
    chain: Vec<(OsString, OwnedFd)>,
    /// Set when anything was removed: a directory in `chain` may be gone,
    /// so the next entry starts again from the root.
    stale: Cell<bool>,
    /// For copying file content, allocated once.
    buf: Vec<u8>,
    /// The directory the last entry made, still open: its content, next
    /// in the layer, is reached through it.
    made_dir: Option<OwnedFd>,
}

impl<'a> Extractor<'a> {
    fn new(
        root_path: &'a Path,
        target: Target,
        options: ApplyOptions,
    ) -> Result<Self, UnpackError> {
        let root = open(
            root_path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| UnpackError::Io {
            op: "open the rootfs",
            path: root_path.to_path_buf(),
            entry: String::new(),
            source: errno.into(),
        })?;
        Ok(Extractor {
            root,
            root_path,
            target,
            options,
            report: ApplyReport::default(),
            written: HashSet::new(),
            dirs: Vec::new(),
            chain: Vec::new(),
            stale: Cell::new(false),
            buf: vec![0u8; 64 * 1024],
            made_dir: None,
        })
    }

    fn run(self, layer: impl Read) -> Result<ApplyReport, UnpackError> {
        // Decompressed on this thread, extracted on another.
        with_tar_stream(layer, move |tar| self.extract(tar))
    }

    fn extract(
        mut self,
        tar: &mut dyn Read,
    ) -> Result<ApplyReport, UnpackError> {
        let read = |source| UnpackError::Read {
            entry: None,
            source,
        };
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().map_err(read)? {
            let mut entry = entry.map_err(read)?;
            self.report.entries += 1;
            match self.entry(&mut entry) {
                Ok(()) => {}
                Err(UnpackError::Hostile { entry, reason })
                    if self.options.skip_hostile =>
                {
                    self.report.refused.push(format!("{entry}: {reason}"));
                }
                Err(e) => return Err(e),
            }
        }
        self.finish_dirs()?;
        Ok(self.report)
    }

    // ANCHOR: entry
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
    ) -> Result<(), UnpackError> {
        let raw_path = entry.path_bytes().into_owned();
        let raw = String::from_utf8_lossy(&raw_path).into_owned();
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            return Ok(());
        }
        let rel = sanitize(Path::new(OsStr::from_bytes(&raw_path)))
            .map_err(|reason| UnpackError::hostile(&raw, reason))?;
        let (Some(name), Some(parent_rel)) = (rel.file_name(), rel.parent())
        else {
            // `./`, the rootfs itself: it keeps the metadata it has.
            return Ok(());
        };
        let (name, parent_rel) =
            (name.to_os_string(), parent_rel.to_path_buf());
        if let Some(whiteout) = Whiteout::parse(&name) {
            return self.whiteout(&raw, &parent_rel, whiteout);
        }
        // Its parent, reached safely, from the last entry's when they share
        // directories.
        let mut chain = std::mem::take(&mut self.chain);
        let result =
            self.reach(&mut chain, &raw, &parent_rel)
                .and_then(|parent| {
                    let meta = read_meta(entry.header(), &raw)?;
                    let at = At {
                        parent,
                        name: &name,
                        rel: &rel,
                        raw: &raw,
                    };
                    self.place(&at, meta, entry)
                });
        if let (Ok(()), Some(dir)) = (&result, self.made_dir.take()) {
            // `chain` holds the parent: with the new directory, the entry.
            chain.push((name, dir));
        }
        self.made_dir = None;
        self.chain = chain;
        result
    }
    // ANCHOR_END: entry

    /// Reaches the directory `rel` from the longest start of it that
    /// `chain` holds open, one component at a time through
    /// [`open_dir_beneath`] (so with the same refusals), and leaves `chain`
    /// holding `rel`'s directories.
    fn reach<'c>(
        &self,
        chain: &'c mut Vec<(OsString, OwnedFd)>,
        raw: &str,
        rel: &Path,
    ) -> Result<BorrowedFd<'c>, UnpackError> {
        self.reach_or_not(chain, raw, rel, true)?
            .ok_or_else(|| UnpackError::hostile(raw, NO_PARENT))
    }

    /// [`Self::reach`]; without `create`, `None` when `rel` is not there.
    fn reach_or_not<'c>(
        &self,
        chain: &'c mut Vec<(OsString, OwnedFd)>,
        raw: &str,
        rel: &Path,
        create: bool,
    ) -> Result<Option<BorrowedFd<'c>>, UnpackError> {
        if self.stale.replace(false) || chain.is_empty() {
            chain.clear();
            let root = openat(&self.root, ".", STEP, Mode::empty()).map_err(
                |errno| self.io_at("open directory", Path::new(""), raw, errno),
            )?;
            chain.push((OsString::new(), root));
        }
        let names: Vec<&OsStr> = rel.iter().collect();
        let common = chain[1..]
            .iter()
            .zip(&names)
            .take_while(|((open, _), name)| open == *name)
            .count();
        chain.truncate(common + 1);
        for (i, name) in names.iter().enumerate().skip(common) {
            let base = chain
                .last()
                .map(|(_, fd)| fd.as_fd())
                .ok_or_else(|| UnpackError::hostile(raw, NO_PARENT))?;
            // Paths in refusals are the rootfs's, as if walked from it.
            let above: PathBuf = names[..i].iter().collect();
            let fd = match open_dir_beneath(base, Path::new(name), create) {
                Ok(Some(fd)) => fd,
                Ok(None) => return Ok(None),
                Err(Unsafe::Sys { at, errno }) => {
                    return Err(self.io_at(
                        "open directory",
                        &above.join(at),
                        raw,
                        errno,
                    ))
                }
                Err(refusal) => {
                    return Err(UnpackError::hostile(
                        raw,
                        rebase(&above, refusal).to_string(),
                    ))
                }
            };
            chain.push((name.to_os_string(), fd));
        }
        Ok(chain.last().map(|(_, fd)| fd.as_fd()))
    }

    /// Makes the entry at `at`, whatever its kind.
    fn place<R: Read>(
        &mut self,
        at: &At<'_>,
        meta: Meta,
        entry: &mut tar::Entry<R>,
    ) -> Result<(), UnpackError> {
        let entry_type = entry.header().entry_type();
        let raw = at.raw;
        match entry_type {
            tar::EntryType::Directory => self.make_dir(at, meta)?,
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::GNUSparse => self.make_file(at, meta, entry)?,
            tar::EntryType::Symlink => {
                let target = link_name(entry, raw)?;
                self.make_symlink(at, meta, &target)?
            }
            tar::EntryType::Link => {
                let target = link_name(entry, raw)?;
                self.make_hardlink(at, &target)?
            }
            tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo => {
                let header = entry.header();
                let device = |n: io::Result<Option<u32>>| {
                    n.map(Option::unwrap_or_default).map_err(|source| {
                        UnpackError::Read {
                            entry: Some(raw.to_string()),
                            source,
                        }
                    })
                };
                let (major, minor) = (
                    device(header.device_major())?,
                    device(header.device_minor())?,
                );
                let node = match entry_type {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                if !self.make_node(
                    at,
                    meta,
                    node,
                    makedev(major.into(), minor.into()),
                )? {
                    return Ok(());
                }
            }
            other => {
                return Err(UnpackError::hostile(
                    raw,
                    format!(
                        "unsupported entry type {:?}",
                        other.as_byte() as char
                    ),
                ))
            }
        }
        self.mark_written(at.rel);
        Ok(())
    }

    fn mark_written(&mut self, rel: &Path) {
        for path in rel.ancestors() {
            if !self.written.insert(path.to_path_buf()) {
                break;
            }
        }
    }

    /// The directory `rel` under the root, reached safely; refusals name `raw`.
    fn dir(
        &self,
        raw: &str,
        rel: &Path,
        create: bool,
    ) -> Result<Option<OwnedFd>, UnpackError> {
        open_dir_beneath(self.root.as_fd(), rel, create).map_err(|unsafe_| {
            match unsafe_ {
                Unsafe::Sys { at, errno } => UnpackError::Io {
                    op: "open directory",
                    path: self.root_path.join(at),
                    entry: raw.to_string(),
                    source: errno.into(),
                },
                refusal => UnpackError::hostile(raw, refusal.to_string()),
            }
        })
    }

    fn io(
        &self,
        op: &'static str,
        at: &At<'_>,
    ) -> impl FnOnce(Errno) -> UnpackError {
        let path = self.root_path.join(at.rel);
        let entry = at.raw.to_string();
        move |errno| UnpackError::Io {
            op,
            path,
            entry,
            source: errno.into(),
        }
    }

    // ANCHOR: whiteout
    fn whiteout(
        &mut self,
        raw: &str,
        dir_rel: &Path,
        whiteout: Whiteout<'_>,
    ) -> Result<(), UnpackError> {
        let at = |name: &OsStr| dir_rel.join(name);
        match (whiteout, self.target) {
            (Whiteout::Meta, _) => Ok(()),
            (Whiteout::Deleted(name), _) if !is_plain_name(name) => {
                Err(UnpackError::hostile(raw, "the whiteout names no file"))
            }
            // Something this layer put there: the whiteout is for the layers below.
            (Whiteout::Deleted(name), _)
                if self.written.contains(&at(name)) =>
            {
                Ok(())
            }
            (Whiteout::Deleted(name), Target::Rootfs) => {
                let Some(dir) = self.dir(raw, dir_rel, false)? else {
                    return Ok(());
                };
                let rel = at(name);
                self.stale.set(true);
                remove_any(dir.as_fd(), name)
                    .map_err(|errno| self.io_at("delete", &rel, raw, errno))
            }
            (Whiteout::Deleted(name), Target::OverlayLower) => {
                let dir = self
                    .dir(raw, dir_rel, true)?
                    .ok_or_else(|| UnpackError::hostile(raw, NO_PARENT))?;
                if exists(dir.as_fd(), name) {
                    // A directory this layer made for deeper entries.
                    return Ok(());
                }
                let made =
                    mknodat(&dir, name, SFlag::S_IFCHR, Mode::empty(), 0);
                made.map_err(|errno| match errno {
                    Errno::EPERM => UnpackError::Overlay(NEEDS_ROOT.into()),
                    errno => self.io_at("make whiteout", &at(name), raw, errno),
                })
            }
            // ANCHOR_END: whiteout
            (Whiteout::Opaque, Target::Rootfs) => {
                let Some(dir) = self.dir(raw, dir_rel, false)? else {
                    return Ok(());
                };
                for child in list_dir(dir.as_fd())
                    .map_err(|e| self.io_at("list", dir_rel, raw, e))?
                {
                    if !self.written.contains(&at(&child)) {
                        self.stale.set(true);
                        remove_any(dir.as_fd(), &child).map_err(|errno| {
                            self.io_at("delete", &at(&child), raw, errno)
                        })?;
                    }
                }
                Ok(())
            }
            (Whiteout::Opaque, Target::OverlayLower) => {
                let dir = self.dir(raw, dir_rel, true)?.ok_or_else(|| {
                    UnpackError::hostile(
                        raw,
                        "its directory could not be created",
                    )
                })?;
                set_opaque(dir.as_fd()).map_err(|errno| match errno {
                    Errno::EPERM => UnpackError::Overlay(
                        "marking opaque directories (trusted.* xattrs) needs root".into(),
                    ),
                    errno => self.io_at("set opaque", dir_rel, raw, errno),
                })
            }
        }
    }

    fn io_at(
        &self,
        op: &'static str,
        rel: &Path,
        raw: &str,
        errno: Errno,
    ) -> UnpackError {
        UnpackError::Io {
            op,
            path: self.root_path.join(rel),
            entry: raw.to_string(),
            source: errno.into(),
        }
    }

    /// Removes what is at the entry's path. With `keep_dir`, an existing
    /// directory stays (and `true` says so): a directory entry over a
    /// directory only updates its metadata.
    fn clear(&self, at: &At<'_>, keep_dir: bool) -> Result<bool, UnpackError> {
        match fstatat(at.parent, at.name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(self.io("stat", at)(errno)),
            Ok(st) if keep_dir && kind(st.st_mode) == SFlag::S_IFDIR => {
                Ok(true)
            }
            Ok(_) => {
                self.stale.set(true);
                remove_any(at.parent, at.name)
                    .map_err(self.io("replace", at))?;
                Ok(false)
            }
        }
    }

    fn make_dir(&mut self, at: &At<'_>, meta: Meta) -> Result<(), UnpackError> {
        if !self.clear(at, true)? {
            mkdirat(at.parent, at.name, Mode::from_bits_truncate(0o700))
                .map_err(self.io("create directory", at))?;
        }
        let dir = openat(at.parent, at.name, STEP, Mode::empty())
            .map_err(self.io("open directory", at))?;
        chown_kept(fchown(&dir, uid(meta.uid), gid(meta.gid)))
            .map_err(self.io("chown", at))?;
        self.dirs.push((at.rel.to_path_buf(), meta));
        self.made_dir = Some(dir);
        Ok(())
    }

    fn make_file<R: Read>(
        &mut self,
        at: &At<'_>,
        meta: Meta,
        data: &mut tar::Entry<R>,
    ) -> Result<(), UnpackError> {
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let create = || {
            openat(at.parent, at.name, flags, Mode::from_bits_truncate(0o600))
        };
        // Into a fresh directory the name is free: one call, not a stat
        // first. O_EXCL fails on anything there, a symlink included, and
        // only then is it cleared away.
        let fd = match create() {
            Err(Errno::EEXIST) => {
                self.clear(at, false)?;
                create()
            }
            other => other,
        }
        .map_err(self.io("create file", at))?;
        let mut file = File::from(fd);
        // Streamed, and never more than the layer holds: a header can claim
        // a terabyte, only the bytes that follow it get written.
        let declared = data.size();
        let mut copied = 0u64;
        let buf = &mut self.buf;
        while copied < declared {
            let want = buf.len().min((declared - copied) as usize);
            let n = data.read(&mut buf[..want]).map_err(|source| {
                UnpackError::Read {
                    entry: Some(at.raw.to_string()),
                    source,
                }
            })?;
            if n == 0 {
                return Err(UnpackError::Truncated {
                    entry: at.raw.to_string(),
                    declared,
                    found: copied,
                });
            }
            file.write_all(&buf[..n])
                .map_err(|source| UnpackError::Io {
                    op: "write",
                    path: self.root_path.join(at.rel),
                    entry: at.raw.to_string(),
                    source,
                })?;
            copied += n as u64;
        }
        // chown first: it clears setuid and setgid, the chmod puts them back.
        chown_kept(fchown(&file, uid(meta.uid), gid(meta.gid)))
            .map_err(self.io("chown", at))?;
        fchmod(&file, mode(meta.mode)).map_err(self.io("chmod", at))?;
        futimens(&file, &time(meta.mtime), &time(meta.mtime))
            .map_err(self.io("set times", at))?;
        Ok(())
    }

    fn make_symlink(
        &mut self,
        at: &At<'_>,
        meta: Meta,
        target: &[u8],
    ) -> Result<(), UnpackError> {
        self.clear(at, false)?;
        // Made as it is: the target is not looked at, let alone followed.
        symlinkat(OsStr::from_bytes(target), at.parent, at.name)
            .map_err(self.io("create symlink", at))?;
        self.owner_and_time(at, meta)
    }

    fn make_hardlink(
        &mut self,
        at: &At<'_>,
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let shown = String::from_utf8_lossy(target);
        let refuse = |why: String| {
            UnpackError::hostile(
                at.raw,
                format!("hardlink target {shown:?} {why}"),
            )
        };
        let target_rel = sanitize(Path::new(OsStr::from_bytes(target)))
            .map_err(|r| refuse(r.to_string()))?;
        let (Some(target_name), Some(target_dir)) =
            (target_rel.file_name(), target_rel.parent())
        else {
            return Err(refuse("is the rootfs itself".into()));
        };
        let dir = match open_dir_beneath(self.root.as_fd(), target_dir, false) {
            Ok(Some(dir)) => dir,
            Ok(None) => {
                return Err(refuse(format!(
                    "is not in the rootfs (looked for {} in it)",
                    target_rel.display()
                )))
            }
            Err(Unsafe::Sys { at: p, errno }) => {
                return Err(self.io_at("open directory", &p, at.raw, errno))
            }
            Err(refusal) => {
                return Err(refuse(format!("cannot be reached: {refusal}")))
            }
        };
        match fstatat(&dir, target_name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if kind(st.st_mode) == SFlag::S_IFDIR => {
                return Err(refuse("is a directory".into()))
            }
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                return Err(refuse(format!(
                    "is not in the rootfs (looked for {} in it)",
                    target_rel.display()
                )))
            }
            Err(errno) => {
                return Err(self.io_at("stat", &target_rel, at.raw, errno))
            }
        }
        if target_rel == at.rel {
            return Ok(());
        }
        self.clear(at, false)?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, not followed.
        linkat(&dir, target_name, at.parent, at.name, AtFlags::empty())
            .map_err(self.io("create hardlink", at))
    }

    /// Makes a device node or a fifo; `false` when a device was skipped for
    /// lack of privilege.
    fn make_node(
        &mut self,
        at: &At<'_>,
        meta: Meta,
        node: SFlag,
        dev: libc::dev_t,
    ) -> Result<bool, UnpackError> {
        self.clear(at, false)?;
        match mknodat(
            at.parent,
            at.name,
            node,
            Mode::from_bits_truncate(0o600),
            dev,
        ) {
            Ok(()) => {}
            Err(Errno::EPERM) if node != SFlag::S_IFIFO => {
                self.report.skipped_devices += 1;
                return Ok(false);
            }
            Err(errno) => return Err(self.io("create node", at)(errno)),
        }
        self.owner_and_time(at, meta)?;
        // Not through a symlink; older C libraries cannot do that and say so,
        // and then the name is the node just made in a directory we hold.
        match fchmodat(
            at.parent,
            at.name,
            mode(meta.mode),
            FchmodatFlags::NoFollowSymlink,
        ) {
            Err(Errno::EOPNOTSUPP) => fchmodat(
                at.parent,
                at.name,
                mode(meta.mode),
                FchmodatFlags::FollowSymlink,
            ),
            other => other,
        }
        .map_err(self.io("chmod", at))?;
        Ok(true)
    }

    fn owner_and_time(
        &self,
        at: &At<'_>,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        chown_kept(fchownat(
            at.parent,
            at.name,
            uid(meta.uid),
            gid(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ))
        .map_err(self.io("chown", at))?;
        utimensat(
            at.parent,
            at.name,
            &time(meta.mtime),
            &time(meta.mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(self.io("set times", at))
    }

    /// Directory modes and times, deepest first, now that their content is in.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        // Deepest first, as the layer listed them backwards: siblings and
        // parents come one after the other, reached through `chain`.
        let mut chain = Vec::new();
        for (rel, meta) in self.dirs.iter().rev() {
            let raw = rel.display().to_string();
            let (Some(name), Some(parent)) = (rel.file_name(), rel.parent())
            else {
                continue;
            };
            // Gone or replaced since (a later entry or whiteout): nothing to do.
            let Ok(Some(parent)) =
                self.reach_or_not(&mut chain, &raw, parent, false)
            else {
                continue;
            };
            let Ok(dir) = openat(parent, name, STEP, Mode::empty()) else {
                continue;
            };
            fchmod(&dir, mode(meta.mode))
                .map_err(|e| self.io_at("chmod", rel, &raw, e))?;
            futimens(&dir, &time(meta.mtime), &time(meta.mtime))
                .map_err(|e| self.io_at("set times", rel, &raw, e))?;
        }
        Ok(())
    }
}

/// `refusal`, with its path taken from the rootfs rather than from `above`.
fn rebase(above: &Path, refusal: Unsafe) -> Unsafe {
    match refusal {
        Unsafe::Symlink(p) => Unsafe::Symlink(above.join(p)),
        Unsafe::NotDir(p) => Unsafe::NotDir(above.join(p)),
        Unsafe::NotPlain(p) => Unsafe::NotPlain(above.join(p)),
        Unsafe::Sys { at, errno } => Unsafe::Sys {
            at: above.join(at),
            errno,
        },
    }
}

/// Where an entry goes: a name in a directory we hold open.
struct At<'a> {
    parent: BorrowedFd<'a>,
    name: &'a OsStr,
    /// Its path relative to the root, for messages.
    rel: &'a Path,
    /// Its path as the layer wrote it, for messages.
    raw: &'a str,
}

fn read_meta(header: &tar::Header, raw: &str) -> Result<Meta, UnpackError> {
    let read = |source| UnpackError::Read {
        entry: Some(raw.to_string()),
        source,
    };
    Ok(Meta {
        mode: header.mode().map_err(read)?,
        uid: header.uid().map_err(read)?,
        gid: header.gid().map_err(read)?,
        mtime: header.mtime().map_err(read)?,
    })
}

fn link_name<R: Read>(
    entry: &tar::Entry<R>,
    raw: &str,
) -> Result<Vec<u8>, UnpackError> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(UnpackError::Read {
            entry: Some(raw.to_string()),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "a link without a target",
            ),
        }),
    }
}

fn is_plain_name(name: &OsStr) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.as_bytes().contains(&b'/')
}

fn exists(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
}

/// Removes `name` from `dir`, whatever it is; a directory with everything in
/// it. Nothing there is fine. Symlinks are removed, never followed.
fn remove_any(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => {
            let sub = openat(dir, name, STEP, Mode::empty())?;
            for child in list_dir(sub.as_fd())? {
                remove_any(sub.as_fd(), &child)?;
            }
            unlinkat(dir, name, UnlinkatFlags::RemoveDir)
        }
        Err(errno) => Err(errno),
    }
}

/// The names in a directory (without `.` and `..`).
fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<OsString>, Errno> {
    // A descriptor of its own: reading a directory moves its offset.
    let fd = openat(dir, ".", STEP, Mode::empty())?;
    let mut names = Vec::new();
    for entry in nix::dir::Dir::from_fd(fd)?.into_iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

fn set_opaque(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    let name = std::ffi::CString::new(OVERLAY_OPAQUE_XATTR)
        .map_err(|_| Errno::EINVAL)?;
    // SAFETY: a valid descriptor, a NUL-terminated name, a one-byte value.
    let res = unsafe {
        libc::fsetxattr(
            dir.as_raw_fd(),
            name.as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    Errno::result(res).map(drop)
}

/// Without root (or for ids a user namespace does not map) files stay the
/// extractor's own: that is not a reason to fail.
fn chown_kept(result: nix::Result<()>) -> nix::Result<()> {
    match result {
        Err(Errno::EPERM | Errno::EINVAL) => Ok(()),
        other => other,
    }
}

fn uid(id: u64) -> Option<Uid> {
    u32::try_from(id).ok().map(Uid::from_raw)
}

fn gid(id: u64) -> Option<Gid> {
    u32::try_from(id).ok().map(Gid::from_raw)
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate((bits & 0o7777) as libc::mode_t)
}

fn time(seconds: u64) -> TimeSpec {
    TimeSpec::new(seconds.min(i64::MAX as u64) as i64, 0)
}
