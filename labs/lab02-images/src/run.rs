//! An image becomes a container: its layers become the root filesystem,
//! its config (entrypoint, cmd, env, working directory, user) becomes a
//! lab01 [`ContainerSpec`].

use std::path::{Path, PathBuf};

use lab01::ContainerSpec;
use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::digest::Digest;
use crate::home::Home;
use crate::layout::{ImageStore, StoreError};
use crate::spec::{digest_of, ExecConfig, SpecError};
#[cfg(target_os = "linux")]
use crate::unpack::OverlayMount;
use crate::unpack::{apply_layer, extract_layer_dir, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("unpacking layer {layer}: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the image has {layers} layers but its config lists {diff_ids} diff IDs")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("the image config lists a malformed diff ID {0:?}")]
    BadDiffId(String),
    #[error("the image has no command to run (no ENTRYPOINT or CMD): give one after --")]
    NoCommand,
    #[error("user {0:?} is not in the image's /etc/passwd (use a number)")]
    UnknownUser(String),
}

fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How a root filesystem was put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assembly {
    /// The image's layers, extracted once each, stacked by overlayfs under a
    /// fresh upper directory: nothing is copied, and the container's writes
    /// stay in its own upper directory.
    Overlay,
    /// Every layer applied in order into one directory of its own.
    Flat,
}

/// A container's root filesystem. Dropping it unmounts it and removes the
/// container's directory.
#[derive(Debug)]
pub struct Rootfs {
    path: PathBuf,
    dir: PathBuf,
    assembly: Assembly,
    #[cfg(target_os = "linux")]
    overlay: Option<OverlayMount>,
}

impl Assembly {
    /// Overlayfs where it can be used here (root, and the kernel has it),
    /// else a flat extraction.
    pub fn best() -> Assembly {
        match crate::unpack::overlay_available() {
            Ok(()) => Assembly::Overlay,
            Err(_) => Assembly::Flat,
        }
    }
}

impl Rootfs {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn assembly(&self) -> Assembly {
        self.assembly
    }

    /// The overlay's upper directory: what the container changed.
    pub fn upper(&self) -> Option<PathBuf> {
        (self.assembly == Assembly::Overlay).then(|| self.dir.join("upper"))
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        drop(self.overlay.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ANCHOR: prepare_rootfs
/// Puts together the root filesystem for a container `name` of the image
/// `manifest`: overlayfs where possible, else a flat extraction.
pub fn prepare_rootfs(
    home: &Home,
    store: &ImageStore,
    manifest: &ImageManifest,
    name: &str,
    assembly: Assembly,
) -> Result<Rootfs, RunError> {
    let config = store.config(manifest)?;
    let layers = image_layers(manifest, &config)?;
    prepare_layers(home, store, &layers, name, assembly)
}
// ANCHOR_END: prepare_rootfs

/// The image's layers as (blob digest, diff ID), bottom first.
pub fn image_layers(
    manifest: &ImageManifest,
    config: &ImageConfiguration,
) -> Result<Vec<(Digest, Digest)>, RunError> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(RunError::LayerCount {
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            let diff_id = diff_id
                .parse()
                .map_err(|_| RunError::BadDiffId(diff_id.clone()))?;
            Ok((digest_of(layer)?, diff_id))
        })
        .collect()
}

/// [`prepare_rootfs`] for a list of layers (what a build has so far).
pub fn prepare_layers(
    home: &Home,
    store: &ImageStore,
    layers: &[(Digest, Digest)],
    name: &str,
    assembly: Assembly,
) -> Result<Rootfs, RunError> {
    let dir = home.containers().join(name);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let mut rootfs = Rootfs {
        path: dir.join("rootfs"),
        dir: dir.clone(),
        assembly,
        #[cfg(target_os = "linux")]
        overlay: None,
    };
    match assembly {
        Assembly::Flat => {
            std::fs::create_dir_all(&rootfs.path)
                .map_err(io("create", &rootfs.path))?;
            for (digest, _) in layers {
                let blob = store.open_blob(digest)?;
                apply_layer(&rootfs.path, blob).map_err(|source| {
                    RunError::Unpack {
                        layer: digest.clone(),
                        source,
                    }
                })?;
            }
        }
        #[cfg(target_os = "linux")]
        Assembly::Overlay => {
            let mut lowers = layer_dirs(home, store, layers)?;
            lowers.reverse(); // overlayfs wants the top layer first
            let (upper, work) = (dir.join("upper"), dir.join("work"));
            for d in [&upper, &work, &rootfs.path] {
                std::fs::create_dir_all(d).map_err(io("create", d))?;
            }
            if lowers.is_empty() {
                // overlayfs needs a lower layer: an empty one stands in for `scratch`.
                let empty = home.layers().join("empty");
                std::fs::create_dir_all(&empty)
                    .map_err(io("create", &empty))?;
                lowers.push(empty);
            }
            let mount =
                OverlayMount::mount(&lowers, &upper, &work, &rootfs.path)
                    .map_err(|source| RunError::Unpack {
                        layer: Digest::of(b""),
                        source,
                    })?;
            rootfs.overlay = Some(mount);
        }
        #[cfg(not(target_os = "linux"))]
        Assembly::Overlay => unreachable!("overlayfs is Linux only"),
    }
    Ok(rootfs)
}

/// Each layer extracted once into `layers/<diff id>`, bottom layer first.
/// A layer is extracted beside its final place and renamed, so a reader
/// never sees half of one.
pub fn layer_dirs(
    home: &Home,
    store: &ImageStore,
    layers: &[(Digest, Digest)],
) -> Result<Vec<PathBuf>, RunError> {
    let base = home.layers();
    std::fs::create_dir_all(&base).map_err(io("create", &base))?;
    let mut dirs = Vec::new();
    for (digest, diff_id) in layers {
        let name = diff_id.hex();
        let dir = base.join(name);
        if !dir.is_dir() {
            let temp =
                base.join(format!(".{name}.{}.partial", std::process::id()));
            let _ = std::fs::remove_dir_all(&temp);
            std::fs::create_dir_all(&temp).map_err(io("create", &temp))?;
            let blob = store.open_blob(digest)?;
            let result = extract_layer_dir(&temp, blob);
            if let Err(source) = result {
                let _ = std::fs::remove_dir_all(&temp);
                return Err(RunError::Unpack {
                    layer: digest.clone(),
                    source,
                });
            }
            if std::fs::rename(&temp, &dir).is_err() {
                // Someone else extracted it meanwhile.
                let _ = std::fs::remove_dir_all(&temp);
            }
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

// ANCHOR: container_spec
/// The lab01 container an image's config describes, on `rootfs`, running
/// `command` instead of the image's CMD when it is not empty (ENTRYPOINT
/// stays, as with `docker run IMAGE ARGS`).
pub fn container_spec(
    config: &ImageConfiguration,
    rootfs: &Path,
    command: &[String],
) -> Result<ContainerSpec, RunError> {
    let exec = ExecConfig::from_image(config);
    let mut args = exec.entrypoint.clone().unwrap_or_default();
    if command.is_empty() {
        args.extend(exec.cmd.clone().unwrap_or_default());
    } else {
        args.extend(command.iter().cloned());
    }
    container_spec_from(&exec, rootfs, Some(args))
}
// ANCHOR_END: container_spec

/// The container for `exec` on `rootfs`, running `args` (a build's RUN
/// ignores the ENTRYPOINT, so callers pass exactly what runs).
pub fn container_spec_from(
    exec: &ExecConfig,
    rootfs: &Path,
    args: Option<Vec<String>>,
) -> Result<ContainerSpec, RunError> {
    let exec = exec.clone();
    let args = args.unwrap_or_default();
    if args.is_empty() {
        return Err(RunError::NoCommand);
    }
    let mut spec = ContainerSpec::new(args).rootfs(rootfs);
    if !exec.env.is_empty() {
        let has_path = exec.env.iter().any(|v| v.starts_with("PATH="));
        if has_path {
            spec.env.retain(|v| !v.starts_with("PATH="));
        }
        spec.env.extend(exec.env.iter().cloned());
    }
    if let Some(dir) = exec.working_dir.filter(|d| !d.is_empty()) {
        spec.cwd = dir;
    }
    if let Some(user) = exec.user.filter(|u| !u.is_empty()) {
        spec.user = Some(resolve_user(rootfs, &user)?);
    }
    Ok(spec)
}

/// `USER 1000`, `USER 1000:1000`, `USER kubia` (looked up in the image's
/// /etc/passwd, never the host's).
fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32), RunError> {
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd =
        std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let lookup = |name: &str| -> Option<(u32, u32)> {
        passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    };
    let (uid, default_gid) = match name.parse::<u32>() {
        Ok(uid) => (uid, lookup(name).map_or(uid, |(_, g)| g)),
        Err(_) => lookup(name)
            .ok_or_else(|| RunError::UnknownUser(user.to_string()))?,
    };
    let gid = match group {
        None => default_gid,
        Some(g) => g
            .parse()
            .map_err(|_| RunError::UnknownUser(user.to_string()))?,
    };
    Ok((uid, gid))
}
