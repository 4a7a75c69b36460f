//! `kubelings check`: build a lab's tests, run each exercise's tests, and
//! record the results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use kubelings_probe::{Host, Privilege};

use crate::cli::load_progress;
use crate::manifest::{Exercise, TestRef};
use crate::progress::Status;
use crate::runner::{Build, Built, Exe, TestResult, TestRun, Verdict};
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

/// The build of one lab's test targets: what `refs` need, each once.
pub fn plan(dir: &Path, lab: &str, refs: &[(String, Vec<TestRef>)]) -> Build {
    let mut build = Build {
        dir: dir.to_path_buf(),
        package: lab.to_string(),
        ..Build::default()
    };
    for t in refs.iter().flat_map(|(_, refs)| refs) {
        if !build.targets.contains(&t.target) {
            build.targets.push(t.target.clone());
        }
    }
    build
}

/// A lab's built test executables, ready to run tests from.
#[derive(Debug, Clone)]
pub struct Suite {
    pub package: String,
    /// The lab's directory (absolute): tests run there, as under cargo.
    pub cwd: PathBuf,
    pub exes: BTreeMap<String, Exe>,
}

impl Suite {
    /// Builds `build` and lists its executables; Err(built) when the build
    /// failed (the compiler's errors are in it).
    pub fn build(build: &Build, lab_dir: &Path) -> Result<std::result::Result<Suite, Built>> {
        let built = build.run()?;
        if !built.success {
            return Ok(Err(built));
        }
        let mut exes = BTreeMap::new();
        for (target, path) in &built.executables {
            exes.insert(target.clone(), Exe::list(path)?);
        }
        Ok(Ok(Suite {
            package: build.package.clone(),
            cwd: build.dir.join(lab_dir),
            exes,
        }))
    }

    /// How to run the manifest test `t`, or why it cannot run.
    pub fn test(&self, t: &TestRef, how: &How) -> std::result::Result<TestRun, Verdict> {
        let Some(exe) = self.exes.get(&t.target) else {
            return Err(Verdict::NotRun(format!(
                "the build made no test executable for tests/{}.rs",
                t.target
            )));
        };
        let Some(name) = exe.resolve(&t.name) else {
            return Err(Verdict::NotRun(format!(
                "tests/{}.rs has no test named {}",
                t.target, t.name
            )));
        };
        // `--list` names ignored tests too; run, they would "pass" unrun.
        if exe.ignored.iter().any(|n| n == name) {
            return Err(Verdict::Ignored);
        }
        Ok(TestRun {
            exe: exe.path.clone(),
            name: name.to_string(),
            cwd: self.cwd.clone(),
            env: how.env.clone(),
            timeout: how.timeout,
            sudo: how.sudo,
        })
    }

    /// Runs `t`: its verdict and output.
    pub fn run(&self, t: &TestRef, how: &How) -> Result<TestResult> {
        match self.test(t, how) {
            Ok(run) => Ok(run.run()?),
            Err(verdict) => Ok(TestResult {
                verdict,
                output: String::new(),
                duration: std::time::Duration::ZERO,
            }),
        }
    }
}

/// How to run an exercise's tests.
#[derive(Debug, Clone)]
pub struct How {
    pub env: Vec<(String, String)>,
    pub timeout: std::time::Duration,
    pub sudo: bool,
}

/// How an exercise's tests run on this machine: directly, through sudo
/// (they need root and we are not), or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Direct,
    Sudo,
    Skip(String),
}

pub fn mode(privilege: Privilege, host: &Host) -> Mode {
    match privilege {
        Privilege::Root if host.os == "linux" && !host.is_root => {
            if crate::runner::have_program("sudo") {
                Mode::Sudo
            } else {
                Mode::Skip("needs root, and sudo is not installed to run it as root".into())
            }
        }
        // Userns tests run as we are: they skip themselves where the kernel
        // allows no user namespaces.
        _ => Mode::Direct,
    }
}

/// The command that reruns one test, for a person.
pub fn rerun_command(package: &str, t: &TestRef) -> String {
    format!(
        "cargo test -p {package} --test {} -- --exact {}",
        t.target, t.name
    )
}

/// What the tests of one exercise add up to: the first failure wins, then
/// a test that did not run, then a skip; pass only if all passed.
pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let rank = |v: &Verdict| match v {
        Verdict::Fail(_) | Verdict::TimedOut(_) => 0,
        Verdict::NotRun(_) => 1,
        Verdict::Ignored => 2,
        Verdict::Skipped(_) => 3,
        Verdict::Pass => 4,
    };
    verdicts
        .into_iter()
        .min_by_key(rank)
        .unwrap_or(Verdict::NotRun("no tests".into()))
}

pub fn indent(text: &str, by: &str) -> String {
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

/// The lab files holding these exercises' markers: their compiler errors
/// are shown first.
pub fn exercise_files(ws: &Workspace, exercises: &[&Exercise]) -> Vec<PathBuf> {
    let scan = ws.scan_markers();
    let mut files: Vec<PathBuf> = scan
        .regions
        .iter()
        .filter(|(_, r)| exercises.iter().any(|e| e.id == r.id))
        .map(|(f, _)| f.clone())
        .collect();
    files.dedup();
    files
}

/// Runs the checks; Ok(false) when something failed.
pub fn run(ws: &Workspace, target: Option<&str>) -> Result<bool> {
    let selected = select(ws, target)?;
    let mut progress = load_progress(ws);
    let host = kubelings_probe::probe();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    // None: not asked yet; Some(Err): sudo said no.
    let mut sudo: Option<std::result::Result<(), String>> = None;

    for lab in ws.manifest.labs() {
        let exercises: Vec<&Exercise> = selected.iter().copied().filter(|e| e.lab == lab).collect();
        if exercises.is_empty() {
            continue;
        }
        let lab_dir = ws.lab(lab)?.dir.clone();
        let refs = test_refs(lab, &exercises)?;
        let mut build = plan(&ws.root, lab, &refs);
        build.progress = true;
        println!("Checking {lab}: {}", build.display());
        let suite = match Suite::build(&build, &lab_dir)? {
            Ok(suite) => suite,
            Err(built) => {
                let files = exercise_files(ws, &exercises);
                println!();
                println!(
                    "  {lab} does not build, so none of its self-checks ran. The compiler said:"
                );
                println!();
                println!("{}", indent(&built.error_report(&files, 3), "    "));
                println!();
                for e in &exercises {
                    progress.set_status(&e.id, Status::Failing, Some("the build failed".into()));
                }
                failed += exercises.len();
                save(ws, &progress);
                continue;
            }
        };

        for (e, (_, refs)) in exercises.iter().zip(&refs) {
            let mut how = How {
                env: Vec::new(),
                timeout: e.timeout(),
                sudo: false,
            };
            match mode(e.privilege, &host) {
                Mode::Direct => {}
                Mode::Sudo => {
                    println!("  running {} tests as root (sudo)", e.id);
                    let asked = sudo.get_or_insert_with(crate::runner::sudo_validate);
                    match asked {
                        Ok(()) => how.sudo = true,
                        Err(why) => {
                            let reason = format!("needs root, and sudo did not work: {why}");
                            skipped += 1;
                            println!("  skip  {}  {}: {reason}", e.id, e.title);
                            progress.set_status(&e.id, Status::Skipped, Some(reason));
                            continue;
                        }
                    }
                }
                Mode::Skip(reason) => {
                    skipped += 1;
                    println!("  skip  {}  {}: {reason}", e.id, e.title);
                    progress.set_status(&e.id, Status::Skipped, Some(reason));
                    continue;
                }
            }

            let mut verdicts = Vec::new();
            let mut failure: Option<(&TestRef, TestResult)> = None;
            for t in refs {
                let result = suite.run(t, &how)?;
                verdicts.push(result.verdict.clone());
                if matches!(
                    result.verdict,
                    Verdict::Fail(_) | Verdict::TimedOut(_) | Verdict::NotRun(_) | Verdict::Ignored
                ) {
                    failure = Some((t, result));
                    // The first failure says enough; the rest would wait.
                    break;
                }
            }
            match worst(verdicts) {
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
                verdict => {
                    failed += 1;
                    let test = failure
                        .as_ref()
                        .map(|(t, _)| format!("{}::{}", t.target, t.name))
                        .unwrap_or_default();
                    println!("  FAIL  {}  {}", e.id, e.title);
                    let why = match &verdict {
                        Verdict::Fail(message) => {
                            println!("        test {test} failed:");
                            println!("{}", indent(message, "          "));
                            format!("{test} failed")
                        }
                        Verdict::TimedOut(secs) => {
                            let why = format!("test {test} timed out after {secs} s");
                            println!("        {why}");
                            why
                        }
                        Verdict::Ignored => {
                            let why = format!("test {test} is #[ignore]d, so it checks nothing");
                            println!("        {why}");
                            why
                        }
                        Verdict::NotRun(why) => {
                            println!("        test {test} did not run: {why}");
                            why.clone()
                        }
                        Verdict::Pass | Verdict::Skipped(_) => String::new(),
                    };
                    if let Some((t, _)) = &failure {
                        println!("        Rerun: {}", rerun_command(lab, t));
                    }
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

    fn refs(names: &[&str]) -> Vec<TestRef> {
        names
            .iter()
            .map(|n| TestRef::parse(&format!("lab01::t::{n}")).unwrap())
            .collect()
    }

    #[test]
    fn a_failure_outweighs_a_skip_which_outweighs_a_pass() {
        assert_eq!(worst([Verdict::Pass]), Verdict::Pass);
        assert_eq!(
            worst([Verdict::Pass, Verdict::Skipped("needs root".into())]),
            Verdict::Skipped("needs root".into())
        );
        assert_eq!(
            worst([
                Verdict::Skipped("x".into()),
                Verdict::TimedOut(3),
                Verdict::Pass
            ]),
            Verdict::TimedOut(3)
        );
        assert!(matches!(
            worst([Verdict::Pass, Verdict::NotRun("x".into())]),
            Verdict::NotRun(_)
        ));
    }

    #[test]
    fn plans_one_build_per_lab() {
        let r = vec![
            ("x".to_string(), refs(&["a", "b"])),
            ("y".to_string(), refs(&["b", "c"])),
        ];
        let build = plan(Path::new("/w"), "lab01", &r);
        assert_eq!(build.targets, vec!["t"]);
        assert_eq!(build.package, "lab01");
        assert_eq!(build.display(), "cargo test --no-run -p lab01 --test t");
    }

    #[test]
    fn root_tests_go_through_sudo_or_skip() {
        let mut host = kubelings_probe::probe();
        host.os = "linux";
        host.is_root = true;
        assert_eq!(mode(Privilege::Root, &host), Mode::Direct);
        host.is_root = false;
        assert_eq!(mode(Privilege::None, &host), Mode::Direct);
        assert_eq!(mode(Privilege::Userns, &host), Mode::Direct);
        let want = if crate::runner::have_program("sudo") {
            Mode::Sudo
        } else {
            Mode::Skip("needs root, and sudo is not installed to run it as root".into())
        };
        assert_eq!(mode(Privilege::Root, &host), want);
    }
}
