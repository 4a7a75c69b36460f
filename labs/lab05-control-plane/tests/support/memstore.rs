//! A tiny in-memory [`Store`] for the API server's tests: a map under a
//! mutex, every write's event kept for watches. Not the lab's store
//! (that is `lab05::store::embedded`), just enough to drive the server.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use lab05::store::{
    Event, KeyValue, ListOptions, ListResult, Revision, Store, StoreError,
    WatchStream,
};
use tokio::sync::broadcast;

#[derive(Default)]
struct State {
    revision: Revision,
    kvs: BTreeMap<String, KeyValue>,
    history: Vec<Event>,
}

pub struct MemStore {
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore {
            state: Mutex::default(),
            events: broadcast::channel(4096).0,
        }
    }
}

impl MemStore {
    fn write(
        &self,
        key: &str,
        expected: Option<Revision>,
        value: Option<Vec<u8>>,
        must_exist: bool,
    ) -> Result<(Revision, Option<KeyValue>), StoreError> {
        let mut s = self.state.lock().unwrap();
        let current = s.kvs.get(key).cloned();
        match (&current, must_exist) {
            (None, true) => {
                return Err(StoreError::NotFound { key: key.into() })
            }
            (Some(_), false) => {
                return Err(StoreError::AlreadyExists { key: key.into() })
            }
            _ => {}
        }
        if let (Some(expected), Some(cur)) = (expected, &current) {
            if cur.mod_revision != expected {
                return Err(StoreError::Conflict {
                    key: key.into(),
                    expected,
                    current: Box::new(cur.clone()),
                });
            }
        }
        s.revision += 1;
        let revision = s.revision;
        let event = match value {
            Some(value) => {
                let kv = KeyValue {
                    key: key.into(),
                    value,
                    create_revision: current
                        .as_ref()
                        .map_or(revision, |c| c.create_revision),
                    mod_revision: revision,
                };
                s.kvs.insert(key.into(), kv.clone());
                Event::Put {
                    kv,
                    prev: current.clone(),
                }
            }
            None => {
                s.kvs.remove(key);
                Event::Delete {
                    prev: current.clone().unwrap(),
                    revision,
                }
            }
        };
        s.history.push(event.clone());
        let _ = self.events.send(event);
        Ok((revision, current))
    }
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state.lock().unwrap().kvs.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<ListResult, StoreError> {
        let s = self.state.lock().unwrap();
        let mut kvs: Vec<KeyValue> = s
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| {
                options.start_after.as_ref().is_none_or(|a| *k > a)
            })
            .map(|(_, v)| v.clone())
            .collect();
        let mut more = false;
        if let Some(limit) = options.limit {
            more = kvs.len() > limit;
            kvs.truncate(limit);
        }
        Ok(ListResult {
            kvs,
            revision: s.revision,
            more,
        })
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        Ok(self.write(key, None, Some(value), false)?.0)
    }

    async fn update(
        &self,
        key: &str,
        expected: Option<Revision>,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        Ok(self.write(key, expected, Some(value), true)?.0)
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let (rev, prev) = self.write(key, expected, None, true)?;
        Ok((rev, prev.unwrap()))
    }

    async fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<WatchStream, StoreError> {
        let s = self.state.lock().unwrap();
        let past: Vec<Event> = s
            .history
            .iter()
            .filter(|e| e.revision() > after && e.key().starts_with(prefix))
            .cloned()
            .collect();
        let last = s.revision.max(after);
        let rx = self.events.subscribe();
        drop(s);
        let prefix = prefix.to_string();
        let past = futures_util::stream::iter(past.into_iter().map(Ok));
        let future = futures_util::stream::unfold(rx, move |mut rx| {
            let prefix = prefix.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(e)
                            if e.revision() > last
                                && e.key().starts_with(&prefix) =>
                        {
                            return Some((Ok(e), rx))
                        }
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            }
        });
        use futures_util::StreamExt;
        Ok(Box::pin(past.chain(future)))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.state.lock().unwrap().revision)
    }

    async fn compact(&self, _revision: Revision) -> Result<(), StoreError> {
        Ok(())
    }
}
