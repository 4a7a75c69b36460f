//! `kubelings verify`: the workbook checks itself.
//!
//! 1. Static: the manifest agrees with the code and the book (ids unique,
//!    one well-formed marker pair per exercise in its lab and no orphan
//!    markers, pages and headings exist, three hints, tests exist), and the
//!    book's includes and links resolve.
//! 2. The switch copy: the workbook with every exercise body behind
//!    `if ::kubelings_probe::solved("<id>") { body } else { todo!() }`, its
//!    lab tests built once. For every exercise i, in manifest order, with
//!    `CI=true`:
//!    - progressive: with exercises 1..=i solved (`KUBELINGS_SOLVED`), i's
//!      tests pass: the reference is right, and needs nothing later;
//!    - leave-one-out: with all but i solved, each of i's tests fails: it
//!      really checks i.
//! 3. The real starter (as `kubelings start` exports it) builds, and every
//!    exercise test fails in it.
//!
//! Both copies live under the workspace's target dir and are rewritten
//! file by file, so a second verify rebuilds only what changed. Each has
//! its own cargo target dir: path packages hash by their path relative to
//! the workspace root, the same in every copy, so copies sharing one would
//! overwrite each other's lab builds.
//!
//! An exercise whose privilege this machine lacks is "not verifiable here"
//! (not an error), unless CI=true, where it is an error: CI must verify all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use kubelings_probe::{ci, probe, CI_SKIP_PANIC};

use crate::check::{indent, mode, test_refs, How, Mode, Suite};
use crate::export::Flavor;
use crate::manifest::{Exercise, TestRef};
use crate::runner::{Build, TestResult, Verdict};
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
    progressive: String,
    leave_one_out: String,
    starter: String,
    verdict: String,
}

impl Row {
    fn new(id: &str, cells: [&str; 3], verdict: impl Into<String>) -> Row {
        Row {
            id: id.to_string(),
            progressive: cells[0].to_string(),
            leave_one_out: cells[1].to_string(),
            starter: cells[2].to_string(),
            verdict: verdict.into(),
        }
    }
}

pub fn run(ws: &Workspace, static_only: bool, only: &[String]) -> Result<bool> {
    let started = Instant::now();
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
    for id in only {
        if !ws.manifest.exercises.iter().any(|e| &e.id == id) {
            anyhow::bail!("--only {id}: no exercise has this id (see `kubelings list`)");
        }
    }
    let rows = dynamic_checks(ws, &mut problems, only)?;

    if !rows.is_empty() {
        print_table(&rows);
    }
    println!();
    let secs = started.elapsed().as_secs();
    if problems.is_empty() {
        println!(
            "verify: every verifiable exercise passes with itself and the exercises before it \
             solved, and fails without itself and in the starter ({secs} s)"
        );
        return Ok(true);
    }
    for p in &problems[static_count..] {
        println!("problem: {p}");
        println!();
    }
    println!("verify: {} problems ({secs} s)", problems.len());
    Ok(false)
}

/// A copy of the workbook under the target dir.
struct Copy {
    root: PathBuf,
    /// Its cargo target dir.
    target: PathBuf,
    check_only: bool,
}

/// The build settings of both copies: no debug info and no incremental
/// state, so the builds are quicker and take a fraction of the disk; the
/// copies have their own target dir, so this costs the reference nothing.
const COPY_ENV: [(&str, &str); 3] = [
    ("CARGO_PROFILE_DEV_DEBUG", "0"),
    ("CARGO_PROFILE_TEST_DEBUG", "0"),
    ("CARGO_INCREMENTAL", "0"),
];

impl Copy {
    /// Builds (or only checks) every lab's tests; the suites built, and a
    /// problem per lab that does not build. True if all built.
    fn build(
        &self,
        ws: &Workspace,
        what: &str,
        suites: &mut BTreeMap<String, Suite>,
        problems: &mut Vec<Problem>,
        only: &[String],
    ) -> bool {
        let mut all = true;
        // With --only, just the labs of the exercises named.
        let wanted = |lab: &str| {
            only.is_empty()
                || ws
                    .manifest
                    .exercises
                    .iter()
                    .any(|e| e.lab == lab && only.contains(&e.id))
        };
        for lab in ws.manifest.labs().into_iter().filter(|l| wanted(l)) {
            let Ok(l) = ws.lab(lab) else {
                continue; // a static problem already
            };
            let build = Build {
                dir: self.root.clone(),
                package: lab.to_string(),
                target_dir: Some(self.target.clone()),
                env: COPY_ENV
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                check_only: self.check_only,
                // The switch builds only what the exercises' tests need;
                // the starter is checked whole (`--tests`), which is cheap.
                targets: match self.check_only {
                    true => Vec::new(),
                    false => exercise_targets(ws, lab),
                },
                progress: true,
            };
            let t = Instant::now();
            println!("verify: the {what}'s {lab} tests: {}", build.display());
            let failed = if self.check_only {
                match build.run() {
                    Ok(built) if built.success => None,
                    Ok(built) => Some(built.error_report(&ws.lab_sources(), 5)),
                    Err(err) => Some(err.to_string()),
                }
            } else {
                match Suite::build(&build, &l.dir) {
                    Ok(Ok(suite)) => {
                        suites.insert(lab.to_string(), suite);
                        None
                    }
                    Ok(Err(built)) => Some(built.error_report(&ws.lab_sources(), 5)),
                    Err(err) => Some(format!("{err:#}")),
                }
            };
            match failed {
                None => println!("verify:   done in {} s", t.elapsed().as_secs()),
                Some(errors) => {
                    all = false;
                    problems.push(Problem {
                        exercise: None,
                        message: format!(
                            "the {what}'s {lab} does not build:\n{}",
                            indent(&errors, "    ")
                        ),
                    });
                }
            }
        }
        all
    }
}

/// The test targets the exercises of `lab` name, each once, in order.
fn exercise_targets(ws: &Workspace, lab: &str) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    let Ok(dir) = ws.lab(lab).map(|l| ws.root.join(&l.dir).join("tests")) else {
        return targets;
    };
    // A target with no file is a static problem already; naming it to
    // cargo would fail the whole build.
    let exists =
        |t: &str| dir.join(format!("{t}.rs")).is_file() || dir.join(t).join("main.rs").is_file();
    for e in ws.manifest.exercises.iter().filter(|e| e.lab == lab) {
        for t in e.test_refs().into_iter().flatten() {
            if t.package == lab && !targets.contains(&t.target) && exists(&t.target) {
                targets.push(t.target);
            }
        }
    }
    targets
}

/// What one exercise's tests must do in one run.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Pass,
    Fail,
}

fn dynamic_checks(
    ws: &Workspace,
    problems: &mut Vec<Problem>,
    only: &[String],
) -> Result<Vec<Row>> {
    let host = probe();
    let ci = ci();
    let mut rows: Vec<Row> = Vec::new();

    // The starter is only checked (`cargo check`), in the switch's target
    // dir: check units never collide with the switch's built ones, and the
    // build scripts and proc macros they share are built once. Running the
    // starter's tests is running the switch's with nothing solved.
    let base = ws.target_dir().join("kubelings-verify");
    let switch = Copy {
        root: base.join("switch"),
        target: base.join("target"),
        check_only: false,
    };
    let starter = Copy {
        root: base.join("starter"),
        target: base.join("target"),
        check_only: true,
    };
    for (copy, flavor, what) in [
        (&switch, Flavor::Switch, "switch copy"),
        (&starter, Flavor::Starter, "starter"),
    ] {
        if let Err(err) = crate::export::sync(ws, &copy.root, flavor) {
            problems.push(Problem {
                exercise: None,
                message: format!("cannot export the {what}: {err}"),
            });
            return Ok(rows);
        }
    }
    // Only labs with exercises have switch regions to compile.
    let with_exercises = ws.manifest.labs();
    for lab in ws
        .labs
        .values()
        .filter(|l| with_exercises.contains(&l.package.as_str()))
    {
        let text =
            std::fs::read_to_string(ws.root.join(&lab.dir).join("Cargo.toml")).unwrap_or_default();
        if !text.contains("kubelings-probe") {
            problems.push(Problem {
                exercise: None,
                message: format!(
                    "{}: its Cargo.toml must depend on kubelings-probe (the switch copy \
                     calls ::kubelings_probe::solved)",
                    lab.package
                ),
            });
        }
    }
    let mut switch_suites = BTreeMap::new();
    switch.build(ws, "switch copy", &mut switch_suites, problems, only);
    let starter_builds = starter.build(ws, "starter", &mut BTreeMap::new(), problems, only);

    let ids: Vec<&str> = ws
        .manifest
        .exercises
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    let mut sudo: Option<std::result::Result<(), String>> = None;
    for (i, e) in ws.manifest.exercises.iter().enumerate() {
        if !only.is_empty() && !only.contains(&e.id) {
            continue;
        }
        let refs = match test_refs(&e.lab, &[e]) {
            Ok(mut refs) => refs.remove(0).1,
            Err(err) => {
                rows.push(Row::new(&e.id, ["-", "-", "-"], "ERROR: its tests"));
                problems.push(problem(&e.id, format!("{err:#}")));
                continue;
            }
        };
        let mut how = How {
            // No backtraces: the panic message is what a failure shows.
            env: vec![
                ("CI".into(), "true".into()),
                ("RUST_BACKTRACE".into(), "0".into()),
            ],
            timeout: e.timeout(),
            sudo: false,
        };
        let cannot = match (mode(e.privilege, &host), host.allows(e.privilege)) {
            (Mode::Skip(why), _) => Some(why),
            (Mode::Sudo, _) => {
                println!("verify: running {} tests as root (sudo)", e.id);
                match sudo.get_or_insert_with(crate::runner::sudo_validate) {
                    Ok(()) => {
                        how.sudo = true;
                        None
                    }
                    Err(why) => Some(format!("needs root, and sudo did not work: {why}")),
                }
            }
            (Mode::Direct, Err(why)) => Some(why),
            (Mode::Direct, Ok(())) => None,
        };
        if let Some(why) = cannot {
            if ci {
                problems.push(problem(
                    &e.id,
                    format!("CI=true, but this machine cannot run it: {why}"),
                ));
                rows.push(Row::new(
                    &e.id,
                    ["-", "-", "-"],
                    format!("ERROR: cannot run here: {why}"),
                ));
            } else {
                rows.push(Row::new(
                    &e.id,
                    ["-", "-", "-"],
                    format!("not verifiable here: {why}"),
                ));
            }
            continue;
        }

        let t = Instant::now();
        let mut cells = Vec::new();
        let mut ok = true;
        let solved_upto = ids[..=i].join(",");
        let all_but: Vec<&str> = ids.iter().copied().filter(|id| *id != e.id).collect();
        let runs = [
            ("progressive", solved_upto, Expect::Pass),
            ("leave-one-out", all_but.join(","), Expect::Fail),
            ("starter", String::new(), Expect::Fail),
        ];
        for (name, solved, expect) in runs {
            let Some(suite) = switch_suites.get(&e.lab) else {
                cells.push("build error".to_string());
                ok = false;
                continue;
            };
            if name == "starter" && !starter_builds {
                cells.push("build error".to_string());
                ok = false;
                continue;
            }
            let mut how = how.clone();
            how.env.push(("KUBELINGS_SOLVED".into(), solved));
            let (cell, msgs) = judge(suite, &refs, &how, expect)?;
            cells.push(cell);
            for m in msgs {
                ok = false;
                problems.push(problem(&e.id, format!("{name}: {m}")));
            }
        }
        let verdict = if ok { "ok" } else { "ERROR" };
        println!(
            "verify: {:<24} {verdict} ({} tests, {:.1} s)",
            e.id,
            refs.len(),
            t.elapsed().as_secs_f64()
        );
        rows.push(Row::new(&e.id, [&cells[0], &cells[1], &cells[2]], verdict));
    }
    Ok(rows)
}

/// Runs every test of one exercise and says whether each did as expected:
/// the table cell and one problem per test that did not.
fn judge(
    suite: &Suite,
    refs: &[TestRef],
    how: &How,
    expect: Expect,
) -> Result<(String, Vec<String>)> {
    let mut problems = Vec::new();
    let mut cell = match expect {
        Expect::Pass => "passes",
        Expect::Fail => "fails",
    }
    .to_string();
    for t in refs {
        let result = suite.run(t, how)?;
        let name = format!("{}::{}", t.target, t.name);
        let ci_skip = result.output.contains(CI_SKIP_PANIC);
        let bad = match (&result.verdict, expect) {
            (Verdict::Fail(_), _) if ci_skip => Some((
                "skipped",
                format!(
                    "test {name} would skip under CI=true; it must be able to run here{}",
                    output_of(&result)
                ),
            )),
            (Verdict::Pass, Expect::Pass) | (Verdict::Fail(_), Expect::Fail) => None,
            (Verdict::Pass, Expect::Fail) => Some((
                "PASSES",
                format!("test {name} passes without the exercise solved, so it does not check it"),
            )),
            (Verdict::Fail(_), Expect::Pass) => {
                Some(("FAILS", format!("test {name} fails:{}", output_of(&result))))
            }
            (Verdict::TimedOut(secs), _) => Some((
                "TIMEOUT",
                format!(
                    "test {name} timed out after {secs} s (it must fail, never hang){}",
                    output_of(&result)
                ),
            )),
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
    Ok((cell, problems))
}

/// A test's output, indented, without libtest's own lines, its last lines
/// if it is long.
fn output_of(result: &TestResult) -> String {
    const MAX: usize = 30;
    let lines: Vec<&str> = result
        .output
        .lines()
        .take_while(|l| *l != "failures:")
        .filter(|l| !(l.starts_with("running ") && l.ends_with(" test")))
        .filter(|l| !(l.starts_with("test ") && l.contains(" ... ")))
        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        // --nocapture puts the test's result on a line of its own.
        .filter(|l| !matches!(l.trim(), "FAILED" | "ok"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let shown = &lines[lines.len().saturating_sub(MAX)..];
    let cut = if shown.len() < lines.len() {
        format!("    ... ({} lines before)\n", lines.len() - shown.len())
    } else {
        String::new()
    };
    format!("\n{cut}{}", indent(&shown.join("\n"), "    "))
}

fn print_table(rows: &[Row]) {
    let header = Row::new(
        "exercise",
        ["progressive", "leave-one-out", "starter"],
        "verdict",
    );
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let w = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
    let (wi, wp, wl, ws) = (
        w(|r| &r.id),
        w(|r| &r.progressive),
        w(|r| &r.leave_one_out),
        w(|r| &r.starter),
    );
    println!();
    for r in all {
        println!(
            "{:<wi$} | {:<wp$} | {:<wl$} | {:<ws$} | {}",
            r.id, r.progressive, r.leave_one_out, r.starter, r.verdict
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
