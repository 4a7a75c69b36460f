//! The embedded store's memory: MVCC over a `BTreeMap`.
//!
//! Each key keeps the versions it had since the last compaction (a
//! deleted key's last version is a tombstone), so a list can be read as
//! the store was at any kept revision. Beside it, the history of events
//! in revision order feeds watches that start in the past. Both are
//! rebuilt from the log on open; `compact` trims both, which keeps
//! memory bounded.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use super::log::Record;
use crate::store::{
    Event, KeyValue, ListOptions, ListResult, Revision, StoreError,
};

/// One version of a key: its value from `revision` on (`None`: deleted).
#[derive(Debug, Clone)]
struct Version {
    revision: Revision,
    kv: Option<KeyValue>,
}

/// The whole store in memory.
#[derive(Debug, Default)]
pub struct Index {
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event with a revision at or after `compacted`, in order.
    history: VecDeque<Event>,
    /// The latest revision.
    revision: Revision,
    /// The oldest revision still readable (0: nothing compacted).
    compacted: Revision,
}

impl Index {
    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn compacted(&self) -> Revision {
        self.compacted
    }

    /// The key as it is now.
    pub fn get(&self, key: &str) -> Option<&KeyValue> {
        self.keys.get(key)?.last()?.kv.as_ref()
    }

    /// The keys under `prefix` as they were at the revision asked for.
    pub fn list(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<ListResult, StoreError> {
        // Revision 0 (or less) is "now", as in etcd.
        let revision =
            options.revision.filter(|&r| r > 0).unwrap_or(self.revision);
        self.check_readable(revision)?;
        let from = match &options.start_after {
            Some(after) if after.as_str() >= prefix => after.as_str(),
            _ => prefix,
        };
        let limit = options.limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let mut kvs = Vec::new();
        let mut more = false;
        let visible = self
            .keys
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(key, _)| options.start_after.as_deref() != Some(key))
            .filter_map(|(_, versions)| at(versions, revision));
        for kv in visible {
            if kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(kv.clone());
        }
        Ok(ListResult {
            kvs,
            revision,
            more,
        })
    }

    fn check_readable(&self, revision: Revision) -> Result<(), StoreError> {
        if revision < self.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        if revision > self.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        Ok(())
    }

    /// The events a watch from `after` starts with.
    pub fn replay(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<Vec<Event>, StoreError> {
        replay_from(&self.history, self.compacted, prefix, after)
    }

    /// Applies one committed record; the event it makes, if any.
    pub fn apply(&mut self, record: Record) -> Option<Event> {
        match record {
            Record::Put(kv) => {
                let prev = self.get(&kv.key).cloned();
                self.revision = kv.mod_revision;
                self.keys.entry(kv.key.clone()).or_default().push(Version {
                    revision: kv.mod_revision,
                    kv: Some(kv.clone()),
                });
                let event = Event::Put { kv, prev };
                self.history.push_back(event.clone());
                Some(event)
            }
            Record::Delete { key, revision } => {
                self.revision = revision;
                let prev = self.get(&key).cloned()?;
                self.keys
                    .entry(key)
                    .or_default()
                    .push(Version { revision, kv: None });
                let event = Event::Delete { prev, revision };
                self.history.push_back(event.clone());
                Some(event)
            }
            Record::Compact { revision } => {
                self.compact(revision);
                None
            }
        }
    }

    /// Forgets what no read at `revision` or later can see.
    fn compact(&mut self, revision: Revision) {
        if revision <= self.compacted {
            return;
        }
        self.compacted = revision;
        // The last write may be a delete at `revision` whose tombstone
        // goes; the revision counter must not go back with it.
        self.revision = self.revision.max(revision);
        while self
            .history
            .front()
            .is_some_and(|e| e.revision() < revision)
        {
            self.history.pop_front();
        }
        self.keys.retain(|_, versions| {
            // Keep the last version before `revision` (a read at
            // `revision` may see it, and it is the `prev` of an event at
            // `revision`), and every later one; a tombstone there is the
            // same as nothing.
            let before = versions.partition_point(|v| v.revision < revision);
            let mut keep_from = before.saturating_sub(1);
            if versions
                .get(keep_from)
                .is_some_and(|v| v.revision < revision && v.kv.is_none())
            {
                keep_from += 1;
            }
            versions.drain(..keep_from);
            !versions.is_empty()
        });
    }
}

impl Index {
    /// The records that rebuild this index as it is now, for a log
    /// rewritten after a compaction: the value each key had just before
    /// the compacted revision, then every kept event, then the compaction.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut base: Vec<&KeyValue> = self
            .keys
            .values()
            .filter_map(|versions| versions.first())
            .filter(|v| v.revision < self.compacted)
            .filter_map(|v| v.kv.as_ref())
            .collect();
        base.sort_by_key(|kv| kv.mod_revision);
        let mut records: Vec<Record> =
            base.into_iter().cloned().map(Record::Put).collect();
        records.extend(self.history.iter().map(|event| match event {
            Event::Put { kv, .. } => Record::Put(kv.clone()),
            Event::Delete { prev, revision } => Record::Delete {
                key: prev.key.clone(),
                revision: *revision,
            },
        }));
        records.push(Record::Compact {
            revision: self.compacted,
        });
        records
    }
}

/// The key's value as of `revision`.
fn at(versions: &[Version], revision: Revision) -> Option<&KeyValue> {
    let seen = versions.partition_point(|v| v.revision <= revision);
    versions.get(seen.checked_sub(1)?)?.kv.as_ref()
}

// ANCHOR: replay_from
/// The events under `prefix` with a revision greater than `after`, from
/// the kept `history` (every event at or after `compacted`, in revision
/// order); [`StoreError::Compacted`] if some of them were forgotten.
pub fn replay_from(
    history: &VecDeque<Event>,
    compacted: Revision,
    prefix: &str,
    after: Revision,
) -> Result<Vec<Event>, StoreError> {
    // EXERCISE: lab05-watch-from
    // The first event wanted is after + 1: it must still be kept.
    if after + 1 < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let start = history.partition_point(|e| e.revision() <= after);
    Ok(history
        .range(start..)
        .filter(|e| e.key().starts_with(prefix))
        .cloned()
        .collect())
    // EXERCISE_END: lab05-watch-from
}
// ANCHOR_END: replay_from
