//! The embedded store's write-ahead log: the only thing on disk.
//!
//! Every committed write is one record appended to `store.log`:
//! `[length u32][crc32 u32][payload]`, little-endian. A batch of records
//! is made durable by one `fdatasync` (group commit), into space zeroed
//! ahead of time ([`Log::append`]). On open the log is
//! replayed from the start; a record cut short by a crash (kill -9 in the
//! middle of a write) fails its length or checksum check, and it and
//! everything after it are dropped: those writes were never acknowledged.
//! After a compaction the log is rewritten as a snapshot of what is kept
//! ([`Log::rewrite`]), so the file stays as bounded as the memory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::store::{KeyValue, Revision, StoreError};

/// One committed change, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The key's new value, with both its revisions.
    Put(KeyValue),
    /// The key was deleted at `revision`.
    Delete { key: String, revision: Revision },
    /// History before `revision` was forgotten.
    Compact { revision: Revision },
}

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_COMPACT: u8 = 3;
/// The header before each payload: length and checksum.
const HEADER: usize = 8;

impl Record {
    /// Appends this record, header and all, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::new();
        match self {
            Record::Put(kv) => {
                payload.push(TAG_PUT);
                payload.extend_from_slice(&kv.mod_revision.to_le_bytes());
                payload.extend_from_slice(&kv.create_revision.to_le_bytes());
                put_bytes(&mut payload, kv.key.as_bytes());
                put_bytes(&mut payload, &kv.value);
            }
            Record::Delete { key, revision } => {
                payload.push(TAG_DELETE);
                payload.extend_from_slice(&revision.to_le_bytes());
                put_bytes(&mut payload, key.as_bytes());
            }
            Record::Compact { revision } => {
                payload.push(TAG_COMPACT);
                payload.extend_from_slice(&revision.to_le_bytes());
            }
        }
        // A payload is far below 4 GiB (one Kubernetes object).
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc32(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }

    /// Decodes one payload (its checksum already checked).
    fn decode(payload: &[u8]) -> Option<Record> {
        let mut r = Reader(payload);
        let record = match r.u8()? {
            TAG_PUT => {
                let mod_revision = r.i64()?;
                let create_revision = r.i64()?;
                let key = String::from_utf8(r.bytes()?.to_vec()).ok()?;
                let value = r.bytes()?.to_vec();
                Record::Put(KeyValue {
                    key,
                    value,
                    create_revision,
                    mod_revision,
                })
            }
            TAG_DELETE => {
                let revision = r.i64()?;
                let key = String::from_utf8(r.bytes()?.to_vec()).ok()?;
                Record::Delete { key, revision }
            }
            TAG_COMPACT => Record::Compact { revision: r.i64()? },
            _ => return None,
        };
        r.0.is_empty().then_some(record)
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over a payload; `None` when it is too short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

/// How much zeroed space the log adds at a time. Appends go into space
/// already written (with zeros) and synced, so their `fdatasync` flushes
/// data only: the file's size and extents do not change on each commit.
const GROW: u64 = 8 << 20;

/// The open log, positioned after its last record.
pub struct Log {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
    /// The file's size: zeros from `end` to here.
    allocated: u64,
}

impl Log {
    /// Opens (or creates) `dir/store.log`, returns it with every intact
    /// record in it. A torn tail is cut off the file, so new records follow
    /// the last good one (the zeros after the last record read as the end).
    pub fn open(dir: &Path) -> Result<(Log, Vec<Record>), StoreError> {
        let err = |what: &str, e: std::io::Error| {
            StoreError::Backend(format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| err("create", e))?;
        let path = dir.join("store.log");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| err("open the log in", e))?;
        // A new file's directory entry must be durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err("sync", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| err("read the log in", e))?;
        let (records, good) = parse(&bytes);
        let end = good as u64;
        if end < bytes.len() as u64 {
            // Cut what follows the last record, torn or zeros, so no stale
            // byte can follow a new record.
            file.set_len(end)
                .and_then(|()| file.sync_all())
                .map_err(|e| err("cut the torn tail of the log in", e))?;
        }
        let log = Log {
            file,
            path,
            end,
            allocated: end,
        };
        Ok((log, records))
    }

    /// Appends the encoded records and waits until they are on disk.
    pub fn append(&mut self, encoded: &[u8]) -> Result<(), StoreError> {
        let len = encoded.len() as u64;
        let written = self
            .grow_for(len)
            .and_then(|()| self.file.write_all_at(encoded, self.end))
            .and_then(|()| self.file.sync_data());
        written.map_err(|e| {
            StoreError::Backend(format!("write {}: {e}", self.path.display()))
        })?;
        self.end += len;
        Ok(())
    }

    /// Makes room for `len` more bytes: zeros written and synced, size and
    /// all, so the appends into them change no metadata.
    fn grow_for(&mut self, len: u64) -> std::io::Result<()> {
        if self.end + len <= self.allocated {
            return Ok(());
        }
        let target = self.allocated.max(self.end + len) + GROW;
        let zeros = vec![0u8; 1 << 20];
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(zeros.len() as u64);
            // n is at most 1 MiB.
            self.file.write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
        self.file.sync_all()?;
        self.allocated = target;
        Ok(())
    }

    /// Replaces the log by `records` (a compacted store's snapshot):
    /// written beside it, made durable, then renamed over it, so a crash
    /// at any point leaves one whole log, old or new.
    pub fn rewrite(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let err = |what: &str, e: std::io::Error| {
            StoreError::Backend(format!("{what} {}: {e}", self.path.display()))
        };
        let mut encoded = Vec::new();
        for record in records {
            record.encode(&mut encoded);
        }
        let new = self.path.with_extension("log.new");
        let mut file = File::create(&new).map_err(|e| err("rewrite", e))?;
        file.write_all(&encoded)
            .and_then(|()| file.sync_all())
            .map_err(|e| err("rewrite", e))?;
        std::fs::rename(&new, &self.path).map_err(|e| err("rename over", e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| err("sync the directory of", e))?;
        }
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| err("reopen", e))?;
        self.end = encoded.len() as u64;
        self.allocated = self.end;
        Ok(())
    }
}

/// The intact records at the start of `bytes`, and how many bytes they
/// take.
pub fn parse(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len =
            u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc =
            u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let start = at + HEADER;
        let Some(payload) = usize::try_from(len)
            .ok()
            .and_then(|len| bytes.get(start..start + len))
        else {
            break;
        };
        if crc32(payload) != crc {
            break;
        }
        let Some(record) = Record::decode(payload) else {
            break;
        };
        records.push(record);
        at = start + payload.len();
    }
    (records, at)
}

/// CRC-32 (IEEE, as zlib), by a table built at compile time.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_torn_tail_is_dropped() {
        let mut bytes = Vec::new();
        let kv = KeyValue {
            key: "/a".into(),
            value: b"v".to_vec(),
            create_revision: 1,
            mod_revision: 1,
        };
        Record::Put(kv.clone()).encode(&mut bytes);
        let good = bytes.len();
        Record::Delete {
            key: "/a".into(),
            revision: 2,
        }
        .encode(&mut bytes);
        for cut in good..bytes.len() {
            let (records, at) = parse(&bytes[..cut]);
            assert_eq!(records, vec![Record::Put(kv.clone())]);
            assert_eq!(at, good);
        }
        assert_eq!(parse(&bytes).0.len(), 2);
    }
}
