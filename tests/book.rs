//! The book: every include, anchor, link and SUMMARY entry resolves, and
//! mdBook builds it.

use std::path::PathBuf;

fn book_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("book")
}

#[test]
fn every_reference_in_the_book_resolves() {
    let problems = kubelings::book::check(&book_dir()).expect("the book check runs");
    let listing: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        problems.is_empty(),
        "{} broken references in the book:\n{}",
        problems.len(),
        listing.join("\n")
    );
}

#[test]
fn the_book_builds() {
    let out = tempfile::tempdir().unwrap();
    let index =
        kubelings::book::build(&book_dir(), Some(out.path())).unwrap_or_else(|e| panic!("{e}"));
    assert!(index.is_file(), "no {}", index.display());
    assert!(index.starts_with(out.path()));
}
