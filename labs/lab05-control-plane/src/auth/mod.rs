//! Who is asking, and may they: the API server's authentication and
//! authorization, and the files a client needs to reach it.
//!
//! - [`tokens`]: identities and their bearer tokens, kept in a file shaped
//!   like kube-apiserver's `--token-auth-file`.
//! - [`restriction`]: the authorizer, with the node restriction: a node
//!   agent writes only its own Node, Lease and pods.
//! - [`tls`]: the cluster's CA and the API server's certificate.
//! - [`kubeconfig`]: the file kubectl reads to find the server and who it
//!   is.
//!
//! [`TokenGuard`] joins the first two into the API server's
//! [`Guard`](crate::apiserver::guard::Guard).

pub mod kubeconfig;
pub mod restriction;
pub mod tls;
pub mod tokens;

use std::path::PathBuf;
use std::sync::RwLock;

use axum::http::{header, HeaderMap};
use serde_json::Value;

use crate::apiserver::guard::{Attributes, Guard, User};
use crate::apiserver::status::ApiError;

pub use tokens::{Identity, Role, TokenFile};

/// What can go wrong with the files of this module.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    TokenFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("no random numbers: {0}")]
    Random(String),
    #[error("{what}: {reason}")]
    Certificate { what: String, reason: String },
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
}

impl AuthError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuthError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The API server's guard: bearer tokens from a token file, then the
/// [`restriction`] authorizer.
pub struct TokenGuard {
    tokens: RwLock<TokenFile>,
    /// A request with no token is the admin.
    no_token_is_admin: bool,
}

impl TokenGuard {
    pub fn new(tokens: TokenFile) -> TokenGuard {
        TokenGuard {
            tokens: RwLock::new(tokens),
            no_token_is_admin: false,
        }
    }

    /// For plain HTTP: kubectl sends no credentials to a server it does
    /// not reach over TLS (client-go reads the kubeconfig's user only for
    /// a TLS transport), so a request without a token is the admin, as
    /// on kube-apiserver's old insecure port (removed in 1.20). A token
    /// that is there must still be right.
    pub fn insecure(tokens: TokenFile) -> TokenGuard {
        TokenGuard {
            no_token_is_admin: true,
            ..TokenGuard::new(tokens)
        }
    }

    /// The identity a token names, reading the file again first if it
    /// changed (`ch05 kubeconfig --user node:NAME` adds a node's token
    /// while the server runs).
    fn lookup(&self, token: &str) -> Option<Identity> {
        let found = |file: &TokenFile| file.authenticate(token).cloned();
        let tokens = self.tokens.read().ok()?;
        if let Some(id) = found(&tokens) {
            return Some(id);
        }
        if !tokens.changed_on_disk() {
            return None;
        }
        drop(tokens);
        let mut tokens = self.tokens.write().ok()?;
        // An unreadable file keeps the tokens we had.
        let _ = tokens.reload();
        found(&tokens)
    }
}

/// kube-apiserver's answer to a missing or unknown token.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then_some(token)
}

impl Guard for TokenGuard {
    fn authenticate(&self, headers: &HeaderMap) -> Result<User, ApiError> {
        let token = match bearer(headers) {
            Some(token) => token,
            None if self.no_token_is_admin
                && !headers.contains_key(header::AUTHORIZATION) =>
            {
                return Ok(User {
                    name: "admin".into(),
                    groups: vec![
                        tokens::MASTERS.into(),
                        tokens::AUTHENTICATED.into(),
                    ],
                });
            }
            None => return Err(unauthorized()),
        };
        let id = self.lookup(token).ok_or_else(unauthorized)?;
        Ok(id.user())
    }

    fn authorize(
        &self,
        user: &User,
        attrs: &Attributes<'_>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), ApiError> {
        restriction::authorize(user, attrs, old, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn a_token_is_an_identity_and_no_token_is_401_unless_insecure() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = TokenFile::open(dir.path()).unwrap();
        let token = file.issue(&Role::Scheduler).unwrap();
        let guard = TokenGuard::new(TokenFile::open(dir.path()).unwrap());
        let user = guard
            .authenticate(&headers(Some(&format!("Bearer {token}"))))
            .unwrap();
        assert_eq!(user.name, "system:kube-scheduler");
        for bad in [None, Some("Bearer nope"), Some("Basic abc")] {
            let e = guard.authenticate(&headers(bad)).unwrap_err();
            assert_eq!(e.to_status()["message"], "Unauthorized");
            assert_eq!(e.code, 401);
        }
        let insecure =
            TokenGuard::insecure(TokenFile::open(dir.path()).unwrap());
        let user = insecure.authenticate(&headers(None)).unwrap();
        assert_eq!(user.groups, vec![tokens::MASTERS, tokens::AUTHENTICATED]);
        assert!(insecure.authenticate(&headers(Some("Bearer x"))).is_err());
    }
}
