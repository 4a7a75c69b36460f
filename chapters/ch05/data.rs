//! The control plane's data directory: where the store, the CA, the
//! tokens and the kubeconfigs live, and where the running server says
//! how to reach it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lab02::home::Home;

/// Where the server writes the URL it serves, for `ch05 kubeconfig`.
const SERVER_FILE: &str = "server-url";

/// The URL a kubeconfig names when no server has said otherwise.
pub const DEFAULT_URL: &str = "https://127.0.0.1:6443";

/// `--data`, else `$KUBELINGS_HOME/control-plane`.
pub fn dir(data: Option<PathBuf>) -> PathBuf {
    data.unwrap_or_else(|| Home::from_env().root().join("control-plane"))
}

/// Makes the directory (private: it holds the CA key and the tokens).
pub fn create(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| {
            format!("cannot use {} as the data directory", dir.display())
        })?;
    // A file there, or a directory we may not write into, fails now
    // rather than halfway through.
    let probe = dir.join(".writable");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub fn save_url(dir: &Path, url: &str) -> anyhow::Result<()> {
    let path = dir.join(SERVER_FILE);
    std::fs::write(&path, format!("{url}\n"))
        .with_context(|| format!("writing {}", path.display()))
}

/// The URL the last server to run here serves.
pub fn url(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(SERVER_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}
