//! A base image with no download: this machine's own programs (or busybox)
//! and the shared libraries they need, from lab01's rootfs builder, as one
//! layer.

use lab01::RootfsBuilder;

use super::builder::{commit_image, BuildError, Built};
use crate::layer::write_layer_from_dir;
use crate::layout::ImageStore;
use crate::spec::{self, ExecConfig};

/// Builds the base image and tags it `name`.
pub fn build_base(store: &ImageStore, name: &str) -> Result<Built, BuildError> {
    let fail = |message: String| BuildError::Step { line: 0, message };
    let temp = tempfile::Builder::new()
        .prefix("kubelings-base-")
        .tempdir()
        .map_err(|e| fail(format!("a temporary directory: {e}")))?;
    let root = temp.path().join("rootfs");
    RootfsBuilder::new()
        .build(&root)
        .map_err(|e| fail(format!("the base rootfs: {e}")))?;
    let mut writer = store.blob_writer()?;
    let info = write_layer_from_dir(&root, &mut writer)
        .map_err(|source| BuildError::Layer { line: 0, source })?;
    writer.commit(Some(&info.digest))?;
    let exec = ExecConfig {
        cmd: Some(vec!["/bin/sh".into()]),
        env: vec!["PATH=/bin:/usr/bin:/sbin:/usr/sbin".into()],
        ..ExecConfig::default()
    };
    let history = [spec::history_entry(
        "kubelings base: this machine's programs",
        false,
    )];
    let layers = [(info.digest.clone(), info.diff_id.clone(), info.size)];
    let manifest = commit_image(store, &layers, &exec, &history, name)?;
    Ok(Built {
        name: name.to_string(),
        manifest,
        layers: vec![info],
    })
}
