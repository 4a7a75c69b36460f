//! The kubeconfig: the file that tells kubectl (and every client library)
//! where the API server is, how to trust it, and who the user is.
//!
//! Three lists joined by names: `clusters` (a server URL and the CA that
//! signed its certificate), `users` (here a bearer token), and `contexts`
//! (a cluster, a user, a default namespace); `current-context` picks one.

use std::path::Path;

use base64::Engine;
use serde::Serialize;

use super::tls::write_private;
use super::AuthError;

/// The cluster's name in every kubeconfig `ch05` writes.
pub const CLUSTER: &str = "kubelings";

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<Named<Cluster>>,
    users: Vec<NamedUser>,
    contexts: Vec<Named<Context>>,
    current_context: String,
    preferences: Preferences,
}

#[derive(Debug, Serialize)]
struct Named<T> {
    name: String,
    #[serde(flatten)]
    value: T,
}

#[derive(Debug, Serialize)]
struct Cluster {
    cluster: ClusterInfo,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterInfo {
    server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_authority_data: Option<String>,
}

#[derive(Debug, Serialize)]
struct NamedUser {
    name: String,
    user: UserInfo,
}

#[derive(Debug, Serialize)]
struct UserInfo {
    token: String,
}

#[derive(Debug, Serialize)]
struct Context {
    context: ContextInfo,
}

#[derive(Debug, Serialize)]
struct ContextInfo {
    cluster: String,
    user: String,
    namespace: String,
}

#[derive(Debug, Serialize)]
struct Preferences {}

/// What one kubeconfig says.
#[derive(Debug, Clone)]
pub struct Kubeconfig<'a> {
    /// `https://127.0.0.1:6443` (or `http://` with no TLS).
    pub server: &'a str,
    /// The CA's certificate, PEM; `None` for a plain-HTTP server.
    pub ca_pem: Option<&'a str>,
    /// The user entry's name (`admin`, `node-1`).
    pub user: &'a str,
    pub token: &'a str,
}

impl Kubeconfig<'_> {
    /// The YAML kubectl reads.
    // ANCHOR: kubeconfig
    pub fn to_yaml(&self) -> Result<String, AuthError> {
        let context = format!("{}@{CLUSTER}", self.user);
        let b64 = base64::engine::general_purpose::STANDARD;
        let config = Config {
            api_version: "v1",
            kind: "Config",
            clusters: vec![Named {
                name: CLUSTER.into(),
                value: Cluster {
                    cluster: ClusterInfo {
                        server: self.server.into(),
                        certificate_authority_data: self
                            .ca_pem
                            .map(|pem| b64.encode(pem)),
                    },
                },
            }],
            users: vec![NamedUser {
                name: self.user.into(),
                user: UserInfo {
                    token: self.token.into(),
                },
            }],
            contexts: vec![Named {
                name: context.clone(),
                value: Context {
                    context: ContextInfo {
                        cluster: CLUSTER.into(),
                        user: self.user.into(),
                        namespace: "default".into(),
                    },
                },
            }],
            current_context: context,
            preferences: Preferences {},
        };
        serde_yaml::to_string(&config)
            .map_err(|e| AuthError::Kubeconfig(e.to_string()))
    }
    // ANCHOR_END: kubeconfig

    /// Writes it to `path`, readable by its owner only (it holds a
    /// token).
    pub fn write(&self, path: &Path) -> Result<(), AuthError> {
        write_private(path, self.to_yaml()?.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_names_server_ca_user_and_context() {
        let yaml = Kubeconfig {
            server: "https://127.0.0.1:6443",
            ca_pem: Some("PEM"),
            user: "admin",
            token: "secret",
        }
        .to_yaml()
        .unwrap();
        insta::assert_snapshot!(yaml, @r"
        apiVersion: v1
        kind: Config
        clusters:
        - name: kubelings
          cluster:
            server: https://127.0.0.1:6443
            certificate-authority-data: UEVN
        users:
        - name: admin
          user:
            token: secret
        contexts:
        - name: admin@kubelings
          context:
            cluster: kubelings
            user: admin
            namespace: default
        current-context: admin@kubelings
        preferences: {}
        ");
    }
}
