//! The test fixture of `tests/ch05.rs` and `tests/ch05_python.rs`: a
//! `ch05 apiserver` on a free loopback port with its data in a temporary
//! directory, kubectl runs against it, and their output. Servers stop
//! (their etcd too) and their directories go when the test process exits.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// A running `ch05 apiserver` and what reaching it takes.
pub struct Server {
    /// The control plane's data directory.
    pub data: PathBuf,
    /// Manifests and kubectl's HOME (its discovery cache).
    pub work: PathBuf,
    pub url: String,
    pub admin: PathBuf,
}

/// The servers started, stopped at exit (a static is never dropped).
static RUNNING: Mutex<Vec<(Child, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_servers() {
    let Ok(mut running) = RUNNING.lock() else {
        return;
    };
    for (child, root) in running.iter_mut() {
        stop(child);
        let _ = std::fs::remove_dir_all(root);
    }
}

/// SIGTERM, a few seconds for a clean stop (its etcd too), then SIGKILL.
fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn register(child: Child, root: PathBuf) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `stop_servers` is a plain function that never unwinds
        // (it ignores every error); atexit only records its address.
        unsafe {
            libc::atexit(stop_servers);
        }
    });
    RUNNING.lock().expect("server list").push((child, root));
}

impl Server {
    /// Starts `ch05 apiserver` with `store` and the extra arguments, on a
    /// free loopback port, and waits until kubectl gets `/readyz`.
    pub fn start(store: &str, extra: &[&str]) -> Server {
        let root = tempfile::Builder::new()
            .prefix("ch05-test-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let data = root.join("data");
        let work = root.join("work");
        std::fs::create_dir_all(work.join("home")).expect("work dir");
        let log = std::fs::File::create(root.join("apiserver.log"))
            .expect("log file");
        let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("ch05"))
            .args(["apiserver", "--store", store, "--data"])
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--nodes", "2"])
            .arg("--stop-with-stdin")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("ch05 apiserver starts");
        let stdout = child.stdout.take().expect("stdout");
        register(child, root.clone());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut url = None;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "ch05 apiserver did not start: {}",
                    read(&root.join("apiserver.log"))
                )
            });
            if let Some(u) =
                line.strip_prefix("ch05: the API server listens on ")
            {
                url = Some(u.to_string());
            }
            if line.starts_with("export KUBECONFIG=") {
                break;
            }
        }
        let server = Server {
            admin: data.join("admin.kubeconfig"),
            data,
            work,
            url: url.expect("the server says where it listens"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.kubectl(&["get", "--raw", "/readyz"]).ok {
            assert!(
                Instant::now() < deadline,
                "not ready: {}",
                read(&root.join("apiserver.log"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn port(&self) -> &str {
        self.url.rsplit(':').next().unwrap_or("")
    }

    /// kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_as(&self.admin, args, None)
    }

    /// kubectl with a kubeconfig, optionally a standard input.
    pub fn kubectl_as(
        &self,
        config: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Run {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(config)
            .args(args)
            .env("HOME", self.work.join("home"))
            .env_remove("KUBECONFIG")
            .timeout(Duration::from_secs(60));
        if let Some(input) = stdin {
            cmd.write_stdin(input);
        }
        let out = cmd.output().expect("kubectl runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A kubeconfig for `user` (`node:node-1`), by `ch05 kubeconfig`.
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        let path = self.work.join(format!("{user}.kubeconfig"));
        let out = Command::cargo_bin("ch05")
            .expect("ch05")
            .arg("kubeconfig")
            .arg("--data")
            .arg(&self.data)
            .args(["--user", user, "-o"])
            .arg(&path)
            .timeout(Duration::from_secs(30))
            .output()
            .expect("ch05 kubeconfig");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("export KUBECONFIG={}", path.display())
        );
        path
    }

    /// A namespace of the test's own (made from a manifest: JSON).
    pub fn namespace(&self, name: &str) -> String {
        let manifest = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\
             \"metadata\":{{\"name\":\"{name}\"}}}}"
        );
        let run = self.kubectl_as(
            &self.admin,
            &["create", "-f", "-"],
            Some(&manifest),
        );
        assert!(run.ok, "{run:?}");
        name.to_string()
    }

    /// Writes a manifest into the work directory; its path.
    pub fn manifest(&self, name: &str, text: &str) -> String {
        let path = self.work.join(name);
        std::fs::write(&path, text).expect("manifest");
        path.display().to_string()
    }
}

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Succeeded; its standard output.
    #[track_caller]
    pub fn out(&self) -> &str {
        assert!(self.ok, "kubectl failed: {self:?}");
        &self.stdout
    }

    /// Failed; its standard error.
    #[track_caller]
    pub fn err(&self) -> &str {
        assert!(!self.ok, "kubectl should have failed: {self:?}");
        &self.stderr
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
