//! Chapter 5's lab, first half: the control plane's heart.
//!
//! - [`store`]: a watchable, versioned key-value store, embedded (our own
//!   MVCC over a file) or real etcd, behind one trait.
//! - [`apiserver`]: the Kubernetes REST API over that store, as the real
//!   `kubectl` and the Python client use it.

pub mod apiserver;
pub mod auth;
pub mod store;
