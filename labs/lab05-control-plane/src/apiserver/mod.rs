//! The API server: Kubernetes' REST API over a [`crate::store::Store`].
//!
//! A request goes: [`server`] (the router, authentication) →
//! [`route`] (which resource the path names) → [`handlers`] (the verb)
//! → [`typed`] (decode, [`defaults`], [`validation`]) and [`meta`] →
//! the store, through [`stored`]. [`subresources`] are the paths below
//! an object; [`discovery`] tells clients what there is.

pub mod admission;
pub mod allocation;
pub mod body;
pub mod bootstrap;
pub mod continue_token;
pub mod defaults;
pub mod discovery;
pub mod fields;
pub mod filter;
pub mod guard;
pub mod handlers;
pub mod list;
pub mod meta;
pub mod openapi;
pub mod params;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod route;
pub mod server;
pub mod splice;
pub mod status;
pub mod stored;
pub mod subresources;
pub mod table;
pub mod typed;
pub mod validation;
pub mod watch;

pub use server::{serve, ApiServer, Options, Version};
