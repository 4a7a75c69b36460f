//! containerd, the runtime most Kubernetes clusters run, as a peer: Debian's
//! `containerd`, `ctr`, `runc` and CNI plugins, driven the way a reader
//! would drive them by hand, to show that our images run there and to time
//! a pod start against it.
//!
//! Nothing of it touches the host's containerd or network. containerd runs
//! with its own config, root, state and socket in a temporary directory, in
//! a mount namespace and a network namespace made for it (only loopback, up).
//! The few paths containerd, its shims and CNI insist on are shadowed in
//! that mount namespace: a fresh tmpfs on /run (shim sockets and runc's
//! state live in /run/containerd whatever the config says), an overlay on
//! /etc and /opt whose upper layers live in the temporary directory (`ctr
//! run --cni` reads /etc/cni/net.d and looks for plugins in /opt/cni/bin),
//! and an empty /var/lib (CNI's result cache). `ctr` and the CNI plugins are
//! run in the same two namespaces, so the CNI bridge is made there too.
//! Dropping the harness kills and deletes every task, stops containerd, ends
//! whatever is left in its mount namespace, and removes the directory.

// The ch03 program and the test each use a part of it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use lab01::cgroup::peer::PeerCgroups;
use nix::sched::CloneFlags;

/// containerd's own namespace (a name for images and containers, not a
/// kernel namespace) that everything of ours lives in.
pub const NAMESPACE: &str = "kubelings";
/// Where Debian's containernetworking-plugins installs the CNI plugins.
pub const CNI_PLUGINS: &str = "/usr/lib/cni";
/// The pod subnet of the CNI bridge: a part of the range reserved for
/// benchmarking networks, so it cannot collide with the reader's LAN.
pub const SUBNET: &str = "198.18.250.0/24";
/// The CNI network's name and the bridge it makes.
const NETWORK: &str = "kubelings-ctr";
const BRIDGE: &str = "kubelings0";
/// How long one `ctr` call may take before we give up on it.
const CTR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Tells harnesses of one process apart (their cgroup names).
static INSTANCES: AtomicUsize = AtomicUsize::new(0);

/// A running containerd of our own. Dropping it removes everything.
///
/// containerd dies with the thread that started it (PR_SET_PDEATHSIG), so
/// keep the harness on that thread.
pub struct Containerd {
    child: Child,
    dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    /// containerd's network and mount namespaces, held open so that `ctr`
    /// and the CNI plugins can join them.
    net: Option<OwnedFd>,
    mnt: Option<OwnedFd>,
    /// The mount namespace's identity, to find what still runs in it.
    mnt_id: (u64, u64),
    /// Parents runc had to make in other v1 hierarchies, removed on drop.
    _peer: PeerCgroups,
    /// Our containers' cgroups go beneath this (a path in the hierarchy).
    cgroup_parent: PathBuf,
    /// Prefix of our containers' cgroup names, unique on the machine.
    tag: String,
    /// Containers started with a CNI network, whose address must go back.
    with_cni: HashSet<String>,
}

/// One benchmark run of `ctr run`: a pod start against containerd.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub samples: Vec<Duration>,
    pub median: Duration,
    /// Whether the containers got a CNI network (the bridge plugin).
    pub cni_used: bool,
    /// What was measured, and why CNI was left out if it was.
    pub note: String,
}

impl Containerd {
    /// Starts containerd in a new directory beneath `tmp` and waits for its
    /// socket.
    pub fn start(tmp: &Path) -> Result<Containerd> {
        sweep_orphans();
        let dir = tempfile::Builder::new()
            .prefix("containerd-")
            .tempdir_in(tmp)
            .with_context(|| {
                format!("create a directory in {}", tmp.display())
            })?;
        let base = dir.path().to_path_buf();
        let socket = base.join("containerd.sock");
        // sun_path holds 108 bytes with the NUL; containerd adds ".ttrpc".
        if socket.as_os_str().len() + ".ttrpc".len() >= 108 {
            bail!(
                "{} is too long for a unix socket path: use a shorter directory",
                socket.display()
            );
        }
        for sub in [
            "root",
            "state",
            "opt-plugin",
            "var-lib",
            "cni",
            "logs",
            "shadow/etc/upper/cni/net.d",
            "shadow/etc/work",
            "shadow/opt/upper/cni",
            "shadow/opt/work",
        ] {
            std::fs::create_dir_all(base.join(sub)).with_context(|| {
                format!("create {}", base.join(sub).display())
            })?;
        }
        let config = base.join("config.toml");
        std::fs::write(&config, config_toml(&base, &socket))
            .with_context(|| format!("write {}", config.display()))?;
        let conflist =
            base.join("shadow/etc/upper/cni/net.d/10-kubelings.conflist");
        std::fs::write(&conflist, conflist_json(&base.join("cni")).to_string())
            .with_context(|| format!("write {}", conflist.display()))?;
        // ctr looks for plugins in /opt/cni/bin; Debian has them elsewhere.
        std::os::unix::fs::symlink(
            CNI_PLUGINS,
            base.join("shadow/opt/upper/cni/bin"),
        )
        .context("link /opt/cni/bin to the CNI plugins")?;

        // Read before runc makes any cgroup (and before there is a child
        // that an early return would leave running).
        let peer = PeerCgroups::new().context("find our own cgroup")?;
        let cgroup_parent = cgroup_parent()?;
        let shadows = Shadows::new(&base)?;
        let log = File::create(base.join("containerd.log"))
            .context("create containerd.log")?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("containerd.log")?)
            .stderr(log);
        // SAFETY: the child runs only system calls between fork and exec
        // (unshare, mount, socket, ioctl, prctl) on strings made before the
        // fork; it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || shadows.enter());
        }
        let child = cmd
            .spawn()
            .context("start containerd (apt-get install containerd)")?;
        // Namespaces first, so that a failure below still cleans up.
        let pid = child.id();
        let open = |kind: &str| -> Result<OwnedFd> {
            let path = format!("/proc/{pid}/ns/{kind}");
            Ok(File::open(&path)
                .with_context(|| format!("open {path}"))?
                .into())
        };
        let (net, mnt) = match (open("net"), open("mnt")) {
            (Ok(net), Ok(mnt)) => (net, mnt),
            (Err(e), _) | (_, Err(e)) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let meta = std::fs::metadata(format!("/proc/{pid}/ns/mnt"));
        let mnt_id = meta.map(|m| (m.dev(), m.ino())).unwrap_or_default();
        let tag = format!(
            "kubelings-ctr-{}-{}",
            std::process::id(),
            INSTANCES.fetch_add(1, Ordering::Relaxed)
        );
        let mut containerd = Containerd {
            child,
            dir: Some(dir),
            socket,
            net: Some(net),
            mnt: Some(mnt),
            mnt_id,
            _peer: peer,
            cgroup_parent,
            tag,
            with_cni: HashSet::new(),
        };
        containerd.wait_for_socket()?;
        Ok(containerd)
    }

    fn wait_for_socket(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) =
                self.child.try_wait().context("wait for containerd")?
            {
                bail!(
                    "containerd exited ({status}) at start:\n{}",
                    self.log_tail()
                );
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not open {} within {START_TIMEOUT:?}:\n{}",
                    self.socket.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// containerd's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("/"), |d| d.path())
    }

    /// containerd's network namespace (for a thread that wants to join it).
    pub fn netns(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.net.as_ref().map(|fd| fd.as_fd())
    }

    /// The last lines containerd logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir().join("containerd.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// A command for `program` that runs in containerd's namespaces.
    fn inside(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.stdin(Stdio::null());
        let net = self.net.as_ref().map(|fd| fd.as_raw_fd());
        let mnt = self.mnt.as_ref().map(|fd| fd.as_raw_fd());
        if let (Some(net), Some(mnt)) = (net, mnt) {
            // SAFETY: setns(2) only, between fork and exec, on descriptors
            // this harness holds open (the child inherits them).
            unsafe {
                cmd.pre_exec(move || {
                    for (fd, kind) in [
                        (net, CloneFlags::CLONE_NEWNET),
                        (mnt, CloneFlags::CLONE_NEWNS),
                    ] {
                        // SAFETY: fd stays open in the child until exec.
                        let fd = BorrowedFd::borrow_raw(fd);
                        nix::sched::setns(fd, kind)?;
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// `ctr --address SOCKET --namespace kubelings ARGS…`, inside.
    fn ctr<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.inside("ctr");
        // A containerd that does not answer fails the call soon.
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--connect-timeout", "5s"])
            .args(["--namespace", NAMESPACE])
            .args(args);
        cmd
    }

    /// Runs a ctr command to its end; a failure says what ctr said.
    fn ctr_ok<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.ctr(args);
        let line = describe(&cmd);
        let out = output_within(&mut cmd, CTR_TIMEOUT)
            .with_context(|| line.clone())?;
        if !out.status.success() {
            bail!(
                "{line}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out)
    }

    /// The names of the images containerd knows.
    pub fn images(&self) -> Result<Vec<String>> {
        let out = self.ctr_ok(["images", "list", "--quiet"])?;
        Ok(lines(&out.stdout))
    }

    /// `ctr image import ARCHIVE` (an OCI layout tarball as `ch02 save`
    /// writes it): the names it brought in.
    pub fn import(&self, archive: &Path) -> Result<Vec<String>> {
        let before: HashSet<String> = self.images()?.into_iter().collect();
        let out = self
            .ctr_ok(["images".as_ref(), "import".as_ref(), archive.as_os_str()])
            .with_context(|| format!("import {}", archive.display()))?;
        let mut names: Vec<String> = self
            .images()?
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        if names.is_empty() {
            // Imported again: ctr says "unpacking NAME (sha256:…)…done".
            names = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("unpacking "))
                .filter_map(|l| l.split(" (").next())
                .map(str::to_string)
                .collect();
        }
        if names.is_empty() {
            bail!("{} holds no named image", archive.display());
        }
        Ok(names)
    }

    /// The common flags of our `ctr run`s: a cgroup beneath ours, the
    /// container's output in a log file.
    fn run_flags(&self, id: &str) -> Vec<std::ffi::OsString> {
        let log = self.log_path(id);
        vec![
            "--cgroup".into(),
            self.cgroup_path(id).into(),
            "--log-uri".into(),
            format!("file://{}", log.display()).into(),
        ]
    }

    /// The container's `linux.cgroupsPath`, beneath our own cgroup.
    fn cgroup_path(&self, id: &str) -> String {
        let name = format!("{}-{id}", self.tag);
        self.cgroup_parent.join(name).display().to_string()
    }

    /// Where a container's stdout and stderr go.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir().join("logs").join(format!("{id}.log"))
    }

    /// `ctr run -d [--cni] IMAGE ID [COMMAND…]`: how long it took until
    /// the container's process runs (ctr returns once the task started).
    /// The task is left running; [`Containerd::remove`] ends it.
    pub fn start_container(
        &mut self,
        image: &str,
        id: &str,
        with_cni: bool,
        command: &[&str],
    ) -> Result<Duration> {
        let mut args: Vec<std::ffi::OsString> =
            vec!["run".into(), "--detach".into()];
        args.extend(self.run_flags(id));
        if with_cni {
            args.push("--cni".into());
            self.with_cni.insert(id.to_string());
        }
        args.push(image.into());
        args.push(id.into());
        args.extend(command.iter().map(Into::into));
        let started = Instant::now();
        self.ctr_ok(&args)?;
        let took = started.elapsed();
        match self.task_status(id)?.as_deref() {
            Some("RUNNING") => Ok(took),
            other => bail!(
                "the task {id} is {} after ctr run; its log:\n{}",
                other.unwrap_or("missing"),
                std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
            ),
        }
    }

    /// `ctr run --rm IMAGE ID COMMAND…` without a network of its own
    /// making: runs it to its end and returns what it printed and its exit.
    pub fn run_to_end(
        &self,
        image: &str,
        id: &str,
        command: &[&str],
    ) -> Result<Output> {
        let mut cmd = self.ctr(["run", "--rm"]);
        cmd.args(["--cgroup", &self.cgroup_path(id)])
            .args([image, id])
            .args(command);
        let line = describe(&cmd);
        output_within(&mut cmd, CTR_TIMEOUT).with_context(|| line)
    }

    /// The task's status as `ctr task list` shows it (RUNNING, STOPPED…).
    pub fn task_status(&self, id: &str) -> Result<Option<String>> {
        let out = self.ctr_ok(["tasks", "list"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&id))
            .and_then(|cols| cols.get(2).map(|s| s.to_string())))
    }

    /// The address CNI's host-local IPAM gave the container `id`.
    pub fn pod_ip(&self, id: &str) -> Option<Ipv4Addr> {
        // host-local keeps one file per address, holding the container id
        // (ctr's is "NAMESPACE-ID") and the interface.
        let owner = format!("{NAMESPACE}-{id}");
        let entries =
            std::fs::read_dir(self.dir().join("cni").join(NETWORK)).ok()?;
        entries.flatten().find_map(|e| {
            let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(e.path()).ok()?;
            (text.lines().next()?.trim() == owner).then_some(ip)
        })
    }

    /// Kills and deletes the task, gives its address back, deletes the
    /// container and its snapshot.
    pub fn remove(&mut self, id: &str) -> Result<()> {
        // --force kills the task first and waits for it; no task is fine.
        let _ = self.ctr_ok(["tasks", "delete", "--force", id]);
        if self.with_cni.remove(id) {
            self.cni_del(id)?;
        }
        self.ctr_ok(["containers", "delete", id])?;
        Ok(())
    }

    /// What `ctr run --rm --cni` does at the end and `ctr run -d` never
    /// does: CNI's DEL, so that host-local frees the address. The netns is
    /// gone with the task, so only the IPAM part has work left.
    fn cni_del(&self, id: &str) -> Result<()> {
        let mut plugin =
            conflist_json(&self.dir().join("cni"))["plugins"][0].clone();
        plugin["name"] = NETWORK.into();
        plugin["cniVersion"] = "1.0.0".into();
        let mut cmd = self.inside(Path::new(CNI_PLUGINS).join("bridge"));
        cmd.env("CNI_COMMAND", "DEL")
            .env("CNI_CONTAINERID", format!("{NAMESPACE}-{id}"))
            .env("CNI_NETNS", "")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", CNI_PLUGINS)
            .stdin(Stdio::piped());
        let out = output_with_input(
            &mut cmd,
            plugin.to_string().as_bytes(),
            CTR_TIMEOUT,
        )
        .context("CNI DEL")?;
        if !out.status.success() {
            bail!(
                "CNI DEL of {id}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(())
    }

    /// One measured pod start: `ctr run -d` of the image's own command
    /// until its process runs; then the task and container are removed.
    pub fn run(
        &mut self,
        image: &str,
        id: &str,
        with_cni: bool,
    ) -> Result<Duration> {
        let took = self.start_container(image, id, with_cni, &[]);
        let removed = self.remove(id);
        let took = took?;
        removed?;
        Ok(took)
    }

    /// Pids of the processes still in containerd's mount namespace
    /// (containerd itself, and shims, which outlive it).
    fn processes_inside(&self) -> Vec<i32> {
        let mine = std::process::id() as i32;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != mine)
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
                    .is_ok_and(|m| (m.dev(), m.ino()) == self.mnt_id)
            })
            .collect()
    }

    fn stop(&mut self) {
        // Tasks first: a shim whose task is deleted exits by itself. (A
        // containerd that is gone cannot be asked; its shims are ended
        // below.)
        let running = matches!(self.child.try_wait(), Ok(None));
        let listed = running
            .then(|| self.ctr_ok(["containers", "list", "--quiet"]).ok())
            .flatten();
        if let Some(out) = listed {
            for id in lines(&out.stdout) {
                let _ = self.remove(&id);
            }
        }
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever else runs in its mount namespace is a shim of ours.
        if self.mnt_id != (0, 0) {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let left = self.processes_inside();
                if left.is_empty() || Instant::now() > deadline {
                    break;
                }
                for pid in left {
                    let _ =
                        kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The last references to the namespaces: their mounts go with them.
        self.net = None;
        self.mnt = None;
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("kubelings: cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// What a harness killed with SIGKILL leaves behind. containerd dies with
/// it (PR_SET_PDEATHSIG), but shims are made to outlive containerd, so a
/// shim keeps its container running, their mount namespace and directory
/// stay, and so do the container's cgroups. Found by their names (a shim of
/// our containerd namespace whose socket no longer answers; a cgroup of a
/// harness whose process is gone) and ended by pid.
fn sweep_orphans() {
    use nix::sys::signal::{kill, Signal};
    let mut dirs = Vec::new();
    let mut shims = Vec::new();
    for (pid, args) in processes() {
        let is_shim = args.first().is_some_and(|a| {
            Path::new(a).file_name() == Some("containerd-shim-runc-v2".as_ref())
        });
        let ours = args
            .windows(2)
            .any(|w| w[0] == "-namespace" && w[1] == NAMESPACE);
        let socket = args
            .windows(2)
            .find(|w| w[0] == "-address")
            .map(|w| PathBuf::from(&w[1]));
        let Some(socket) = socket.filter(|_| is_shim && ours) else {
            continue;
        };
        let Some(dir) = socket.parent() else { continue };
        let made_by_us = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("containerd-"))
            && dir.join("config.toml").exists();
        if made_by_us
            && std::os::unix::net::UnixStream::connect(&socket).is_err()
        {
            shims.push(pid);
            dirs.push(dir.to_path_buf());
        }
    }
    // The container's init first (its pid namespace goes with it), then
    // the shim.
    for (pid, _) in processes() {
        if parent_of(pid).is_some_and(|ppid| shims.contains(&ppid)) {
            let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    for &pid in &shims {
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while shims
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    sweep_cgroups();
}

/// Cgroups `kubelings-ctr-PID-…` beneath ours whose PID is gone.
fn sweep_cgroups() {
    use nix::sys::signal::{kill, Signal};
    let Ok(parent) = cgroup_parent() else {
        return;
    };
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let inner = parent.strip_prefix("/").unwrap_or(&parent);
    let roots = hierarchies.flatten().map(|h| h.path());
    for root in roots.chain([PathBuf::from("/sys/fs/cgroup")]) {
        let Ok(entries) = std::fs::read_dir(root.join(inner)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name
                .strip_prefix("kubelings-ctr-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            let Some(owner) = owner else { continue };
            if Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            let procs =
                std::fs::read_to_string(entry.path().join("cgroup.procs"));
            for pid in procs.unwrap_or_default().lines() {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let _ =
                        kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            for _ in 0..100 {
                if std::fs::remove_dir(entry.path()).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Where our containers' cgroups go, as a path in the cgroup hierarchy.
/// On v1 beneath our own cgroup in every hierarchy at once (see
/// [`PeerCgroups`]). On v2 beneath our own cgroup too, whose controllers
/// must be handed down first: `ctr run` always asks for cpu shares, and a
/// v2 cgroup holding processes cannot hand any down (lab01 moves us into a
/// leaf beside the containers for that).
fn cgroup_parent() -> Result<PathBuf> {
    use lab01::probe::{cgroup_mode, CgroupMode};
    let root = Path::new(lab01::cgroup::v2::ROOT);
    if cgroup_mode(root) != CgroupMode::Unified {
        let peer = PeerCgroups::new().context("find our own cgroup")?;
        let path = PathBuf::from(peer.path_for("x"));
        return Ok(path.parent().unwrap_or(Path::new("/")).to_path_buf());
    }
    let parent = lab01::cgroup::v2::parent_dir()?;
    lab01::cgroup::v2::enable_controllers(&parent, &["cpu", "memory", "pids"])?;
    let inner = parent.strip_prefix(root).unwrap_or(&parent);
    Ok(Path::new("/").join(inner))
}

/// Every process's pid and arguments.
fn processes() -> Vec<(i32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// The parent pid, from /proc/PID/stat (after the command's parenthesis).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Measures `rounds` pod starts against containerd: `ctr run -d` of the
/// image in `image_archive` (as `ch02 save` writes it), with the CNI bridge
/// plugin when `cni` is asked for and works, until the container's process
/// runs. One round before them warms containerd up and is not counted.
pub fn bench_containerd(
    image_archive: &Path,
    rounds: usize,
    cni: bool,
) -> Result<BenchResult> {
    if rounds == 0 {
        bail!("the benchmark needs at least one round");
    }
    let tmp = tempfile::Builder::new()
        .prefix("kubelings-containerd-")
        .tempdir()
        .context("a temporary directory")?;
    let mut containerd = Containerd::start(tmp.path())?;
    let names = containerd.import(image_archive)?;
    let image = names
        .first()
        .ok_or_else(|| anyhow!("{} holds no image", image_archive.display()))?
        .clone();
    let mut note = format!(
        "ctr run -d of {image} until its task runs (containerd {}, runc), \
         median of {rounds}, one warm-up round not counted",
        containerd_version()
    );
    let mut cni_used = false;
    if cni {
        let bridge = Path::new(CNI_PLUGINS).join("bridge");
        if !bridge.exists() {
            note += &format!(
                "; without CNI: no {} (apt-get install containernetworking-plugins)",
                bridge.display()
            );
        } else {
            match containerd.run(&image, "warm-up", true) {
                Ok(_) => cni_used = true,
                Err(e) => {
                    let _ = containerd.remove("warm-up");
                    note +=
                        &format!("; without CNI: ctr run --cni failed: {e:#}");
                }
            }
        }
    }
    if cni_used {
        note += &format!("; CNI bridge plugin, host-local IPAM in {SUBNET}");
    } else {
        if !cni {
            note += "; no CNI asked for: each container gets an empty \
                     network namespace";
        }
        containerd.run(&image, "warm-up", false)?;
    }
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        samples.push(containerd.run(
            &image,
            &format!("bench-{round}"),
            cni_used,
        )?);
    }
    drop(containerd);
    Ok(BenchResult {
        median: median(&samples),
        samples,
        cni_used,
        note,
    })
}

/// The middle sample (the mean of the two middle ones for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// `containerd --version`'s version, or "?".
fn containerd_version() -> String {
    Command::new("containerd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace().nth(2).map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// containerd's config: everything beneath `base`, no CRI (ctr needs none
/// of it), the overlayfs snapshotter and runc's v2 shim (the defaults).
fn config_toml(base: &Path, socket: &Path) -> String {
    let path = |p: &Path| toml_string(&p.display().to_string());
    let mut ttrpc = socket.as_os_str().to_owned();
    ttrpc.push(".ttrpc");
    format!(
        "version = 2\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\", \
         \"io.containerd.snapshotter.v1.aufs\", \
         \"io.containerd.snapshotter.v1.btrfs\", \
         \"io.containerd.snapshotter.v1.devmapper\", \
         \"io.containerd.snapshotter.v1.zfs\"]\n\
         \n\
         [grpc]\n  address = {socket}\n\
         [ttrpc]\n  address = {ttrpc}\n\
         [debug]\n  address = \"\"\n\
         [metrics]\n  address = \"\"\n\
         \n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n",
        root = path(&base.join("root")),
        state = path(&base.join("state")),
        socket = path(socket),
        ttrpc = path(Path::new(&ttrpc)),
        opt = path(&base.join("opt-plugin")),
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The CNI network: a bridge with the gateway address, host-local IPAM in
/// [`SUBNET`] keeping its state in `data`, no NAT (no iptables rules).
// ANCHOR: conflist
fn conflist_json(data: &Path) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": SUBNET}]],
                "dataDir": data.display().to_string(),
            },
        }],
    })
}
// ANCHOR_END: conflist

/// What containerd's child does between fork and exec: new mount and
/// network namespaces, the shadowed paths, loopback up. Its strings are
/// made before the fork.
struct Shadows {
    etc: CString,
    opt: CString,
    var_lib: CString,
}

impl Shadows {
    fn new(base: &Path) -> Result<Shadows> {
        // overlayfs separates its options with ',' and its layers with ':'.
        if base.to_string_lossy().contains([',', ':']) {
            bail!(
                "{}: a ',' or ':' cannot be named in overlayfs options",
                base.display()
            );
        }
        let overlay = |name: &str, lower: &str| -> Result<CString> {
            let dir = base.join("shadow").join(name);
            let opts = format!(
                "lowerdir={lower},upperdir={},workdir={}",
                dir.join("upper").display(),
                dir.join("work").display()
            );
            Ok(CString::new(opts)?)
        };
        Ok(Shadows {
            etc: overlay("etc", "/etc")?,
            opt: overlay("opt", "/opt")?,
            var_lib: CString::new(base.join("var-lib").as_os_str().as_bytes())?,
        })
    }

    // ANCHOR: enter
    fn enter(&self) -> std::io::Result<()> {
        use nix::mount::{mount, MsFlags};
        const NONE: Option<&str> = None;
        let new = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET;
        nix::sched::unshare(new)?;
        // Nothing mounted here may travel back to the host's table.
        mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)?;
        let none = MsFlags::empty();
        mount(Some("tmpfs"), "/run", Some("tmpfs"), none, Some("mode=755"))?;
        let overlay = Some("overlay");
        mount(overlay, "/etc", overlay, none, Some(self.etc.as_c_str()))?;
        mount(overlay, "/opt", overlay, none, Some(self.opt.as_c_str()))?;
        mount(
            Some(self.var_lib.as_c_str()),
            "/var/lib",
            NONE,
            MsFlags::MS_BIND,
            NONE,
        )?;
        loopback_up()?;
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
        Ok(())
    }
    // ANCHOR_END: enter
}

/// `ip link set lo up` in the current network namespace, with the ioctls
/// (safe between fork and exec, unlike a netlink library's allocations).
fn loopback_up() -> std::io::Result<()> {
    use nix::errno::Errno;
    // SAFETY: socket(2) takes integers; we close what it returns below.
    let sock = unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    };
    if sock < 0 {
        return Err(Errno::last().into());
    }
    // SAFETY: ifreq is plain C data; all zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills in the ifreq we own.
    let mut rc =
        unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) };
    if rc == 0 {
        // SAFETY: the ioctl above set the union's flags member.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
        rc = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req) };
    }
    let err = Errno::last();
    // SAFETY: closes the socket opened above, used by nothing else.
    unsafe { libc::close(sock) };
    if rc < 0 {
        return Err(err.into());
    }
    Ok(())
}

/// A command as a reader would type it, for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs `cmd` to its end, killed after `timeout`: a peer that hangs must
/// fail, not hang the test.
fn output_within(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    output_with_input(cmd, &[], timeout)
}

fn output_with_input(
    cmd: &mut Command,
    input: &[u8],
    timeout: Duration,
) -> Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().context("start it")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).context("write its input")?;
    }
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("wait for it")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("no answer within {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
