//! A throwaway VM for the tests that need a kernel this machine does not
//! run: qemu (TCG, no network), a kernel from /boot and an initramfs made
//! here from busybox, lab01's test binaries and an /init script.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab01::RootfsBuilder;

/// Skips like `kubelings_probe::require`: prints why, and fails under `CI=true`.
pub fn skip(why: &str) -> bool {
    if lab01::probe::ci() {
        panic!("{}: {why}", lab01::probe::CI_SKIP_PANIC);
    }
    eprintln!("SKIP: {why}");
    false
}

/// The kernel to boot: `KUBELINGS_VM_KERNEL`, else the newest readable
/// /boot/vmlinuz-* (Debian's linux-image-amd64).
pub fn kernel() -> Option<PathBuf> {
    lab01::probe::vm_kernel()
}

/// The test executable of lab01's `tests/<name>.rs`, built from the current
/// sources: a sibling of this test's own executable when it is up to date
/// (`cargo test` builds every test target before running any), else built
/// now with `cargo test --no-run`, into the same target directory.
pub fn lab_test_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("this test's executable");
    let deps = exe.parent().expect("the deps directory").to_path_buf();
    if let Some(sibling) = sibling(&deps, name).filter(|p| up_to_date(p)) {
        println!("tests/{name}.rs: {} (up to date)", sibling.display());
        return sibling;
    }
    println!("tests/{name}.rs: building it (cargo test --no-run)");
    // target/<profile>/deps: the target directory is two levels up.
    let target = deps.ancestors().nth(2).expect("the target directory");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "-p", "lab01", "--no-run", "--message-format=json"])
        .args(["--test", name])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo test --no-run");
    assert!(
        out.status.success(),
        "cargo could not build tests/{name}.rs"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == name && m["profile"]["test"] == true)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo named no executable for tests/{name}.rs"))
}

/// The newest `<name>-<hash>` executable in `deps`.
fn sibling(deps: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}-");
    std::fs::read_dir(deps)
        .ok()?
        .flatten()
        .filter(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
        .max_by_key(|(_, t)| *t)
        .map(|(p, _)| p)
}

/// Whether `exe` is newer than every source file rustc read for it, as
/// listed in the dep-info file cargo keeps beside it (`<exe>.d`), and than
/// lab01's library sources (which that file does not list).
fn up_to_date(exe: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let (Some(built), Ok(info)) = (
        modified(exe),
        std::fs::read_to_string(exe.with_extension("d")),
    ) else {
        return false;
    };
    // `target: dep dep…` (spaces inside a path escaped with a backslash),
    // paths relative to the workspace root (labs/lab01-isolation/../..).
    let lab = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = lab.ancestors().nth(2).unwrap_or(lab);
    let head = format!("{}: ", exe.display());
    let Some(deps) = info.lines().find_map(|l| l.strip_prefix(head.as_str())) else {
        return false;
    };
    let deps = deps.replace("\\ ", "\u{0}");
    let mut sources: Vec<PathBuf> = deps
        .split_whitespace()
        .map(|d| workspace.join(d.replace('\u{0}', " ")))
        .collect();
    rust_files(&lab.join("src"), &mut sources);
    sources
        .iter()
        .all(|d| modified(d).is_some_and(|t| t <= built))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Writes `dir/initramfs.cpio`: busybox with the applets the tests and the
/// init script use, `binaries` under /tests (with their libraries, found by
/// lab01's own rootfs builder), `/tests/list` and `/init`.
pub fn initramfs(dir: &Path, binaries: &[(&str, PathBuf)], list: &str, init: &str) -> PathBuf {
    let root = dir.join("root");
    let mut builder = RootfsBuilder::empty()
        .busybox(true)
        .programs(lab01::rootfs::DEFAULT_PROGRAMS.iter().copied())
        .programs(["find", "poweroff", "switch_root", "sync"])
        .file("/tests/list", list)
        // Which exercises count as solved (`kubelings verify`), as on the host.
        .file("/tests/solved", solved())
        .file("/init", init);
    // lab01's rootfs builder runs inside too (tests/common builds one from
    // the VM's programs) and finds libraries where ld.so.conf says.
    for conf in ld_so_conf() {
        let text = std::fs::read(&conf).expect("read ld.so.conf");
        builder = builder.file(conf, text);
    }
    for (name, exe) in binaries {
        builder = builder.binary(stripped(dir, name, exe), format!("/tests/{name}"));
    }
    builder.build(&root).expect("build the initramfs tree");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod /init");
    let image = dir.join("initramfs.cpio");
    let file = std::fs::File::create(&image).expect("create the initramfs");
    let status = Command::new("sh")
        .args(["-c", "find . | cpio --quiet -o -H newc -R 0:0"])
        .current_dir(&root)
        .stdout(file)
        .status()
        .expect("run cpio");
    assert!(status.success(), "cpio failed: {status}");
    image
}

/// `KUBELINGS_SOLVED` of this process; unset means every exercise, as `*` does.
fn solved() -> String {
    std::env::var("KUBELINGS_SOLVED").unwrap_or_else(|_| "*".into())
}

/// /etc/ld.so.conf and the files of /etc/ld.so.conf.d, where they exist.
fn ld_so_conf() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/ld.so.conf.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.push(PathBuf::from("/etc/ld.so.conf"));
    files.retain(|p| p.is_file());
    files
}

/// A copy of `exe` without debug information where `strip` is installed:
/// a third of the size, so the VM unpacks it sooner and in less memory.
fn stripped(dir: &Path, name: &str, exe: &Path) -> PathBuf {
    let copy = dir.join(format!("{name}.stripped"));
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&copy)
        .arg(exe)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        copy
    } else {
        exe.to_path_buf()
    }
}

/// A running qemu. Dropping it (a failed assertion, a panic, a timeout)
/// kills that one process by its pid and reaps it.
pub struct Qemu {
    child: Child,
    dir: PathBuf,
}

impl Qemu {
    /// Boots `kernel` with `initrd` under TCG: the serial console goes to
    /// `dir/serial.log`, qemu's own complaints to `dir/qemu.err`.
    pub fn boot(kernel: &Path, initrd: &Path, dir: &Path) -> Qemu {
        let serial = dir.join("serial.log");
        let err = std::fs::File::create(dir.join("qemu.err")).expect("create qemu.err");
        let child = Command::new("qemu-system-x86_64")
            // KVM hangs on some hosts (this one among them); TCG runs anywhere.
            .args(["-accel", "tcg", "-m", "512M", "-smp", "1"])
            .args(["-nographic", "-nodefaults", "-monitor", "none"])
            // No network at all: the VM needs none, and the host's stays untouched.
            .args(["-nic", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            // panic=-1: should /init die, the kernel reboots, which -no-reboot turns into an exit.
            .args([
                "-append",
                "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start qemu-system-x86_64");
        Qemu {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Waits up to `limit` for the VM to power off. Err: it did not in time.
    pub fn wait(&mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        let until = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Ok(None) => return Err(format!("the VM was still running after {limit:?}")),
                Err(e) => return Err(format!("waiting for qemu: {e}")),
            }
        }
    }

    /// What the guest printed on its serial console so far.
    pub fn serial(&self) -> String {
        let bytes = std::fs::read(self.dir.join("serial.log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    /// What qemu itself printed on stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Child::kill signals this child's pid only; a no-op once reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
