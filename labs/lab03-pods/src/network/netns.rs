//! Network namespaces: making one that outlives its maker, entering one on
//! a thread of its own, and finding the ones left behind.
//!
//! A network namespace lives while a process is in it, a descriptor holds
//! it, or its `/proc/<pid>/ns/net` file is bind-mounted somewhere. The
//! node's is bind-mounted at a file in its state directory (what `ip netns
//! add` does under /run/netns), so a crash of the node process leaves it
//! where the next process finds it, and unmounting that file (with the
//! pods gone) lets the kernel free it.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};
use rtnetlink::Handle;

use super::NetworkError;

/// Where a worker thread does its work.
pub(crate) enum Target<'a> {
    /// An existing namespace, by descriptor.
    Join(BorrowedFd<'a>),
    /// A new namespace, bind-mounted at this (new) file first.
    New(&'a Path),
    /// The namespace this process is in, bind-mounted at this (new) file
    /// first: a node that is a network namespace already.
    Current(&'a Path),
}

/// Runs `f` with an rtnetlink handle whose socket is in the namespace
/// `target`, on a thread of its own, and waits for it. `path` names the
/// namespace in errors. A panic in `f` is passed on to the caller.
pub(crate) fn with_netlink<T, F, Fut>(
    target: Target<'_>,
    path: &Path,
    f: F,
) -> Result<T, NetworkError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NetworkError>>,
{
    on_thread(target, path, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(netns_error("starting netlink in", path))?;
        runtime.block_on(async move {
            // The socket is made here, on this thread, so it is bound to
            // the namespace this thread is in now.
            let (connection, handle, _) =
                rtnetlink::new_connection().map_err(netns_error("opening netlink in", path))?;
            let driver = tokio::spawn(connection);
            let out = f(handle).await;
            driver.abort();
            out
        })
    })
}

/// Runs `f` with an rtnetlink handle in the existing namespace `netns`,
/// on a thread of its own there: what a later lab needs to add its own
/// devices, addresses or routes to a node. The kernel's answer comes back
/// as the errno it carries, with `what` to say what was asked.
pub fn netlink_in<T, F, Fut>(netns: &Path, what: &str, f: F) -> Result<T, NetworkError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, rtnetlink::Error>>,
{
    let file = open_netns(netns)?;
    with_netlink(Target::Join(file.as_fd()), netns, |handle| async move {
        f(handle).await.map_err(|e| NetworkError::Netlink {
            what: what.to_string(),
            netns: netns.to_path_buf(),
            source: super::node::io_of(e),
        })
    })
}

/// Runs `f` on a thread that is in the network namespace at `netns` (a
/// bind mount, or `/proc/<pid>/ns/net`), and answers what it answers. The
/// calling thread's namespace never changes; a socket `f` makes stays in
/// `netns` wherever it is used afterwards, so this is how the node reaches
/// its pods (a probe) or a test makes a pod's server.
pub fn run_in<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> Result<T, NetworkError> {
    let file = open_netns(netns)?;
    on_thread(Target::Join(file.as_fd()), netns, || Ok(f()))
}

/// Makes a new, empty network namespace bind-mounted at `at` (a new
/// file), as [`NodeNetwork::create`](super::NodeNetwork::create) makes a
/// node's: for a later lab's own namespaces (chapter 5's cluster network
/// and its nodes). [`remove_netns`] takes it away.
pub fn create_netns(at: &Path) -> Result<(), NetworkError> {
    on_thread(Target::New(at), at, || Ok(()))
}

/// Unmounts and removes a namespace file made by [`create_netns`]; a
/// missing one is no error. The namespace goes once no process is in it.
pub fn remove_netns(at: &Path) -> Result<(), NetworkError> {
    unbind(at)
}

/// The worker thread: enters (or makes) the namespace, then runs `f`.
fn on_thread<T: Send>(
    target: Target<'_>,
    path: &Path,
    f: impl FnOnce() -> Result<T, NetworkError> + Send,
) -> Result<T, NetworkError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("kubelings-netns".into())
            .spawn_scoped(scope, move || {
                match target {
                    Target::Join(fd) => {
                        setns(fd, CloneFlags::CLONE_NEWNET)
                            .map_err(|e| netns_error("entering", path)(e.into()))?;
                    }
                    Target::New(at) => make_bound(at)?,
                    Target::Current(at) => bind_current(at)?,
                }
                f()
            })
            .map_err(netns_error("starting a thread for", path))?;
        match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

// ANCHOR: make_bound
/// Moves this thread into a new network namespace and bind-mounts it at
/// `at`, a new file, so that it outlives the thread.
fn make_bound(at: &Path) -> Result<(), NetworkError> {
    // The mount point: an empty file, which must not exist yet.
    File::create_new(at).map_err(netns_error("creating the file for", at))?;
    let made = unshare(CloneFlags::CLONE_NEWNET).and_then(|()| {
        mount(
            Some("/proc/thread-self/ns/net"),
            at,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(at);
        return Err(netns_error("creating", at)(e.into()));
    }
    Ok(())
}
// ANCHOR_END: make_bound

/// Bind-mounts this process's network namespace at `at` (a new file),
/// refusing the root one: a node's bridge and veths never go there.
fn bind_current(at: &Path) -> Result<(), NetworkError> {
    let id = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    let (ours, root) = (id("/proc/self/ns/net"), id("/proc/1/ns/net"));
    let ours = ours.map_err(netns_error("inspecting", Path::new("/proc/self/ns/net")))?;
    if root.is_ok_and(|r| r == ours) {
        return Err(netns_error("using", at)(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "this process is in the root network namespace: start the node \
             in a network namespace of its own",
        )));
    }
    File::create_new(at).map_err(netns_error("creating the file for", at))?;
    let bound = mount(
        Some("/proc/self/ns/net"),
        at,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(e) = bound {
        let _ = std::fs::remove_file(at);
        return Err(netns_error("binding", at)(e.into()));
    }
    Ok(())
}

/// Unmounts a namespace's bind mount and removes its file. Missing is
/// fine; the namespace itself goes once nothing else holds it.
pub(crate) fn unbind(at: &Path) -> Result<(), NetworkError> {
    match umount2(at, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (any more); ENOENT: no file.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(netns_error("unmounting", at)(e.into())),
    }
    match std::fs::remove_file(at) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(netns_error("removing the file of", at)(e)),
    }
}

/// Opens a network namespace's file, checking that it is one.
pub(crate) fn open_netns(path: &Path) -> Result<File, NetworkError> {
    let file = File::open(path).map_err(netns_error("opening", path))?;
    let fs = fstatfs(&file).map_err(|e| netns_error("inspecting", path)(e.into()))?;
    if fs.filesystem_type() != NSFS_MAGIC {
        return Err(netns_error("opening", path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a namespace file (nothing is mounted there)",
        )));
    }
    Ok(file)
}

/// A namespace's identity: the device and inode of its nsfs file.
pub(crate) fn identity(file: &File, path: &Path) -> Result<(u64, u64), NetworkError> {
    let meta = file.metadata().map_err(netns_error("inspecting", path))?;
    Ok((meta.dev(), meta.ino()))
}

/// The identities of the namespaces no pod may be given: this process's,
/// this thread's and init's (the root namespace, as far as we can see).
pub(crate) fn forbidden() -> Vec<(u64, u64, &'static str)> {
    [
        ("/proc/self/ns/net", "this process's network namespace"),
        (
            "/proc/thread-self/ns/net",
            "this thread's network namespace",
        ),
        ("/proc/1/ns/net", "the root network namespace (init's)"),
    ]
    .into_iter()
    .filter_map(|(p, what)| {
        let meta = std::fs::metadata(p).ok()?;
        Some((meta.dev(), meta.ino(), what))
    })
    .collect()
}

/// The namespace bind mounts (nsfs) at or below `under`, from this
/// process's mount table: what a node left behind if its network was
/// never destroyed. Tests use it to prove that nothing is left.
pub fn find_leftovers(under: &Path) -> io::Result<Vec<PathBuf>> {
    let under = under.canonicalize().unwrap_or_else(|_| under.to_path_buf());
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table
        .lines()
        .filter_map(|line| {
            // id parent dev root mountpoint options… - fstype source super
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let point = unescape(left.split(' ').nth(4)?);
            (fstype == "nsfs" && point.starts_with(&under)).then_some(point)
        })
        .collect())
}

/// Mount points in mountinfo have space, tab, newline and backslash as
/// octal escapes (`\040`).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

pub(crate) fn netns_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> NetworkError + 'a {
    move |source| NetworkError::Netns {
        what,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(
            unescape(r"/tmp/a\040b/netns"),
            PathBuf::from("/tmp/a b/netns")
        );
        assert_eq!(unescape(r"/x\\y"), PathBuf::from(r"/x\\y"));
    }
}
