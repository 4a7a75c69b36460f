//! Self-checks for §2.2: layers as deterministic tar+gzip blobs, whiteouts,
//! and finding what changed in a tree.

mod common;
use common::{dir, file, fold_path};

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lab02::digest::Digest;
use lab02::layer::{
    append_entry, changes_between, list_layer, whiteout_path, write_layer,
    write_layer_from_dir, Change, Entry, EntryKind, LayerError,
};
use nix::sys::stat::{Mode, SFlag};

/// Sets the mtime of `path` (a file or a directory, not a symlink).
fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::open(path).unwrap().set_modified(when).unwrap();
}

/// Every file and directory under `root` (not symlinks or fifos), and `root`.
fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if p.symlink_metadata().unwrap().is_dir() {
            for child in fs::read_dir(&p).unwrap() {
                out.push(child.unwrap().path());
            }
        }
        i += 1;
    }
    out.into_iter()
        .filter(|p| {
            let kind = p.symlink_metadata().unwrap().file_type();
            !kind.is_symlink() && !kind.is_fifo()
        })
        .collect()
}

/// A small tree with one of everything a layer holds.
fn sample_tree(root: &Path) {
    dir(root, "bin", 0o755);
    file(root, "bin/tool", "#!/bin/sh\necho tool\n", 0o755);
    file(root, "bin/su", "not really su\n", 0o4755);
    dir(root, "etc", 0o755);
    file(root, "etc/hostname", "kubelings\n", 0o644);
    symlink("hostname", root.join("etc/name")).unwrap();
    fs::hard_link(root.join("etc/hostname"), root.join("etc/hostname.bak"))
        .unwrap();
    dir(root, "tmp", 0o1777);
    let long = "a-directory-name-long-enough-that-the-path-needs-more-than-one-hundred-bytes";
    file(root, &format!("{long}/{long}/file"), "deep\n", 0o600);
    symlink(format!("{long}/{long}/file"), root.join("long-link")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600))
        .expect("mkfifo");
}

fn layer_bytes(root: &Path) -> (Vec<u8>, lab02::layer::LayerInfo) {
    let mut out = Vec::new();
    let info = write_layer_from_dir(root, &mut out).expect("write the layer");
    (out, info)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut tar)
        .unwrap();
    tar
}

/// Entries made by hand, so the listing is the same on every machine.
fn synthetic_entries() -> Vec<(Entry, &'static str)> {
    let entry = |path: &str, kind, mode, owner, size| Entry {
        path: PathBuf::from(path),
        kind,
        mode,
        uid: owner,
        gid: owner,
        size,
    };
    let long = "usr/share/doc/a-package-with-a-rather-long-name/examples/and-a-deep-directory/README.example";
    vec![
        (entry("dev", EntryKind::Dir, 0o755, 0, 0), ""),
        (
            entry(
                "dev/null",
                EntryKind::CharDevice { major: 1, minor: 3 },
                0o666,
                0,
                0,
            ),
            "",
        ),
        (entry("etc", EntryKind::Dir, 0o755, 0, 0), ""),
        (
            entry("etc/hostname", EntryKind::File, 0o644, 0, 10),
            "kubelings\n",
        ),
        (
            entry(
                "etc/localtime",
                EntryKind::Symlink("../usr/share/zoneinfo//UTC".into()),
                0o777,
                0,
                0,
            ),
            "",
        ),
        (entry("home/kubia", EntryKind::Dir, 0o750, 1000, 0), ""),
        (entry("run/initctl", EntryKind::Fifo, 0o600, 0, 0), ""),
        (entry("tmp", EntryKind::Dir, 0o1777, 0, 0), ""),
        (
            entry("usr/bin/passwd", EntryKind::File, 0o4755, 0, 7),
            "passwd\n",
        ),
        (
            entry(
                "usr/bin/chfn",
                EntryKind::Hardlink("usr/bin/passwd".into()),
                0o4755,
                0,
                0,
            ),
            "",
        ),
        (entry(long, EntryKind::File, 0o644, 0, 3), "hi\n"),
    ]
}

// ANCHOR: layer_tar_listing
#[test]
fn layer_tar_listing() {
    let mut tar = tar::Builder::new(Vec::new());
    for (entry, content) in synthetic_entries() {
        append_entry(&mut tar, &entry, content.as_bytes())
            .expect("append the entry");
    }
    let bytes = tar.into_inner().unwrap();
    let listing: Vec<String> = list_layer(&bytes[..])
        .expect("read the tar back")
        .iter()
        .map(|entry| fold_path(&entry.to_string(), 23))
        .collect();
    // The bytes depend only on the entries: the digest is part of the snapshot.
    insta::assert_snapshot!(format!(
        "{}\n\ndiff ID {}",
        listing.join("\n"),
        Digest::of(&bytes)
    ));
}
// ANCHOR_END: layer_tar_listing

#[test]
fn headers_carry_no_time_and_no_names() {
    let mut tar = tar::Builder::new(Vec::new());
    for (entry, content) in synthetic_entries() {
        append_entry(&mut tar, &entry, content.as_bytes()).unwrap();
    }
    let bytes = tar.into_inner().unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let path = entry.path().unwrap().display().to_string();
        assert_eq!(header.mtime().unwrap(), 0, "{path}: mtime");
        assert_eq!(
            header.username_bytes(),
            Some(&b""[..]),
            "{path}: user name"
        );
        assert_eq!(
            header.groupname_bytes(),
            Some(&b""[..]),
            "{path}: group name"
        );
        let gnu = header.as_gnu().expect("a GNU header");
        assert_eq!(gnu.atime, [0; 12], "{path}: atime");
        assert_eq!(gnu.ctime, [0; 12], "{path}: ctime");
        assert!(
            !header.entry_type().is_pax_local_extensions(),
            "{path}: PAX records"
        );
    }
}

#[test]
fn a_short_read_is_an_error_not_a_bad_archive() {
    let mut tar = tar::Builder::new(Vec::new());
    let entry = Entry {
        path: "shrunk".into(),
        kind: EntryKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 100,
    };
    let err = append_entry(&mut tar, &entry, &b"only ten.."[..]).unwrap_err();
    assert!(err.to_string().contains("shrunk"), "{err}");
}

#[test]
fn same_tree_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    sample_tree(&root);
    let (first, info) = layer_bytes(&root);
    // Touch everything: times are not part of a layer.
    let later = SystemTime::now() + Duration::from_secs(3600);
    for path in all_paths(&root) {
        set_mtime(&path, later);
    }
    let (second, again) = layer_bytes(&root);
    assert_eq!(info, again);
    assert_eq!(first, second);
}

#[test]
fn layer_info_names_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    sample_tree(&root);
    let (bytes, info) = layer_bytes(&root);
    assert_eq!(info.digest, Digest::of(&bytes));
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(info.diff_id, Digest::of(&gunzip(&bytes)));
    // No file name, no time, "unknown" OS in the gzip header.
    assert_eq!(&bytes[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
    assert_eq!(bytes[9], 255);
}

#[test]
fn tree_layer_lists_parents_first_and_keeps_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    sample_tree(&root);
    let (bytes, _) = layer_bytes(&root);
    let listed = list_layer(&bytes[..]).unwrap();
    let paths: Vec<&str> = listed.iter().map(|e| e.path.as_str()).collect();
    for (i, path) in paths.iter().enumerate() {
        if let Some((parent, _)) = path.rsplit_once('/') {
            let at = paths.iter().position(|p| *p == parent);
            assert!(at.is_some_and(|at| at < i), "{parent} not before {path}");
        }
    }
    let find = |p: &str| listed.iter().find(|e| e.path == p).unwrap();
    assert_eq!(find("etc/name").kind, 'l');
    assert_eq!(find("etc/name").link.as_deref(), Some("hostname"));
    assert_eq!(find("etc/hostname.bak").kind, 'h');
    assert_eq!(
        find("etc/hostname.bak").link.as_deref(),
        Some("etc/hostname")
    );
    assert_eq!(find("bin/su").mode, 0o4755);
    assert_eq!(find("tmp").mode, 0o1777);
    assert_eq!(find("fifo").kind, 'p');
    assert!(find("long-link").link.as_ref().unwrap().len() > 100);
}

// ANCHOR: whiteout_paths
#[test]
fn whiteout_paths() {
    let wh = |c: Change| whiteout_path(&c).map(|p| p.display().to_string());
    assert_eq!(wh(Change::Deleted("a/b".into())), Some("a/.wh.b".into()));
    assert_eq!(wh(Change::Deleted("top".into())), Some(".wh.top".into()));
    assert_eq!(
        wh(Change::Deleted("etc/.hidden".into())),
        Some("etc/.wh..hidden".into())
    );
    assert_eq!(
        wh(Change::Opaque("d".into())),
        Some("d/.wh..wh..opq".into())
    );
    assert_eq!(
        wh(Change::Opaque("usr/lib".into())),
        Some("usr/lib/.wh..wh..opq".into())
    );
    assert_eq!(wh(Change::Added("a/b".into())), None);
    // No file name, nothing to mark; and a name need not be UTF-8.
    assert_eq!(wh(Change::Deleted("..".into())), None);
    let bytes = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
    assert_eq!(
        whiteout_path(&Change::Deleted(bytes(b"srv/caf\xe9"))),
        Some(bytes(b"srv/.wh.caf\xe9"))
    );
}
// ANCHOR_END: whiteout_paths

/// The tree after the changes of [`whiteout_changes`].
fn upper_tree(root: &Path) {
    dir(root, "etc", 0o755);
    file(root, "etc/motd", "welcome\n", 0o644);
    dir(root, "opt", 0o755);
    file(root, "opt/-first", "sorts before the marker's dot\n", 0o644);
    file(root, "opt/new", "new\n", 0o644);
}

fn whiteout_changes() -> Vec<Change> {
    vec![
        Change::Added("etc/motd".into()),
        Change::Deleted("etc/issue".into()),
        Change::Deleted("var".into()),
        Change::Opaque("opt".into()),
        Change::Added("opt/new".into()),
        Change::Added("opt/-first".into()),
    ]
}

#[test]
fn whiteouts_in_layer_listing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("upper");
    upper_tree(&root);
    let mut bytes = Vec::new();
    write_layer(&root, &whiteout_changes(), &mut bytes)
        .expect("write the layer");
    // Owners are whoever runs the test: left out.
    let listing: Vec<String> = list_layer(&bytes[..])
        .unwrap()
        .iter()
        .map(|e| format!("{}{:04o} {:>3} {}", e.kind, e.mode, e.size, e.path))
        .collect();
    insta::assert_snapshot!(listing.join("\n"));
}

#[test]
fn same_changes_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("upper");
    upper_tree(&root);
    let mut changes = whiteout_changes();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let first = write_layer(&root, &changes, &mut a).unwrap();
    changes.reverse();
    let second = write_layer(&root, &changes, &mut b).unwrap();
    assert_eq!(first, second, "the order of the changes does not matter");
    assert_eq!(a, b);
}

#[test]
fn reserved_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "etc/.wh.passwd", "", 0o644);
    let err = write_layer_from_dir(dir.path(), Vec::new()).unwrap_err();
    assert!(matches!(err, LayerError::Reserved { .. }), "{err}");
}

#[test]
fn bad_change_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for change in [
        Change::Added("../x".into()),
        Change::Deleted("/etc/passwd".into()),
        Change::Deleted("".into()),
    ] {
        let err =
            write_layer(dir.path(), std::slice::from_ref(&change), Vec::new())
                .unwrap_err();
        assert!(
            matches!(err, LayerError::BadChange { .. }),
            "{change:?}: {err}"
        );
    }
}

#[test]
fn changes_between_two_trees() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for root in [&lower, &upper] {
        file(root, "etc/hostname", "kubelings\n", 0o644);
        file(root, "etc/issue", "Welcome\n", 0o644);
        file(root, "etc/same-size", "aaaa\n", 0o644);
        file(root, "var/cache/apt/pkgcache.bin", "cache\n", 0o644);
        file(root, "usr/bin/tool", "v1\n", 0o755);
        symlink("tool", root.join("usr/bin/t")).unwrap();
    }
    // The changes: a deletion, a directory removed with its content, an
    // addition, a mode change, a new symlink target, a same-size edit.
    fs::remove_file(upper.join("etc/issue")).unwrap();
    fs::remove_dir_all(upper.join("var/cache")).unwrap();
    file(&upper, "etc/motd", "hi\n", 0o644);
    file(&upper, "opt/app/run", "run\n", 0o755);
    fs::set_permissions(
        upper.join("usr/bin/tool"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::remove_file(upper.join("usr/bin/t")).unwrap();
    symlink("other", upper.join("usr/bin/t")).unwrap();
    fs::write(upper.join("etc/same-size"), "bbbb\n").unwrap();
    // Same times everywhere, so only real differences count.
    for root in [&lower, &upper] {
        for path in all_paths(root) {
            set_mtime(&path, then);
        }
    }
    let changes = changes_between(&lower, &upper).unwrap();
    let shown: Vec<String> = changes.iter().map(|c| format!("{c:?}")).collect();
    insta::assert_snapshot!(shown.join("\n"));
}

#[test]
fn overlay_upper_changes() {
    if !lab01::probe::require(lab01::probe::Privilege::Root) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let upper = dir.path();
    file(upper, "added", "new\n", 0o644);
    file(upper, "etc/motd", "hi\n", 0o644);
    file(upper, "opq/inside", "only this\n", 0o644);
    // overlayfs's own forms: a 0/0 character device, an opaque attribute.
    nix::sys::stat::mknod(
        &upper.join("etc/issue"),
        SFlag::S_IFCHR,
        Mode::empty(),
        nix::sys::stat::makedev(0, 0),
    )
    .expect("mknod a 0/0 character device");
    xattr::set(upper.join("opq"), "trusted.overlay.opaque", b"y")
        .expect("setxattr");
    let changes = lab02::layer::changes_from_overlay_upper(upper).unwrap();
    assert_eq!(
        changes,
        vec![
            Change::Added("added".into()),
            Change::Added("etc".into()),
            Change::Deleted("etc/issue".into()),
            Change::Added("etc/motd".into()),
            Change::Added("opq".into()),
            Change::Opaque("opq".into()),
            Change::Added("opq/inside".into()),
        ]
    );
}
