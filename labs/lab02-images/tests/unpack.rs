//! Self-checks for §2.4: applying layers onto a rootfs, with whiteouts, and
//! stacking extracted layers with overlayfs.

mod common;
use common::{dir, file};

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use lab02::layer::{
    changes_between, changes_from_overlay_upper, list_tree, write_layer,
    write_layer_from_dir, Change, ListedEntry,
};
use lab02::unpack::{
    apply_layer, extract_layer_dir, ApplyReport, OverlayMount,
};

/// The base image: a bit of everything.
fn lower_tree(root: &Path) {
    dir(root, "bin", 0o755);
    file(root, "bin/tool", "#!/bin/sh\necho tool\n", 0o755);
    file(root, "bin/su", "not really su\n", 0o4755);
    dir(root, "etc", 0o755);
    file(root, "etc/hostname", "base\n", 0o644);
    file(root, "etc/issue", "Welcome\n", 0o644);
    symlink("hostname", root.join("etc/name")).unwrap();
    fs::hard_link(root.join("etc/hostname"), root.join("etc/hostname.bak"))
        .unwrap();
    file(root, "opt/old1", "old\n", 0o644);
    file(root, "opt/sub/old2", "old\n", 0o644);
    file(root, "var/cache/apt/pkgcache.bin", "cache\n", 0o644);
    file(root, "var/log/keep", "log\n", 0o644);
    dir(root, "tmp", 0o1777);
}

/// The image's next step, as a whole tree: what [`step_changes`] make of
/// [`lower_tree`].
fn upper_view(root: &Path) {
    lower_tree(root);
    fs::remove_file(root.join("etc/issue")).unwrap();
    fs::remove_dir_all(root.join("var/cache")).unwrap();
    fs::remove_dir_all(root.join("opt")).unwrap();
    file(root, "opt/new", "new\n", 0o644);
    file(root, "etc/motd", "hi\n", 0o644);
    // Written in place: the hardlink's other name sees it too.
    fs::write(root.join("etc/hostname"), "step\n").unwrap();
}

fn step_changes() -> Vec<Change> {
    vec![
        Change::Deleted("etc/issue".into()),
        Change::Deleted("var/cache".into()),
        Change::Opaque("opt".into()),
        Change::Added("opt/new".into()),
        Change::Added("etc/motd".into()),
        Change::Added("etc/hostname".into()),
        Change::Added("etc/hostname.bak".into()),
    ]
}

fn layer_of_tree(root: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer_from_dir(root, &mut out).expect("write the layer");
    out
}

fn layer_of_changes(root: &Path, changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer(root, changes, &mut out).expect("write the layer");
    out
}

fn tree(root: &Path) -> Vec<ListedEntry> {
    list_tree(root).expect("list the tree")
}

fn apply(rootfs: &Path, layer: &[u8]) -> ApplyReport {
    fs::create_dir_all(rootfs).unwrap();
    apply_layer(rootfs, layer).expect("apply the layer")
}

#[test]
fn base_layer_recreates_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (source, rootfs) =
        (dir.path().join("source"), dir.path().join("rootfs"));
    lower_tree(&source);
    let report = apply(&rootfs, &layer_of_tree(&source));
    assert_eq!(report.refused, Vec::<String>::new());
    assert_eq!(tree(&rootfs), tree(&source));
    // The hardlink is one file again, and setuid survived the chown.
    let a = rootfs.join("etc/hostname").metadata().unwrap();
    let b = rootfs.join("etc/hostname.bak").metadata().unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        rootfs.join("bin/su").metadata().unwrap().mode() & 0o7777,
        0o4755
    );
    // Times come from the layer: zero.
    assert_eq!(a.mtime(), 0);
    assert_eq!(rootfs.join("etc").metadata().unwrap().mtime(), 0);
}

#[test]
fn plain_tar_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (source, rootfs) =
        (dir.path().join("source"), dir.path().join("rootfs"));
    lower_tree(&source);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&layer_of_tree(&source)[..])
        .read_to_end(&mut tar)
        .unwrap();
    apply(&rootfs, &tar);
    assert_eq!(tree(&rootfs), tree(&source));
}

// ANCHOR: whiteouts_round_trip
#[test]
fn whiteouts_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper, rootfs) = (
        dir.path().join("lower"),
        dir.path().join("upper"),
        dir.path().join("rootfs"),
    );
    lower_tree(&lower);
    upper_view(&upper);
    apply(&rootfs, &layer_of_tree(&lower));
    let report = apply(&rootfs, &layer_of_changes(&upper, &step_changes()));
    assert_eq!(report.refused, Vec::<String>::new());
    assert_eq!(tree(&rootfs), tree(&upper));
}
// ANCHOR_END: whiteouts_round_trip

#[test]
fn changes_between_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper, rootfs) = (
        dir.path().join("lower"),
        dir.path().join("upper"),
        dir.path().join("rootfs"),
    );
    lower_tree(&lower);
    upper_view(&upper);
    // A file replaced by a directory, and a directory by a file.
    fs::remove_file(upper.join("bin/tool")).unwrap();
    file(&upper, "bin/tool/inside", "now a directory\n", 0o644);
    fs::remove_dir_all(upper.join("var/log")).unwrap();
    file(&upper, "var/log", "now a file\n", 0o644);
    apply(&rootfs, &layer_of_tree(&lower));
    let changes = changes_between(&lower, &upper).unwrap();
    apply(&rootfs, &layer_of_changes(&upper, &changes));
    assert_eq!(tree(&rootfs), tree(&upper));
}

#[test]
fn a_whiteout_spares_its_own_layer() {
    // Per the OCI spec a whiteout hides the layers below, not entries of the
    // layer it is in, whatever their order in the tar.
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("keep", "mine\n"),
        (".wh.keep", ""),
        ("d/x", "x\n"),
        ("d/.wh..wh..opq", ""),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, data.as_bytes()).unwrap();
    }
    let layer = tar.into_inner().unwrap();
    file(&rootfs, "d/lower", "from below\n", 0o644);
    apply(&rootfs, &layer);
    assert_eq!(fs::read_to_string(rootfs.join("keep")).unwrap(), "mine\n");
    assert_eq!(fs::read_to_string(rootfs.join("d/x")).unwrap(), "x\n");
    assert!(
        !rootfs.join("d/lower").exists(),
        "the opaque marker hides the lower layer's file"
    );
}

#[test]
fn device_nodes_need_root() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Char);
    header.set_device_major(1).unwrap();
    header.set_device_minor(3).unwrap();
    header.set_mode(0o666);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(0);
    header.set_cksum();
    tar.append_data(&mut header, "dev/null", &[][..]).unwrap();
    let report = apply(&rootfs, &tar.into_inner().unwrap());
    let node = rootfs.join("dev/null").symlink_metadata();
    if nix::unistd::geteuid().is_root() {
        assert_eq!(report.skipped_devices, 0);
        let node = node.expect("the device node");
        assert!(node.file_type().is_char_device());
        assert_eq!(node.rdev(), nix::sys::stat::makedev(1, 3));
        assert_eq!(node.mode() & 0o7777, 0o666);
    } else {
        assert_eq!(report.skipped_devices, 1);
        assert!(node.is_err());
    }
}

#[test]
fn extract_layer_dir_makes_overlay_whiteouts() {
    if !lab01::probe::require(lab01::probe::Privilege::Root) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (upper, dest) = (dir.path().join("upper"), dir.path().join("layer"));
    upper_view(&upper);
    fs::create_dir(&dest).unwrap();
    extract_layer_dir(
        &dest,
        &layer_of_changes(&upper, &step_changes()[..])[..],
    )
    .expect("extract the layer");
    for deleted in ["etc/issue", "var/cache"] {
        let meta = dest.join(deleted).symlink_metadata().unwrap();
        assert!(meta.file_type().is_char_device(), "{deleted}");
        assert_eq!(meta.rdev(), 0, "{deleted}");
    }
    assert!(lab02::layer::changes::is_opaque(&dest.join("opt")).unwrap());
    assert!(!lab02::layer::changes::is_opaque(&dest.join("etc")).unwrap());
    // Read back as an overlay upper, it is the same changes.
    let mut changes = changes_from_overlay_upper(&dest).unwrap();
    changes.retain(
        |c| !matches!(c, Change::Added(p) if ["etc", "var"].contains(&p.to_str().unwrap())),
    );
    let mut expected = step_changes();
    expected.push(Change::Added("opt".into()));
    changes.sort();
    expected.sort();
    assert_eq!(changes, expected);
}

/// Skips (or fails under CI) without root and overlayfs.
fn overlay_here() -> bool {
    if !lab01::probe::require(lab01::probe::Privilege::Root) {
        return false;
    }
    match lab02::unpack::overlay_available() {
        Ok(()) => true,
        Err(why) if lab01::probe::ci() => {
            panic!("CI=true and this test cannot run here: {why}")
        }
        Err(why) => {
            eprintln!("SKIP: {why}");
            false
        }
    }
}

fn mounted(target: &Path) -> bool {
    let target = target.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(target))
}

#[test]
fn overlay_mount_with_whiteouts() {
    if !overlay_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (lower, upper_view_dir) = (path("lower"), path("view"));
    lower_tree(&lower);
    upper_view(&upper_view_dir);
    let layers = [
        layer_of_tree(&lower),
        layer_of_changes(&upper_view_dir, &step_changes()),
    ];
    // ANCHOR: overlay_mount_with_whiteouts
    // Each layer extracted once, into a directory of its own.
    let mut lowers: Vec<PathBuf> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let dest = path(&format!("layers/{i}"));
        fs::create_dir_all(&dest).unwrap();
        extract_layer_dir(&dest, &layer[..]).expect("extract the layer");
        lowers.insert(0, dest); // the top layer first
    }
    for name in ["upper", "work", "merged"] {
        fs::create_dir(path(name)).unwrap();
    }
    let mount = OverlayMount::mount(
        &lowers,
        &path("upper"),
        &path("work"),
        &path("merged"),
    )
    .expect("mount overlayfs");
    assert!(mounted(mount.target()));
    assert_eq!(tree(mount.target()), tree(&upper_view_dir));

    // A container's changes land in the upper directory...
    let merged = mount.target();
    fs::remove_file(merged.join("etc/motd")).unwrap();
    fs::remove_dir_all(merged.join("bin")).unwrap();
    file(merged, "bin/sh", "a new shell\n", 0o755);
    file(merged, "srv/data", "data\n", 0o600);
    // ...and come back out as a layer, applied here onto the fallback path.
    let changes = changes_from_overlay_upper(mount.upper()).unwrap();
    assert!(
        changes.contains(&Change::Deleted("etc/motd".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&Change::Opaque("bin".into())),
        "{changes:?}"
    );
    let rootfs = path("rootfs");
    for layer in &layers {
        apply(&rootfs, layer);
    }
    apply(&rootfs, &layer_of_changes(mount.upper(), &changes));
    assert_eq!(tree(&rootfs), tree(merged));
    // ANCHOR_END: overlay_mount_with_whiteouts

    let target = mount.target().to_path_buf();
    drop(mount);
    assert!(!mounted(&target), "the mount outlived its guard");
}

#[test]
fn overlay_mount_unmounts_on_panic() {
    if !overlay_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    for name in ["lower", "upper", "work", "merged"] {
        fs::create_dir(path(name)).unwrap();
    }
    let (lower, upper, work, merged) =
        (path("lower"), path("upper"), path("work"), path("merged"));
    let result = std::panic::catch_unwind(|| {
        let _mount =
            OverlayMount::mount(&[lower], &upper, &work, &merged).unwrap();
        assert!(mounted(&merged));
        panic!("a test failing while mounted");
    });
    assert!(result.is_err());
    assert!(!mounted(&path("merged")));
}

#[test]
fn overlay_refuses_paths_it_cannot_carry() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a:b");
    let err = OverlayMount::mount(std::slice::from_ref(&odd), &odd, &odd, &odd)
        .unwrap_err();
    assert!(err.to_string().contains("a:b"), "{err}");
}

#[test]
fn a_missing_rootfs_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = apply_layer(&missing, &[0u8; 1024][..]).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("open the rootfs "), "{message}");
    assert!(message.contains("missing"), "{message}");
}
