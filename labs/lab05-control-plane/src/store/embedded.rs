//! The embedded store: our own MVCC, durable in our own write-ahead log.
//!
//! Why a log and not a kept database: the store's state is small (a
//! cluster's objects), so it all fits in memory; what must be on disk is
//! only the sequence of committed writes. An append-only log with a
//! checksum per record is the simplest thing that survives kill -9
//! ([`log`]), the in-memory index serves every read ([`index`]), and one
//! writer thread commits writes in batches with one fsync each
//! ([`writer`]). Watches are fed from the index's history, then from a
//! broadcast of committed events.
//!
//! The log is never rewritten: compaction trims memory, not the file.

pub mod index;
pub mod log;
pub mod writer;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{broadcast, oneshot};

use self::index::Index;
use self::writer::{Done, Op, Request, Shared};
use super::{
    Event, KeyValue, ListOptions, ListResult, Revision, Store, StoreError,
    WatchStream,
};

/// How many events a watcher may lag behind before it is dropped (a
/// power of two: tokio's broadcast channel rounds its capacity up to one).
pub const WATCH_BUFFER: usize = 1 << 14;
/// How many writes may wait for the writer before callers wait to send.
const QUEUE: usize = 4096;

/// The embedded store over one directory.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Mutex<Option<SyncSender<Request>>>,
    writer: Option<JoinHandle<()>>,
}

impl EmbeddedStore {
    /// Opens the store in `dir` (created if needed), replaying its log.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        let (log, records) = log::Log::open(dir)?;
        let mut index = Index::default();
        for record in records {
            index.apply(record);
        }
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let shared = Arc::new(Shared {
            index: std::sync::RwLock::new(index),
            events,
        });
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let for_writer = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("lab05-store-writer".into())
            .spawn(move || writer::run(log, for_writer, rx))
            .map_err(|e| {
                StoreError::Backend(format!("start the writer: {e}"))
            })?;
        Ok(EmbeddedStore {
            shared,
            requests: Mutex::new(Some(tx)),
            writer: Some(writer),
        })
    }

    /// Hands `op` to the writer and waits for its answer.
    async fn write(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        let sender = self
            .requests
            .lock()
            .map_err(|_| writer::poisoned())?
            .clone()
            .ok_or_else(stopped)?;
        // A full queue blocks; do not block the async runtime's thread.
        let request = Request { op, reply };
        match sender.try_send(request) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(request)) => {
                tokio::task::spawn_blocking(move || sender.send(request))
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?
                    .map_err(|_| stopped())?;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        answer.await.map_err(|_| stopped())?
    }

    fn index(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, Index>, StoreError> {
        self.shared.index.read().map_err(|_| writer::poisoned())
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's writer has stopped".into())
}

fn unexpected(done: Done) -> StoreError {
    StoreError::Backend(format!("the writer answered {done:?}"))
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer; wait so the log is closed
        // before the directory can be opened again.
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.index()?.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<ListResult, StoreError> {
        self.index()?.list(prefix, options)
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        let key = key.to_string();
        match self.write(Op::Create { key, value }).await? {
            Done::Written(revision) => Ok(revision),
            other => Err(unexpected(other)),
        }
    }

    async fn update(
        &self,
        key: &str,
        expected: Option<Revision>,
        value: Vec<u8>,
    ) -> Result<Revision, StoreError> {
        let key = key.to_string();
        match self
            .write(Op::Update {
                key,
                expected,
                value,
            })
            .await?
        {
            Done::Written(revision) => Ok(revision),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let key = key.to_string();
        match self.write(Op::Delete { key, expected }).await? {
            Done::Deleted(revision, prev) => Ok((revision, prev)),
            other => Err(unexpected(other)),
        }
    }

    // ANCHOR: watch
    async fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<WatchStream, StoreError> {
        // Subscribe while holding the index: the writer publishes under
        // its write lock, so no event falls between history and live.
        let (replay, live) = {
            let index = self.index()?;
            let live = self.shared.events.subscribe();
            (index.replay(prefix, after)?, live)
        };
        let last = replay.last().map_or(after, Event::revision);
        Ok(Box::pin(watch_stream(
            replay.into(),
            live,
            prefix.to_string(),
            last,
        )))
    }
    // ANCHOR_END: watch

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.index()?.revision())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        match self.write(Op::Compact { revision }).await? {
            Done::Compacted => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

/// A watch's state between two events.
struct Watching {
    replay: VecDeque<Event>,
    live: broadcast::Receiver<Event>,
    prefix: String,
    /// The revision of the last event sent.
    last: Revision,
    ended: bool,
}

/// The replayed events, then the live ones under the prefix; a watcher
/// that lags more than [`WATCH_BUFFER`] events gets an error and the end.
fn watch_stream(
    replay: VecDeque<Event>,
    live: broadcast::Receiver<Event>,
    prefix: String,
    last: Revision,
) -> impl futures_util::Stream<Item = Result<Event, StoreError>> + Send {
    let state = Watching {
        replay,
        live,
        prefix,
        last,
        ended: false,
    };
    futures_util::stream::unfold(state, |mut w| async move {
        if w.ended {
            return None;
        }
        if let Some(event) = w.replay.pop_front() {
            return Some((Ok(event), w));
        }
        loop {
            match w.live.recv().await {
                Ok(event) => {
                    if event.revision() <= w.last
                        || !event.key().starts_with(&w.prefix)
                    {
                        continue;
                    }
                    w.last = event.revision();
                    return Some((Ok(event), w));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    w.ended = true;
                    let error = StoreError::Compacted {
                        requested: w.last,
                        compacted: w.last + 1,
                    };
                    return Some((Err(error), w));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    w.ended = true;
                    let error = StoreError::Backend("the store closed".into());
                    return Some((Err(error), w));
                }
            }
        }
    })
}
