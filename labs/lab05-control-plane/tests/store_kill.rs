//! kill -9 in the middle of writing: every write the embedded store
//! acknowledged is there after reopening, no object is torn, and new
//! revisions go on from the last one.
//!
//! The writer is this test binary itself, re-run with an environment
//! variable naming its store's directory: it runs only
//! [`kill_child_writer`], which writes until it is killed and prints one
//! `ACK <revision> <key>` line per acknowledged write.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab05::store::{EmbeddedStore, ListOptions, Store};

/// Names the child's store directory; set only in the child.
const CHILD_DIR: &str = "LAB05_STORE_KILL_DIR";
/// Writers in the child, so the kill lands inside group commits.
const WRITERS: usize = 8;

/// The value written to `key`: big enough to span pages, checkable.
fn value_for(key: &str) -> Vec<u8> {
    format!("{{\"key\":\"{key}\",\"pad\":\"{}\"}}", "x".repeat(3000))
        .into_bytes()
}

/// In the child: write until killed (or 60 s, if the parent is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return; // not the child: nothing to do
    };
    let store = Arc::new(EmbeddedStore::open(dir.as_ref()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < deadline {
                let key = format!("/kill/{w}/{i}");
                let rev = store.create(&key, value_for(&key)).await.unwrap();
                println!("ACK {rev} {key}");
                i += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Kills the child on every path out of the test.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return; // in the child, only the writer runs
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill_child_writer", "--nocapture"])
            .args(["--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut acked = BTreeMap::new();
    let mut record = |line: String| {
        if let Some(ack) = line.strip_prefix("ACK ") {
            let (rev, key) = ack.split_once(' ').unwrap();
            acked.insert(key.to_string(), rev.parse::<i64>().unwrap());
        }
    };
    // Let it write a while, then kill it mid-stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut count = 0;
    while count < 2000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("the child writes too slowly");
        count += usize::from(line.starts_with("ACK "));
        record(line);
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // The acknowledgements already in the pipe count too.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        record(line);
    }
    assert!(acked.len() >= 2000);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            for (key, rev) in &acked {
                let kv = store.get(key).await.unwrap();
                let kv = kv.unwrap_or_else(|| panic!("lost {key} at {rev}"));
                assert_eq!(kv.mod_revision, *rev, "{key}");
                assert_eq!(kv.value, value_for(key), "{key} is torn");
            }
            let all =
                store.list("/kill/", &ListOptions::default()).await.unwrap();
            for kv in &all.kvs {
                assert_eq!(kv.value, value_for(&kv.key), "{} is torn", kv.key);
            }
            let last = acked.values().max().copied().unwrap_or(0);
            let revision = store.revision().await.unwrap();
            assert!(revision >= last);
            let next = store.create("/after", vec![]).await.unwrap();
            assert_eq!(next, revision + 1);
            eprintln!(
                "{} acknowledged, {} kept, revision {revision}",
                acked.len(),
                all.kvs.len()
            );
        })
        .await
        .expect("reopening took too long");
    });
}
