//! Our images in containerd, the runtime Kubernetes uses most: kubia built
//! and saved with chapter 2's program, imported with `ctr image import`,
//! run with `ctr run` (runc, and the CNI bridge plugin for its pod IP) by a
//! containerd of the test's own, in namespaces of its own; then nothing of
//! it is left.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lab01::probe::{require, require_program, Privilege, CI_SKIP_PANIC};

// The ch03 program's module, compiled here on its own.
#[path = "../chapters/ch03/containerd.rs"]
mod containerd;

use containerd::Containerd;

/// Root, the Debian packages, and CNI's plugins where Debian puts them.
fn can_run() -> bool {
    if !require(Privilege::Root) {
        return false;
    }
    for program in ["containerd", "ctr", "runc", "containerd-shim-runc-v2"] {
        if !require_program(program) {
            return false;
        }
    }
    let bridge = Path::new(containerd::CNI_PLUGINS).join("bridge");
    if !bridge.exists() {
        let why = format!(
            "no {} (apt-get install containernetworking-plugins)",
            bridge.display()
        );
        if lab01::probe::ci() {
            panic!("{CI_SKIP_PANIC}: {why}");
        }
        eprintln!("SKIP: {why}");
        return false;
    }
    true
}

fn ch02(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ch02").expect("the ch02 binary");
    cmd.arg("--home").arg(home);
    cmd
}

/// `ch02 build -t kubia:v1` from kubia's Dockerfile, then `ch02 save`.
fn kubia_archive(work: &Path) -> PathBuf {
    let context = work.join("context");
    lab01::RootfsBuilder::empty()
        .binary(env!("CARGO_BIN_EXE_kubia"), "/kubia")
        .build(&context)
        .expect("the build context");
    std::fs::write(
        context.join("Dockerfile"),
        include_str!("../chapters/kubia/Dockerfile"),
    )
    .expect("Dockerfile");
    let home = work.join("home");
    ch02(&home)
        .args(["build", "-t", "kubia:v1"])
        .arg(&context)
        .assert()
        .success();
    let archive = work.join("kubia.tar");
    ch02(&home)
        .args(["save", "-o"])
        .arg(&archive)
        .arg("kubia:v1")
        .assert()
        .success();
    archive
}

/// `curl http://IP:8080/` from containerd's network namespace (where the
/// CNI bridge is), in a thread of its own that joins it.
fn http_get_inside(containerd: &Containerd, ip: Ipv4Addr) -> String {
    let netns = containerd
        .netns()
        .expect("containerd's netns")
        .try_clone_to_owned()
        .expect("dup");
    std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("join containerd's network namespace");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect((ip, 8080)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("connect to kubia at {ip}:8080: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(stream, "GET / HTTP/1.1\r\nHost: kubia\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    })
    .join()
    .expect("the HTTP thread")
}

/// The log file once it holds `text` (or as it is after 10 s).
fn wait_for_log(path: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(text) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids of processes whose command line names `path`.
fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            cmdline
                .windows(needle.len())
                .any(|w| w == needle)
                .then(|| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

#[test]
fn containerd_runs_our_kubia_image() {
    if !can_run() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let archive = kubia_archive(work.path());
    let mut transcript = String::new();
    let (pid, dir) = {
        let mut containerd =
            Containerd::start(work.path()).expect("start containerd");
        let names = containerd.import(&archive).expect("ctr image import");
        transcript +=
            &format!("$ ctr image import kubia.tar\n{}\n", names.join("\n"));
        assert_eq!(names, ["kubia:v1"]);
        // What is not an image archive is refused, by its name.
        let junk = work.path().join("junk.tar");
        std::fs::write(&junk, "not a tar file").expect("junk");
        let refused = containerd.import(&junk).expect_err("junk imported");
        assert!(format!("{refused:#}").contains("junk.tar"), "{refused:#}");
        assert_eq!(containerd.images().expect("images"), ["kubia:v1"]);

        // The image's files run under runc: kubia says how to call it.
        let out = containerd
            .run_to_end("kubia:v1", "usage", &["/kubia", "--help"])
            .expect("ctr run --rm");
        transcript += &format!(
            "$ ctr run --rm kubia:v1 usage /kubia --help\n{}{}(exit {})\n",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code().unwrap_or(-1)
        );
        assert_eq!(out.status.code(), Some(2), "{transcript}");

        // Its own entrypoint, with a pod IP from the CNI bridge plugin.
        containerd
            .start_container("kubia:v1", "kubia", true, &[])
            .expect("ctr run --detach --cni");
        let ip = containerd
            .pod_ip("kubia")
            .expect("a pod IP from host-local");
        transcript += &format!(
            "$ ctr run --detach --cni kubia:v1 kubia\n\
             task kubia: {}, pod IP {ip}\n",
            containerd
                .task_status("kubia")
                .expect("ctr task list")
                .unwrap_or_default()
        );
        let body = http_get_inside(&containerd, ip);
        transcript += &format!("$ curl http://{ip}:8080/\n{body}");
        assert!(body.starts_with("You've hit "), "{transcript}");
        // The shim copies kubia's output into the file as it comes.
        let log =
            wait_for_log(&containerd.log_path("kubia"), "Received request");
        transcript += &format!("$ cat kubia.log\n{log}");
        containerd
            .remove("kubia")
            .expect("delete the task and container");
        assert_eq!(containerd.pod_ip("kubia"), None, "the address went back");
        (containerd.pid(), containerd.dir().to_path_buf())
    };

    // Nothing is left: no containerd, no shim, no mount, no directory.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "containerd ({pid}) still runs"
    );
    let left = processes_naming(work.path());
    assert!(left.is_empty(), "still running: {left:?}");
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let work_path = work.path().display().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&work_path)),
        "mounts left under {work_path}"
    );
    assert!(
        !mounts.lines().any(|l| l.contains(" - overlay ")
            && l.contains(&dir.display().to_string())),
        "an overlay mount leaked into our mount table"
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());
    work.close().expect("the temporary directory is removable");

    insta::with_settings!({filters => vec![
        (r"You've hit \S+", "You've hit [hostname]"),
    ]}, {
        insta::assert_snapshot!(transcript);
    });
}

#[test]
fn bench_containerd_measures_ctr_run() {
    if !can_run() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let archive = kubia_archive(work.path());
    let result =
        containerd::bench_containerd(&archive, 2, true).expect("bench");
    assert_eq!(result.samples.len(), 2);
    assert!(result.cni_used, "CNI left out: {}", result.note);
    assert!(result.median > Duration::ZERO);
    assert!(
        processes_naming(Path::new("kubelings-containerd-")).is_empty(),
        "a containerd of the benchmark still runs"
    );
}
