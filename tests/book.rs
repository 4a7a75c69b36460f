//! The book: every include, anchor, link and SUMMARY entry resolves; no
//! page shows an answer above its exercise; listings and outputs fit 80
//! columns; every picture exists and is shown; and mdBook builds it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kubelings::book::{self, ProblemKind};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn book_dir() -> PathBuf {
    root().join("book")
}

/// The check's problems of one kind, listed in the failure message.
fn assert_no_problems(kind: ProblemKind, what: &str) {
    let problems: Vec<String> = book::check(&book_dir())
        .expect("the book check runs")
        .iter()
        .filter(|p| p.kind == kind)
        .map(ToString::to_string)
        .collect();
    assert!(
        problems.is_empty(),
        "{} {what}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_reference_in_the_book_resolves() {
    assert_no_problems(ProblemKind::Reference, "broken references in the book");
}

#[test]
fn no_page_shows_an_answer_before_its_exercise() {
    assert_no_problems(
        ProblemKind::Answer,
        "lines of reference solutions outside the Solutions appendix",
    );
}

#[test]
fn every_listing_and_output_fits_80_columns() {
    let problems: Vec<book::Problem> = book::check(&book_dir())
        .expect("the book check runs")
        .into_iter()
        .filter(|p| p.kind == ProblemKind::Width)
        .collect();
    // Which files the wide lines come from, most first: whose fix it is.
    let mut by_file: Vec<(usize, String)> = Vec::new();
    for p in &problems {
        let file = p.file.display().to_string();
        match by_file.iter_mut().find(|(_, f)| *f == file) {
            Some((n, _)) => *n += 1,
            None => by_file.push((1, file)),
        }
    }
    by_file.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let summary: Vec<String> =
        by_file.iter().map(|(n, f)| format!("{n:4} {f}")).collect();
    let listing: Vec<String> =
        problems.iter().map(ToString::to_string).collect();
    assert!(
        problems.is_empty(),
        "{} code or output lines wider than 80 columns, by file:\n{}\n\nEach one:\n{}",
        problems.len(),
        summary.join("\n"),
        listing.join("\n")
    );
}

#[test]
fn every_listing_is_short_enough_to_read() {
    assert_no_problems(ProblemKind::Length, "listings that are too long");
}

#[test]
fn every_picture_exists_and_is_shown() {
    assert_no_problems(ProblemKind::Picture, "picture problems");
}

/// The reference body lines of every exercise, (id, trimmed line), and
/// every line outside the exercises, read straight from the lab sources.
fn lab_lines() -> (Vec<(String, String)>, HashSet<String>) {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for lab in std::fs::read_dir(root().join("labs")).unwrap().flatten() {
        walk(&lab.path().join("src"), &mut files);
    }
    let mut bodies = Vec::new();
    let mut outside = HashSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut open: Option<String> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(id) = t.strip_prefix("// EXERCISE_END:") {
                assert_eq!(
                    open.take().as_deref(),
                    Some(id.trim()),
                    "{}",
                    file.display()
                );
            } else if let Some(id) = t.strip_prefix("// EXERCISE:") {
                open = Some(id.trim().to_string());
            } else if let Some(id) = &open {
                if !t.contains("ANCHOR") {
                    bodies.push((id.clone(), t.to_string()));
                }
            } else {
                outside.insert(t.to_string());
            }
        }
    }
    (bodies, outside)
}

#[test]
fn the_preprocessed_book_keeps_answers_in_the_appendix() {
    let chapters =
        book::preprocessed(&book_dir()).unwrap_or_else(|e| panic!("{e}"));
    let solutions_page = Path::new(book::expand::SOLUTIONS_PAGE);
    assert_eq!(
        chapters.last().map(|(p, _)| p.as_path()),
        Some(solutions_page),
        "the Solutions appendix is the last chapter"
    );
    let appendix = &chapters[chapters.len() - 1].1;
    let (bodies, outside) = lab_lines();
    assert!(!bodies.is_empty(), "the labs have exercises");

    let mut ids: Vec<&str> = bodies.iter().map(|(id, _)| id.as_str()).collect();
    ids.dedup();
    for id in ids {
        assert!(
            appendix.contains(&format!("{{#{id}}}")),
            "the appendix has no solution of {id}"
        );
    }
    // Every body line is in the appendix, and a body line that the starter
    // does not have too (a closing brace, `Ok(())`) is on no other page.
    let mut leaks = Vec::new();
    for (id, line) in &bodies {
        assert!(
            appendix.contains(line.as_str()),
            "{id}: the appendix lacks `{line}`"
        );
        if line.len() < 10 || outside.contains(line) {
            continue;
        }
        for (path, text) in &chapters[..chapters.len() - 1] {
            if let Some(n) = text.lines().position(|l| l.trim() == line) {
                leaks.push(format!(
                    "{}:{}: {id}: `{line}`",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "reference solutions shown before their exercise (preprocessed line numbers):\n{}",
        leaks.join("\n")
    );
    // The markers and anchors never show.
    for (path, text) in &chapters {
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            assert!(
                !(t.starts_with("// EXERCISE") || t.starts_with("// ANCHOR")),
                "{}:{}: a marker shows: {t}",
                path.display(),
                n + 1
            );
        }
    }
}

#[test]
fn the_book_builds() {
    let out = tempfile::tempdir().unwrap();
    let index = book::build(&book_dir(), Some(out.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(index.is_file(), "no {}", index.display());
    assert!(index.starts_with(out.path()));
    assert!(
        out.path().join("solutions.html").is_file(),
        "no Solutions page"
    );
}
