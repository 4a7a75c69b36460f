//! Helpers shared by the self-checks: making small trees to layer.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A file with `content` and `mode` at `rel` under `root`, parents made.
pub fn file(root: &Path, rel: &str, content: &str, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("a parent"))
        .expect("create parents");
    fs::write(&path, content).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .expect("chmod");
}

/// A directory with `mode` at `rel` under `root`, parents made.
pub fn dir(root: &Path, rel: &str, mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(&path).expect("create");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .expect("chmod");
}

/// `text` broken at spaces into lines of at most 80 columns, the width of
/// the book's listings: the first line starts with `first`, the others with
/// `rest`. A word longer than a line gets a line of its own.
pub fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > 80 {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out
}

/// Every 64-digit hex run (a digest) cut to its first 12 digits and `…`, so
/// documents naming blobs fit the book's 80 columns. Twelve digits still
/// tell a test's blobs apart, and still change when the bytes do.
pub fn short_digests(text: &str) -> String {
    fn flush(out: &mut String, run: &mut String) {
        if run.len() == 64 {
            out.push_str(&run[..12]);
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || ('a'..='f').contains(&c) {
            run.push(c);
        } else {
            flush(&mut out, &mut run);
            out.push(c);
        }
    }
    flush(&mut out, &mut run);
    out
}

/// A listing line longer than 80 columns folded after a '/' of its path,
/// the rest continuing under the path's first column `at`.
pub fn fold_path(line: &str, at: usize) -> String {
    let mut out = String::new();
    let mut rest = line;
    let mut indent = 0;
    while indent + rest.len() > 80 {
        let room = 80 - indent;
        let Some(cut) = rest[..room].rfind('/').filter(|&i| indent + i >= at)
        else {
            break;
        };
        out.push_str(&rest[..=cut]);
        out.push('\n');
        out.push_str(&" ".repeat(at));
        rest = &rest[cut + 1..];
        indent = at;
    }
    out.push_str(rest);
    out
}
