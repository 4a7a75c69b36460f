//! `kubelings check`: run the self-checks and record the results.

use anyhow::{bail, Result};

use crate::cli::load_progress;
use crate::manifest::{Exercise, TestRef};
use crate::progress::Status;
use crate::runner::{RunReport, TestRun, Verdict};
use crate::workspace::Workspace;

/// The exercises named by `target`: one id, a lab's, or all of them.
pub fn select<'a>(ws: &'a Workspace, target: Option<&str>) -> Result<Vec<&'a Exercise>> {
    let all = &ws.manifest.exercises;
    let Some(target) = target else {
        return Ok(all.iter().collect());
    };
    if let Some(e) = ws.exercise(target) {
        return Ok(vec![e]);
    }
    let in_lab: Vec<&Exercise> = all.iter().filter(|e| e.lab == target).collect();
    if in_lab.is_empty() {
        bail!("unknown exercise or lab `{target}`; `kubelings list` shows them all");
    }
    Ok(in_lab)
}

/// The manifest tests of these exercises (all in `lab`), checked for form.
pub fn test_refs(lab: &str, exercises: &[&Exercise]) -> Result<Vec<(String, Vec<TestRef>)>> {
    let mut out = Vec::new();
    for e in exercises {
        let mut refs = Vec::new();
        for t in e.test_refs() {
            let t = t.map_err(|msg| anyhow::anyhow!("{}: {msg}", e.id))?;
            if t.package != lab {
                bail!(
                    "{}: test {t} is in package {}, but the exercise is in lab {lab}",
                    e.id,
                    t.package
                );
            }
            refs.push(t);
        }
        if refs.is_empty() {
            bail!("{}: the manifest lists no tests for it", e.id);
        }
        out.push((e.id.clone(), refs));
    }
    Ok(out)
}

/// One cargo run for a lab, restricted to the targets and tests needed.
pub fn plan(dir: &std::path::Path, lab: &str, refs: &[(String, Vec<TestRef>)]) -> TestRun {
    let mut run = TestRun {
        dir: dir.to_path_buf(),
        package: lab.to_string(),
        ..TestRun::default()
    };
    for t in refs.iter().flat_map(|(_, refs)| refs) {
        if !run.targets.contains(&t.target) {
            run.targets.push(t.target.clone());
        }
        if !run.filters.contains(&t.name) {
            run.filters.push(t.name.clone());
        }
    }
    run
}

/// What the tests of one exercise add up to: the first failure wins, then
/// a test that did not run, then a skip; pass only if all passed.
pub fn exercise_verdict(report: &RunReport, refs: &[TestRef]) -> (Verdict, Option<TestRef>) {
    let verdicts: Vec<(Verdict, &TestRef)> = refs.iter().map(|t| (report.verdict(t), t)).collect();
    let rank = |v: &Verdict| match v {
        Verdict::Fail(_) => 0,
        Verdict::NotRun(_) => 1,
        Verdict::Ignored => 2,
        Verdict::Skipped(_) => 3,
        Verdict::Pass => 4,
    };
    verdicts
        .into_iter()
        .min_by_key(|(v, _)| rank(v))
        .map(|(v, t)| (v, Some(t.clone())))
        .unwrap_or((Verdict::NotRun("no tests".into()), None))
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("{by}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the checks; Ok(false) when something failed.
pub fn run(ws: &Workspace, target: Option<&str>) -> Result<bool> {
    let selected = select(ws, target)?;
    let mut progress = load_progress(ws);
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);

    for lab in ws.manifest.labs() {
        let exercises: Vec<&Exercise> = selected.iter().copied().filter(|e| e.lab == lab).collect();
        if exercises.is_empty() {
            continue;
        }
        ws.lab(lab)?;
        let refs = test_refs(lab, &exercises)?;
        let run = plan(&ws.root, lab, &refs);
        println!("Checking {lab}: {}", run.display());
        let report = run.run(|line| {
            // Show that the (possibly long) build is moving.
            if line.trim_start().starts_with("Compiling ") {
                eprintln!("  {}", line.trim());
            }
        })?;

        if let Some(errors) = &report.build_error {
            println!();
            println!("  The build failed, so no self-check of {lab} ran. The compiler said:");
            println!();
            println!("{}", indent(errors, "    "));
            println!();
            for e in &exercises {
                progress.set_status(&e.id, Status::Failing, Some("the build failed".into()));
            }
            failed += exercises.len();
            save(ws, &progress);
            continue;
        }

        for (e, (_, refs)) in exercises.iter().zip(&refs) {
            let (verdict, test) = exercise_verdict(&report, refs);
            let test_name = test
                .map(|t| format!("{}::{}", t.target, t.name))
                .unwrap_or_default();
            match verdict {
                Verdict::Pass => {
                    passed += 1;
                    println!("  pass  {}  {}", e.id, e.title);
                    progress.set_status(&e.id, Status::Done, None);
                }
                Verdict::Skipped(reason) => {
                    skipped += 1;
                    println!("  skip  {}  {}: {reason}", e.id, e.title);
                    progress.set_status(&e.id, Status::Skipped, Some(reason));
                }
                Verdict::Fail(message) => {
                    failed += 1;
                    println!("  FAIL  {}  {}", e.id, e.title);
                    println!("        test {test_name} failed:");
                    println!("{}", indent(&message, "          "));
                    explain(e);
                    progress.set_status(
                        &e.id,
                        Status::Failing,
                        Some(format!("{test_name} failed")),
                    );
                }
                Verdict::Ignored | Verdict::NotRun(_) => {
                    failed += 1;
                    let why = match verdict {
                        Verdict::NotRun(why) => why,
                        _ => format!("test {test_name} is #[ignore]d, so it checks nothing"),
                    };
                    println!("  FAIL  {}  {}: {why}", e.id, e.title);
                    explain(e);
                    progress.set_status(&e.id, Status::Failing, Some(why));
                }
            }
        }
        save(ws, &progress);
    }

    println!();
    println!("kubelings: {passed} done, {failed} failing, {skipped} skipped");
    if failed == 0 && skipped > 0 {
        println!("Skipped checks need more than this machine gives; `kubelings doctor` says what.");
    }
    Ok(failed == 0)
}

fn explain(e: &Exercise) {
    if let Some(hint) = e.hints.first() {
        println!("        Hint: {hint}");
    }
    println!("        Read: {}", e.book_ref());
    println!("        More hints: kubelings hint {}", e.id);
}

fn save(ws: &Workspace, progress: &crate::progress::Progress) {
    if let Err(err) = progress.save(&ws.root) {
        eprintln!("kubelings: warning: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "     Running tests/t.rs (target/debug/deps/t-1)
test a ... ok
test b ... FAILED
test c ... ok

successes:

---- c stdout ----
kubelings: skipped: needs root

successes:
    a
    c

failures:

---- b stdout ----
thread 'b' panicked at tests/t.rs:1:1:
boom

failures:
    b

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

    fn refs(names: &[&str]) -> Vec<TestRef> {
        names
            .iter()
            .map(|n| TestRef::parse(&format!("lab01::t::{n}")).unwrap())
            .collect()
    }

    #[test]
    fn a_failure_outweighs_a_skip_which_outweighs_a_pass() {
        let report = RunReport::from_log(LOG.into(), false);
        let verdict = |names: &[&str]| exercise_verdict(&report, &refs(names)).0;
        assert_eq!(verdict(&["a"]), Verdict::Pass);
        assert_eq!(verdict(&["a", "c"]), Verdict::Skipped("needs root".into()));
        assert_eq!(
            verdict(&["c", "b", "a"]),
            Verdict::Fail("thread 'b' panicked at tests/t.rs:1:1:\nboom".into())
        );
        assert!(matches!(verdict(&["a", "zzz"]), Verdict::NotRun(_)));
    }

    #[test]
    fn plans_one_run_per_lab() {
        let r = vec![
            ("x".to_string(), refs(&["a", "b"])),
            ("y".to_string(), refs(&["b", "c"])),
        ];
        let run = plan(std::path::Path::new("/w"), "lab01", &r);
        assert_eq!(run.targets, vec!["t"]);
        assert_eq!(run.filters, vec!["a", "b", "c"]);
        assert_eq!(run.package, "lab01");
    }
}
