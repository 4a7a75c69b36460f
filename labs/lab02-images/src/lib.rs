//! lab02: OCI images, layers, a registry, and containers from images.
//!
//! Chapter 2 of the kubelings book builds this crate on top of lab01: an
//! image is a stack of filesystem layers plus a config, named by digests,
//! kept in an OCI image layout, shipped through a registry speaking the OCI
//! distribution API, and run as a lab01 container.
//!
//! Formats, the registry and the client build on any Unix; unpacking,
//! builds and running (kernel work) only on Linux.

/// Saving and loading images as one OCI archive file.
pub mod archive;
/// Dockerfile parsing and image builds.
pub mod build;
/// Pushing to and pulling from a registry.
pub mod client;
pub mod digest;
/// `$KUBELINGS_HOME`: a computer's images, layers, containers and credentials.
pub mod home;
/// Layers: directory trees as deterministic tar+gzip blobs, with whiteouts.
pub mod layer;
/// The local image store: an OCI image layout on disk.
pub mod layout;
/// Image references: `127.0.0.1:5000/kubia:v1`.
pub mod reference;
/// A registry server implementing the OCI distribution API.
pub mod registry;
/// Running an image as a lab01 container.
#[cfg(target_os = "linux")]
pub mod run;
/// Manifests, configs, descriptors and media types, per the OCI image spec.
pub mod spec;
/// Unpacking images into a container's root filesystem, safely.
pub mod unpack;

pub use digest::{Digest, DigestError};
