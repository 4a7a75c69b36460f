//! An informer: a local copy of one kind's objects, kept current by list
//! and watch, as client-go's shared informers keep theirs.
//!
//! Every component of the control plane reads the cluster this way: it
//! lists once, then watches from the list's resourceVersion, so it learns
//! of each change without asking again. When the watch breaks it watches
//! again from the last revision it saw; when the server says that revision
//! is gone (410), it lists again and reports what changed meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, WatchEvent};
use k8s_openapi::{ListableResource, Metadata, Resource};
use serde::de::DeserializeOwned;

use crate::client::{Client, ClientError};

/// What an informer saw happen to one object.
#[derive(Debug)]
pub enum Change<T> {
    Added(Arc<T>),
    Modified {
        old: Arc<T>,
        new: Arc<T>,
    },
    Deleted(Arc<T>),
    /// The cache holds a complete list (after the first list, and after
    /// each relist).
    Synced,
}

/// The cache's key of an object: `namespace/name`, or `name` for a
/// cluster-scoped one (client-go's MetaNamespaceKeyFunc).
pub fn key_of(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// The kinds an informer can keep.
pub trait Informable:
    Resource
    + ListableResource
    + Metadata<Ty = ObjectMeta>
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<T> Informable for T where
    T: Resource
        + ListableResource
        + Metadata<Ty = ObjectMeta>
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

struct Shared<T> {
    items: RwLock<HashMap<String, Arc<T>>>,
    synced: Mutex<bool>,
    synced_cv: Condvar,
}

/// A read-only view of an informer's objects; clones share it.
pub struct Cache<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Cache {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Cache<T> {
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.read().get(key).cloned()
    }

    pub fn list(&self) -> Vec<Arc<T>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a complete list has been seen.
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<T>>> {
        // A handler that panicked holds no lock for long; its data is whole.
        self.shared.items.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<T>>> {
        self.shared.items.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// One kind's list-and-watch loop, on a thread of its own.
pub struct Informer<T> {
    cache: Cache<T>,
    stop: Arc<AtomicBool>,
}

/// How long a watch runs before the server ends it and we watch again
/// (kube's reflectors pick 5–10 minutes; shorter here, so a stopped
/// informer's thread ends soon).
const WATCH_TIMEOUT_SECONDS: u64 = 60;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl<T: Informable> Informer<T> {
    /// Starts listing and watching `T` in `namespace` (all when `None`),
    /// filtered by `query` (`labelSelector=…&fieldSelector=…`, may be
    /// empty). `handler` runs on the informer's thread after the cache
    /// has taken each change.
    pub fn start(
        client: Client,
        namespace: Option<&str>,
        query: &str,
        handler: impl FnMut(&Change<T>) + Send + 'static,
    ) -> Informer<T> {
        let cache = Cache {
            shared: Arc::new(Shared {
                items: RwLock::new(HashMap::new()),
                synced: Mutex::new(false),
                synced_cv: Condvar::new(),
            }),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let reflector = Reflector {
            client,
            namespace: namespace.map(str::to_string),
            query: query.to_string(),
            cache: cache.clone(),
            stop: stop.clone(),
            handler: Box::new(handler),
        };
        let name = format!("informer-{}", T::KIND.to_lowercase());
        // The thread ends at the next event or watch timeout after stop.
        let _ = std::thread::Builder::new()
            .name(name)
            .spawn(move || reflector.run());
        Informer { cache, stop }
    }

    pub fn cache(&self) -> Cache<T> {
        self.cache.clone()
    }

    /// Waits until the first list is in the cache; false on timeout.
    pub fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let shared = &self.cache.shared;
        let mut synced =
            shared.synced.lock().unwrap_or_else(|p| p.into_inner());
        while !*synced {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            synced = shared
                .synced_cv
                .wait_timeout(synced, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Stops the loop; no handler call starts after this returns… except
    /// one already under way.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl<T> Drop for Informer<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type Handler<T> = Box<dyn FnMut(&Change<T>) + Send>;

struct Reflector<T> {
    client: Client,
    namespace: Option<String>,
    query: String,
    cache: Cache<T>,
    stop: Arc<AtomicBool>,
    handler: Handler<T>,
}

/// Why a watch ended.
enum WatchEnd {
    /// The server ended it (its timeout): watch again from `rv`.
    Timeout,
    /// The revision is gone: list again.
    Gone,
    /// The connection broke or the server is away: wait, then watch again.
    Broken(ClientError),
}

impl<T: Informable> Reflector<T> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        'list: while !self.stopped() {
            let mut rv = match self.relist() {
                Ok(rv) => {
                    backoff = Duration::from_millis(100);
                    rv
                }
                Err(_) => {
                    self.sleep(&mut backoff);
                    continue;
                }
            };
            while !self.stopped() {
                match self.watch(&mut rv) {
                    WatchEnd::Timeout => backoff = Duration::from_millis(100),
                    WatchEnd::Gone => continue 'list,
                    WatchEnd::Broken(e) => {
                        if e.code() == Some(410) {
                            continue 'list;
                        }
                        self.sleep(&mut backoff);
                    }
                }
            }
        }
    }

    fn sleep(&self, backoff: &mut Duration) {
        let until = Instant::now() + *backoff;
        while Instant::now() < until && !self.stopped() {
            std::thread::sleep(Duration::from_millis(50));
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }

    /// Lists, replaces the cache and reports the differences.
    fn relist(&mut self) -> Result<String, ClientError> {
        let listed = self
            .client
            .list::<T>(self.namespace.as_deref(), &self.query)?;
        let mut changes = Vec::new();
        {
            let mut items = self.cache.write();
            let mut fresh = HashMap::with_capacity(listed.items.len());
            for item in listed.items {
                let item = Arc::new(item);
                let key = key_of(item.metadata());
                match items.remove(&key) {
                    None => changes.push(Change::Added(item.clone())),
                    Some(old)
                        if old.metadata().resource_version
                            != item.metadata().resource_version =>
                    {
                        changes.push(Change::Modified {
                            old,
                            new: item.clone(),
                        })
                    }
                    Some(_) => {}
                }
                fresh.insert(key, item);
            }
            for (_, gone) in items.drain() {
                changes.push(Change::Deleted(gone));
            }
            *items = fresh;
        }
        for change in &changes {
            (self.handler)(change);
        }
        {
            let shared = &self.cache.shared;
            *shared.synced.lock().unwrap_or_else(|p| p.into_inner()) = true;
            shared.synced_cv.notify_all();
        }
        (self.handler)(&Change::Synced);
        Ok(listed.resource_version)
    }

    fn watch(&mut self, rv: &mut String) -> WatchEnd {
        let mut query = format!(
            "resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={WATCH_TIMEOUT_SECONDS}"
        );
        if !self.query.is_empty() {
            query = format!("{}&{query}", self.query);
        }
        let events =
            match self.client.watch::<T>(self.namespace.as_deref(), &query) {
                Ok(events) => events,
                Err(e) => return WatchEnd::Broken(e),
            };
        for event in events {
            if self.stopped() {
                return WatchEnd::Timeout;
            }
            let change = match event {
                Err(e) => return WatchEnd::Broken(e),
                Ok(WatchEvent::Bookmark {
                    resource_version, ..
                }) => {
                    *rv = resource_version;
                    continue;
                }
                Ok(WatchEvent::ErrorStatus(status)) => {
                    if status.code == Some(410) {
                        return WatchEnd::Gone;
                    }
                    return WatchEnd::Broken(ClientError::Api {
                        code: status.code.unwrap_or_default() as u16,
                        reason: status.reason.unwrap_or_default(),
                        message: status.message.unwrap_or_default(),
                    });
                }
                Ok(WatchEvent::ErrorOther(_)) => return WatchEnd::Gone,
                Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                    if let Some(v) = &o.metadata().resource_version {
                        rv.clone_from(v);
                    }
                    let new = Arc::new(o);
                    let key = key_of(new.metadata());
                    match self.cache.write().insert(key, new.clone()) {
                        None => Change::Added(new),
                        Some(old) => Change::Modified { old, new },
                    }
                }
                Ok(WatchEvent::Deleted(o)) => {
                    if let Some(v) = &o.metadata().resource_version {
                        rv.clone_from(v);
                    }
                    let gone = Arc::new(o);
                    self.cache.write().remove(&key_of(gone.metadata()));
                    Change::Deleted(gone)
                }
            };
            (self.handler)(&change);
        }
        WatchEnd::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespace_slash_name() {
        let meta = ObjectMeta {
            name: Some("kubia".into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        assert_eq!(key_of(&meta), "default/kubia");
        let node = ObjectMeta {
            name: Some("node-1".into()),
            ..Default::default()
        };
        assert_eq!(key_of(&node), "node-1");
    }
}
