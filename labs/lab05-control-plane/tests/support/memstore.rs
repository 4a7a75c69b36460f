//! A tiny in-memory [`Store`] for the API server's tests: the current
//! keys, the whole history of events (so a list can be read at any old
//! revision and a watch replays from any), and a broadcast channel for
//! the events to come.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::StreamExt;
use lab05::store::{
    Event, KeyValue, ListOptions, ListResult, Revision, Store, StoreError,
    WatchStream,
};
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
enum Msg {
    Event(Event),
    /// Fail every open watch with `Compacted` (or a backend error).
    Fail {
        compacted: Option<Revision>,
    },
}

#[derive(Default)]
struct Inner {
    current: BTreeMap<String, KeyValue>,
    history: Vec<Event>,
    revision: Revision,
    compacted: Revision,
}

pub struct MemStore {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Msg>,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore {
            inner: Mutex::default(),
            tx: broadcast::channel(65536).0,
        }
    }
}

impl MemStore {
    /// Every open watch ends with an error: `Compacted` when `compacted`
    /// is given, a backend error otherwise.
    pub fn fail_watches(&self, compacted: Option<Revision>) {
        let _ = self.tx.send(Msg::Fail { compacted });
    }

    /// How many watches are open.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    fn record(&self, inner: &mut Inner, event: Event) {
        inner.history.push(event.clone());
        let _ = self.tx.send(Msg::Event(event));
    }
}

/// The keys as they were at `revision`, replayed from the history.
fn at(inner: &Inner, revision: Revision) -> BTreeMap<String, KeyValue> {
    let mut keys = BTreeMap::new();
    for e in inner
        .history
        .iter()
        .take_while(|e| e.revision() <= revision)
    {
        match e {
            Event::Put { kv, .. } => {
                keys.insert(kv.key.clone(), kv.clone());
            }
            Event::Delete { prev, .. } => {
                keys.remove(&prev.key);
            }
        }
    }
    keys
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.inner.lock().unwrap().current.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<ListResult, StoreError> {
        let inner = self.inner.lock().unwrap();
        let revision = options.revision.unwrap_or(inner.revision);
        if revision < inner.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: inner.compacted,
            });
        }
        if revision > inner.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: inner.revision,
            });
        }
        let keys = if options.revision.is_some() {
            at(&inner, revision)
        } else {
            inner.current.clone()
        };
        let mut kvs: Vec<KeyValue> = keys
            .into_values()
            .filter(|kv| kv.key.starts_with(prefix))
            .filter(|kv| {
                options
                    .start_after
                    .as_ref()
                    .is_none_or(|after| kv.key.as_str() > after.as_str())
            })
            .collect();
        let mut more = false;
        if let Some(limit) = options.limit {
            more = kvs.len() > limit;
            kvs.truncate(limit);
        }
        Ok(ListResult {
            kvs,
            revision,
            more,
        })
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.current.contains_key(key) {
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        inner.revision += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: inner.revision,
            mod_revision: inner.revision,
        };
        inner.current.insert(key.into(), kv.clone());
        let revision = inner.revision;
        self.record(&mut inner, Event::Put { kv, prev: None });
        Ok(revision)
    }

    async fn update(
        &self,
        key: &str,
        expected: Option<Revision>,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let Some(prev) = inner.current.get(key).cloned() else {
            return Err(StoreError::NotFound { key: key.into() });
        };
        if let Some(expected) = expected.filter(|e| *e != prev.mod_revision) {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected,
                current: Box::new(prev),
            });
        }
        inner.revision += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: prev.create_revision,
            mod_revision: inner.revision,
        };
        inner.current.insert(key.into(), kv.clone());
        let revision = inner.revision;
        self.record(
            &mut inner,
            Event::Put {
                kv,
                prev: Some(prev),
            },
        );
        Ok(revision)
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let Some(prev) = inner.current.get(key).cloned() else {
            return Err(StoreError::NotFound { key: key.into() });
        };
        if let Some(expected) = expected.filter(|e| *e != prev.mod_revision) {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected,
                current: Box::new(prev),
            });
        }
        inner.revision += 1;
        inner.current.remove(key);
        let revision = inner.revision;
        self.record(
            &mut inner,
            Event::Delete {
                prev: prev.clone(),
                revision,
            },
        );
        Ok((revision, prev))
    }

    async fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<WatchStream, StoreError> {
        let inner = self.inner.lock().unwrap();
        if after + 1 < inner.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: inner.compacted,
            });
        }
        let backlog: Vec<Result<Event, StoreError>> = inner
            .history
            .iter()
            .filter(|e| e.revision() > after && e.key().starts_with(prefix))
            .cloned()
            .map(Ok)
            .collect();
        // Subscribed under the lock: nothing between backlog and live.
        let rx = self.tx.subscribe();
        drop(inner);
        let prefix = prefix.to_string();
        let live = futures_util::stream::unfold(Some(rx), move |rx| {
            let prefix = prefix.clone();
            async move {
                let mut rx = rx?;
                loop {
                    match rx.recv().await {
                        Ok(Msg::Event(e)) if e.key().starts_with(&prefix) => {
                            return Some((Ok(e), Some(rx)))
                        }
                        Ok(Msg::Event(_)) => {}
                        Ok(Msg::Fail { compacted }) => {
                            let e = match compacted {
                                Some(c) => StoreError::Compacted {
                                    requested: after,
                                    compacted: c,
                                },
                                None => StoreError::Backend("gone".into()),
                            };
                            return Some((Err(e), None));
                        }
                        Err(e) => {
                            return Some((
                                Err(StoreError::Backend(e.to_string())),
                                None,
                            ))
                        }
                    }
                }
            }
        });
        Ok(Box::pin(futures_util::stream::iter(backlog).chain(live)))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner.lock().unwrap().revision)
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        inner.compacted = inner.compacted.max(revision);
        Ok(())
    }
}
