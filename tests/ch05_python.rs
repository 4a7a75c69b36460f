//! The official Python client (PyPI `kubernetes`) against `ch05
//! apiserver`: list with a label selector, create, AlreadyExists, watch
//! from a resourceVersion, a strategic merge patch, and an expired watch
//! (410 Gone) recovered by listing again. The server runs with a hidden
//! `--compact-interval 1`: it compacts its store every second, keeping
//! one second of history (kube-apiserver: every five minutes).
//!
//! Python is `$KUBELINGS_PYTHON` (a virtualenv's python), else `python3`.

use std::path::Path;
use std::time::Duration;

use lab01::probe::require_program;

#[path = "ch05/python.rs"]
mod python;
use python::python;

#[allow(dead_code)]
#[path = "ch05/server.rs"]
mod server;

fn run_client(store: &str) {
    if !require_program("kubectl") {
        return;
    }
    if store == "etcd" && !require_program("etcd") {
        return;
    }
    let Some(python) = python() else {
        return;
    };
    let s = server::Server::start(store, &["--compact-interval", "1"]);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/client.py");
    let out = assert_cmd::Command::new(python)
        .arg(script)
        .arg("python-client")
        .env("KUBECONFIG", &s.admin)
        .env("HOME", s.work.join("home"))
        .timeout(Duration::from_secs(120))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "list ['kubia-1']",
            "watch [('ADDED', 'kubia-2')]",
            "patch [('app', 'kubia'), ('env', 'prod')]",
            "create again 409 Conflict",
            "old watch 410",
            "rewatch [('ADDED', 'kubia-3')]",
        ],
        "{stderr}"
    );
}

#[test]
fn the_python_client_over_the_embedded_store() {
    run_client("embedded");
}

#[test]
fn the_python_client_over_etcd() {
    run_client("etcd");
}
