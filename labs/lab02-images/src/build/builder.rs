//! Running a Dockerfile's steps: FROM picks the starting layers and config,
//! COPY and RUN add a layer each, the rest change the config.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, History};

use super::dockerfile::{Command, Instruction, Step};
use crate::digest::Digest;
use crate::home::Home;
use crate::layer::{
    changes_between, changes_from_overlay_upper, write_layer,
    write_layer_from_dir, LayerError, LayerInfo,
};
use crate::layout::{ImageStore, StoreError};
use crate::reference::Reference;
use crate::run::{
    container_spec_from, image_layers, prepare_layers, Assembly, RunError,
};
use crate::spec::{self, ExecConfig, SpecError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Dockerfile line {line}: {message}")]
    Step { line: usize, message: String },
    #[error("Dockerfile line {line}: {source}")]
    Store {
        line: usize,
        #[source]
        source: StoreError,
    },
    #[error("Dockerfile line {line}: {source}")]
    Layer {
        line: usize,
        #[source]
        source: LayerError,
    },
    #[error("Dockerfile line {line}: {source}")]
    Run {
        line: usize,
        #[source]
        source: RunError,
    },
    #[error("Dockerfile line {line}: RUN {command} {status}")]
    RunFailed {
        line: usize,
        command: String,
        status: lab01::ExitStatus,
    },
    #[error("Dockerfile line {line}: RUN: {source}")]
    Container {
        line: usize,
        #[source]
        source: lab01::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Finish(#[from] StoreError),
    #[error("bad tag {0:?}: {1}")]
    Tag(String, String),
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub manifest: Descriptor,
    pub layers: Vec<LayerInfo>,
}

/// The image as the steps so far have made it.
#[derive(Default)]
struct State {
    /// (blob digest, diff ID, size), bottom first.
    layers: Vec<(Digest, Digest, u64)>,
    exec: ExecConfig,
    history: Vec<History>,
}

/// Runs `steps` with `context` as the build context and tags the result
/// `tag` in `store`. `log` receives one line per step.
pub fn build(
    home: &Home,
    store: &ImageStore,
    steps: &[Step],
    context: &Path,
    tag: &str,
    log: &mut dyn FnMut(String),
) -> Result<Built, BuildError> {
    let name = tag
        .parse::<Reference>()
        .map_err(|e| BuildError::Tag(tag.to_string(), e.to_string()))?
        .local_name();
    let context = context.canonicalize().map_err(|e| BuildError::Step {
        line: 0,
        message: format!("build context {}: {e}", context.display()),
    })?;
    // ANCHOR: build
    let mut state = State::default();
    let mut made = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        let line = step.line;
        log(format!(
            "STEP {}/{}: {}",
            n + 1,
            steps.len(),
            describe(&step.instruction)
        ));
        match &step.instruction {
            Instruction::From(image) => from(store, &mut state, image, line)?,
            Instruction::Copy { sources, dest } => {
                let info = copy(store, &state, &context, sources, dest, line)?;
                state
                    .push(&info, &format!("COPY {} {dest}", sources.join(" ")));
                made.push(info);
            }
            Instruction::Run(command) => {
                let info = run(home, store, &state, command, line)?;
                state.push(&info, &format!("RUN {command}"));
                made.push(info);
            }
            other => {
                state.configure(other);
                state
                    .history
                    .push(spec::history_entry(&describe(other), true));
            }
        }
    }
    let desc =
        commit_image(store, &state.layers, &state.exec, &state.history, &name)?;
    log(format!("tagged {name} ({})", desc.digest()));
    // ANCHOR_END: build
    Ok(Built {
        name,
        manifest: desc,
        layers: made,
    })
}

/// Writes the config and manifest of an image made of `layers` (blob
/// digest, diff ID, size; bottom first) and tags it `name`.
pub fn commit_image(
    store: &ImageStore,
    layers: &[(Digest, Digest, u64)],
    exec: &ExecConfig,
    history: &[History],
    name: &str,
) -> Result<Descriptor, BuildError> {
    let diff_ids: Vec<Digest> =
        layers.iter().map(|(_, d, _)| d.clone()).collect();
    let config =
        spec::image_config("linux", go_arch(), exec, &diff_ids, history, None)?;
    let (config_bytes, config_desc) = spec::config_blob(&config)?;
    store.write_blob(&config_bytes)?;
    let layer_descs = layers
        .iter()
        .map(|(digest, _, size)| {
            spec::descriptor(spec::MEDIA_TYPE_LAYER_GZIP, digest, *size)
        })
        .collect();
    let manifest =
        spec::image_manifest(config_desc, layer_descs, BTreeMap::new())?;
    let desc = store.put_manifest(&manifest)?;
    store.tag(name, &desc)?;
    Ok(desc)
}

impl State {
    fn push(&mut self, info: &LayerInfo, created_by: &str) {
        self.layers.push((
            info.digest.clone(),
            info.diff_id.clone(),
            info.size,
        ));
        self.history.push(spec::history_entry(created_by, false));
    }

    fn configure(&mut self, instruction: &Instruction) {
        let exec = &mut self.exec;
        match instruction {
            Instruction::Entrypoint(c) => exec.entrypoint = Some(c.argv()),
            Instruction::Cmd(c) => exec.cmd = Some(c.argv()),
            Instruction::Env(pairs) => {
                for (key, value) in pairs {
                    exec.env.retain(|v| {
                        v.split_once('=').map(|(k, _)| k) != Some(key.as_str())
                    });
                    exec.env.push(format!("{key}={value}"));
                }
            }
            Instruction::Workdir(dir) => {
                exec.working_dir = Some(match &exec.working_dir {
                    Some(base) if !dir.starts_with('/') => {
                        format!("{}/{dir}", base.trim_end_matches('/'))
                    }
                    _ => dir.clone(),
                })
            }
            Instruction::User(user) => exec.user = Some(user.clone()),
            Instruction::Expose(ports) => {
                for port in ports {
                    let port = if port.contains('/') {
                        port.clone()
                    } else {
                        format!("{port}/tcp")
                    };
                    if !exec.exposed_ports.contains(&port) {
                        exec.exposed_ports.push(port);
                    }
                }
                exec.exposed_ports.sort();
            }
            Instruction::Label(pairs) => {
                exec.labels.extend(pairs.iter().cloned());
            }
            Instruction::From(_)
            | Instruction::Copy { .. }
            | Instruction::Run(_) => {}
        }
    }
}

fn from(
    store: &ImageStore,
    state: &mut State,
    image: &str,
    line: usize,
) -> Result<(), BuildError> {
    if image == "scratch" {
        return Ok(());
    }
    let store_err = |source| BuildError::Store { line, source };
    let name = image
        .parse::<Reference>()
        .map(|r| r.local_name())
        .unwrap_or_else(|_| image.to_string());
    let desc = store.resolve(&name).map_err(store_err)?;
    let manifest = store.manifest(&desc).map_err(store_err)?;
    let config = store.config(&manifest).map_err(store_err)?;
    let layers = image_layers(&manifest, &config)
        .map_err(|source| BuildError::Run { line, source })?;
    let sizes = manifest.layers().iter().map(|l| l.size());
    state.layers = layers
        .into_iter()
        .zip(sizes)
        .map(|((digest, diff_id), size)| (digest, diff_id, size))
        .collect();
    state.exec = ExecConfig::from_image(&config);
    state.history = config.history().clone().unwrap_or_default();
    Ok(())
}

/// COPY: the files, placed where they go, in a staging tree of their own;
/// that tree is the new layer.
fn copy(
    store: &ImageStore,
    state: &State,
    context: &Path,
    sources: &[String],
    dest: &str,
    line: usize,
) -> Result<LayerInfo, BuildError> {
    let fail = |message: String| BuildError::Step { line, message };
    let staging = tempfile::Builder::new()
        .prefix("kubelings-copy-")
        .tempdir()
        .map_err(|e| fail(format!("a staging directory: {e}")))?;
    let workdir = state.exec.working_dir.clone().unwrap_or_else(|| "/".into());
    let dest_abs = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", workdir.trim_end_matches('/'))
    };
    let into_dir = dest.ends_with('/') || sources.len() > 1;
    let dest_rel = relative_inside(&dest_abs)
        .ok_or_else(|| fail(format!("bad destination {dest:?}")))?;
    for source in sources {
        let rel = relative_inside(source).ok_or_else(|| {
            fail(format!(
                "COPY source {source:?} is outside the build context"
            ))
        })?;
        let from = context.join(&rel);
        let real = from
            .canonicalize()
            .map_err(|e| fail(format!("COPY source {source:?}: {e}")))?;
        if !real.starts_with(context) {
            return Err(fail(format!(
                "COPY source {source:?} leads outside the build context"
            )));
        }
        let target = if into_dir || real.is_dir() {
            if real.is_dir() {
                staging.path().join(&dest_rel)
            } else {
                staging
                    .path()
                    .join(&dest_rel)
                    .join(real.file_name().unwrap_or_default())
            }
        } else {
            staging.path().join(&dest_rel)
        };
        copy_tree(&real, &target)
            .map_err(|e| fail(format!("COPY {source:?}: {e}")))?;
    }
    let mut writer = store
        .blob_writer()
        .map_err(|source| BuildError::Store { line, source })?;
    let info = write_layer_from_dir(staging.path(), &mut writer)
        .map_err(|source| BuildError::Layer { line, source })?;
    writer
        .commit(Some(&info.digest))
        .map_err(|source| BuildError::Store { line, source })?;
    Ok(info)
}

/// RUN: a lab01 container over the layers so far; what it changed is the
/// new layer (read from the overlay's upper directory, or by comparing the
/// tree before and after where overlayfs is not available).
fn run(
    home: &Home,
    store: &ImageStore,
    state: &State,
    command: &Command,
    line: usize,
) -> Result<LayerInfo, BuildError> {
    let run_err = |source| BuildError::Run { line, source };
    let layers: Vec<(Digest, Digest)> = state
        .layers
        .iter()
        .map(|(d, i, _)| (d.clone(), i.clone()))
        .collect();
    let name = format!("build-{}-{line}", std::process::id());
    let assembly = Assembly::best();
    let rootfs = prepare_layers(home, store, &layers, &name, assembly)
        .map_err(run_err)?;
    let before = match assembly {
        Assembly::Flat => Some(
            prepare_layers(
                home,
                store,
                &layers,
                &format!("{name}-before"),
                Assembly::Flat,
            )
            .map_err(run_err)?,
        ),
        Assembly::Overlay => None,
    };
    let mut spec =
        container_spec_from(&state.exec, rootfs.path(), Some(command.argv()))
            .map_err(run_err)?;
    spec.hostname = Some("build".into());
    if !lab01::probe::probe().is_root {
        spec = spec.user_namespace(true);
    }
    let output = lab01::Container::spawn(&spec)
        .and_then(|mut c| c.wait())
        .map_err(|source| BuildError::Container { line, source })?;
    if !output.success() {
        return Err(BuildError::RunFailed {
            line,
            command: command.to_string(),
            status: output,
        });
    }
    let layer_err = |source| BuildError::Layer { line, source };
    let (root, changes) = match (&before, rootfs.upper()) {
        (None, Some(upper)) => {
            let changes =
                changes_from_overlay_upper(&upper).map_err(layer_err)?;
            (upper, changes)
        }
        (Some(before), _) => {
            let changes = changes_between(before.path(), rootfs.path())
                .map_err(layer_err)?;
            (rootfs.path().to_path_buf(), changes)
        }
        (None, None) => {
            unreachable!("an overlay rootfs has an upper directory")
        }
    };
    let mut writer = store
        .blob_writer()
        .map_err(|source| BuildError::Store { line, source })?;
    let info = write_layer(&root, &changes, &mut writer).map_err(layer_err)?;
    writer
        .commit(Some(&info.digest))
        .map_err(|source| BuildError::Store { line, source })?;
    Ok(info)
}

/// `a/b`, `/a/b`, `./a` → `a/b`; `None` for anything with `..`.
fn relative_inside(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Puts a file, a symlink or a whole directory at `to`, keeping modes.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        std::fs::set_permissions(to, meta.permissions())?;
        let mut entries: Vec<_> =
            std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        // A hard link costs nothing and the layer reads the same bytes; a
        // copy where the staging area is on another filesystem.
        std::fs::hard_link(from, to)
            .or_else(|_| std::fs::copy(from, to).map(|_| ()))
    }
}

fn describe(instruction: &Instruction) -> String {
    match instruction {
        Instruction::From(image) => format!("FROM {image}"),
        Instruction::Copy { sources, dest } => {
            format!("COPY {} {dest}", sources.join(" "))
        }
        Instruction::Run(c) => format!("RUN {c}"),
        Instruction::Entrypoint(c) => format!("ENTRYPOINT {c}"),
        Instruction::Cmd(c) => format!("CMD {c}"),
        Instruction::Env(p) => format!("ENV {}", pairs(p)),
        Instruction::Label(p) => format!("LABEL {}", pairs(p)),
        Instruction::Workdir(d) => format!("WORKDIR {d}"),
        Instruction::User(u) => format!("USER {u}"),
        Instruction::Expose(p) => format!("EXPOSE {}", p.join(" ")),
    }
}

fn pairs(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Go architecture name the OCI spec uses for this machine.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
