//! The API server under load and under kill -9, through its real HTTPS
//! API with bearer tokens, as the cluster's components reach it:
//!
//! - no lost update: sixteen clients doing read-modify-write on one
//!   counter, each PUT carrying the resourceVersion it read, retrying on
//!   409; the counter ends equal to the writes that were acknowledged
//!   (on the embedded store and on real etcd);
//! - kill -9 of the server in the middle of a stream of writes: every
//!   acknowledged write survives, nothing is torn, revisions go on past
//!   the old ones, and a watcher that resumes from its last
//!   resourceVersion (or relists on 410) has missed nothing.
//!
//! The killed server is this test binary itself, re-run with an
//! environment variable naming its data directory: it runs only
//! [`kill_child_server`], which prints `PORT <n>` and serves until killed.

mod support_rel;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, WatchEvent};
use lab05::client::{Client, ClientError};
use lab05::store::{EmbeddedStore, ListOptions, Store};
use support_rel::{client, Backend, Cluster};

const NS: &str = "default";
/// Names the child server's data directory; set only in the child.
const CHILD_DIR: &str = "LAB05_REL_SERVE_DIR";

fn rv(meta: &ObjectMeta) -> i64 {
    let rv = meta.resource_version.as_deref().unwrap_or_default();
    rv.parse()
        .unwrap_or_else(|_| panic!("resourceVersion {rv:?}"))
}

fn config_map(name: &str, data: &[(&str, String)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------
// No lost update.

const COUNTER: &str = "counter";
const ANNOTATION: &str = "kubelings.dev/count";
const THREADS: usize = 16;
const PER_THREAD: usize = 10;

/// One increment: read, add one, PUT with the read resourceVersion;
/// again on 409. The number of 409s it took.
fn increment(client: &Client, deadline: Instant) -> usize {
    let mut conflicts = 0;
    loop {
        assert!(Instant::now() < deadline, "increments take too long");
        let mut cm: ConfigMap = client.get(Some(NS), COUNTER).unwrap();
        let annotations = cm.metadata.annotations.get_or_insert_default();
        let n: u64 = annotations[ANNOTATION].parse().unwrap();
        annotations.insert(ANNOTATION.into(), (n + 1).to_string());
        match client.replace(Some(NS), COUNTER, &cm) {
            Ok(_) => return conflicts,
            Err(e) if e.is_conflict() => conflicts += 1,
            Err(e) => panic!("PUT failed: {e}"),
        }
    }
}

fn no_lost_update(backend: Backend) {
    let Some(cluster) = Cluster::start(backend) else {
        return;
    };
    let admin = cluster.admin();
    let mut cm = config_map(COUNTER, &[]);
    cm.metadata.annotations =
        Some([(ANNOTATION.to_string(), "0".to_string())].into());
    admin.create(Some(NS), &cm).unwrap();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let acked = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let client = cluster.admin();
            let (acked, conflicts) = (acked.clone(), conflicts.clone());
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    let c = increment(&client, deadline);
                    conflicts.fetch_add(c, Ordering::Relaxed);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let cm: ConfigMap = admin.get(Some(NS), COUNTER).unwrap();
    let count: usize = cm.metadata.annotations.unwrap()[ANNOTATION]
        .parse()
        .unwrap();
    let acked = acked.load(Ordering::Relaxed);
    assert_eq!(acked, THREADS * PER_THREAD);
    assert_eq!(count, acked, "an acknowledged write was lost");
    eprintln!(
        "{backend:?}: {acked} increments, {} conflicts retried, {:?}",
        conflicts.load(Ordering::Relaxed),
        started.elapsed()
    );
}

#[test]
fn no_lost_update_embedded() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    no_lost_update(Backend::Embedded);
}

#[test]
fn no_lost_update_etcd() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    no_lost_update(Backend::Etcd);
}

// ---------------------------------------------------------------------
// kill -9 of the API server.

/// In the child: serve the data directory until killed (or two minutes,
/// if the parent is gone).
#[test]
fn kill_child_server() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return; // not the child: nothing to do
    };
    let dir = std::path::PathBuf::from(dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(&dir.join("store")).unwrap();
        let port = support_rel::start(&dir, Arc::new(store)).await;
        println!("PORT {port}");
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

/// The server in a child process; SIGKILLed on every path out.
struct ServerChild {
    child: Child,
    port: u16,
}

impl ServerChild {
    fn spawn(dir: &std::path::Path) -> ServerChild {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill_child_server", "--nocapture"])
            .args(["--test-threads=1"])
            .env(CHILD_DIR, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Guard it before waiting for its port.
        let mut server = ServerChild { child, port: 0 };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest's "test kill_child_server ... " comes first.
                if let Some((_, port)) = line.split_once("PORT ") {
                    let _ = tx.send(port.trim().parse::<u16>().unwrap());
                }
            }
        });
        server.port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the child server prints its port within 20 s");
        server
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn kill_9(&mut self) {
        // Child::kill is SIGKILL.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the watcher has seen: every event's (name, rv), what relists
/// found (name → rv), and how it went on after a broken watch.
#[derive(Debug, Default)]
struct Seen {
    events: BTreeSet<(String, i64)>,
    relisted: BTreeMap<String, i64>,
    last_rv: i64,
    /// Events at or before one already seen: a replay that overlaps.
    out_of_order: usize,
    resumed: usize,
    relists: usize,
}

impl Seen {
    fn covers(&self, name: &str, rv: i64) -> bool {
        self.events.contains(&(name.to_string(), rv))
            || self.relisted.get(name).is_some_and(|r| *r >= rv)
    }
}

/// One watcher: where it watches, how, and what it has seen.
#[derive(Clone)]
struct Watcher {
    /// The server's URL now (it changes at the restart).
    url: Arc<Mutex<String>>,
    ca: String,
    token: String,
    /// How long it takes over each event.
    slow: Duration,
    /// While set, it is disconnected: it drops its watch and waits.
    hold: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
}

impl Watcher {
    fn new(url: &Arc<Mutex<String>>, ca: &str, token: &str, from: i64) -> Self {
        let seen = Seen {
            last_rv: from,
            ..Seen::default()
        };
        Watcher {
            url: url.clone(),
            ca: ca.to_string(),
            token: token.to_string(),
            slow: Duration::ZERO,
            hold: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            seen: Arc::new(Mutex::new(seen)),
        }
    }

    fn set(flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::Relaxed);
    }

    fn held(&self) -> bool {
        self.hold.load(Ordering::Relaxed) && !self.stop.load(Ordering::Relaxed)
    }

    /// Relists; false if the server did not answer.
    fn relist(&self, c: &Client) -> bool {
        let Ok(list) = c.list::<ConfigMap>(Some(NS), "") else {
            return false;
        };
        let mut s = self.seen.lock().unwrap();
        for cm in &list.items {
            let name = cm.metadata.name.clone().unwrap();
            s.relisted.insert(name, rv(&cm.metadata));
        }
        s.last_rv = list.resource_version.parse().unwrap();
        s.relists += 1;
        true
    }

    /// Watches config maps from its last resourceVersion, at whatever
    /// URL holds now, again whenever a watch breaks; relists on 410.
    /// Runs until `stop`.
    fn run(self) {
        let mut relist = false;
        let mut first = true;
        while !self.stop.load(Ordering::Relaxed) {
            let c =
                client(&self.url.lock().unwrap(), &self.ca, Some(&self.token));
            if self.held() || (relist && !self.relist(&c)) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            relist = false;
            let from = self.seen.lock().unwrap().last_rv;
            let query = format!(
                "resourceVersion={from}&allowWatchBookmarks=true&\
                 timeoutSeconds=3"
            );
            let events = match c.watch::<ConfigMap>(Some(NS), &query) {
                Ok(events) => events,
                Err(e) if e.code() == Some(410) => {
                    relist = true;
                    continue;
                }
                Err(_) => {
                    // The server is down: try again soon.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            if !first {
                self.seen.lock().unwrap().resumed += 1;
            }
            first = false;
            for event in events {
                if self.held() {
                    break;
                }
                std::thread::sleep(self.slow);
                match event {
                    Ok(WatchEvent::ErrorStatus(status))
                        if status.code == Some(410) =>
                    {
                        relist = true;
                        break;
                    }
                    Ok(event) => self.record(event),
                    // The server went away in the middle of the stream.
                    Err(_) => break,
                }
            }
        }
    }

    fn record(&self, event: WatchEvent<ConfigMap>) {
        let mut s = self.seen.lock().unwrap();
        match event {
            WatchEvent::Added(cm)
            | WatchEvent::Modified(cm)
            | WatchEvent::Deleted(cm) => {
                let (name, rv) =
                    (cm.metadata.name.clone().unwrap(), rv(&cm.metadata));
                if rv <= s.last_rv {
                    s.out_of_order += 1;
                }
                s.last_rv = rv;
                s.events.insert((name, rv));
            }
            WatchEvent::Bookmark {
                resource_version, ..
            } => s.last_rv = resource_version.parse().unwrap(),
            other => panic!("unexpected watch event {other:?}"),
        }
    }
}

/// Creates `w<w>-<i>` and then updates it once, over and over, recording
/// each acknowledged write; stops at the first failure (the kill) or
/// `stop`.
fn writer(
    c: Client,
    w: usize,
    acked: Arc<Mutex<Vec<(String, i64)>>>,
    stop: Arc<AtomicBool>,
) {
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let name = format!("w{w}-{i}");
        let data = [("writer", w.to_string()), ("i", i.to_string())];
        let mut cm = config_map(&name, &data);
        let created = match c.create(Some(NS), &cm) {
            Ok(created) => created,
            Err(e) => return fail_unless_killed(&name, e),
        };
        acked
            .lock()
            .unwrap()
            .push((name.clone(), rv(&created.metadata)));
        cm.metadata.resource_version = created.metadata.resource_version;
        cm.data
            .as_mut()
            .unwrap()
            .insert("updated".into(), "yes".into());
        let updated = match c.replace(Some(NS), &name, &cm) {
            Ok(updated) => updated,
            Err(e) => return fail_unless_killed(&name, e),
        };
        acked.lock().unwrap().push((name, rv(&updated.metadata)));
    }
}

/// A write failed: fine if the server is gone (no answer), a bug if it
/// answered with an error.
fn fail_unless_killed(name: &str, e: ClientError) {
    assert!(e.code().is_none(), "writing {name}: {e}");
}

/// Waits up to `limit` for `done`, polling.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn acknowledged_writes_and_watches_survive_kill_9() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return; // in the child, only the server runs
    }
    kill_9_and_restart(false);
}

/// The same, with the store compacted while the server is down (as
/// kube-apiserver compacts etcd every five minutes): the watchers'
/// resourceVersions are gone, they get 410 and relist, and the relist
/// covers what they missed.
#[test]
fn watchers_relist_on_410_after_a_restart_with_compaction() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    kill_9_and_restart(true);
}

/// Compacts the embedded store in `dir` to its current revision.
fn compact(dir: &std::path::Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let work = async {
            let store = EmbeddedStore::open(dir).unwrap();
            let revision = store.revision().await.unwrap();
            store.compact(revision).await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .expect("compacting took too long");
    });
}

/// Streams writes, kills the server with SIGKILL, restarts it (after
/// compacting its store, if `compacted`) and checks what survived and
/// what the watchers saw.
fn kill_9_and_restart(compacted: bool) {
    const WRITERS: usize = 4;
    const BEFORE_KILL: usize = 300;
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (ca, tokens) = support_rel::prepare(dir.path());
    let mut server = ServerChild::spawn(dir.path());
    let url = Arc::new(Mutex::new(server.url()));
    let admin = || client(&url.lock().unwrap(), &ca, Some(&tokens.admin));

    // Two watchers start from a list, as informers do: one slow (the
    // kill leaves events it has not read yet), one disconnected from the
    // middle of the stream until after the restart (it must get all it
    // missed from the new server's history).
    let from = admin().list::<ConfigMap>(Some(NS), "").unwrap();
    let from: i64 = from.resource_version.parse().unwrap();
    let mut slow = Watcher::new(&url, &ca, &tokens.admin, from);
    slow.slow = Duration::from_millis(2);
    let away = Watcher::new(&url, &ca, &tokens.admin, from);
    let watchers = [slow, away];
    for w in &watchers {
        // Not joined: they end when the last server dies with the test.
        let w = w.clone();
        std::thread::spawn(move || w.run());
    }

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (c, acked) = (admin(), acked.clone());
            let stop = stop_writing.clone();
            std::thread::spawn(move || writer(c, w, acked, stop))
        })
        .collect();
    let acked_len = || acked.lock().unwrap().len();
    let enough =
        wait_for(Duration::from_secs(30), || acked_len() >= BEFORE_KILL / 3);
    Watcher::set(&watchers[1].hold, true);
    let enough = enough
        && wait_for(Duration::from_secs(30), || acked_len() >= BEFORE_KILL);
    assert!(enough, "the writers are too slow");
    server.kill_9();
    stop_writing.store(true, Ordering::Relaxed);
    for w in writers {
        // A killed server closes its connections: every call fails now.
        w.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let seen_before: Vec<usize> = watchers
        .iter()
        .map(|w| w.seen.lock().unwrap().events.len())
        .collect();

    if compacted {
        compact(&dir.path().join("store"));
    }
    let server = ServerChild::spawn(dir.path());
    *url.lock().unwrap() = server.url();
    Watcher::set(&watchers[1].hold, false);
    let admin = admin();

    // Every acknowledged write is there, at its revision or later.
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (name, rv) in &acked {
        let e = latest.entry(name).or_default();
        *e = (*e).max(*rv);
    }
    for (name, acked_rv) in &latest {
        let cm: ConfigMap = admin
            .get(Some(NS), name)
            .unwrap_or_else(|e| panic!("lost {name} at {acked_rv}: {e}"));
        assert!(rv(&cm.metadata) >= *acked_rv, "{name} went back");
    }
    // Nothing is torn: every object decodes, and holds what was written.
    let all = admin.list::<ConfigMap>(Some(NS), "").unwrap();
    for cm in &all.items {
        let name = cm.metadata.name.as_deref().unwrap();
        let Some((w, i)) =
            name.strip_prefix('w').and_then(|n| n.split_once('-'))
        else {
            continue;
        };
        let data = cm.data.as_ref().unwrap();
        assert_eq!((data["writer"].as_str(), data["i"].as_str()), (w, i));
    }
    // New revisions go on after every old one.
    let old_max = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    let fresh = admin
        .create(Some(NS), &config_map("after-restart", &[]))
        .unwrap();
    assert!(rv(&fresh.metadata) > old_max);
    assert!(all.resource_version.parse::<i64>().unwrap() >= old_max);

    // Each watcher has seen every acknowledged write, and the new one.
    let fresh_rv = rv(&fresh.metadata);
    let mut after_restart = Vec::new();
    for (w, before) in watchers.iter().zip(seen_before) {
        let complete = wait_for(Duration::from_secs(20), || {
            let s = w.seen.lock().unwrap();
            acked.iter().all(|(n, rv)| s.covers(n, *rv))
                && s.covers("after-restart", fresh_rv)
        });
        Watcher::set(&w.stop, true);
        let s = w.seen.lock().unwrap();
        let missed: Vec<_> = acked
            .iter()
            .filter(|(n, rv)| !s.covers(n, *rv))
            .take(5)
            .collect();
        let after = s.events.len() - before;
        let what = format!(
            "{before} events by the kill, {after} after; resumed {} \
             times, relisted {} times, {} events out of order",
            s.resumed, s.relists, s.out_of_order
        );
        assert!(complete, "a watcher missed {missed:?}; it saw {what}");
        assert!(s.resumed + s.relists >= 1, "it went on after the kill");
        // The disconnected one's resourceVersion is compacted away; the
        // slow one may have read its last events from the dead server's
        // socket and be up to date.
        if compacted && Arc::ptr_eq(&w.hold, &watchers[1].hold) {
            assert!(s.relists >= 1, "{what}");
        }
        assert_eq!(s.out_of_order, 0, "{what}");
        eprintln!("watcher (slow {:?}): {what}", w.slow);
        after_restart.push(after);
    }
    // The disconnected one got what it missed (the writes from a third
    // of the way to the kill) from the new server's history.
    if !compacted {
        assert!(after_restart[1] >= BEFORE_KILL / 2, "{after_restart:?}");
    }
    eprintln!(
        "{} acknowledged writes; {:?}",
        acked.len(),
        started.elapsed()
    );
    // Below the API: every value in the store is whole JSON.
    drop(server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let check = async {
            let store = EmbeddedStore::open(&dir.path().join("store")).unwrap();
            let all = store
                .list("/registry/", &ListOptions::default())
                .await
                .unwrap();
            for kv in &all.kvs {
                let value = serde_json::from_slice::<serde_json::Value>;
                value(&kv.value).unwrap_or_else(|e| panic!("{kv:?}: {e}"));
            }
            assert!(all.kvs.len() >= latest.len());
        };
        tokio::time::timeout(Duration::from_secs(20), check)
            .await
            .expect("reading the store took too long");
    });
}
