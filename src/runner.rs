//! Runs a lab's self-checks with `cargo test` and reads libtest's output.
//!
//! One cargo invocation per lab. stdout and stderr go into one pipe so the
//! order is kept: cargo's `Running tests/<target>.rs (...)` line (stderr) says
//! which target the following libtest lines (stdout) belong to. libtest runs
//! with `--show-output`, which prints every test's captured output in a
//! `---- <name> stdout ----` block after the results; that is where a test's
//! `kubelings: skipped: <reason>` line and a failing test's panic message are
//! found, whole and in order even when tests run in parallel (unlike
//! `--nocapture`, which interleaves them).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::manifest::TestRef;

/// The line a self-check prints when it cannot run on this machine.
pub const SKIP_PREFIX: &str = "kubelings: skipped:";

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
}

/// What to run: `cargo test -p <package> --test <target>... -- <filters>...`.
#[derive(Debug, Clone, Default)]
pub struct TestRun {
    /// The workspace to run cargo in.
    pub dir: PathBuf,
    pub package: String,
    pub targets: Vec<String>,
    /// libtest name filters (substring match): only these tests run.
    pub filters: Vec<String>,
    pub env: Vec<(String, String)>,
    pub target_dir: Option<PathBuf>,
}

impl TestRun {
    /// The arguments; `full` adds the flags only the parser needs.
    fn cargo_args(&self, full: bool) -> Vec<String> {
        let mut args: Vec<String> = vec!["test".into(), "-p".into(), self.package.clone()];
        if full {
            args.extend(["--no-fail-fast".into(), "--color".into(), "never".into()]);
        }
        for t in &self.targets {
            args.push("--test".into());
            args.push(t.clone());
        }
        args.push("--".into());
        if full {
            args.extend(["--show-output".into(), "--color".into(), "never".into()]);
        }
        args.extend(self.filters.iter().cloned());
        args
    }

    /// The command as a person would type it to rerun the tests.
    pub fn display(&self) -> String {
        let mut s = String::from("cargo");
        for a in self.cargo_args(false) {
            s.push(' ');
            s.push_str(&a);
        }
        s
    }

    /// Runs cargo; `on_line` sees every output line as it arrives (for
    /// progress display).
    pub fn run(&self, mut on_line: impl FnMut(&str)) -> Result<RunReport, RunnerError> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(self.cargo_args(true))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            // --nocapture would interleave test output and defeat the parser.
            .env_remove("RUST_TEST_NOCAPTURE")
            .env_remove("CARGO_TERM_COLOR");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.target_dir {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        let spawn_err = |source| RunnerError::Spawn {
            command: self.display(),
            source,
        };
        let (reader, writer) = pipe().map_err(spawn_err)?;
        let writer2 = writer.try_clone().map_err(spawn_err)?;
        cmd.stdout(Stdio::from(writer)).stderr(Stdio::from(writer2));
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // Our copies of the write end must close, or the reader never sees EOF.
        drop(cmd);

        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(std::fs::File::from(reader));
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut buf) {
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buf);
                if tx
                    .send(line.trim_end_matches(['\n', '\r']).to_string())
                    .is_err()
                {
                    break;
                }
                buf.clear();
            }
        });

        let mut log = String::new();
        let mut exited: Option<Instant> = None;
        let status = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    on_line(&line);
                    log.push_str(&line);
                    log.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break child.wait(),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // A process a test left running may hold the pipe open
                    // after cargo exits: stop reading shortly after that.
                    if let Some(status) = child.try_wait().transpose() {
                        let at = *exited.get_or_insert_with(Instant::now);
                        if at.elapsed() > Duration::from_secs(2) {
                            break status;
                        }
                    }
                }
            }
        }
        .map_err(spawn_err)?;
        Ok(RunReport::from_log(log, status.success()))
    }
}

#[cfg(target_os = "linux")]
fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    // O_CLOEXEC: the children get the write end only as their stdout/stderr.
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe().map_err(std::io::Error::from)
}

/// What libtest said about one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub outcome: Outcome,
    /// The test's captured output (its `---- name stdout ----` block).
    pub output: Vec<String>,
}

/// What one exercise test amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The first lines of the panic message.
    Fail(String),
    /// The reason the test printed.
    Skipped(String),
    Ignored,
    /// No result at all: the build failed, or the test binary died.
    NotRun(String),
}

/// Everything one cargo invocation produced.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub success: bool,
    /// Keyed by (test target, libtest test name).
    pub results: BTreeMap<(String, String), TestResult>,
    /// Set when cargo failed before any test ran: the compiler's errors.
    pub build_error: Option<String>,
    /// The whole output.
    pub log: String,
}

impl RunReport {
    pub fn from_log(log: String, success: bool) -> RunReport {
        let (results, ran) = parse(&log);
        let build_error = if success {
            None
        } else if log.contains("error: could not compile") || !ran {
            Some(build_errors(&log))
        } else {
            None
        };
        RunReport {
            success,
            results,
            build_error,
            log,
        }
    }

    /// Finds the result for a manifest test: the exact name, or a test whose
    /// path ends with `::<name>` (the fn sits in a module).
    pub fn result(&self, t: &TestRef) -> Option<&TestResult> {
        let suffix = format!("::{}", t.name);
        self.results
            .get(&(t.target.clone(), t.name.clone()))
            .or_else(|| {
                self.results
                    .iter()
                    .find(|((target, name), _)| *target == t.target && name.ends_with(&suffix))
                    .map(|(_, r)| r)
            })
    }

    pub fn verdict(&self, t: &TestRef) -> Verdict {
        let Some(result) = self.result(t) else {
            return Verdict::NotRun(match &self.build_error {
                Some(_) => "the build failed".to_string(),
                None => format!(
                    "no result for {}::{}: no such test, or its test binary crashed",
                    t.target, t.name
                ),
            });
        };
        let skip = result
            .output
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(SKIP_PREFIX));
        match (result.outcome, skip) {
            (Outcome::Ok, Some(reason)) => Verdict::Skipped(reason.trim().to_string()),
            (Outcome::Ok, None) => Verdict::Pass,
            (Outcome::Ignored, _) => Verdict::Ignored,
            (Outcome::Failed, _) => Verdict::Fail(panic_message(&result.output)),
        }
    }
}

/// The first lines of a failed test's output, from its panic on.
pub fn panic_message(output: &[String]) -> String {
    const MAX_LINES: usize = 8;
    let start = output
        .iter()
        .position(|l| l.starts_with("thread '") && l.contains("panicked"))
        .unwrap_or(0);
    let lines: Vec<&str> = output[start..]
        .iter()
        .map(String::as_str)
        .take_while(|l| *l != "stack backtrace:")
        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .take(MAX_LINES)
        .collect();
    let msg = lines.join("\n").trim().to_string();
    if msg.is_empty() {
        "(the test printed nothing)".to_string()
    } else {
        msg
    }
}

fn target_of_running_line(line: &str) -> Option<String> {
    // "     Running tests/limits.rs (target/debug/deps/limits-0f3c)"
    let rest = line.trim_start().strip_prefix("Running ")?;
    let path = rest.split(" (").next()?.trim();
    let stem = Path::new(path).file_stem()?.to_string_lossy().into_owned();
    Some(stem)
}

fn stdout_header(line: &str) -> Option<&str> {
    line.strip_prefix("---- ")?.strip_suffix(" stdout ----")
}

/// Parses cargo + libtest output into per-test results; also says whether
/// any test binary ran at all.
pub fn parse(log: &str) -> (BTreeMap<(String, String), TestResult>, bool) {
    let mut results: BTreeMap<(String, String), TestResult> = BTreeMap::new();
    let mut target = String::new();
    let mut ran = false;
    // (test name, lines) of the output block being read.
    let mut block: Option<(String, Vec<String>)> = None;
    // Inside the closing `successes:` / `failures:` name lists.
    let mut list: Option<Outcome> = None;

    let finish =
        |block: &mut Option<(String, Vec<String>)>, target: &str, results: &mut BTreeMap<_, _>| {
            if let Some((name, mut lines)) = block.take() {
                while lines.last().is_some_and(|l: &String| l.trim().is_empty()) {
                    lines.pop();
                }
                while lines.first().is_some_and(|l: &String| l.trim().is_empty()) {
                    lines.remove(0);
                }
                let entry = results
                    .entry((target.to_string(), name))
                    .or_insert(TestResult {
                        outcome: Outcome::Failed,
                        output: Vec::new(),
                    });
                entry.output = lines;
            }
        };

    for line in log.lines() {
        if let Some(t) = target_of_running_line(line) {
            finish(&mut block, &target, &mut results);
            target = t;
            ran = true;
            list = None;
            continue;
        }
        if let Some(name) = stdout_header(line) {
            finish(&mut block, &target, &mut results);
            block = Some((name.to_string(), Vec::new()));
            continue;
        }
        if line == "successes:" || line == "failures:" || line.starts_with("test result: ") {
            finish(&mut block, &target, &mut results);
            list = match line {
                "successes:" => Some(Outcome::Ok),
                "failures:" => Some(Outcome::Failed),
                _ => None,
            };
            continue;
        }
        if let Some((_, lines)) = &mut block {
            lines.push(line.to_string());
            continue;
        }
        if let Some((name, outcome)) = result_line(line) {
            results
                .entry((target.clone(), name.to_string()))
                .and_modify(|r| r.outcome = outcome)
                .or_insert(TestResult {
                    outcome,
                    output: Vec::new(),
                });
            continue;
        }
        // The closing lists of passed and failed tests, in case a result
        // line was garbled by a child process writing to the terminal.
        if let Some(outcome) = list {
            if let Some(name) = line.strip_prefix("    ") {
                let name = name.trim();
                if !name.is_empty() && !name.contains(' ') {
                    results
                        .entry((target.clone(), name.to_string()))
                        .and_modify(|r| r.outcome = outcome)
                        .or_insert(TestResult {
                            outcome,
                            output: Vec::new(),
                        });
                }
            }
        }
    }
    finish(&mut block, &target, &mut results);
    (results, ran)
}

/// `test <name> ... ok|FAILED|ignored[, reason]`. Output of a child process
/// may stand before `test` on the same line; test names have no spaces.
fn result_line(line: &str) -> Option<(&str, Outcome)> {
    let (left, result) = line.rsplit_once(" ... ")?;
    let (before, name) = left.rsplit_once(' ')?;
    if !before.ends_with("test") || name.is_empty() {
        return None;
    }
    let result = result.trim();
    let outcome = if result == "ok" {
        Outcome::Ok
    } else if result == "FAILED" {
        Outcome::Failed
    } else if result.starts_with("ignored") {
        Outcome::Ignored
    } else {
        return None;
    };
    Some((name, outcome))
}

/// The compiler's error messages from a failed build: each `error...` block
/// up to the blank line that ends it, capped so a cascade stays readable.
pub fn build_errors(log: &str) -> String {
    const MAX_LINES: usize = 60;
    let mut out: Vec<&str> = Vec::new();
    let mut in_error = false;
    let mut more = 0usize;
    for line in log.lines() {
        if line.starts_with("error") {
            in_error = true;
        } else if line.trim().is_empty() || line.starts_with("warning") {
            if in_error && out.len() < MAX_LINES {
                out.push("");
            }
            in_error = false;
            continue;
        }
        if in_error {
            if out.len() < MAX_LINES {
                out.push(line);
            } else if line.starts_with("error") {
                more += 1;
            }
        }
    }
    let mut summary = out.join("\n").trim().to_string();
    if more > 0 {
        summary.push_str(&format!("\n... and {more} more error lines"));
    }
    if summary.is_empty() {
        // Not a compiler error we recognise: show the end of the output.
        let lines: Vec<&str> = log.lines().collect();
        summary = lines[lines.len().saturating_sub(20)..].join("\n");
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "   Compiling lab01 v0.1.0 (/w/labs/lab01-isolation)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 1.20s
     Running tests/limits.rs (target/debug/deps/limits-0f3c)

running 3 tests
test parses_sizes_with_units ... ok
test units::rejects_bad_sizes ... FAILED
test needs_root ... ok

successes:

---- needs_root stdout ----
SKIP: needs root (run the tests with sudo -E)
kubelings: skipped: needs root (run the tests with sudo -E)


successes:
    needs_root
    parses_sizes_with_units

failures:

---- units::rejects_bad_sizes stdout ----

thread 'units::rejects_bad_sizes' panicked at labs/lab01-isolation/tests/limits.rs:12:5:
not yet implemented: lab01-parse-size: Parse a memory size such as 64M (book §1.5)
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    units::rejects_bad_sizes

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: test failed, to rerun pass `-p lab01 --test limits`
     Running tests/other.rs (target/debug/deps/other-1234)

running 1 test
test parses_sizes_with_units ... ignored, slow

test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: 1 target failed:
    `-p lab01 --test limits`
";

    fn t(s: &str) -> TestRef {
        TestRef::parse(s).unwrap()
    }

    #[test]
    fn maps_results_to_targets() {
        let report = RunReport::from_log(LOG.to_string(), false);
        assert_eq!(report.build_error, None);
        assert_eq!(
            report.verdict(&t("lab01::limits::parses_sizes_with_units")),
            Verdict::Pass
        );
        assert_eq!(
            report.verdict(&t("lab01::limits::rejects_bad_sizes")),
            Verdict::Fail(
                "thread 'units::rejects_bad_sizes' panicked at labs/lab01-isolation/tests/limits.rs:12:5:\n\
                 not yet implemented: lab01-parse-size: Parse a memory size such as 64M (book §1.5)"
                    .into()
            )
        );
        assert_eq!(
            report.verdict(&t("lab01::limits::needs_root")),
            Verdict::Skipped("needs root (run the tests with sudo -E)".into())
        );
        assert_eq!(
            report.verdict(&t("lab01::other::parses_sizes_with_units")),
            Verdict::Ignored
        );
        assert!(matches!(
            report.verdict(&t("lab01::limits::nope")),
            Verdict::NotRun(_)
        ));
    }

    #[test]
    fn survives_child_output_on_result_lines() {
        let log = "     Running tests/cgroups.rs (target/debug/deps/cgroups-1)
test a ... ok
Cannot forktest fork_bomb ... ok
test slow ... Cannot fork
ok
test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
";
        let (results, ran) = parse(log);
        assert!(ran);
        let outcome = |n: &str| {
            results
                .get(&("cgroups".to_string(), n.to_string()))
                .map(|r| r.outcome)
        };
        assert_eq!(outcome("a"), Some(Outcome::Ok));
        assert_eq!(outcome("fork_bomb"), Some(Outcome::Ok));
        // Garbled beyond repair without --show-output's closing list.
        assert_eq!(outcome("slow"), None);
        let with_list = format!("{log}\nsuccesses:\n    a\n    fork_bomb\n    slow\n");
        let (results, _) = parse(&with_list);
        assert_eq!(
            results
                .get(&("cgroups".to_string(), "slow".to_string()))
                .map(|r| r.outcome),
            Some(Outcome::Ok)
        );
    }

    #[test]
    fn reports_build_failures() {
        let log = "   Compiling lab01 v0.1.0 (/w/labs/lab01-isolation)
warning: unused variable: `x`
 --> labs/lab01-isolation/src/lib.rs:3:9
  |

error[E0308]: mismatched types
 --> labs/lab01-isolation/src/lib.rs:9:5
  |
9 |     1
  |     ^ expected `u64`, found `i32`

error: could not compile `lab01` (lib) due to 1 previous error
";
        let report = RunReport::from_log(log.to_string(), false);
        let err = report.build_error.clone().unwrap();
        assert!(err.starts_with("error[E0308]: mismatched types"), "{err}");
        assert!(err.contains("could not compile"), "{err}");
        assert!(!err.contains("unused variable"), "{err}");
        assert_eq!(
            report.verdict(&t("lab01::limits::x")),
            Verdict::NotRun("the build failed".into())
        );
    }

    #[test]
    fn builds_the_command_line() {
        let run = TestRun {
            package: "lab01".into(),
            targets: vec!["limits".into()],
            filters: vec!["parses".into()],
            ..TestRun::default()
        };
        assert_eq!(run.display(), "cargo test -p lab01 --test limits -- parses");
    }
}
