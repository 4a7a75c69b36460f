//! Shared by the self-checks: a rootfs built once per test binary, and
//! helpers to run a container and read what it printed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use lab01::probe::{require, Privilege};
use lab01::{run_captured, ContainerSpec, Output, RootfsBuilder};

/// A rootfs with the default programs, built once and kept under cargo's
/// temporary directory for integration tests (inside target/).
pub fn rootfs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab01-test-rootfs");
        // The host's programs, not busybox: their output is what the snapshots hold.
        RootfsBuilder::new()
            .busybox(false)
            .file("/etc/marker", "inside the container\n")
            .build_once(&dir)
            .expect("build the test rootfs");
        dir
    })
}

/// How long any test container may run: a broken solution fails, never hangs.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A container spec on the shared test rootfs.
pub fn spec(args: &[&str]) -> ContainerSpec {
    ContainerSpec::new(args.iter().copied())
        .rootfs(rootfs())
        .hostname("kubelings")
        .timeout(TIMEOUT)
}

/// Runs `sh -c SCRIPT` in a container and returns its output.
pub fn sh(script: &str) -> Output {
    run(spec(&["sh", "-c", script]))
}

pub fn run(spec: ContainerSpec) -> Output {
    match run_captured(&spec) {
        Ok(out) => out,
        Err(e) => panic!("the container did not run: {e}"),
    }
}

/// The smallest container a test can ask for: only the `namespaces` it
/// names (plus a user namespace when not root, so the test runs
/// unprivileged), the host's filesystem, no cgroup, no hostname.
pub fn bare(args: &[&str], namespaces: &[lab01::namespaces::Namespace]) -> ContainerSpec {
    let mut spec = ContainerSpec::new(args.iter().copied());
    spec.namespaces = namespaces.to_vec();
    spec.cgroup = false;
    spec.hostname = None;
    spec.user_namespace(!nix::unistd::geteuid().is_root())
        .timeout(TIMEOUT)
}

/// A user namespace serves: root, or unprivileged user namespaces.
pub fn userns() -> bool {
    require(Privilege::Userns)
}

/// Root is needed for every container test on this lab.
pub fn root() -> bool {
    require(Privilege::Root)
}
