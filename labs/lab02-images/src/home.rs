//! `$KUBELINGS_HOME`: all of one "computer's" local state in one directory.
//! Two homes are two machines, which is how chapter 2's demo pushes an image
//! from one computer and pulls it on another.

use std::path::{Path, PathBuf};

/// The directory and what lives in it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$KUBELINGS_HOME`, else `$XDG_DATA_HOME/kubelings`, else
    /// `~/.local/share/kubelings`.
    pub fn from_env() -> Home {
        let root = std::env::var_os("KUBELINGS_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_DATA_HOME")
                    .map(|d| PathBuf::from(d).join("kubelings"))
            })
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".local/share/kubelings"))
            })
            .unwrap_or_else(|| PathBuf::from("/var/lib/kubelings"));
        Home { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image store: an OCI image layout.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    /// Layers extracted once, by diff ID, shared by every container as
    /// overlayfs lower directories.
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// One directory per running container (its upper and work dirs).
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Registry credentials saved by `ch02 login`.
    pub fn credentials(&self) -> PathBuf {
        self.root.join("auth.json")
    }

    /// CAs for registries with certificates of their own, as Docker's
    /// /etc/docker/certs.d: `certs.d/<host[:port]>/ca.crt`.
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs.d")
    }

    /// Where `ch02 registry serve` keeps its data by default.
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry")
    }
}
