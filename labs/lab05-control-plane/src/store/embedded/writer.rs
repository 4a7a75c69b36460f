//! The embedded store's single writer, and its group commit.
//!
//! All writes go through one thread. It takes every request waiting in
//! its channel, decides each one in order (each gets the next revision,
//! each compare sees the writes before it in the batch), appends the
//! batch to the log with ONE fsync, and only then makes it visible:
//! applies it to the index, fans the events out to watchers, and answers
//! the callers. Sixteen writers waiting on one fsync pay for one.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, oneshot};

use super::index::Index;
use super::log::{Log, Record};
use crate::store::{Event, KeyValue, Revision, StoreError};

/// A write the store was asked for.
#[derive(Debug)]
pub enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        expected: Option<Revision>,
        value: Vec<u8>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

/// What a write returns.
#[derive(Debug)]
pub enum Done {
    Written(Revision),
    Deleted(Revision, KeyValue),
    Compacted,
}

/// One request, and where its answer goes.
pub struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The most requests one batch takes: one fsync for up to this many.
const MAX_BATCH: usize = 1024;

/// What the writer thread shares with readers.
pub struct Shared {
    pub index: RwLock<Index>,
    pub events: broadcast::Sender<Event>,
}

// ANCHOR: run
/// The writer thread's loop; returns when every sender is gone, or the
/// log cannot be written (then every later write fails).
pub fn run(mut log: Log, shared: Arc<Shared>, requests: Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        if let Err(failed) = commit(&mut log, &shared, batch) {
            // Nothing after a failed write is safe to acknowledge.
            eprintln!("lab05 store: {failed}; the store stops writing");
            return;
        }
    }
}
// ANCHOR_END: run

// ANCHOR: commit
/// Decides, logs, applies and answers one batch.
fn commit(
    log: &mut Log,
    shared: &Shared,
    batch: Vec<Request>,
) -> Result<(), StoreError> {
    let mut records = Vec::new();
    let mut answers = Vec::new();
    {
        let index = shared.index.read().map_err(|_| poisoned())?;
        let mut pending = Pending {
            index: &index,
            changed: HashMap::new(),
            revision: index.revision(),
        };
        for Request { op, reply } in batch {
            let answer = pending.decide(op).map(|(record, done)| {
                records.push(record);
                done
            });
            answers.push((reply, answer));
        }
    }
    if !records.is_empty() {
        let mut encoded = Vec::new();
        for record in &records {
            record.encode(&mut encoded);
        }
        if let Err(e) = log.append(&encoded) {
            for (reply, _) in answers {
                let _ = reply.send(Err(StoreError::Backend(e.to_string())));
            }
            return Err(e);
        }
    }
    let mut compacted = false;
    {
        let mut index = shared.index.write().map_err(|_| poisoned())?;
        for record in records {
            compacted |= matches!(record, Record::Compact { .. });
            if let Some(event) = index.apply(record) {
                // No watcher listening is fine.
                let _ = shared.events.send(event);
            }
        }
    }
    for (reply, answer) in answers {
        // The caller may have given up waiting; that is fine too.
        let _ = reply.send(answer);
    }
    if compacted {
        // Only this thread writes the index, so the snapshot stays true
        // until the rewrite is done.
        let snapshot = shared.index.read().map_err(|_| poisoned())?.snapshot();
        log.rewrite(&snapshot)?;
    }
    Ok(())
}
// ANCHOR_END: commit

pub fn poisoned() -> StoreError {
    StoreError::Backend("the store's index lock is poisoned".into())
}

/// The index plus the batch's writes decided so far.
struct Pending<'a> {
    index: &'a Index,
    /// Keys the batch changed: their value after it (`None`: deleted).
    changed: HashMap<String, Option<KeyValue>>,
    revision: Revision,
}

impl Pending<'_> {
    fn current(&self, key: &str) -> Option<&KeyValue> {
        match self.changed.get(key) {
            Some(value) => value.as_ref(),
            None => self.index.get(key),
        }
    }

    /// The record one write makes, or why it cannot be made.
    fn decide(&mut self, op: Op) -> Result<(Record, Done), StoreError> {
        let next = self.revision + 1;
        let (record, done) = match op {
            Op::Create { key, value } => {
                if self.current(&key).is_some() {
                    return Err(StoreError::AlreadyExists { key });
                }
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: next,
                    mod_revision: next,
                };
                self.changed.insert(kv.key.clone(), Some(kv.clone()));
                (Record::Put(kv), Done::Written(next))
            }
            Op::Update {
                key,
                expected,
                value,
            } => {
                let current =
                    check_compare(&key, self.current(&key), expected)?;
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: current.create_revision,
                    mod_revision: next,
                };
                self.changed.insert(kv.key.clone(), Some(kv.clone()));
                (Record::Put(kv), Done::Written(next))
            }
            Op::Delete { key, expected } => {
                let prev =
                    check_compare(&key, self.current(&key), expected)?.clone();
                self.changed.insert(key.clone(), None);
                let record = Record::Delete {
                    key,
                    revision: next,
                };
                (record, Done::Deleted(next, prev))
            }
            Op::Compact { revision } => {
                if revision > self.revision {
                    return Err(StoreError::FutureRevision {
                        requested: revision,
                        current: self.revision,
                    });
                }
                // A compaction takes no revision of its own.
                return Ok((Record::Compact { revision }, Done::Compacted));
            }
        };
        self.revision = next;
        Ok((record, done))
    }
}

// ANCHOR: check_compare
/// The compare of a conditional write (update or delete): the key must be
/// there, and if the caller names the revision it read (`expected`), the
/// key must still be at it. The value to write over, or why not.
pub fn check_compare<'a>(
    key: &str,
    current: Option<&'a KeyValue>,
    expected: Option<Revision>,
) -> Result<&'a KeyValue, StoreError> {
    // EXERCISE: lab05-store-cas
    let Some(current) = current else {
        return Err(StoreError::NotFound { key: key.into() });
    };
    match expected {
        Some(expected) if expected != current.mod_revision => {
            Err(StoreError::Conflict {
                key: key.into(),
                expected,
                current: Box::new(current.clone()),
            })
        }
        _ => Ok(current),
    }
    // EXERCISE_END: lab05-store-cas
}
// ANCHOR_END: check_compare
