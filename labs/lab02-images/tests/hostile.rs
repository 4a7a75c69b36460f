//! Self-checks for §2.4: layers written to do harm. Each case is unpacked
//! into `rootfs/` inside a temporary directory, beside a `sentinel/`
//! directory that must stay as it was; the host's /etc must too.
//!
//! The tars are built byte by byte with the tar crate's raw header API,
//! since its safe setters (rightly) refuse to write `..` or absolute paths.

mod common;
use common::wrap;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lab02::layer::list_tree;
use lab02::unpack::{apply_layer, apply_layer_with, ApplyOptions, UnpackError};
use proptest::collection::vec;
use proptest::prelude::*;

/// One raw tar entry.
#[derive(Debug, Clone)]
enum Raw {
    File(&'static str, &'static str),
    Dir(&'static str),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    /// A file whose header declares `declared` bytes, followed by `data` and
    /// the end of the stream.
    Lying(&'static str, u64, &'static str),
}

/// A tar of `entries`, names and targets exactly as given.
fn tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (path, kind, link, data, declared) = match entry {
            Raw::File(p, data) => {
                (*p, tar::EntryType::Regular, "", *data, None)
            }
            Raw::Dir(p) => (*p, tar::EntryType::Directory, "", "", None),
            Raw::Symlink(p, t) => (*p, tar::EntryType::Symlink, *t, "", None),
            Raw::Hardlink(p, t) => (*p, tar::EntryType::Link, *t, "", None),
            Raw::Lying(p, size, data) => {
                (*p, tar::EntryType::Regular, "", *data, Some(*size))
            }
        };
        append_raw(
            &mut out,
            path.as_bytes(),
            kind,
            link.as_bytes(),
            data.as_bytes(),
            declared,
        );
        if declared.is_some() {
            // The stream just ends: no padding, no end-of-archive blocks.
            return out;
        }
    }
    out.extend([0u8; 1024]);
    out
}

fn append_raw(
    out: &mut Vec<u8>,
    path: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
    declared: Option<u64>,
) {
    let mut header = tar::Header::new_gnu();
    let fields = header.as_old_mut();
    fields.name[..path.len()].copy_from_slice(path);
    fields.linkname[..link.len()].copy_from_slice(link);
    header.set_entry_type(kind);
    header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(declared.unwrap_or(data.len() as u64));
    header.set_cksum();
    out.extend(header.as_bytes());
    out.extend(data);
    if declared.is_none() {
        out.extend(vec![0u8; (512 - data.len() % 512) % 512]);
    }
}

/// What the host must still look like afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Host {
    passwd: (u64, u64, i64, Vec<u8>),
    shadow_links: Option<u64>,
    absent: Vec<(PathBuf, bool)>,
}

fn host() -> Host {
    let passwd = fs::metadata("/etc/passwd").unwrap();
    Host {
        passwd: (
            passwd.ino(),
            passwd.nlink(),
            passwd.mtime(),
            fs::read("/etc/passwd").unwrap(),
        ),
        shadow_links: fs::symlink_metadata("/etc/shadow")
            .ok()
            .map(|m| m.nlink()),
        absent: [
            "/abs",
            "/escape",
            "/etc/escape",
            "/kl-a",
            "/kl-b",
            "/tmp/escape",
            "/tmp/kl-a",
            "/tmp/kl-b",
        ]
        .iter()
        .map(|p| (PathBuf::from(p), Path::new(p).symlink_metadata().is_ok()))
        .collect(),
    }
}

/// A temporary directory with `rootfs/` and `sentinel/keep` in it.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::create_dir(dir.path().join("sentinel")).unwrap();
        fs::write(dir.path().join("sentinel/keep"), "untouched\n").unwrap();
        Scene { dir }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Panics if anything outside `rootfs/` changed.
    fn check_outside(&self, before: &Host) {
        let sentinel = list_tree(&self.dir.path().join("sentinel")).unwrap();
        assert_eq!(
            sentinel.len(),
            1,
            "the sentinel directory changed: {sentinel:?}"
        );
        assert_eq!(sentinel[0].path, "keep");
        assert_eq!(
            fs::read_to_string(self.dir.path().join("sentinel/keep")).unwrap(),
            "untouched\n"
        );
        let beside: BTreeSet<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            beside,
            BTreeSet::from(["rootfs".to_string(), "sentinel".to_string()]),
            "something was written beside the rootfs"
        );
        assert_eq!(&host(), before, "the host's files changed");
    }

    /// The rootfs, one line per entry: kind, path, link target.
    fn listing(&self) -> String {
        list_tree(&self.rootfs())
            .unwrap()
            .iter()
            .map(|e| match &e.link {
                Some(target) => format!("{} {} -> {target}", e.kind, e.path),
                None => format!("{} {}", e.kind, e.path),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A hostile case: layers applied in order, the first error stops.
struct Case {
    name: &'static str,
    layers: Vec<Vec<Raw>>,
}

/// Applies the case's layers into a fresh scene, checks nothing outside
/// changed, and returns the result and what the rootfs holds.
fn run(case: &Case) -> (Result<(), UnpackError>, String) {
    let scene = Scene::new();
    let before = host();
    let mut result = Ok(());
    for layer in &case.layers {
        if let Err(e) = apply_layer(&scene.rootfs(), &tar(layer)[..]) {
            result = Err(e);
            break;
        }
    }
    scene.check_outside(&before);
    (result, scene.listing())
}

fn cases() -> Vec<Case> {
    use Raw::*;
    let case = |name, layers| Case { name, layers };
    vec![
        case("dotdot", vec![vec![File("../escape", "out\n")]]),
        case("absolute", vec![vec![File("/abs/path", "in\n")]]),
        case(
            "symlink_to_root_then_write",
            vec![vec![
                Symlink("evil", "/"),
                File("evil/etc/passwd", "root::0:0::/:/bin/sh\n"),
            ]],
        ),
        case(
            "symlink_up_then_write",
            vec![vec![Symlink("up", "../../.."), File("up/escape", "out\n")]],
        ),
        case(
            "hardlink_to_etc_shadow",
            vec![vec![Hardlink("shadow", "/etc/shadow")]],
        ),
        case(
            "hardlink_through_symlink",
            vec![vec![Symlink("etc", "/etc"), Hardlink("pw", "etc/passwd")]],
        ),
        case(
            "symlink_replaced_by_dir",
            vec![
                vec![Symlink("d", "../sentinel")],
                vec![Dir("d/"), File("d/keep", "inside\n")],
            ],
        ),
        case(
            "write_through_lower_symlink",
            vec![
                vec![Symlink("d", "../sentinel")],
                vec![File("d/keep", "out\n")],
            ],
        ),
        case(
            "file_replaces_symlink",
            vec![
                vec![Symlink("f", "../sentinel/keep")],
                vec![File("f", "inside\n")],
            ],
        ),
        case(
            "whiteout_through_symlink",
            vec![
                vec![Symlink("s", "../sentinel")],
                vec![File("s/.wh.keep", "")],
            ],
        ),
        case(
            "opaque_through_symlink",
            vec![
                vec![Symlink("s", "../sentinel")],
                vec![File("s/.wh..wh..opq", "")],
            ],
        ),
        case("whiteout_of_dotdot", vec![vec![File(".wh...", "")]]),
        // Deleting what is not there changes nothing, not even the parents.
        case(
            "whiteout_in_missing_dir",
            vec![vec![File("gone/.wh.x", ""), File("none/.wh..wh..opq", "")]],
        ),
        case(
            "hardlink_to_directory",
            vec![vec![Dir("d/"), Hardlink("h", "d")]],
        ),
        case(
            "huge_declared_size",
            vec![vec![Lying("big", 1 << 40, "ten bytes!")]],
        ),
    ]
}

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap()
}

fn refused(result: &Result<(), UnpackError>) -> bool {
    matches!(result, Err(UnpackError::Hostile { .. }))
}

// ANCHOR: hostile_corpus
#[test]
fn hostile_corpus() {
    let mut table = Vec::new();
    for case in cases() {
        let (result, listing) = run(&case);
        let outcome = match result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let outcome = wrap(&outcome, "  ", "    ");
        table.push(format!("{}\n{outcome}\n  rootfs: [{listing}]", case.name));
    }
    insta::assert_snapshot!(table.join("\n"));
}
// ANCHOR_END: hostile_corpus

#[test]
fn dotdot_is_refused() {
    let (result, listing) = run(&case("dotdot"));
    assert!(refused(&result), "{result:?}");
    assert_eq!(listing, "");
}

#[test]
fn absolute_path_is_re_rooted() {
    let (result, listing) = run(&case("absolute"));
    result.expect("re-rooted, not refused");
    assert_eq!(listing, "d abs, - abs/path");
}

#[test]
fn symlink_to_root_then_write_is_refused() {
    let (result, listing) = run(&case("symlink_to_root_then_write"));
    assert!(refused(&result), "{result:?}");
    assert_eq!(listing, "l evil -> /");
}

#[test]
fn symlink_up_then_write_is_refused() {
    let (result, _) = run(&case("symlink_up_then_write"));
    assert!(refused(&result), "{result:?}");
}

#[test]
fn hardlink_to_etc_shadow_is_refused() {
    let (result, listing) = run(&case("hardlink_to_etc_shadow"));
    assert!(refused(&result), "{result:?}");
    assert_eq!(listing, "");
}

#[test]
fn hardlink_through_symlink_is_refused() {
    let (result, _) = run(&case("hardlink_through_symlink"));
    assert!(refused(&result), "{result:?}");
}

#[test]
fn symlink_replaced_by_dir_in_next_layer() {
    let (result, listing) = run(&case("symlink_replaced_by_dir"));
    result.expect("a directory replaces the symlink");
    assert_eq!(listing, "d d, - d/keep");
}

#[test]
fn write_through_lower_symlink_is_refused() {
    let (result, _) = run(&case("write_through_lower_symlink"));
    assert!(refused(&result), "{result:?}");
}

#[test]
fn whiteouts_through_symlinks_are_refused() {
    for name in ["whiteout_through_symlink", "opaque_through_symlink"] {
        let (result, listing) = run(&case(name));
        assert!(refused(&result), "{name}: {result:?}");
        assert_eq!(listing, "l s -> ../sentinel", "{name}");
    }
}

#[test]
fn huge_declared_size_stops_at_eof() {
    let (result, listing) = run(&case("huge_declared_size"));
    match result {
        Err(UnpackError::Truncated {
            declared, found, ..
        }) => {
            assert_eq!(declared, 1 << 40);
            assert_eq!(found, 10);
        }
        other => panic!("expected a truncation error, got {other:?}"),
    }
    assert_eq!(listing, "- big");
}

#[test]
fn skip_hostile_lists_what_it_refused() {
    let scene = Scene::new();
    let before = host();
    let layer = tar(&[
        Raw::File("../escape", "out\n"),
        Raw::Symlink("evil", "/"),
        Raw::File("evil/escape", "out\n"),
        Raw::File("fine", "in\n"),
    ]);
    let report = apply_layer_with(
        &scene.rootfs(),
        &layer[..],
        ApplyOptions { skip_hostile: true },
    )
    .expect("skip and go on");
    scene.check_outside(&before);
    assert_eq!(report.entries, 4);
    assert_eq!(report.refused.len(), 2, "{:?}", report.refused);
    assert!(report.refused[0].starts_with("../escape: "));
    assert!(report.refused[1].starts_with("evil/escape: "));
    assert_eq!(scene.listing(), "l evil -> /, - fine");
}

/// Path components for random entries: plain names, and the troublemakers.
fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("kl-a"),
        4 => Just("kl-b"),
        1 => Just(".."),
        1 => Just("."),
        1 => Just(".wh.kl-a"),
        1 => Just(".wh..wh..opq"),
    ]
}

fn random_path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(component(), 1..4)).prop_map(
        |(absolute, parts)| {
            let joined = parts.join("/");
            if absolute {
                format!("/{joined}")
            } else {
                joined
            }
        },
    )
}

#[derive(Debug, Clone)]
enum RandomEntry {
    File(String),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
}

fn random_entry() -> impl Strategy<Value = RandomEntry> {
    prop_oneof![
        random_path().prop_map(RandomEntry::File),
        random_path().prop_map(RandomEntry::Dir),
        (random_path(), random_path())
            .prop_map(|(p, t)| RandomEntry::Symlink(p, t)),
        (random_path(), random_path())
            .prop_map(|(p, t)| RandomEntry::Hardlink(p, t)),
    ]
}

fn random_tar(entries: &[RandomEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (path, kind, link, data) = match entry {
            RandomEntry::File(p) => {
                (p, tar::EntryType::Regular, "", &b"data\n"[..])
            }
            RandomEntry::Dir(p) => (p, tar::EntryType::Directory, "", &b""[..]),
            RandomEntry::Symlink(p, t) => {
                (p, tar::EntryType::Symlink, t.as_str(), &b""[..])
            }
            RandomEntry::Hardlink(p, t) => {
                (p, tar::EntryType::Link, t.as_str(), &b""[..])
            }
        };
        append_raw(
            &mut out,
            path.as_bytes(),
            kind,
            link.as_bytes(),
            data,
            None,
        );
    }
    out.extend([0u8; 1024]);
    out
}

/// Every path under `root`, found without following symlinks.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for child in fs::read_dir(&dir).unwrap() {
            let path = child.unwrap().path();
            if path.symlink_metadata().unwrap().is_dir() {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // ANCHOR: stays_inside
    #[test]
    fn random_layers_stay_inside(
        layers in vec(vec(random_entry(), 1..8), 1..3)
    ) {
        let scene = Scene::new();
        let before = host();
        let rootfs = scene.rootfs().canonicalize().unwrap();
        for layer in &layers {
            // Refusals are listed, other errors (a hardlink to nothing) end
            // the layer: either way nothing may land outside.
            let _ = apply_layer_with(
                &rootfs,
                &random_tar(layer)[..],
                ApplyOptions { skip_hostile: true },
            );
        }
        scene.check_outside(&before);
        for path in walk(&rootfs) {
            let meta = path.symlink_metadata().unwrap();
            // A symlink may point anywhere (it is resolved in the container);
            // where it sits, and everything else, is inside the rootfs.
            let real = if meta.file_type().is_symlink() {
                let dir = path.parent().unwrap().canonicalize().unwrap();
                dir.join(path.file_name().unwrap())
            } else {
                path.canonicalize().unwrap()
            };
            prop_assert!(
                real.starts_with(&rootfs),
                "{} is outside",
                real.display()
            );
        }
    }
    // ANCHOR_END: stays_inside
}
