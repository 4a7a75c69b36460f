//! The controller manager's controllers: each one a reconcile loop that
//! compares what an object asks for (its spec) with what the informers'
//! caches show, and writes through the API server until they agree.
//!
//! Every controller has the same shape, client-go's: informers call
//! event handlers, which put keys (`namespace/name`) in a work queue;
//! a worker takes a key, reads the object and its dependents from the
//! caches and syncs. A failed sync puts the key back rate-limited; a
//! key added again while it is being synced is synced once more after.

pub mod daemonset;
pub mod deployment;
pub mod endpointslice;
pub mod expectations;
pub mod gc;
pub mod job;
pub mod manager;
pub mod nodelifecycle;
pub mod pods;
pub mod replicaset;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::client::ClientError;
use crate::workqueue::WorkQueue;

/// Why a sync failed; the key is retried.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: ClientError,
    },
    #[error("{0}")]
    Invalid(String),
}

impl SyncError {
    pub(crate) fn api(
        what: impl Into<String>,
    ) -> impl FnOnce(ClientError) -> SyncError {
        let what = what.into();
        move |source| SyncError::Api { what, source }
    }
}

/// Splits `namespace/name`.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

// ANCHOR: worker
/// A worker: takes keys from `queue` and syncs them until `stop`.
/// Errors are logged and the key retried with back-off, as
/// client-go's `processNextWorkItem`.
pub fn run_worker(
    name: &str,
    queue: &WorkQueue<String>,
    stop: &AtomicBool,
    mut sync: impl FnMut(&str) -> Result<(), SyncError>,
) {
    while !stop.load(Ordering::SeqCst) {
        let Some(key) = queue.get(Duration::from_millis(200)) else {
            continue;
        };
        match sync(&key) {
            Ok(()) => queue.forget(&key),
            Err(e) => {
                eprintln!("{name}: sync {key}: {e}");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}
// ANCHOR_END: worker
