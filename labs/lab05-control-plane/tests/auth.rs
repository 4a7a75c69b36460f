//! lab05's authentication and TLS against the real kubectl: a small
//! router behind [`TokenGuard`] on lab02's TLS listener, reached with the
//! kubeconfigs lab05 writes. (The whole API server is tested by
//! `tests/ch05.rs` in the workspace.)

use std::future::IntoFuture;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use lab02::registry::tls::TlsListener;
use lab05::apiserver::guard::Guard;
use lab05::auth::kubeconfig::Kubeconfig;
use lab05::auth::tls::Ca;
use lab05::auth::{Role, TokenFile, TokenGuard};

/// `GET /api` for whoever the guard lets in, saying who they are.
fn router(guard: Arc<TokenGuard>) -> Router {
    Router::new().route(
        "/api",
        get(move |headers: HeaderMap| async move {
            match guard.authenticate(&headers) {
                Ok(user) => (
                    [("content-type", "application/json")],
                    serde_json::json!({
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "user": user.name,
                    })
                    .to_string(),
                )
                    .into_response(),
                Err(e) => e.into_response(),
            }
        }),
    )
}

fn kubectl(config: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(config)
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .arg("--request-timeout=10s")
        .output()
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned()
        + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_trusts_our_ca_and_shows_our_token() {
    if !kubelings_probe::require_program("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = TokenFile::open(dir.path()).unwrap();
    let admin = tokens.issue(&Role::Admin).unwrap();
    let ca = Ca::load_or_create(dir.path()).unwrap();
    let config = ca.server_config(&[]).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let guard = Arc::new(TokenGuard::new(tokens));
    let listener = TlsListener::new(tcp, config).unwrap();
    let server =
        tokio::spawn(axum::serve(listener, router(guard)).into_future());

    // A node's token issued after the server started is found too.
    let node = TokenFile::open(dir.path())
        .unwrap()
        .issue(&Role::Node("node-1".into()))
        .unwrap();
    let write = |name: &str, server: &str, ca: Option<&str>, token: &str| {
        let path = dir.path().join(name);
        Kubeconfig {
            server,
            ca_pem: ca,
            user: "u",
            token,
        }
        .write(&path)
        .unwrap();
        path
    };
    let https = format!("https://127.0.0.1:{port}");
    let other_ca = tempfile::tempdir().unwrap();
    let other_ca = Ca::load_or_create(other_ca.path()).unwrap();
    let configs = [
        write("admin", &https, Some(ca.cert_pem()), &admin),
        write("node", &https, Some(ca.cert_pem()), &node),
        write("wrong-token", &https, Some(ca.cert_pem()), "not-a-token"),
        write("wrong-ca", &https, Some(other_ca.cert_pem()), &admin),
        write(
            "by-name",
            &format!("https://localhost:{port}"),
            Some(ca.cert_pem()),
            &admin,
        ),
    ];
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let results = tokio::task::spawn_blocking(move || {
        configs
            .iter()
            .map(|c| kubectl(c, &home, &["get", "--raw", "/api"]))
            .collect::<Vec<_>>()
    });
    let results = tokio::time::timeout(Duration::from_secs(60), results)
        .await
        .expect("kubectl within a minute")
        .unwrap();
    server.abort();

    let (ok, out) = &results[0];
    assert!(ok, "{out}");
    assert!(out.contains(r#""user":"admin""#), "{out}");
    let (ok, out) = &results[1];
    assert!(ok, "{out}");
    assert!(out.contains(r#""user":"system:node:node-1""#), "{out}");
    let (ok, out) = &results[2];
    assert!(!ok);
    assert_eq!(
        out.trim(),
        "error: You must be logged in to the server (Unauthorized)"
    );
    let (ok, out) = &results[3];
    assert!(!ok);
    assert!(
        out.contains("x509: certificate signed by unknown authority"),
        "{out}"
    );
    let (ok, out) = &results[4];
    assert!(ok, "{out}");
}
