//! The API server's store: one interface, two implementations.
//!
//! Everything the API server keeps lives under keys in kube-apiserver's
//! layout (`/registry/pods/<namespace>/<name>`), each value one object's
//! JSON. The store is *versioned*: every write gets the next revision of
//! the whole store, a key remembers the revision that created it and the
//! one that last changed it, and that last one is the object's
//! `resourceVersion`. The same numbers order the watch: a watcher that
//! saw revision N asks for everything after N and misses nothing.
//!
//! - [`embedded`]: the default, our own MVCC over one file on disk.
//! - [`etcd`]: real etcd v3, through its JSON gateway.

pub mod bench;
pub mod embedded;
pub mod etcd;
pub mod etcd_process;

pub use embedded::EmbeddedStore;
pub use etcd::EtcdStore;
pub use etcd_process::EtcdProcess;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;

/// A revision of the whole store: 1 is the first write, and every write
/// (create, update, delete) takes the next one. (A new etcd is at 1
/// before any write, so there the first write is 2.)
pub type Revision = i64;

/// One key as the store holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the write that created this key (since its last
    /// delete).
    pub create_revision: Revision,
    /// The revision of the write that last changed it: the object's
    /// resourceVersion.
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value", &String::from_utf8_lossy(&self.value))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// What a list returns: the keys, and the revision they were read at
/// (the list's resourceVersion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    /// The store's revision the list was read at.
    pub revision: Revision,
    /// More keys follow the last one returned (the list hit its limit).
    pub more: bool,
}

/// How to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read as the store was at this revision; `None` is now.
    pub revision: Option<Revision>,
    /// Start after this key (a `continue` token's position).
    pub start_after: Option<String>,
    /// At most this many keys; `None` is all.
    pub limit: Option<usize>,
}

/// One change, in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Created (`kv.create_revision == kv.mod_revision`) or changed.
    Put {
        kv: KeyValue,
        /// The value before this write, when there was one.
        prev: Option<KeyValue>,
    },
    /// Deleted at `revision`; `prev` is the last value the key had.
    Delete { prev: KeyValue, revision: Revision },
}

impl Event {
    /// The revision of the write this event reports.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// A watch's events: every change under the prefix after the revision
/// asked for, in order, none skipped. The stream ends only when the
/// watcher drops it, or with an error (the store went away, or the
/// watcher fell so far behind that the store dropped it: then
/// [`StoreError::Compacted`], and the watcher relists).
pub type WatchStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<Event, StoreError>> + Send>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create found the key there already.
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    /// Update or delete: the key is not there.
    #[error("key {key} not found")]
    NotFound { key: String },
    /// Update or delete with a compare: the key changed since `expected`.
    /// `current` is what is there now (the API server answers 409 with it).
    #[error("key {key} was modified: expected revision {expected}, it is at {}", current.mod_revision)]
    Conflict {
        key: String,
        expected: Revision,
        current: Box<KeyValue>,
    },
    /// The revision asked for is older than what the store still keeps
    /// (410 Gone: "too old resource version").
    #[error(
        "revision {requested} is compacted (the oldest kept is {compacted})"
    )]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The revision asked for is in the future.
    #[error("revision {requested} is newer than the store's {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The backend failed: a disk error, etcd unreachable.
    #[error("store backend: {0}")]
    Backend(String),
}

/// The store's interface. Every method is one atomic step; writes are
/// durable (on disk, or acknowledged by etcd's quorum) when they return.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key as it is now.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// The keys starting with `prefix`, in key order.
    async fn list(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<ListResult, StoreError>;

    /// Create the key if it is absent; its new revision.
    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError>;

    /// Replace the key's value if it is still at `expected` (its
    /// mod_revision); its new revision. `None` replaces whatever is there
    /// (but the key must exist).
    async fn update(
        &self,
        key: &str,
        expected: Option<Revision>,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError>;

    /// Delete the key if it is still at `expected` (`None`: whatever is
    /// there); the revision of the delete and the value it had.
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError>;

    /// Every change under `prefix` with a revision greater than `after`,
    /// first the ones already made, then the ones to come.
    async fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<WatchStream, StoreError>;

    /// The store's current revision (of its latest write).
    async fn revision(&self) -> Result<Revision, StoreError>;

    /// Forget history before `revision`: older reads and watches get
    /// [`StoreError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;
}
