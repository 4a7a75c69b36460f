//! An entry's path, made relative to the rootfs, or refused.

use std::path::{Component, Path, PathBuf};

const DOTDOT: &str =
    "its path has a `..` component, which could climb out of the rootfs";

// ANCHOR: sanitize
/// The path of a layer entry relative to the rootfs, made only of plain
/// names: a leading `/` is dropped (the path is re-rooted), `.` components
/// are dropped, and a `..` component is refused (with the reason). The empty
/// path is the rootfs itself.
pub fn sanitize(raw: &Path) -> Result<PathBuf, &'static str> {
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(DOTDOT),
            Component::Prefix(_) => return Err("its path has a drive prefix"),
        }
    }
    Ok(clean)
}
// ANCHOR_END: sanitize

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_roots_and_refuses() {
        let ok = |raw: &str| {
            sanitize(Path::new(raw)).map(|p| p.display().to_string())
        };
        assert_eq!(ok("/etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(ok("./a/./b/"), Ok("a/b".into()));
        assert_eq!(ok("//a//b"), Ok("a/b".into()));
        assert_eq!(ok("./"), Ok("".into()));
        assert!(ok("../escape").is_err());
        assert!(ok("a/../../b").is_err());
        assert!(ok("/..").is_err());
    }
}
