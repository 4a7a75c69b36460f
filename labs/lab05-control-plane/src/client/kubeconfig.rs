//! Reading a kubeconfig, as a component's `--kubeconfig` flag does: the
//! current context's server, CA and token.

use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use super::{ClientConfig, ClientError};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(flatten)]
    value: T,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize)]
struct Cluster {
    cluster: ClusterInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterInfo {
    server: String,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<String>,
}

#[derive(Deserialize, Default)]
struct User {
    token: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    context: ContextInfo,
}

#[derive(Deserialize)]
struct ContextInfo {
    cluster: String,
    user: String,
}

impl ClientConfig {
    /// The current context of the kubeconfig at `path`.
    pub fn from_kubeconfig(path: &Path) -> Result<ClientConfig, ClientError> {
        let bad = |why: String| {
            ClientError::Config(format!("kubeconfig {}: {why}", path.display()))
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let file: File =
            serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let context = file
            .contexts
            .iter()
            .find(|c| c.name == file.current_context)
            .ok_or_else(|| {
                bad(format!("no context {:?}", file.current_context))
            })?;
        let cluster = file
            .clusters
            .iter()
            .find(|c| c.name == context.value.context.cluster)
            .ok_or_else(|| {
                bad(format!("no cluster {:?}", context.value.context.cluster))
            })?;
        let user = file
            .users
            .iter()
            .find(|u| u.name == context.value.context.user);
        let info = &cluster.value.cluster;
        let ca_pem = match (
            &info.certificate_authority_data,
            &info.certificate_authority,
        ) {
            (Some(data), _) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| {
                        bad(format!("certificate-authority-data: {e}"))
                    })?,
            ),
            (None, Some(file)) => {
                // A relative path is relative to the kubeconfig, as kubectl reads it.
                let file = path.parent().unwrap_or(Path::new(".")).join(file);
                Some(
                    std::fs::read(&file)
                        .map_err(|e| bad(format!("{}: {e}", file.display())))?,
                )
            }
            (None, None) => None,
        };
        Ok(ClientConfig {
            server: info.server.clone(),
            ca_pem,
            token: user.and_then(|u| u.user.token.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::kubeconfig::Kubeconfig;

    #[test]
    fn what_we_write_we_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.kubeconfig");
        Kubeconfig {
            server: "https://127.0.0.1:6443",
            ca_pem: Some("-----BEGIN CERTIFICATE-----\n"),
            user: "admin",
            token: "secret",
        }
        .write(&path)
        .unwrap();
        let config = ClientConfig::from_kubeconfig(&path).unwrap();
        assert_eq!(config.server, "https://127.0.0.1:6443");
        assert_eq!(config.token.as_deref(), Some("secret"));
        assert_eq!(
            config.ca_pem.as_deref(),
            Some(&b"-----BEGIN CERTIFICATE-----\n"[..])
        );
    }

    #[test]
    fn a_missing_context_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: nope\n",
        )
        .unwrap();
        let e = ClientConfig::from_kubeconfig(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no context \"nope\""), "{e}");
    }
}
