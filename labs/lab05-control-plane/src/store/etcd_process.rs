//! A real etcd of our own: started on loopback with free ports and its
//! own data directory, stopped (SIGTERM, then SIGKILL) when dropped.
//! `ch05 apiserver --store etcd` runs one; the store's tests run one each.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::StoreError;

/// How long etcd may take to answer `/health` after starting.
const STARTUP: Duration = Duration::from_secs(20);
/// How long etcd may take to exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(5);

/// A running etcd, killed on drop.
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl EtcdProcess {
    /// Starts etcd with its data in `data_dir` (its log in
    /// `data_dir/etcd.log`), and waits until it is healthy.
    pub fn start(data_dir: &Path) -> Result<EtcdProcess, StoreError> {
        let etcd = kubelings_probe::find_program("etcd").ok_or_else(|| {
            StoreError::Backend("etcd is not installed".into())
        })?;
        // A port picked free may be taken before etcd binds it: try again.
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(&etcd, data_dir) {
                Ok(process) => return Ok(process),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Backend("etcd".into())))
    }

    fn start_once(etcd: &str, dir: &Path) -> Result<EtcdProcess, StoreError> {
        let io = |what: &str, e: std::io::Error| {
            StoreError::Backend(format!("etcd: {what}: {e}"))
        };
        std::fs::create_dir_all(dir).map_err(|e| io("data dir", e))?;
        let client = format!("http://127.0.0.1:{}", free_port()?);
        let peer = format!("http://127.0.0.1:{}", free_port()?);
        let log = dir.join("etcd.log");
        let out = File::create(&log).map_err(|e| io("log", e))?;
        let err = out.try_clone().map_err(|e| io("log", e))?;
        let child = Command::new(etcd)
            .arg("--name=kubelings")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=kubelings={peer}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| io("start", e))?;
        let mut process = EtcdProcess {
            child,
            endpoint: client,
            log,
        };
        process.wait_healthy()?;
        Ok(process)
    }

    /// Polls `/health` until etcd says true, or it exits, or time is up.
    fn wait_healthy(&mut self) -> Result<(), StoreError> {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(1)))
            .build()
            .new_agent();
        let url = format!("{}/health", self.endpoint);
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(&format!("exited with {status}")));
            }
            let healthy = agent
                .get(&url)
                .call()
                .and_then(|mut r| r.body_mut().read_to_string())
                .is_ok_and(|body| body.contains("\"true\""));
            if healthy {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.failed("is not healthy after 20 s"))
    }

    fn failed(&self, what: &str) -> StoreError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        StoreError::Backend(format!(
            "etcd at {} {what}; its log ends: {}",
            self.endpoint,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }

    /// Its client URL, for [`super::EtcdStore::connect`].
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn free_port() -> Result<u16, StoreError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StoreError::Backend(format!("a free port: {e}")))
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + SHUTDOWN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
