//! The control plane's components read the cluster through informers,
//! queue work on work queues and write events: against the real API
//! server (HTTPS, tokens, the embedded store).

#[path = "support_rel/mod.rs"]
mod support_rel;

use std::sync::mpsc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lab05::events::{reference, Recorder};
use lab05::informer::{Change, Informer};
use support_rel::{Backend, Cluster};

const PATIENCE: Duration = Duration::from_secs(10);

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([("app".to_string(), "kubia".to_string())].into()),
            ..Default::default()
        },
        data: Some([("v".to_string(), value.to_string())].into()),
        ..Default::default()
    }
}

/// What a change is, in a word and a name.
fn said(change: &Change<ConfigMap>) -> String {
    let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();
    match change {
        Change::Added(c) => format!("added {}", name(c)),
        Change::Modified { old, new } => format!(
            "modified {} {:?}->{:?}",
            name(new),
            old.data
                .as_ref()
                .and_then(|d| d.get("v"))
                .cloned()
                .unwrap_or_default(),
            new.data
                .as_ref()
                .and_then(|d| d.get("v"))
                .cloned()
                .unwrap_or_default()
        ),
        Change::Deleted(c) => format!("deleted {}", name(c)),
        Change::Synced => "synced".into(),
    }
}

#[test]
fn an_informer_lists_then_follows_every_change() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    client
        .create(Some("default"), &config_map("before", "1"))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let informer = Informer::<ConfigMap>::start(
        client.clone(),
        Some("default"),
        "labelSelector=app%3Dkubia",
        move |change| {
            let _ = tx.send(said(change));
        },
    );
    assert!(informer.wait_synced(PATIENCE), "the first list");
    let next = || rx.recv_timeout(PATIENCE).expect("a change within 10 s");
    assert_eq!(next(), "added before");
    assert_eq!(next(), "synced");
    client
        .create(Some("default"), &config_map("after", "1"))
        .unwrap();
    assert_eq!(next(), "added after");
    client
        .replace(Some("default"), "after", &{
            let mut c = informer
                .cache()
                .get("default/after")
                .unwrap()
                .as_ref()
                .clone();
            c.data = Some([("v".to_string(), "2".to_string())].into());
            c
        })
        .unwrap();
    assert_eq!(next(), "modified after \"1\"->\"2\"");
    client
        .delete::<ConfigMap>(Some("default"), "before", None)
        .unwrap();
    assert_eq!(next(), "deleted before");
    let cache = informer.cache();
    let mut names: Vec<_> = cache
        .list()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    names.sort();
    assert_eq!(names, ["after"]);
    informer.stop();
}

#[test]
fn a_repeated_event_is_counted_not_repeated() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let cm = client
        .create(Some("default"), &config_map("noisy", "1"))
        .unwrap();
    let recorder = Recorder::new(client.clone(), "test-component", None);
    let involved = reference(&cm);
    for _ in 0..3 {
        recorder.event(&involved, "Warning", "BackOff", "back-off 10s");
    }
    recorder.event(&involved, "Normal", "Pulled", "pulled");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let events = client.list::<Event>(Some("default"), "").unwrap().items;
        let mut seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.reason.clone().unwrap_or_default(),
                    e.count.unwrap_or_default(),
                    e.source
                        .as_ref()
                        .and_then(|s| s.component.clone())
                        .unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        seen.sort();
        let want = vec![
            (
                "BackOff".to_string(),
                3,
                "test-component".to_string(),
                "noisy".to_string(),
            ),
            (
                "Pulled".to_string(),
                1,
                "test-component".to_string(),
                "noisy".to_string(),
            ),
        ];
        if seen == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "events: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
