//! An overlayfs mount of extracted layers, as a guard: dropping it unmounts.
//!
//! overlayfs shows several directories as one: the lower ones (read-only,
//! the topmost first) merged, with writes going to the upper directory,
//! and a work directory on the same filesystem as the upper for the kernel's
//! own use. Each container gets a fresh upper and work directory; the
//! layers' directories are shared by all.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::UnpackError;

/// Whether this machine can mount overlayfs here: `Err` says why not.
pub fn overlay_available() -> Result<(), String> {
    let host = lab01::probe::probe();
    if !host.is_root {
        return Err("mounting overlayfs needs root".into());
    }
    if !host.overlayfs {
        return Err(
            "the kernel has no overlay filesystem (not in /proc/filesystems)"
                .into(),
        );
    }
    Ok(())
}

/// A mounted overlayfs; dropping it unmounts it (lazily, with `MNT_DETACH`,
/// so it goes even while something still has a file open in it).
#[derive(Debug)]
pub struct OverlayMount {
    target: PathBuf,
    upper: PathBuf,
    mounted: bool,
}

impl OverlayMount {
    /// Mounts `lowers` (the top layer first) with `upper` and `work` (both
    /// empty directories on one filesystem) at `target`.
    pub fn mount(
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<Self, UnpackError> {
        if lowers.is_empty() {
            return Err(UnpackError::Overlay(
                "no lower directory to mount".into(),
            ));
        }
        // ANCHOR: mount
        let mut lowerdir = Vec::new();
        for lower in lowers {
            lowerdir.push(option_path(lower)?);
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            option_path(upper)?,
            option_path(work)?
        );
        // The options travel in one page.
        if options.len() >= 4096 {
            return Err(UnpackError::Overlay(format!(
                "the mount options are {} bytes, and the kernel takes at most 4095: \
                 shorter paths or fewer layers",
                options.len()
            )));
        }
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|errno| UnpackError::Mount {
            target: target.to_path_buf(),
            source: errno.into(),
        })?;
        // ANCHOR_END: mount
        Ok(OverlayMount {
            target: target.to_path_buf(),
            upper: upper.to_path_buf(),
            mounted: true,
        })
    }

    /// Where the merged tree is.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Where this mount's changes go: see
    /// [`crate::layer::changes_from_overlay_upper`].
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// Unmounts now, reporting a failure (dropping ignores it).
    pub fn unmount(mut self) -> Result<(), UnpackError> {
        self.mounted = false;
        umount2(&self.target, MntFlags::MNT_DETACH).map_err(|errno| {
            UnpackError::Mount {
                target: self.target.clone(),
                source: errno.into(),
            }
        })
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = umount2(&self.target, MntFlags::MNT_DETACH);
        }
    }
}

/// A path as the overlay options can carry it: `,` separates options, `:`
/// separates lower directories, and escaping them is fragile.
fn option_path(path: &Path) -> Result<&str, UnpackError> {
    let text = path.to_str().ok_or_else(|| {
        UnpackError::Overlay(format!("{} is not UTF-8", path.display()))
    })?;
    if text.contains([',', ':', '\\']) {
        return Err(UnpackError::Overlay(format!(
            "{text} has a ',', ':' or '\\', which overlay's mount options cannot carry"
        )));
    }
    Ok(text)
}
