//! Helpers shared by the self-checks: making small trees to layer.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A file with `content` and `mode` at `rel` under `root`, parents made.
pub fn file(root: &Path, rel: &str, content: &str, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("a parent")).expect("create parents");
    fs::write(&path, content).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A directory with `mode` at `rel` under `root`, parents made.
pub fn dir(root: &Path, rel: &str, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(&path).expect("create");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}
