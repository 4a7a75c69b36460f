//! A container's root filesystem: its image's layers under overlayfs with
//! a writable upper directory of its own (lab02's unpack), and on top of
//! it, bind mounts of what the pod gives it: the sandbox's /etc/hosts,
//! /etc/hostname and /etc/resolv.conf, and its volumes (emptyDir
//! directories). They are mounted here, in the node's mount namespace,
//! beneath the runtime's state directory; the container's own mount
//! namespace, made when it starts, copies them, and pivot_root keeps them.

use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use lab02::home::Home;
use lab02::layout::ImageStore;
use lab02::unpack::OverlayMount;

use crate::cri::{CriError, CriResult, Mount};

/// The mounts of one container, undone (top first) on drop.
#[derive(Debug)]
pub struct RootfsMounts {
    root: PathBuf,
    overlay: Option<OverlayMount>,
    binds: Vec<PathBuf>,
}

impl RootfsMounts {
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Unmounts everything, the bind mounts first.
    pub fn unmount(&mut self) {
        for target in self.binds.drain(..).rev() {
            let _ = umount2(&target, MntFlags::MNT_DETACH);
        }
        drop(self.overlay.take());
    }
}

impl Drop for RootfsMounts {
    fn drop(&mut self) {
        self.unmount();
    }
}

fn internal(context: String) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> CriError {
    move |source| CriError::Internal { context, source }
}

// ANCHOR: overlay_rootfs
/// Mounts the layers of `image` (resolved in `store`, each
/// layer extracted once into `home`'s layer cache) at `dir/rootfs`, with
/// `dir/upper` and `dir/work` for the container's changes.
pub fn mount_image(
    home: &Home,
    store: &ImageStore,
    image: &str,
    dir: &Path,
) -> CriResult<(RootfsMounts, lab02::spec::ExecConfig, String)> {
    let image_error = |message: String| CriError::Image {
        image: image.to_string(),
        message,
    };
    let desc = store
        .resolve(image)
        .map_err(|e| image_error(e.to_string()))?;
    let manifest = store
        .manifest(&desc)
        .map_err(|e| image_error(e.to_string()))?;
    let config = store
        .config(&manifest)
        .map_err(|e| image_error(e.to_string()))?;
    let layers =
        lab02::run::image_layers(&manifest, &config).map_err(|e| image_error(e.to_string()))?;
    // lab02 extracts a missing layer into a temporary directory named for
    // this process: two threads of it must not extract at once.
    static EXTRACTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let extracting = EXTRACTING.lock().unwrap_or_else(|e| e.into_inner());
    let mut lowers =
        lab02::run::layer_dirs(home, store, &layers).map_err(|e| image_error(e.to_string()))?;
    drop(extracting);
    lowers.reverse(); // overlayfs wants the top layer first
    if lowers.is_empty() {
        let empty = home.layers().join("empty");
        std::fs::create_dir_all(&empty)
            .map_err(|e| internal(format!("create {}", empty.display()))(Box::new(e)))?;
        lowers.push(empty);
    }
    let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &root] {
        std::fs::create_dir_all(d)
            .map_err(|e| internal(format!("create {}", d.display()))(Box::new(e)))?;
    }
    let overlay = OverlayMount::mount(&lowers, &upper, &work, &root)
        .map_err(|e| internal(format!("mount the overlay at {}", root.display()))(Box::new(e)))?;
    let mounts = RootfsMounts {
        root,
        overlay: Some(overlay),
        binds: Vec::new(),
    };
    let exec = lab02::spec::ExecConfig::from_image(&config);
    Ok((mounts, exec, desc.digest().to_string()))
}
// ANCHOR_END: overlay_rootfs

impl RootfsMounts {
    /// Bind-mounts `host` (a file or a directory) at `inside` (an absolute
    /// path in the container), read-only if asked. Missing directories
    /// (and the file to mount over) are made in the container's upper
    /// directory; a path that would leave the root (`..`, or a symlink of
    /// the image pointing out) is refused.
    pub fn bind(&mut self, host: &Path, inside: &str, readonly: bool) -> CriResult<()> {
        let bad = |why: &str| CriError::InvalidArgument(format!("mount path {inside:?} {why}"));
        let rel = Path::new(inside)
            .strip_prefix("/")
            .map_err(|_| bad("is not absolute"))?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad("has a '..' or '.' in it"));
        }
        if rel.as_os_str().is_empty() {
            return Err(bad("is the root itself"));
        }
        let target = self.root.join(rel);
        let fail = |what: &str, e: std::io::Error| CriError::Internal {
            context: format!("{what} {} for mount {inside:?}", target.display()),
            source: Box::new(e),
        };
        let meta = std::fs::metadata(host).map_err(|e| CriError::Internal {
            context: format!("the mount source {}", host.display()),
            source: Box::new(e),
        })?;
        if meta.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| fail("create", e))?;
        } else {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail("create the parent of", e))?;
            }
            if std::fs::symlink_metadata(&target).is_err() {
                std::fs::write(&target, b"").map_err(|e| fail("create", e))?;
            }
        }
        // The image could hold a symlink on the way that points out of it.
        let root = self.root.canonicalize().map_err(|e| fail("resolve", e))?;
        let real = target.canonicalize().map_err(|e| fail("resolve", e))?;
        if !real.starts_with(&root) {
            return Err(bad("leads out of the container's root filesystem"));
        }
        let errno = |e: nix::errno::Errno| fail("bind-mount onto", e.into());
        mount(
            Some(host),
            &real,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(errno)?;
        self.binds.push(real.clone());
        if readonly {
            // A bind mount takes its flags only on a second, remounting call.
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, &real, None::<&str>, flags, None::<&str>).map_err(errno)?;
        }
        Ok(())
    }

    /// Every `Mount` of a container config.
    pub fn bind_all(&mut self, mounts: &[Mount]) -> CriResult<()> {
        for m in mounts {
            self.bind(&m.host_path, &m.container_path, m.readonly)?;
        }
        Ok(())
    }
}

/// Mount points beneath `dir` in this mount namespace, deepest first:
/// what a killed runtime left under its state directory.
pub fn mounts_beneath(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts every mount beneath `dir`, deepest first.
pub fn unmount_beneath(dir: &Path) {
    for target in mounts_beneath(dir) {
        let _ = umount2(&target, MntFlags::MNT_DETACH);
    }
}

/// Removes `dir` once nothing is mounted beneath it any more: a bind mount
/// still there would have `remove_dir_all` delete a volume's files.
pub fn remove_unmounted(dir: &Path) {
    unmount_beneath(dir);
    if mounts_beneath(dir).is_empty() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
