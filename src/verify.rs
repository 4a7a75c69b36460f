//! `kubelings verify`: the workbook checks itself.
//!
//! 1. Static: the manifest agrees with the code and the book (ids unique,
//!    one well-formed marker pair per exercise in its lab and no orphan
//!    markers, pages and headings exist, three hints, tests exist), and the
//!    book's includes and links resolve.
//! 2. The starter is exported to a temporary directory, as `start` does.
//! 3. Each lab's exercise tests run, with CI=true, on the starter, where
//!    every one must fail (the exercise is really needed), and on the
//!    reference, where every one must pass (the solution is right).
//!
//! An exercise whose privilege this machine lacks is "not verifiable here"
//! (not an error), unless CI=true, where it is an error: CI must verify all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use anyhow::{Context, Result};
use kubelings_probe::{ci, probe};

use crate::check::{plan, test_refs};
use crate::manifest::Exercise;
use crate::runner::{RunReport, Verdict};
use crate::workspace::Workspace;

/// Something wrong with the workbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub exercise: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.exercise {
            Some(id) => write!(f, "{id}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn problem(exercise: &str, message: impl Into<String>) -> Problem {
    Problem {
        exercise: Some(exercise.to_string()),
        message: message.into(),
    }
}

/// Step 1: everything that can be checked without building.
pub fn static_checks(ws: &Workspace) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for e in &ws.manifest.exercises {
        *seen.entry(e.id.as_str()).or_default() += 1;
    }
    let mut dupes: Vec<&str> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    dupes.sort();
    for id in dupes {
        problems.push(problem(
            id,
            "the id appears more than once in labs/exercises.yaml",
        ));
    }

    for e in &ws.manifest.exercises {
        check_fields(ws, e, &mut problems);
    }
    check_markers(ws, &mut problems);

    match crate::book::check(&ws.root.join("book")) {
        Ok(book) => problems.extend(book.into_iter().map(|p| Problem {
            exercise: None,
            message: format!("book: {p}"),
        })),
        Err(err) => problems.push(Problem {
            exercise: None,
            message: format!("book: {err}"),
        }),
    }
    problems
}

fn check_fields(ws: &Workspace, e: &Exercise, problems: &mut Vec<Problem>) {
    let id = e.id.as_str();
    if id.trim().is_empty() || id.contains(char::is_whitespace) {
        problems.push(problem(id, "the id must be one word"));
    }
    if e.title.trim().is_empty() {
        problems.push(problem(id, "the title is empty"));
    }
    if e.section.trim().is_empty() {
        problems.push(problem(id, "the section is empty"));
    }
    if e.hints.len() != 3 {
        problems.push(problem(
            id,
            format!("has {} hints; it needs exactly 3", e.hints.len()),
        ));
    }
    for (i, h) in e.hints.iter().enumerate() {
        if h.trim().is_empty() {
            problems.push(problem(id, format!("hint {} is empty", i + 1)));
        }
    }

    // The page and its heading.
    let (page, fragment) = e.page_parts();
    let page_path = ws.root.join("book/src").join(page);
    match std::fs::read_to_string(&page_path) {
        Err(_) => problems.push(problem(id, format!("page book/src/{page} does not exist"))),
        Ok(text) => match fragment {
            None => problems.push(problem(
                id,
                format!("page {page} names no heading; write it as {page}#heading-id"),
            )),
            Some(frag) => {
                let ids = crate::book::heading_ids(&text);
                if !ids.iter().any(|h| h == frag) {
                    problems.push(problem(
                        id,
                        format!(
                            "book/src/{page} has no heading with id `{frag}` (it has: {})",
                            ids.join(", ")
                        ),
                    ));
                }
            }
        },
    }

    // The lab and its tests.
    let Ok(lab) = ws.lab(&e.lab) else {
        problems.push(problem(
            id,
            format!(
                "lab {}: no directory under labs/ has a Cargo.toml with name = \"{}\"",
                e.lab, e.lab
            ),
        ));
        return;
    };
    if e.tests.is_empty() {
        problems.push(problem(id, "lists no tests"));
    }
    for t in e.test_refs() {
        let t = match t {
            Ok(t) => t,
            Err(msg) => {
                problems.push(problem(id, msg));
                continue;
            }
        };
        if t.package != e.lab {
            problems.push(problem(
                id,
                format!(
                    "test {t} is in package {}, but the exercise is in lab {}",
                    t.package, e.lab
                ),
            ));
            continue;
        }
        let file = lab.dir.join("tests").join(format!("{}.rs", t.target));
        match std::fs::read_to_string(ws.root.join(&file)) {
            Err(_) => problems.push(problem(
                id,
                format!("test {t}: no test file {}", file.display()),
            )),
            Ok(text) if !defines_fn(&text, t.fn_name()) => problems.push(problem(
                id,
                format!("test {t}: {} has no `fn {}(`", file.display(), t.fn_name()),
            )),
            Ok(_) => {}
        }
    }
}

/// Whether `source` has `fn <name>(` (or `fn <name> (`).
fn defines_fn(source: &str, name: &str) -> bool {
    let needle = format!("fn {name}");
    source.match_indices(&needle).any(|(i, _)| {
        let before_ok = source[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        before_ok && source[i + needle.len()..].trim_start().starts_with('(')
    })
}

fn check_markers(ws: &Workspace, problems: &mut Vec<Problem>) {
    let scan = ws.scan_markers();
    for (file, err) in &scan.errors {
        problems.push(Problem {
            exercise: None,
            message: format!("{}:{}: {err}", file.display(), err.line()),
        });
    }
    let mut by_id: BTreeMap<&str, Vec<&(std::path::PathBuf, crate::markers::Region)>> =
        BTreeMap::new();
    for r in &scan.regions {
        by_id.entry(r.1.id.as_str()).or_default().push(r);
    }
    for e in &ws.manifest.exercises {
        let found = by_id.get(e.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        match found {
            [] => {
                // A file with malformed markers was already reported.
                problems.push(problem(
                    &e.id,
                    format!(
                        "no `// EXERCISE: {}` ... `// EXERCISE_END: {}` in labs/*/src",
                        e.id, e.id
                    ),
                ));
            }
            [(file, region)] => {
                if let Some(dir) = ws.lab_dir_of(e) {
                    if !file.starts_with(dir) {
                        problems.push(problem(
                            &e.id,
                            format!(
                                "its markers are in {}, outside its lab {} ({})",
                                file.display(),
                                e.lab,
                                dir.display()
                            ),
                        ));
                    }
                }
                if region.body_lines() == 0 {
                    problems.push(problem(
                        &e.id,
                        format!(
                            "{}:{}: nothing between the markers",
                            file.display(),
                            region.start
                        ),
                    ));
                }
            }
            many => {
                let places: Vec<String> = many
                    .iter()
                    .map(|(f, r)| format!("{}:{}", f.display(), r.start))
                    .collect();
                problems.push(problem(
                    &e.id,
                    format!("marked more than once: {}", places.join(", ")),
                ));
            }
        }
    }
    for (id, regions) in &by_id {
        if ws.exercise(id).is_none() {
            for (file, r) in regions {
                problems.push(Problem {
                    exercise: None,
                    message: format!(
                        "{}:{}: EXERCISE: {id} has no entry in labs/exercises.yaml",
                        file.display(),
                        r.start
                    ),
                });
            }
        }
    }
}

/// One row of the result table.
struct Row {
    id: String,
    starter: String,
    reference: String,
    verdict: String,
}

pub fn run(ws: &Workspace, static_only: bool) -> Result<bool> {
    let mut problems = static_checks(ws);
    for p in &problems {
        println!("problem: {p}");
    }
    if problems.is_empty() {
        println!(
            "verify: manifest, markers and book agree ({} exercises in {} labs)",
            ws.manifest.exercises.len(),
            ws.manifest.labs().len()
        );
    } else {
        println!();
        println!(
            "verify: {} problems in the manifest, markers or book",
            problems.len()
        );
    }
    if static_only {
        return Ok(problems.is_empty());
    }
    // The tests still run: a book problem says nothing about the code, and
    // one run that shows everything beats fixing things one at a time.
    let static_count = problems.len();

    let host = probe();
    let ci = ci();
    let mut rows: Vec<Row> = Vec::new();

    let tmp = tempfile::Builder::new()
        .prefix("kubelings-verify-")
        .tempdir()
        .context("cannot create a temporary directory for the starter")?;
    let starter = tmp.path().join("starter");
    if let Err(err) = crate::export::export(ws, &starter) {
        println!("problem: cannot export the starter: {err}");
        return Ok(false);
    }
    // Its own target dir: path packages hash by their path relative to the
    // workspace root, the same in both copies, so sharing one would make the
    // starter and the reference overwrite each other's lab builds.
    let starter_target = ws.target_dir().join("kubelings-starter");

    for lab in ws.manifest.labs() {
        let mut runnable: Vec<&Exercise> = Vec::new();
        for e in ws.manifest.exercises.iter().filter(|e| e.lab == lab) {
            match host.allows(e.privilege) {
                Ok(()) => runnable.push(e),
                Err(why) if ci => {
                    problems.push(problem(
                        &e.id,
                        format!("CI=true, but this machine cannot run it: {why}"),
                    ));
                    rows.push(Row {
                        id: e.id.clone(),
                        starter: "-".into(),
                        reference: "-".into(),
                        verdict: format!("ERROR: cannot run here: {why}"),
                    });
                }
                Err(why) => rows.push(Row {
                    id: e.id.clone(),
                    starter: "-".into(),
                    reference: "-".into(),
                    verdict: format!("not verifiable here: {why}"),
                }),
            }
        }
        if runnable.is_empty() {
            continue;
        }
        let refs = match test_refs(lab, &runnable) {
            Ok(refs) => refs,
            Err(err) => {
                problems.push(Problem {
                    exercise: None,
                    message: format!("{lab}: cannot run its tests: {err}"),
                });
                continue;
            }
        };
        let env = vec![("CI".to_string(), "true".to_string())];

        let mut reference_run = plan(&ws.root, lab, &refs);
        reference_run.env = env.clone();
        println!(
            "verify: {lab}: testing the reference ({})",
            reference_run.display()
        );
        let reference = reference_run.run(|_| {})?;

        let mut starter_run = plan(&starter, lab, &refs);
        starter_run.env = env;
        starter_run.target_dir = Some(starter_target.clone());
        println!("verify: {lab}: testing the starter (the same, in a fresh export)");
        let starter = starter_run.run(|_| {})?;

        for (e, (_, refs)) in runnable.iter().zip(&refs) {
            let (starter_cell, starter_problems) = judge(&starter, refs, Expect::Fail);
            let (reference_cell, reference_problems) = judge(&reference, refs, Expect::Pass);
            let ok = starter_problems.is_empty() && reference_problems.is_empty();
            for msg in starter_problems {
                problems.push(problem(&e.id, format!("starter: {msg}")));
            }
            for msg in reference_problems {
                problems.push(problem(&e.id, format!("reference: {msg}")));
            }
            rows.push(Row {
                id: e.id.clone(),
                starter: starter_cell,
                reference: reference_cell,
                verdict: if ok { "ok".into() } else { "ERROR".into() },
            });
        }
    }

    print_table(&rows);
    println!();
    if problems.is_empty() {
        println!(
            "verify: every verifiable exercise fails in the starter and passes in the reference"
        );
        return Ok(true);
    }
    for p in &problems[static_count..] {
        println!("problem: {p}");
        println!();
    }
    println!("verify: {} problems", problems.len());
    Ok(false)
}

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Pass,
    Fail,
}

/// The table cell and the problems for one exercise's tests in one run.
fn judge(
    report: &RunReport,
    refs: &[crate::manifest::TestRef],
    expect: Expect,
) -> (String, Vec<String>) {
    if let Some(errors) = &report.build_error {
        return (
            "build error".into(),
            vec![format!("does not build:\n{}", indent(errors))],
        );
    }
    let mut problems = Vec::new();
    let mut cell = match expect {
        Expect::Pass => "passes".to_string(),
        Expect::Fail => "fails".to_string(),
    };
    for t in refs {
        let name = format!("{}::{}", t.target, t.name);
        let bad = match (report.verdict(t), expect) {
            (Verdict::Pass, Expect::Pass) | (Verdict::Fail(_), Expect::Fail) => None,
            (Verdict::Pass, Expect::Fail) => Some((
                "PASSES",
                format!(
                    "test {name} passes without the solution, so it does not check the exercise"
                ),
            )),
            (Verdict::Fail(msg), Expect::Pass) => {
                Some(("FAILS", format!("test {name} fails:\n{}", indent(&msg))))
            }
            (Verdict::Skipped(why), _) => Some((
                "skipped",
                format!("test {name} skipped itself under CI=true ({why}); it must panic instead"),
            )),
            (Verdict::Ignored, _) => Some(("ignored", format!("test {name} is #[ignore]d"))),
            (Verdict::NotRun(why), _) => {
                Some(("not run", format!("test {name} did not run: {why}")))
            }
        };
        if let Some((label, msg)) = bad {
            cell = label.to_string();
            problems.push(msg);
        }
    }
    (cell, problems)
}

/// Indents a multi-line message under its `problem:` line.
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_table(rows: &[Row]) {
    let header = Row {
        id: "exercise".into(),
        starter: "starter".into(),
        reference: "reference".into(),
        verdict: "verdict".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let w = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
    let (wi, ws, wr) = (w(|r| &r.id), w(|r| &r.starter), w(|r| &r.reference));
    println!();
    for r in all {
        println!(
            "{:<wi$} | {:<ws$} | {:<wr$} | {}",
            r.id, r.starter, r.reference, r.verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fn_definitions() {
        let src =
            "#[test]\nfn parses_sizes() {}\nfn rejects_bad_sizes ()\nfn parses_sizes_more() {}\n";
        assert!(defines_fn(src, "parses_sizes"));
        assert!(defines_fn(src, "rejects_bad_sizes"));
        assert!(!defines_fn(src, "parses"));
        assert!(!defines_fn(src, "sizes"));
    }
}
