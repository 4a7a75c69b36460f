//! The `ch02` program end to end: images, registries, containers from images.

use std::path::Path;

use assert_cmd::Command;
use lab01::probe::{require, Privilege};

fn ch02(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ch02").expect("the ch02 binary");
    cmd.arg("--home").arg(home);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn unsupported_dockerfile_lines_are_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let context = work.path().join("context");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nARG VERSION=1\nCOPY . /\n",
    )
    .expect("Dockerfile");
    let out = ch02(&work.path().join("home"))
        .args(["build", "-t", "kubia:v1"])
        .arg(&context)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(text(&out.stderr).replace(&context.display().to_string(), "[context]"));
}

#[test]
fn bad_references_are_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = ch02(work.path())
        .args(["inspect", "Kubia:v1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(text(&out.stderr));
    let out = ch02(work.path())
        .args(["inspect", "kubia:v1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("kubia:v1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn save_on_one_computer_load_on_another() {
    let work = tempfile::tempdir().expect("tempdir");
    let (one, two) = (work.path().join("one"), work.path().join("two"));
    ch02(&one).arg("base").assert().success();
    let archive = work.path().join("base.tar");
    ch02(&one)
        .args(["save", "-o"])
        .arg(&archive)
        .arg("kubelings/base")
        .assert()
        .success();
    ch02(&two)
        .args(["load", "-i"])
        .arg(&archive)
        .assert()
        .success()
        .stdout("loaded kubelings/base:latest\n");
    let listed = ch02(&two).arg("images").output().expect("run");
    assert!(text(&listed.stdout).contains("kubelings/base:latest"));
    // A damaged archive is refused, and nothing half-loaded appears.
    let bytes = std::fs::read(&archive).expect("archive");
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).expect("truncate");
    let three = work.path().join("three");
    ch02(&three)
        .args(["load", "-i"])
        .arg(&archive)
        .assert()
        .failure();
    let listed = ch02(&three).arg("images").output().expect("run");
    assert!(!text(&listed.stdout).contains("kubelings/base"));
}

#[test]
fn run_an_image() {
    if !require(Privilege::Root) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let home = work.path().join("home");
    ch02(&home).arg("base").assert().success();
    for flat in [false, true] {
        let mut cmd = ch02(&home);
        cmd.args(["run", "--hostname", "from-an-image"]);
        if flat {
            cmd.arg("--flat");
        }
        cmd.args(["kubelings/base", "--", "sh", "-c", "hostname; exit 4"])
            .assert()
            .code(4)
            .stdout("from-an-image\n");
    }
    assert!(
        !home
            .join("containers")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "a container directory was left"
    );
}

#[test]
fn the_chapter_demo() {
    if !require(Privilege::Root) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let out = ch02(work.path()).arg("demo").output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::with_settings!({filters => vec![
        (r"sha256:[0-9a-f]{64}", "[digest]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"\d+(\.\d+)? (MiB|KiB|B)\b", "[size]"),
    ]}, {
        insta::assert_snapshot!(text(&out.stdout));
    });
}
