//! The documents of the OCI image spec, built with the `oci-spec` crate:
//! descriptors, image configs and image manifests, plus the media types
//! that say which is which.
//!
//! An image is a manifest: a small JSON document naming, by digest, one
//! config (how to run the image) and a list of layers (the filesystem).
//! Every builder here is deterministic: the same inputs give the same bytes,
//! so the same image always gets the same digest.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, History, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, ImageManifest, MediaType, Os,
    RootFsBuilder, SCHEMA_VERSION,
};
use serde::Serialize;

use crate::digest::Digest;

// ANCHOR: media_types
/// An image manifest: one config plus layers.
pub const MEDIA_TYPE_MANIFEST: &str =
    "application/vnd.oci.image.manifest.v1+json";
/// An image index: a list of manifests (one per platform, or one per tag in
/// a layout's `index.json`).
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An image config: platform, entrypoint, environment, layer diff IDs.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A layer: a tar of a filesystem change set, gzip-compressed.
pub const MEDIA_TYPE_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.v1.tar+gzip";
/// A layer: an uncompressed tar.
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// A layer: a zstd-compressed tar.
pub const MEDIA_TYPE_LAYER_ZSTD: &str =
    "application/vnd.oci.image.layer.v1.tar+zstd";
// ANCHOR_END: media_types

/// Docker's image manifest (schema 2): the same shape as an OCI manifest.
pub const DOCKER_MEDIA_TYPE_MANIFEST: &str =
    "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's multi-platform manifest list: the same shape as an OCI index.
pub const DOCKER_MEDIA_TYPE_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image config: the same shape as an OCI config.
pub const DOCKER_MEDIA_TYPE_CONFIG: &str =
    "application/vnd.docker.container.image.v1+json";
/// Docker's gzip-compressed layer.
pub const DOCKER_MEDIA_TYPE_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The annotation that names an image in a layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The version of the image layout this crate writes to `oci-layout`.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";

/// Why a document could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("building the {what}: {source}")]
    Build {
        what: &'static str,
        source: oci_spec::OciSpecError,
    },
    #[error("serializing the {what}: {source}")]
    Serialize {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{what} is not valid JSON of the right shape: {source}")]
    Parse {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("unsupported digest {0:?} (only sha256)")]
    UnsupportedDigest(String),
    #[error("the config descriptor has media type {0:?}, not an image config")]
    NotAConfig(String),
    #[error("layer {index} has media type {media_type:?}, not a layer")]
    NotALayer { index: usize, media_type: String },
}

/// Is this the media type of an image manifest (OCI or Docker)?
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_MANIFEST
        || media_type == DOCKER_MEDIA_TYPE_MANIFEST
}

/// Is this the media type of an image index (OCI or Docker)?
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX
        || media_type == DOCKER_MEDIA_TYPE_MANIFEST_LIST
}

/// Is this the media type of an image config (OCI or Docker)?
pub fn is_config(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_CONFIG || media_type == DOCKER_MEDIA_TYPE_CONFIG
}

/// Is this the media type of a layer tar, compressed or not?
pub fn is_layer(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_LAYER
        || is_gzip_layer(media_type)
        || media_type == MEDIA_TYPE_LAYER_ZSTD
}

/// Is this a gzip-compressed layer (OCI or Docker)?
pub fn is_gzip_layer(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_LAYER_GZIP
        || media_type == DOCKER_MEDIA_TYPE_LAYER_GZIP
}

/// Our digest in `oci-spec`'s type.
pub fn oci_digest(digest: &Digest) -> oci_spec::image::Digest {
    // Our Digest only ever holds sha256 and 64 lowercase hex digits, which
    // oci-spec always accepts.
    digest
        .to_string()
        .parse()
        .expect("a sha256 digest is always a valid OCI digest")
}

/// The digest a descriptor names, in our type (sha256 only).
pub fn digest_of(desc: &Descriptor) -> Result<Digest, SpecError> {
    let text = desc.digest().to_string();
    text.parse()
        .map_err(|_| SpecError::UnsupportedDigest(text.clone()))
}

/// A descriptor: what a blob is (`media_type`), its `digest`, its `size`.
pub fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(MediaType::from(media_type), size, oci_digest(digest))
}

/// How a container from the image runs: the parts of the config that
/// `docker run` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `8080/tcp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl ExecConfig {
    /// The run settings an image config carries (empty if it has none).
    pub fn from_image(config: &ImageConfiguration) -> ExecConfig {
        let Some(c) = config.config() else {
            return ExecConfig::default();
        };
        let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
        // They come out of a JSON object in hash order; sort for stable output.
        exposed_ports.sort();
        ExecConfig {
            entrypoint: c.entrypoint().clone(),
            cmd: c.cmd().clone(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone(),
            user: c.user().clone(),
            exposed_ports,
            labels: c
                .labels()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// One history entry: the build step that made a layer (`empty_layer` for
/// steps such as `ENV` that change only the config).
pub fn history_entry(created_by: &str, empty_layer: bool) -> History {
    let mut history = History::default();
    history.set_created_by(Some(created_by.to_string()));
    if empty_layer {
        history.set_empty_layer(Some(true));
    }
    history
}

/// An image config for `os`/`arch` (Go names: `linux`, `amd64`), running as
/// `config` says, whose layers unpack to the tars with `diff_ids`.
///
/// No timestamp is added unless `created` is given (RFC 3339), so building
/// the same image twice gives the same config digest. If it is given, it
/// also dates the `history` entries that have no date.
pub fn image_config(
    os: &str,
    arch: &str,
    config: &ExecConfig,
    diff_ids: &[Digest],
    history: &[History],
    created: Option<&str>,
) -> Result<ImageConfiguration, SpecError> {
    let build = |source| SpecError::Build {
        what: "image config",
        source,
    };
    let mut run = ConfigBuilder::default();
    if let Some(entrypoint) = &config.entrypoint {
        run = run.entrypoint(entrypoint.clone());
    }
    if let Some(cmd) = &config.cmd {
        run = run.cmd(cmd.clone());
    }
    if !config.env.is_empty() {
        run = run.env(config.env.clone());
    }
    if let Some(dir) = &config.working_dir {
        run = run.working_dir(dir.clone());
    }
    if let Some(user) = &config.user {
        run = run.user(user.clone());
    }
    if !config.exposed_ports.is_empty() {
        run = run.exposed_ports(config.exposed_ports.clone());
    }
    if !config.labels.is_empty() {
        run = run.labels(
            config.labels.clone().into_iter().collect::<HashMap<_, _>>(),
        );
    }
    // ANCHOR: image_config
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids.iter().map(Digest::to_string).collect::<Vec<_>>())
        .build()
        .map_err(build)?;
    let mut image = ImageConfigurationBuilder::default()
        .os(Os::from(os))
        .architecture(Arch::from(arch))
        .config(run.build().map_err(build)?)
        .rootfs(rootfs);
    let mut history = history.to_vec();
    if let Some(created) = created {
        image = image.created(created.to_string());
        // Steps without a time of their own happened when the image was
        // made. (Some readers, umoci 0.4's `stat` among them, also need
        // every entry to have one.)
        for entry in history.iter_mut().filter(|h| h.created().is_none()) {
            entry.set_created(Some(created.to_string()));
        }
    }
    if !history.is_empty() {
        image = image.history(history);
    }
    image.build().map_err(build)
    // ANCHOR_END: image_config
}

// ANCHOR: image_manifest
/// The manifest of an image: its config and its layers, bottom layer
/// first, each named by a descriptor. `annotations` go into the manifest
/// as they are (none if empty).
pub fn image_manifest(
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
) -> Result<ImageManifest, SpecError> {
    // EXERCISE: lab02-manifest
    use oci_spec::image::ImageManifestBuilder;
    // A manifest that points at the wrong kind of blob is useless to every
    // reader, so refuse to build one.
    if !is_config(config.media_type().as_ref()) {
        return Err(SpecError::NotAConfig(config.media_type().to_string()));
    }
    for (index, layer) in layers.iter().enumerate() {
        if !is_layer(layer.media_type().as_ref()) {
            return Err(SpecError::NotALayer {
                index,
                media_type: layer.media_type().to_string(),
            });
        }
    }
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers);
    if !annotations.is_empty() {
        manifest = manifest
            .annotations(annotations.into_iter().collect::<HashMap<_, _>>());
    }
    manifest.build().map_err(|source| SpecError::Build {
        what: "image manifest",
        source,
    })
    // EXERCISE_END: lab02-manifest
}
// ANCHOR_END: image_manifest

// ANCHOR: canonical
/// The bytes that get hashed: compact JSON with every object's keys sorted.
///
/// `oci-spec` keeps annotations, labels and ports in hash maps, whose order
/// changes from run to run; sorting the keys makes one document always
/// serialize to the same bytes, hence the same digest.
pub fn to_canonical_json<T: Serialize>(
    value: &T,
) -> Result<Vec<u8>, SpecError> {
    let serialize = |source| SpecError::Serialize {
        what: "document",
        source,
    };
    let value = serde_json::to_value(value).map_err(serialize)?;
    serde_json::to_vec(&sorted(value)).map_err(serialize)
}
// ANCHOR_END: canonical

/// `value` with the keys of every object in sorted order.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            // Inserting in sorted order keeps it sorted even if serde_json's
            // map preserves insertion order.
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// A document as a blob: its canonical bytes and the descriptor naming them.
pub fn to_blob<T: Serialize>(
    value: &T,
    media_type: &str,
) -> Result<(Vec<u8>, Descriptor), SpecError> {
    let bytes = to_canonical_json(value)?;
    let desc = descriptor(media_type, &Digest::of(&bytes), bytes.len() as u64);
    Ok((bytes, desc))
}

/// The config as a blob, with its descriptor for the manifest.
pub fn config_blob(
    config: &ImageConfiguration,
) -> Result<(Vec<u8>, Descriptor), SpecError> {
    to_blob(config, MEDIA_TYPE_CONFIG)
}

/// The manifest as a blob, with its descriptor for an index.
pub fn manifest_blob(
    manifest: &ImageManifest,
) -> Result<(Vec<u8>, Descriptor), SpecError> {
    let media_type = manifest
        .media_type()
        .as_ref()
        .map_or(MEDIA_TYPE_MANIFEST.to_string(), |m| m.to_string());
    to_blob(manifest, &media_type)
}

/// Reads a manifest (OCI, or Docker schema 2, which has the same shape).
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, SpecError> {
    serde_json::from_slice(bytes).map_err(|source| SpecError::Parse {
        what: "image manifest",
        source,
    })
}

/// Reads an image config (OCI or Docker).
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, SpecError> {
    serde_json::from_slice(bytes).map_err(|source| SpecError::Parse {
        what: "image config",
        source,
    })
}

/// Reads an image index (OCI, or a Docker manifest list).
pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex, SpecError> {
    serde_json::from_slice(bytes).map_err(|source| SpecError::Parse {
        what: "image index",
        source,
    })
}

/// Reads a descriptor's annotation, if it has it.
pub fn annotation<'a>(desc: &'a Descriptor, key: &str) -> Option<&'a str> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// An empty index, as a fresh layout's `index.json` holds.
pub fn empty_index() -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_schema_version(SCHEMA_VERSION);
    index.set_media_type(Some(MediaType::ImageIndex));
    index
}
