//! Who may do what: the seam between the API server's handlers and
//! authentication and authorization (`crate::auth` implements it).
//!
//! Every request is authenticated first (no identity: 401), then, once
//! the handler knows the object it would write, authorized (403).

use axum::http::HeaderMap;
use serde_json::Value;

use super::resources::Resource;
use super::status::ApiError;

/// An authenticated identity, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `admin`, `system:node:node-1`, `system:kube-scheduler`.
    pub name: String,
    /// `system:masters`, `system:nodes`, `system:authenticated`.
    pub groups: Vec<String>,
}

/// What a request would do, for the authorizer.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`.
    pub verb: &'a str,
    pub resource: &'static Resource,
    /// `status`, `binding`, `scale`, `log`, `eviction`.
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Authentication and authorization, as one object the server holds.
pub trait Guard: Send + Sync + 'static {
    /// The identity of a request from its headers (`Authorization:
    /// Bearer …`); `Err` is a 401 Status.
    fn authenticate(&self, headers: &HeaderMap) -> Result<User, ApiError>;

    /// Whether `user` may do `attrs`, given the object as stored now
    /// (`old`) and as it would be written (`new`), where there are such;
    /// `Err` is a 403 Status.
    fn authorize(
        &self,
        user: &User,
        attrs: &Attributes<'_>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), ApiError>;
}

/// No checks: everyone is the admin (tests of the REST machinery).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Guard for AllowAll {
    fn authenticate(&self, _headers: &HeaderMap) -> Result<User, ApiError> {
        Ok(User {
            name: "admin".into(),
            groups: vec![
                "system:masters".into(),
                "system:authenticated".into(),
            ],
        })
    }

    fn authorize(
        &self,
        _user: &User,
        _attrs: &Attributes<'_>,
        _old: Option<&Value>,
        _new: Option<&Value>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}
