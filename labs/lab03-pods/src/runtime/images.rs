//! The CRI's ImageService on lab02's image store.

use std::collections::BTreeMap;

use lab02::client::{Client, Credentials, TlsOptions};
use lab02::layout::StoreError;
use lab02::reference::Reference;
use oci_spec::image::Descriptor;

use super::LinuxRuntime;
use crate::cri::{CriError, CriResult, Image, ImageService};

fn image_error(image: &str, e: impl std::fmt::Display) -> CriError {
    CriError::Image {
        image: image.to_string(),
        message: e.to_string(),
    }
}

impl LinuxRuntime {
    /// An image as the CRI describes it: its manifest digest, every name
    /// the store gives it, and its stored size (config and layers).
    fn describe(&self, name: &str, desc: &Descriptor) -> CriResult<Image> {
        let store = &self.inner().store;
        let manifest = store.manifest(desc).map_err(|e| image_error(name, e))?;
        let layers: u64 = manifest.layers().iter().map(|l| l.size()).sum();
        let id = desc.digest().to_string();
        let repo_tags = store
            .images()
            .map_err(|e| image_error(name, e))?
            .into_iter()
            .filter(|(_, d)| d.digest().to_string() == id)
            .map(|(tag, _)| tag)
            .collect();
        Ok(Image {
            id,
            repo_tags,
            size: layers + manifest.config().size(),
        })
    }
}

impl ImageService for LinuxRuntime {
    fn list_images(&self) -> CriResult<Vec<Image>> {
        let store = &self.inner().store;
        let mut by_digest: BTreeMap<String, (String, Descriptor)> = BTreeMap::new();
        for (name, desc) in store.images().map_err(|e| image_error("*", e))? {
            by_digest
                .entry(desc.digest().to_string())
                .or_insert((name, desc));
        }
        by_digest
            .values()
            .map(|(name, desc)| self.describe(name, desc))
            .collect()
    }

    fn image_status(&self, image: &str) -> CriResult<Option<Image>> {
        match self.inner().store.resolve(image) {
            Ok(desc) => self.describe(image, &desc).map(Some),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(image_error(image, e)),
        }
    }

    fn pull_image(&self, image: &str) -> CriResult<String> {
        let mut reference: Reference = image.parse().map_err(|e| image_error(image, e))?;
        // A short name comes from the mirror, and keeps its short name.
        let mirrored = match (&reference.registry, &self.config().mirror) {
            (None, Some(mirror)) => {
                let local_name = reference.local_name();
                reference.registry = Some(mirror.clone());
                Some(local_name)
            }
            _ => None,
        };
        let home = &self.config().images;
        // The credentials `ch02 login` saved for that registry, if any.
        let creds = match &reference.registry {
            Some(registry) => Credentials::load(&home.credentials(), registry)
                .map_err(|e| image_error(image, e))?,
            None => None,
        };
        // The mirror is the cluster's own registry, plain HTTP on the
        // cluster network: an insecure registry, as containerd is told.
        let tls = TlsOptions {
            insecure: self.config().mirror.iter().cloned().collect(),
            ..TlsOptions::default()
        };
        let client = Client::new(creds).quiet(true).tls(tls);
        let store = &self.inner().store;
        let report = match &mirrored {
            Some(local_name) => client.pull_as(store, &reference, local_name),
            None => client.pull(store, &reference),
        }
        .map_err(|e| image_error(image, e))?;
        Ok(report.manifest.to_string())
    }

    fn remove_image(&self, image: &str) -> CriResult<()> {
        self.inner()
            .store
            .untag(image)
            .map(|_| ())
            .map_err(|e| image_error(image, e))
    }
}
