//! The API server: Kubernetes' REST API over a [`crate::store::Store`].

pub mod continue_token;
pub mod fields;
pub mod filter;
pub mod guard;
pub mod list;
pub mod openapi;
pub mod params;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod status;
pub mod stored;
pub mod table;
pub mod watch;
