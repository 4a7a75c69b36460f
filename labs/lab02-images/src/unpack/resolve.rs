//! Reaching a directory inside the rootfs without ever following a symlink.
//!
//! `rootfs.join(path)` hands the whole path to the kernel, which follows
//! every symlink along it: one named `etc` pointing at `/etc` (from an
//! earlier entry, or an earlier layer) turns `etc/passwd` into the host's.
//! Instead, start from a descriptor of the rootfs and open one component at
//! a time relative to the previous one, refusing anything that is not a real
//! directory. Every later call (`openat`, `mkdirat`, `unlinkat`...) then
//! works relative to the last descriptor and a plain file name.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};

/// Why a directory could not be reached safely. Paths are relative to the
/// rootfs, up to the component at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    #[error("{} is a symlink, and writing through it could leave the rootfs", .0.display())]
    Symlink(PathBuf),
    #[error("{} is not a directory", .0.display())]
    NotDir(PathBuf),
    #[error("{} is not a plain relative path", .0.display())]
    NotPlain(PathBuf),
    #[error("opening {}: {errno}", .at.display())]
    Sys { at: PathBuf, errno: Errno },
}

/// Flags for each step: a directory, and not through a symlink.
pub const STEP: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

// ANCHOR: open_dir_beneath
/// Opens the directory `dir` (relative, plain names only: see
/// [`super::sanitize`]) below the directory `root`, one component at a time,
/// never following a symlink. Missing directories are created (0755) when
/// `create` is set; otherwise `Ok(None)` says `dir` is not there.
pub fn open_dir_beneath(
    root: BorrowedFd<'_>,
    dir: &Path,
    create: bool,
) -> Result<Option<OwnedFd>, Unsafe> {
    // EXERCISE: lab02-safe-extract
    // A descriptor of our own for the root, so each step can replace it.
    let mut current =
        openat(root, ".", STEP, Mode::empty()).map_err(|errno| {
            Unsafe::Sys {
                at: PathBuf::new(),
                errno,
            }
        })?;
    let mut walked = PathBuf::new();
    for component in dir.components() {
        let Component::Normal(name) = component else {
            return Err(Unsafe::NotPlain(dir.to_path_buf()));
        };
        walked.push(name);
        let next = match openat(&current, name, STEP, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create => {
                match mkdirat(&current, name, Mode::from_bits_truncate(0o755)) {
                    // EEXIST: someone made it in between; the open below
                    // checks what.
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => {
                        return Err(Unsafe::Sys { at: walked, errno })
                    }
                }
                match openat(&current, name, STEP, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(errno) => {
                        return Err(classify(
                            current.as_fd(),
                            name,
                            walked,
                            errno,
                        ))
                    }
                }
            }
            Err(Errno::ENOENT) => return Ok(None),
            // A symlink (O_NOFOLLOW) or a file (O_DIRECTORY): say which.
            Err(errno) => {
                return Err(classify(current.as_fd(), name, walked, errno))
            }
        };
        current = next;
    }
    Ok(Some(current))
    // EXERCISE_END: lab02-safe-extract
}
// ANCHOR_END: open_dir_beneath

/// Why `name` in `dir` could not be opened as a directory (`errno`).
pub fn classify(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    walked: PathBuf,
    errno: Errno,
) -> Unsafe {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if kind(st.st_mode) == SFlag::S_IFLNK => Unsafe::Symlink(walked),
        Ok(st) if kind(st.st_mode) != SFlag::S_IFDIR => Unsafe::NotDir(walked),
        _ => Unsafe::Sys { at: walked, errno },
    }
}

/// The file type bits of a `st_mode`.
pub fn kind(mode: libc::mode_t) -> SFlag {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits())
}
