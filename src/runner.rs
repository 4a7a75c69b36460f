//! Builds a lab's tests with cargo and runs them one at a time.
//!
//! Building: `cargo test --no-run --message-format=json -p <lab> --test …`,
//! as the invoking user. Cargo's JSON messages name each test executable
//! (`compiler-artifact` with `profile.test`) and carry the compiler's own
//! rendering of each error (`compiler-message`), so nothing here reads
//! cargo's or libtest's human output.
//!
//! Running: each exercise test is its own process, `<exe> --exact <name>`,
//! judged by its exit status, in its own process group so a timeout (or a
//! Ctrl-C) kills everything it started. A test that cannot run on this
//! machine says so by appending to the skip log named by
//! `KUBELINGS_SKIP_LOG` (see `kubelings_probe::require`), which is read
//! back after the test exits.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use kubelings_probe::SKIP_LOG_ENV;

/// How long one test process may run unless the manifest says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot make a skip log: {0}")]
    SkipLog(#[source] std::io::Error),
}

/// The cargo program: the one running us (`cargo run`) or `cargo` on PATH.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// What to build: `cargo test --no-run -p <package> --test <target>…`.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// The workspace to run cargo in.
    pub dir: PathBuf,
    pub package: String,
    /// The test targets (`tests/<name>.rs`); none means all (`--tests`).
    pub targets: Vec<String>,
    pub target_dir: Option<PathBuf>,
    /// More environment for cargo (profile settings).
    pub env: Vec<(String, String)>,
    /// `cargo check` instead of building: proves it compiles, makes nothing
    /// to run.
    pub check_only: bool,
    /// Echo cargo's `Compiling …` lines to stderr, so a long build shows
    /// that it moves.
    pub progress: bool,
}

/// One error or warning from the compiler, as it renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: String,
    pub rendered: String,
    /// The files of its primary spans, as the compiler names them
    /// (relative to the workspace root for workspace members).
    pub files: Vec<PathBuf>,
}

/// What a build produced.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub success: bool,
    /// Test target name -> its test executable.
    pub executables: BTreeMap<String, PathBuf>,
    /// The compiler's errors, in the order it gave them.
    pub errors: Vec<Diagnostic>,
    /// Cargo's own error lines (a broken Cargo.toml has no compiler message).
    pub cargo_errors: Vec<String>,
}

impl Build {
    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = if self.check_only {
            vec!["check".into()]
        } else {
            vec!["test".into(), "--no-run".into()]
        };
        args.extend(["-p".into(), self.package.clone()]);
        for t in &self.targets {
            args.push("--test".into());
            args.push(t.clone());
        }
        if self.targets.is_empty() {
            args.push("--tests".into());
        }
        args
    }

    /// The command as a person would type it.
    pub fn display(&self) -> String {
        format!("cargo {}", self.args().join(" "))
    }

    pub fn run(&self) -> Result<Built, RunnerError> {
        let mut cmd = Command::new(cargo());
        cmd.args(self.args())
            .args(["--message-format=json", "--color", "never"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &self.target_dir {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let spawn_err = |source| RunnerError::Spawn {
            command: self.display(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let stderr = child.stderr.take();
        let progress = self.progress;
        let stderr_thread = std::thread::spawn(move || {
            let mut errors = Vec::new();
            let Some(stderr) = stderr else {
                return errors;
            };
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let trimmed = line.trim_start();
                if progress && trimmed.starts_with("Compiling ") {
                    eprintln!("  {trimmed}");
                }
                if trimmed.starts_with("error") || trimmed.starts_with("Caused by") {
                    errors.push(line);
                } else if !errors.is_empty() && !trimmed.is_empty() && line.starts_with(' ') {
                    // The indented lines that go with an error.
                    errors.push(line);
                }
            }
            errors
        });
        let mut built = Built::default();
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                built.take_message(&line);
            }
        }
        let status = child.wait().map_err(spawn_err)?;
        built.cargo_errors = stderr_thread.join().unwrap_or_default();
        built.success = status.success();
        Ok(built)
    }
}

impl Built {
    /// Takes in one line of cargo's JSON output.
    pub fn take_message(&mut self, line: &str) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        match msg["reason"].as_str() {
            Some("compiler-artifact") => {
                let is_test = msg["profile"]["test"].as_bool() == Some(true);
                let kinds = msg["target"]["kind"].as_array();
                let is_test_target = kinds.is_some_and(|k| k.iter().any(|k| k == "test"));
                if let (true, true, Some(exe), Some(name)) = (
                    is_test,
                    is_test_target,
                    msg["executable"].as_str(),
                    msg["target"]["name"].as_str(),
                ) {
                    self.executables
                        .insert(name.to_string(), PathBuf::from(exe));
                }
            }
            Some("compiler-message") => {
                let m = &msg["message"];
                let level = m["level"].as_str().unwrap_or_default();
                if !level.starts_with("error") {
                    return;
                }
                let files = m["spans"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["is_primary"].as_bool() == Some(true))
                    .filter_map(|s| s["file_name"].as_str())
                    .map(PathBuf::from)
                    .collect();
                let rendered = m["rendered"].as_str().unwrap_or_default();
                self.errors.push(Diagnostic {
                    level: level.to_string(),
                    rendered: rendered.trim_end().to_string(),
                    files,
                });
            }
            _ => {}
        }
    }

    /// The errors to show a person: those in `prefer` (the exercise's
    /// files) first, at most `max` of them, then how many more there are.
    /// Falls back on cargo's own error lines when the compiler said nothing.
    pub fn error_report(&self, prefer: &[PathBuf], max: usize) -> String {
        // "aborting due to…" has no span and says nothing a person needs.
        let errors: Vec<&Diagnostic> = self.errors.iter().filter(|d| !d.files.is_empty()).collect();
        if errors.is_empty() {
            if let Some(d) = self.errors.first() {
                return d.rendered.clone();
            }
            return match self.cargo_errors.is_empty() {
                true => "cargo failed without saying why".to_string(),
                false => self.cargo_errors.join("\n"),
            };
        }
        let in_prefer = |d: &&Diagnostic| {
            d.files.iter().any(|f| {
                prefer
                    .iter()
                    .any(|p| f == p || f.ends_with(p) || p.ends_with(f))
            })
        };
        let mut ordered: Vec<&Diagnostic> = errors.iter().copied().filter(in_prefer).collect();
        ordered.extend(errors.iter().copied().filter(|d| !in_prefer(d)));
        let mut out: Vec<&str> = ordered
            .iter()
            .take(max)
            .map(|d| d.rendered.as_str())
            .collect();
        let more = ordered.len().saturating_sub(max);
        let tail = format!("... and {more} more errors");
        if more > 0 {
            out.push(&tail);
        }
        out.join("\n\n")
    }
}

/// One test executable and the tests in it, as it lists them.
#[derive(Debug, Clone)]
pub struct Exe {
    pub path: PathBuf,
    pub tests: Vec<String>,
    pub ignored: Vec<String>,
}

impl Exe {
    /// Asks the executable for its tests (`--list --format terse`, a format
    /// made for machines: `<name>: test` per line).
    pub fn list(path: &Path) -> Result<Exe, RunnerError> {
        let list = |ignored: bool| -> Result<Vec<String>, RunnerError> {
            let mut cmd = Command::new(path);
            cmd.args(["--list", "--format", "terse"]);
            if ignored {
                cmd.arg("--ignored");
            }
            let out = cmd
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map_err(|source| RunnerError::Spawn {
                    command: format!("{} --list", path.display()),
                    source,
                })?;
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_suffix(": test"))
                .map(str::to_string)
                .collect())
        };
        Ok(Exe {
            path: path.to_path_buf(),
            tests: list(false)?,
            ignored: list(true)?,
        })
    }

    /// The full name of the test a manifest names: the exact name, or the
    /// one test whose path ends in `::<name>` (the fn sits in a module).
    pub fn resolve(&self, name: &str) -> Option<&str> {
        if let Some(t) = self.tests.iter().find(|t| *t == name) {
            return Some(t);
        }
        let suffix = format!("::{name}");
        let mut found = self.tests.iter().filter(|t| t.ends_with(&suffix));
        match (found.next(), found.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
    }
}

/// How to run one test.
#[derive(Debug, Clone)]
pub struct TestRun {
    pub exe: PathBuf,
    /// The test's full name, as the executable lists it.
    pub name: String,
    /// Where the test runs: its package's directory, as under cargo test.
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Run the executable through `sudo -n -E` (the caller has asked for
    /// the password first).
    pub sudo: bool,
}

/// What one test amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The first lines of the panic message.
    Fail(String),
    /// The reason the test gave.
    Skipped(String),
    Ignored,
    /// Killed after this many seconds.
    TimedOut(u64),
    /// It did not run at all: the build failed, no such test, no sudo…
    NotRun(String),
}

/// A test's verdict and everything it printed.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub verdict: Verdict,
    pub output: String,
    pub duration: Duration,
}

impl TestRun {
    fn argv(&self) -> Vec<std::ffi::OsString> {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if self.sudo {
            argv.extend(["sudo".into(), "-n".into(), "-E".into()]);
        }
        argv.push(self.exe.clone().into());
        // --nocapture: the output comes in the order it was written, the
        // test's and that of the processes it starts alike.
        argv.extend([
            self.name.clone().into(),
            "--exact".into(),
            "--nocapture".into(),
            "--test-threads=1".into(),
            "--color=never".into(),
        ]);
        argv
    }

    pub fn run(&self) -> Result<TestResult, RunnerError> {
        let argv = self.argv();
        let display = argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let spawn_err = |source| RunnerError::Spawn {
            command: display.clone(),
            source,
        };
        let log = tempfile::Builder::new()
            .prefix("kubelings-skips-")
            .tempfile()
            .map_err(RunnerError::SkipLog)?;
        // Tests run through sudo write to it as root.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(log.path(), std::fs::Permissions::from_mode(0o666))
                .map_err(RunnerError::SkipLog)?;
        }

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .env(SKIP_LOG_ENV, log.path())
            .env("CARGO_MANIFEST_DIR", &self.cwd)
            .env_remove("RUST_TEST_THREADS");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let (reader, writer) = pipe().map_err(spawn_err)?;
        let writer2 = writer.try_clone().map_err(spawn_err)?;
        cmd.stdout(Stdio::from(writer)).stderr(Stdio::from(writer2));
        own_process_group(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // Our copies of the write end must close, or the reader never sees EOF.
        drop(cmd);
        let group = i32::try_from(child.id()).unwrap_or(0);
        let _guard = guard::Running::new(group);

        // Shared, so what was read is kept even if the reader is given up on.
        let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = std::sync::Arc::clone(&collected);
        let output_thread = std::thread::spawn(move || {
            // Enough to show a failure; a test that floods is cut.
            const MAX: usize = 1 << 20;
            let mut file = std::fs::File::from(reader);
            let mut chunk = [0u8; 8192];
            loop {
                match file.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut buf) = sink.lock() {
                            // Past MAX, keep draining so the test never
                            // blocks on a full pipe.
                            let room = MAX.saturating_sub(buf.len()).min(n);
                            buf.extend_from_slice(&chunk[..room]);
                        }
                    }
                }
            }
        });

        let status = wait_with_timeout(&mut child, group, self.timeout).map_err(spawn_err)?;
        // Whatever the test left running goes with it.
        kill_group(group);
        let duration = started.elapsed();
        // A process that escaped the group may hold the pipe open: give up
        // on the rest of its output after a moment.
        join_for(output_thread, Duration::from_secs(2));
        let output = collected
            .lock()
            .map(|buf| String::from_utf8_lossy(&buf).into_owned())
            .unwrap_or_default();
        let skips = read_skip_log(log.path());

        let verdict = match status {
            None => Verdict::TimedOut(self.timeout.as_secs()),
            Some(s) if s.success() => match skips.first() {
                Some((_, reason)) => Verdict::Skipped(reason.clone()),
                None => Verdict::Pass,
            },
            Some(s) => {
                if self.sudo && s.code() == Some(1) && output.contains("sudo:") {
                    Verdict::NotRun(format!("sudo refused: {}", output.trim()))
                } else {
                    Verdict::Fail(failure_message(&output, s))
                }
            }
        };
        Ok(TestResult {
            verdict,
            output,
            duration,
        })
    }
}

/// Waits for the child; None if it ran out of time (it is killed then).
fn wait_with_timeout(
    child: &mut std::process::Child,
    group: i32,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            kill_group(group);
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn join_for<T: Send + 'static>(handle: std::thread::JoinHandle<T>, limit: Duration) -> Option<T> {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.join().ok()
}

/// The skips a test logged: (test name, reason).
pub fn read_skip_log(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, why)| (name.to_string(), why.trim().to_string()))
        .collect()
}

/// Why a test failed, for a person: the panic message, or how it died.
fn failure_message(output: &str, status: ExitStatus) -> String {
    let lines: Vec<String> = output.lines().map(str::to_string).collect();
    let panic = panic_message(&lines);
    if panic.is_some() {
        return panic.unwrap_or_default();
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| sig.to_string());
            return format!("the test process was killed by {name}{}", tail(&lines));
        }
    }
    format!("the test process exited with {status}{}", tail(&lines))
}

fn tail(lines: &[String]) -> String {
    let keep: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty())
        .collect();
    if keep.is_empty() {
        return String::new();
    }
    format!(
        "; its last words:\n{}",
        keep[keep.len().saturating_sub(8)..].join("\n")
    )
}

/// The first lines of a failed test's panic, if it panicked.
pub fn panic_message(output: &[String]) -> Option<String> {
    const MAX_LINES: usize = 8;
    let start = output
        .iter()
        .position(|l| l.contains("thread '") && l.contains("panicked"))?;
    let lines: Vec<&str> = output[start..]
        .iter()
        .map(String::as_str)
        .take_while(|l| *l != "stack backtrace:" && !l.starts_with("test result: "))
        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .take(MAX_LINES)
        .collect();
    let msg = lines.join("\n").trim().to_string();
    Some(msg)
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

#[cfg(unix)]
fn own_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

#[cfg(not(unix))]
fn own_process_group(_cmd: &mut Command) {}

/// SIGKILL to the whole process group (the test and all it started).
#[cfg(unix)]
pub fn kill_group(group: i32) {
    if group > 0 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(not(unix))]
pub fn kill_group(_group: i32) {}

/// Builds one binary in release mode (`cargo build --release --bin`), as
/// the user, and returns its path.
pub fn build_bin(dir: &Path, bin: &str) -> Result<PathBuf, RunnerError> {
    let args = ["build", "--quiet", "--release", "--bin", bin];
    let command = format!("cargo {}", args.join(" "));
    let out = Command::new(cargo())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| RunnerError::Spawn {
            command: command.clone(),
            source,
        })?;
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    match exe {
        Some(exe) if out.status.success() => Ok(exe),
        _ => Err(RunnerError::Spawn {
            command,
            source: std::io::Error::other(format!("it made no `{bin}` ({})", out.status)),
        }),
    }
}

/// Whether `program` is on PATH.
pub fn have_program(program: &str) -> bool {
    kubelings_probe::find_program(program).is_some()
}

/// Asks for the sudo password once, in the foreground (a test in its own
/// process group could not read the terminal), so that the tests can then
/// run through `sudo -n`.
pub fn sudo_validate() -> Result<(), String> {
    match Command::new("sudo").arg("-v").status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`sudo -v` failed ({s})")),
        Err(e) => Err(format!("cannot run sudo: {e}")),
    }
}

/// Kills the running test's process group if kubelings itself is stopped
/// (Ctrl-C, a closed terminal): the group is not the terminal's, so the
/// signal would not reach it.
mod guard {
    use std::sync::atomic::{AtomicI32, Ordering};

    static GROUP: AtomicI32 = AtomicI32::new(0);

    pub struct Running;

    impl Running {
        pub fn new(group: i32) -> Running {
            install();
            GROUP.store(group, Ordering::SeqCst);
            Running
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            GROUP.store(0, Ordering::SeqCst);
        }
    }

    #[cfg(unix)]
    extern "C" fn on_signal(sig: libc::c_int) {
        let group = GROUP.load(Ordering::SeqCst);
        // SAFETY: kill, signal and raise are async-signal-safe; the handler
        // touches nothing else but an atomic.
        unsafe {
            if group > 0 {
                libc::kill(-group, libc::SIGKILL);
            }
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    #[cfg(unix)]
    fn install() {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let action = SigAction::new(
                SigHandler::Handler(on_signal),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
                // SAFETY: the handler only calls async-signal-safe functions
                // (see on_signal), and it replaces no handler of ours.
                let _ = unsafe { sigaction(sig, &action) };
            }
        });
    }

    #[cfg(not(unix))]
    fn install() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_executables_and_errors_from_cargo_json() {
        let mut built = Built::default();
        for line in [
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"lab01"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"limits"},"profile":{"test":true},"executable":"/t/debug/deps/limits-1"}"#,
            r#"{"reason":"compiler-message","message":{"level":"warning","rendered":"warning: unused","spans":[{"file_name":"labs/l/src/a.rs","is_primary":true}]}}"#,
            r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error[E0308]: other\n","spans":[{"file_name":"labs/l/src/other.rs","is_primary":true}]}}"#,
            r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error: expected `;`\n","spans":[{"file_name":"labs/l/src/limits.rs","is_primary":true}]}}"#,
            r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error: aborting due to 2 previous errors\n","spans":[]}}"#,
            "not json",
            r#"{"reason":"build-finished","success":false}"#,
        ] {
            built.take_message(line);
        }
        assert_eq!(
            built.executables,
            BTreeMap::from([(
                "limits".to_string(),
                PathBuf::from("/t/debug/deps/limits-1")
            )])
        );
        assert_eq!(built.errors.len(), 3);
        let report = built.error_report(&[PathBuf::from("labs/l/src/limits.rs")], 5);
        assert_eq!(report, "error: expected `;`\n\nerror[E0308]: other");
        let report = built.error_report(&[], 1);
        assert_eq!(report, "error[E0308]: other\n\n... and 1 more errors");
    }

    #[test]
    fn without_compiler_errors_shows_cargos() {
        let built = Built {
            cargo_errors: vec!["error: failed to parse manifest".into()],
            ..Built::default()
        };
        assert_eq!(
            built.error_report(&[], 3),
            "error: failed to parse manifest"
        );
    }

    #[test]
    fn finds_the_panic() {
        let lines: Vec<String> = "running 1 test\nsome output\nthread 'a::b' panicked at x.rs:1:1:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\ntest a::b ... FAILED\n\nfailures:\n"
            .lines()
            .map(str::to_string)
            .collect();
        let msg = panic_message(&lines).unwrap();
        assert!(
            msg.starts_with("thread 'a::b' panicked at x.rs:1:1:\nboom"),
            "{msg}"
        );
        assert!(!msg.contains("RUST_BACKTRACE"), "{msg}");
        assert_eq!(panic_message(&lines[..2]), None);
    }

    #[test]
    fn resolves_names_in_modules() {
        let exe = Exe {
            path: PathBuf::new(),
            tests: vec!["a".into(), "m::b".into(), "m::c".into(), "n::c".into()],
            ignored: vec![],
        };
        assert_eq!(exe.resolve("a"), Some("a"));
        assert_eq!(exe.resolve("b"), Some("m::b"));
        assert_eq!(exe.resolve("m::c"), Some("m::c"));
        assert_eq!(exe.resolve("c"), None);
        assert_eq!(exe.resolve("zz"), None);
    }

    #[test]
    fn reads_the_skip_log() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "t1\tneeds root\nbad line\nm::t2\tno runc \n").unwrap();
        assert_eq!(
            read_skip_log(f.path()),
            vec![
                ("t1".to_string(), "needs root".to_string()),
                ("m::t2".to_string(), "no runc".to_string())
            ]
        );
    }
}
