//! The store's behaviour, written once and run against both stores: the
//! embedded one (in a tempdir) and real etcd (one process per test,
//! skipped when etcd is not installed).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lab05::store::bench::bench_writes;
use lab05::store::{
    EmbeddedStore, EtcdProcess, EtcdStore, Event, ListOptions, Revision, Store,
    StoreError, WatchStream,
};

/// Every test finishes in this time or fails.
const LIMIT: Duration = Duration::from_secs(30);

async fn within<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("the test took too long");
}

/// The etcd twin of each behaviour test (skipped where etcd is missing).
macro_rules! on_etcd {
    ($($name:ident => $etcd:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $etcd() {
            if !kubelings_probe::require_program("etcd") {
                return;
            }
            let dir = tempfile::tempdir().unwrap();
            let etcd = EtcdProcess::start(dir.path()).unwrap();
            let store = Arc::new(EtcdStore::connect(etcd.endpoint()).unwrap());
            within($name(store)).await;
            drop(etcd);
        }
    )*};
}

on_etcd! {
    create_get => etcd_create_get;
    update_compare => etcd_update_compare;
    delete_compare => etcd_delete_compare;
    list_prefix => etcd_list_prefix;
    list_past_revision => etcd_list_past_revision;
    list_paged => etcd_list_paged;
    revisions_grow => etcd_revisions_grow;
    watch_replay_then_live => etcd_watch_replay_then_live;
    compaction => etcd_compaction;
    concurrent_counter => etcd_concurrent_counter;
}

/// Each behaviour test on the embedded store, in a fresh directory.
async fn on_embedded<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    within(test(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_create_get() {
    on_embedded(create_get).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_update_compare() {
    on_embedded(update_compare).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_delete_compare() {
    on_embedded(delete_compare).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_list_prefix() {
    on_embedded(list_prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_list_past_revision() {
    on_embedded(list_past_revision).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_list_paged() {
    on_embedded(list_paged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_revisions_grow() {
    on_embedded(revisions_grow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_watch_replay_then_live() {
    on_embedded(watch_replay_then_live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_compaction() {
    on_embedded(compaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_concurrent_counter() {
    on_embedded(concurrent_counter).await;
}

fn keys(kvs: &[lab05::store::KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn create_get(store: Arc<dyn Store>) {
    let rev = store.create("/t/a", b"one".to_vec()).await.unwrap();
    let kv = store.get("/t/a").await.unwrap().unwrap();
    assert_eq!(kv.value, b"one");
    assert_eq!((kv.create_revision, kv.mod_revision), (rev, rev));
    let again = store.create("/t/a", b"two".to_vec()).await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyExists { key }) if key == "/t/a"),
        "{again:?}"
    );
    assert_eq!(store.get("/t/a").await.unwrap().unwrap().value, b"one");
    assert_eq!(store.get("/t/missing").await.unwrap(), None);
}

async fn update_compare(store: Arc<dyn Store>) {
    let first = store.create("/t/a", b"v1".to_vec()).await.unwrap();
    let second = store
        .update("/t/a", Some(first), b"v2".to_vec())
        .await
        .unwrap();
    assert!(second > first);
    // A writer that read v1 loses: 409 with what is there now.
    match store.update("/t/a", Some(first), b"stale".to_vec()).await {
        Err(StoreError::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!((key.as_str(), expected), ("/t/a", first));
            assert_eq!(current.mod_revision, second);
            assert_eq!(current.value, b"v2");
        }
        other => panic!("a stale update must conflict: {other:?}"),
    }
    let third = store.update("/t/a", None, b"v3".to_vec()).await.unwrap();
    let kv = store.get("/t/a").await.unwrap().unwrap();
    assert_eq!(kv.value, b"v3");
    assert_eq!((kv.create_revision, kv.mod_revision), (first, third));
    for expected in [None, Some(third)] {
        let missing = store.update("/t/b", expected, b"x".to_vec()).await;
        assert!(
            matches!(&missing, Err(StoreError::NotFound { key }) if key == "/t/b"),
            "{missing:?}"
        );
    }
}

async fn delete_compare(store: Arc<dyn Store>) {
    let first = store.create("/t/a", b"v1".to_vec()).await.unwrap();
    let second = store
        .update("/t/a", Some(first), b"v2".to_vec())
        .await
        .unwrap();
    let stale = store.delete("/t/a", Some(first)).await;
    assert!(
        matches!(&stale, Err(StoreError::Conflict { current, .. })
            if current.mod_revision == second),
        "{stale:?}"
    );
    let (deleted, prev) = store.delete("/t/a", Some(second)).await.unwrap();
    assert!(deleted > second);
    assert_eq!(
        (prev.value.as_slice(), prev.mod_revision),
        (&b"v2"[..], second)
    );
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    let again = store.delete("/t/a", None).await;
    assert!(
        matches!(again, Err(StoreError::NotFound { .. })),
        "{again:?}"
    );
    store.create("/t/b", b"b".to_vec()).await.unwrap();
    let (_, prev) = store.delete("/t/b", None).await.unwrap();
    assert_eq!(prev.value, b"b");
    // A key created again starts over.
    let created = store.create("/t/a", b"v3".to_vec()).await.unwrap();
    let kv = store.get("/t/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (created, created));
}

async fn list_prefix(store: Arc<dyn Store>) {
    for key in ["/a/2", "/ab/1", "/a/1", "/b", "/a"] {
        store.create(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let all = ListOptions::default();
    let list = store.list("/a/", &all).await.unwrap();
    assert_eq!(keys(&list.kvs), ["/a/1", "/a/2"]);
    assert_eq!(list.kvs[0].value, b"/a/1");
    assert!(!list.more);
    assert_eq!(list.revision, store.revision().await.unwrap());
    let list = store.list("/a", &all).await.unwrap();
    assert_eq!(keys(&list.kvs), ["/a", "/a/1", "/a/2", "/ab/1"]);
    assert!(store.list("/c/", &all).await.unwrap().kvs.is_empty());
}

async fn list_past_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/p/1", b"v1".to_vec()).await.unwrap();
    let r2 = store.update("/p/1", None, b"v2".to_vec()).await.unwrap();
    let r3 = store.create("/p/2", b"w".to_vec()).await.unwrap();
    let r4 = store.delete("/p/1", None).await.unwrap().0;
    let at = |revision| ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    };
    let list = store.list("/p/", &at(r1)).await.unwrap();
    assert_eq!(list.revision, r1);
    assert_eq!(keys(&list.kvs), ["/p/1"]);
    assert_eq!(list.kvs[0].value, b"v1");
    let list = store.list("/p/", &at(r2)).await.unwrap();
    assert_eq!(list.kvs[0].value, b"v2");
    let list = store.list("/p/", &at(r3)).await.unwrap();
    assert_eq!(keys(&list.kvs), ["/p/1", "/p/2"]);
    let list = store.list("/p/", &at(r4)).await.unwrap();
    assert_eq!(keys(&list.kvs), ["/p/2"]);
    let future = store.list("/p/", &at(r4 + 100)).await;
    assert!(
        matches!(future, Err(StoreError::FutureRevision { .. })),
        "{future:?}"
    );
}

async fn list_paged(store: Arc<dyn Store>) {
    for i in 0..5 {
        store
            .create(&format!("/q/{i}"), vec![b'0' + i])
            .await
            .unwrap();
    }
    store
        .create("/qq", b"not under /q/".to_vec())
        .await
        .unwrap();
    let revision = store.revision().await.unwrap();
    let mut seen = Vec::new();
    let mut mores = Vec::new();
    let mut start_after = None;
    loop {
        let options = ListOptions {
            revision: Some(revision),
            start_after: start_after.clone(),
            limit: Some(2),
        };
        let page = store.list("/q/", &options).await.unwrap();
        assert!(page.kvs.len() <= 2);
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        mores.push(page.more);
        if !page.more {
            break;
        }
        start_after = page.kvs.last().map(|kv| kv.key.clone());
    }
    assert_eq!(seen, ["/q/0", "/q/1", "/q/2", "/q/3", "/q/4"]);
    assert_eq!(mores, [true, true, false]);
}

async fn revisions_grow(store: Arc<dyn Store>) {
    let mut last = store.revision().await.unwrap();
    for i in 0..5 {
        let key = format!("/r/{i}");
        let created = store.create(&key, vec![]).await.unwrap();
        let updated = store.update(&key, None, vec![1]).await.unwrap();
        let (deleted, _) = store.delete(&key, None).await.unwrap();
        for rev in [created, updated, deleted] {
            assert!(rev > last, "revision {rev} after {last}");
            last = rev;
        }
    }
    assert_eq!(store.revision().await.unwrap(), last);
}

/// The next `n` events of a watch, each within a bounded wait.
async fn next_events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..n {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("no event within 10 s")
            .expect("the watch ended")
            .expect("the watch failed");
        events.push(event);
    }
    events
}

/// What a watch reports, in a few words: `PUT /k v` or `DEL /k prev`.
fn describe(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Put { kv, prev } => format!(
                "PUT {} {} prev={}",
                kv.key,
                String::from_utf8_lossy(&kv.value),
                prev.as_ref()
                    .map_or("-".into(), |p| String::from_utf8_lossy(&p.value)
                        .into_owned())
            ),
            Event::Delete { prev, .. } => format!(
                "DEL {} prev={}",
                prev.key,
                String::from_utf8_lossy(&prev.value)
            ),
        })
        .collect()
}

async fn watch_replay_then_live(store: Arc<dyn Store>) {
    store.create("/w/before", b"0".to_vec()).await.unwrap();
    let from: Revision = store.revision().await.unwrap();
    store.create("/w/a", b"1".to_vec()).await.unwrap();
    store.create("/other/x", b"no".to_vec()).await.unwrap();
    store.update("/w/a", None, b"2".to_vec()).await.unwrap();
    let mut watch = store.watch("/w/", from).await.unwrap();
    let replayed = next_events(&mut watch, 2).await;
    store.delete("/w/a", None).await.unwrap();
    store.create("/wx/not-under", b"no".to_vec()).await.unwrap();
    store.create("/w/b", b"3".to_vec()).await.unwrap();
    let live = next_events(&mut watch, 2).await;
    let all: Vec<Event> = replayed.into_iter().chain(live).collect();
    assert_eq!(
        describe(&all),
        [
            "PUT /w/a 1 prev=-",
            "PUT /w/a 2 prev=1",
            "DEL /w/a prev=2",
            "PUT /w/b 3 prev=-",
        ]
    );
    let revisions: Vec<Revision> = all.iter().map(Event::revision).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert!(revisions[0] > from);
    // Nothing more: no duplicate, no event from another prefix.
    let extra =
        tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(extra.is_err(), "unexpected {extra:?}");
}

async fn compaction(store: Arc<dyn Store>) {
    let old = store.create("/c/a", b"1".to_vec()).await.unwrap();
    store.update("/c/a", None, b"2".to_vec()).await.unwrap();
    let kept = store.create("/c/b", b"3".to_vec()).await.unwrap();
    store.update("/c/a", None, b"4".to_vec()).await.unwrap();
    store.compact(kept).await.unwrap();
    let at = |revision| ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    };
    let gone = store.list("/c/", &at(old)).await;
    assert!(
        matches!(gone, Err(StoreError::Compacted { .. })),
        "{gone:?}"
    );
    let list = store.list("/c/", &at(kept)).await.unwrap();
    assert_eq!(keys(&list.kvs), ["/c/a", "/c/b"]);
    assert_eq!(list.kvs[0].value, b"2");
    // A watch from before the compaction cannot be served.
    match store.watch("/c/", old).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(other) => panic!("watch from a compacted revision: {other}"),
        Ok(mut watch) => {
            let first =
                tokio::time::timeout(Duration::from_secs(10), watch.next())
                    .await
                    .expect("no answer within 10 s");
            assert!(
                matches!(first, Some(Err(StoreError::Compacted { .. }))),
                "{first:?}"
            );
        }
    }
    // From the compaction point on, it can.
    let mut watch = store.watch("/c/", kept - 1).await.unwrap();
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        describe(&events),
        ["PUT /c/b 3 prev=-", "PUT /c/a 4 prev=2"]
    );
}

/// Issue §5: 16 writers increment one counter, each retrying on
/// Conflict; no increment is lost.
async fn concurrent_counter(store: Arc<dyn Store>) {
    const WRITERS: usize = 16;
    const EACH: usize = 10;
    store.create("/counter", b"0".to_vec()).await.unwrap();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = Arc::clone(&store);
        let acknowledged = Arc::clone(&acknowledged);
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                loop {
                    let kv = store.get("/counter").await.unwrap().unwrap();
                    let n: usize =
                        String::from_utf8(kv.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    match store
                        .update("/counter", Some(kv.mod_revision), next)
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("increment: {e}"),
                    }
                }
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let kv = store.get("/counter").await.unwrap().unwrap();
    let count: usize = String::from_utf8(kv.value).unwrap().parse().unwrap();
    assert_eq!(count, acknowledged.load(Ordering::SeqCst));
    assert_eq!(count, WRITERS * EACH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (last, compacted) = within_value(async {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let a = store.create("/k/a", b"1".to_vec()).await.unwrap();
        store.update("/k/a", Some(a), b"2".to_vec()).await.unwrap();
        let b = store.create("/k/b", b"3".to_vec()).await.unwrap();
        store.create("/k/c", b"4".to_vec()).await.unwrap();
        let (last, _) = store.delete("/k/c", None).await.unwrap();
        store.compact(b).await.unwrap();
        (last, b)
    })
    .await;
    within(async {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.revision().await.unwrap(), last);
        let list = store.list("/k/", &ListOptions::default()).await.unwrap();
        assert_eq!(keys(&list.kvs), ["/k/a", "/k/b"]);
        assert_eq!(list.kvs[0].value, b"2");
        assert_eq!(list.kvs[0].create_revision, 1);
        let old = ListOptions {
            revision: Some(compacted - 1),
            ..ListOptions::default()
        };
        let gone = store.list("/k/", &old).await;
        assert!(matches!(gone, Err(StoreError::Compacted { .. })));
        let next = store.create("/k/d", vec![]).await.unwrap();
        assert_eq!(next, last + 1);
    })
    .await;
}

async fn within_value<T, F: std::future::Future<Output = T>>(f: F) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("the test took too long")
}

/// A watcher that stops reading is cut off with an error once it lags
/// more than the store's buffer, instead of holding events forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_slow_watcher_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    within(async {
        let mut watch = store.watch("/", 0).await.unwrap();
        let writes = lab05::store::embedded::WATCH_BUFFER + 1000;
        bench_writes(store.clone(), 64, writes).await.unwrap();
        let mut seen = 0;
        loop {
            match watch.next().await {
                Some(Ok(_)) => seen += 1,
                Some(Err(StoreError::Compacted { .. })) => break,
                other => panic!("after {seen} events: {other:?}"),
            }
        }
        assert!(seen < writes);
        assert!(watch.next().await.is_none(), "the stream ends");
    })
    .await;
}

/// Write throughput, embedded vs etcd, at 1 and 16 writers: three rounds,
/// each on fresh stores, the two stores one after the other in each round
/// (on a shared machine the timings vary with its load: compare within a
/// round, and the medians):
/// `cargo test -p lab05 --release --test store -- --ignored bench --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn bench() {
    let kinds: &[&str] = if kubelings_probe::require_program("etcd") {
        &["embedded", "etcd"]
    } else {
        &["embedded"]
    };
    for writers in [1, 16] {
        let total = if writers == 1 { 1000 } else { 8000 };
        let mut rates = vec![Vec::new(); kinds.len()];
        for _round in 0..3 {
            for (kind, rates) in kinds.iter().zip(&mut rates) {
                let dir = tempfile::tempdir().unwrap();
                let (store, etcd): (Arc<dyn Store>, _) = if *kind == "etcd" {
                    let etcd = EtcdProcess::start(dir.path()).unwrap();
                    let store = EtcdStore::connect(etcd.endpoint()).unwrap();
                    (Arc::new(store), Some(etcd))
                } else {
                    let store = EmbeddedStore::open(dir.path()).unwrap();
                    (Arc::new(store), None)
                };
                let figures =
                    bench_writes(store, writers, total).await.unwrap();
                println!("{kind:8} {figures:?}");
                rates.push(figures.writes_per_sec);
                drop(etcd);
            }
        }
        for (kind, rates) in kinds.iter().zip(&mut rates) {
            rates.sort_by(f64::total_cmp);
            println!("{kind:8} writers={writers:2} median {:.0}/s", rates[1]);
        }
    }
}

/// Compaction rewrites the log as a snapshot of what is kept: the file
/// shrinks, and the reopened store reads and watches as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_compaction_rewrites_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("store.log");
    let (before, compacted, last) = within_value(async {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.create("/s/gone", b"x".to_vec()).await.unwrap();
        store.delete("/s/gone", None).await.unwrap();
        let mut rev = store.create("/s/a", b"0".to_vec()).await.unwrap();
        for i in 1..200 {
            let value = format!("{i:>1000}").into_bytes();
            rev = store.update("/s/a", Some(rev), value).await.unwrap();
        }
        let compacted = rev - 1;
        store.update("/s/a", None, b"after".to_vec()).await.unwrap();
        let (last, _) = store.delete("/s/a", None).await.unwrap();
        let size = std::fs::metadata(&log).unwrap().len();
        store.compact(compacted).await.unwrap();
        (size, compacted, last)
    })
    .await;
    within(async {
        let after = std::fs::metadata(&log).unwrap().len();
        assert!(after * 20 < before, "log {before} -> {after} bytes");
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.revision().await.unwrap(), last);
        let at = ListOptions {
            revision: Some(compacted),
            ..ListOptions::default()
        };
        let list = store.list("/s/", &at).await.unwrap();
        assert_eq!(keys(&list.kvs), ["/s/a"]);
        assert_eq!(list.kvs[0].value, format!("{:>1000}", 198).into_bytes());
        let mut watch = store.watch("/s/", compacted - 1).await.unwrap();
        let events = next_events(&mut watch, 4).await;
        let revisions: Vec<Revision> =
            events.iter().map(Event::revision).collect();
        assert_eq!(revisions, [compacted, compacted + 1, last - 1, last]);
        assert!(matches!(&events[0], Event::Put { prev: Some(_), .. }));
        assert!(matches!(&events[3], Event::Delete { prev, .. }
            if prev.value == b"after"));
        let next = store.create("/s/new", vec![]).await.unwrap();
        assert_eq!(next, last + 1);
    })
    .await;
}
