//! End-to-end tests of the `kubelings` binary. Those that make it run
//! cargo (`check`, `verify`, the main job) use a tiny fixture workbook with
//! its own CARGO_TARGET_DIR: a cargo inside `cargo test` on the same target
//! dir would wait on the build lock forever. The real labs are checked by
//! CI's `kubelings verify`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kubelings::manifest::{Exercise, Manifest};
use predicates::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubelings(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubelings"));
    cmd.current_dir(dir).env_remove("CI");
    cmd
}

fn manifest() -> Manifest {
    Manifest::load(&root()).expect("labs/exercises.yaml loads")
}

fn parse_size() -> Exercise {
    manifest()
        .get("lab01-parse-size")
        .cloned()
        .expect("lab01-parse-size is in the manifest")
}

/// A fresh student workspace, so tests that record progress leave the
/// repository's own `.kubelings/` alone.
fn exported() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    kubelings(&root()).arg("start").arg(&ws).assert().success();
    (tmp, ws)
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file under `dir` holding `// EXERCISE: id`, and its text.
fn file_with_marker(dir: &Path, id: &str) -> (PathBuf, String) {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let marker = format!("// EXERCISE: {id}");
    files
        .into_iter()
        .find_map(|f| {
            let text = std::fs::read_to_string(&f).ok()?;
            text.lines()
                .any(|l| l.trim() == marker)
                .then_some((f, text))
        })
        .unwrap_or_else(|| {
            panic!("no file under {} has `{marker}`", dir.display())
        })
}

/// The lines of a file that are not between exercise markers.
fn outside_regions(text: &str) -> Vec<&str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("// EXERCISE_END:") {
            inside = false;
        }
        if !inside {
            out.push(line);
        }
        if t.starts_with("// EXERCISE:") {
            inside = true;
        }
    }
    out
}

#[test]
fn list_shows_exercises_and_what_to_do_next() {
    let m = manifest();
    kubelings(&root()).arg("list").assert().success();
    // In a fresh workspace nothing is done, so there is a next exercise.
    let (_tmp, ws) = exported();
    let assert = kubelings(&ws).arg("list").assert().success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for e in &m.exercises {
        assert!(out.contains(&e.id), "list lacks {}:\n{out}", e.id);
    }
    let first = &m.exercises[0];
    assert!(out.contains("not yet checked"), "{out}");
    assert!(out.contains(&format!("Next: {}", first.title)), "{out}");
    assert!(out.contains(&format!("§{}", first.section)), "{out}");
    assert!(
        out.contains(&format!("kubelings check {}", first.id)),
        "{out}"
    );
}

#[test]
fn no_command_means_list_then_the_demo() {
    let fx = Fixture::new(FIXTURE_LIB);
    let root = kubelings_probe::probe().is_root;
    let assert = fx.kubelings().assert().success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    // The list, then the demo and what it printed: as root chapter 5's
    // tour (`cargo run --release --bin ch05 -- tour`), else what the tour
    // needs and chapter 1's demo (`… --bin ch01 -- compare`).
    let list = out.find("Next: Double a number (labx-double)");
    let (title, printed, bin) = if root {
        ("Chapter 5's tour", "demo: tour ran", "ch05")
    } else {
        assert!(out.contains("needs root"), "{out}");
        ("Chapter 1's demo", "demo: compare ran", "ch01")
    };
    let demo = out.find(title);
    let printed = out.find(printed);
    assert!(list.is_some() && list < demo && demo < printed, "{out}");

    // A demo that fails says so, and so does the exit status.
    std::fs::write(
        fx.dir().join(format!("labs/labx/src/bin/{bin}.rs")),
        "fn main() { eprintln!(\"no containers today\"); std::process::exit(3) }\n",
    )
    .unwrap();
    fx.kubelings()
        .assert()
        .failure()
        .stdout(predicate::str::contains("could not run here"))
        .stdout(predicate::str::contains("kubelings doctor"))
        .stderr(predicate::str::contains("no containers today"));
}

#[test]
fn hint_prints_the_requested_level() {
    let e = parse_size();
    let (_tmp, ws) = exported();
    kubelings(&ws)
        .args(["hint", "lab01-parse-size", "--level", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&e.hints[0]))
        .stdout(predicate::str::contains(format!("§{}", e.section)))
        .stdout(predicate::str::contains(&e.hints[1]).not());
}

#[test]
fn hint_without_level_moves_to_the_next_one() {
    let e = parse_size();
    let (_tmp, ws) = exported();
    for expected in [&e.hints[0], &e.hints[1], &e.hints[2], &e.hints[2]] {
        kubelings(&ws)
            .args(["hint", "lab01-parse-size"])
            .assert()
            .success()
            .stdout(predicate::str::contains(expected.as_str()));
    }
    assert!(ws.join(".kubelings/progress.json").is_file());
}

#[test]
fn hint_level_out_of_range_is_refused() {
    let e = parse_size();
    let (_tmp, ws) = exported();
    for level in ["0", "4"] {
        kubelings(&ws)
            .args(["hint", "lab01-parse-size", "--level", level])
            .assert()
            // clap's usage error, naming the allowed range; no hint shown.
            .code(2)
            .stderr(predicate::str::contains(format!(
                "invalid value '{level}'"
            )))
            .stderr(predicate::str::contains("1..=3"))
            .stdout(predicate::str::contains(&e.hints[0]).not());
    }
    // Nothing was recorded as seen.
    assert!(!ws.join(".kubelings/progress.json").exists());
}

#[test]
fn unknown_exercise_is_a_clear_error() {
    kubelings(&root())
        .args(["hint", "no-such-exercise"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "unknown exercise `no-such-exercise`",
        ));
    kubelings(&root())
        .args(["check", "no-such-exercise"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "unknown exercise or lab `no-such-exercise`",
        ));
}

#[test]
fn outside_a_workbook_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    kubelings(tmp.path())
        .arg("list")
        .assert()
        .failure()
        .stderr(predicate::str::contains("labs/exercises.yaml"));
}

#[test]
fn start_replaces_every_exercise_with_a_todo() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    kubelings(&root())
        .arg("start")
        .arg(&ws)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("cd {}", ws.display())))
        .stdout(predicate::str::contains("cargo run -- list"));

    assert!(ws.join("Cargo.toml").is_file());
    assert!(ws.join("Cargo.lock").is_file());
    assert!(ws.join("labs/exercises.yaml").is_file());
    assert!(ws.join("src/main.rs").is_file());
    assert!(!ws.join("target").exists());
    assert!(!ws.join(".git").exists());

    for e in &manifest().exercises {
        let (reference_file, reference) =
            file_with_marker(&root().join("labs"), &e.id);
        let rel = reference_file.strip_prefix(root()).unwrap();
        let (starter_file, starter) = file_with_marker(&ws.join("labs"), &e.id);
        assert_eq!(starter_file.strip_prefix(&ws).unwrap(), rel);

        // The marker lines stay; exactly the todo! sits between them (and
        // any mdBook anchor lines, which are left alone).
        let lines: Vec<&str> = starter.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == format!("// EXERCISE: {}", e.id))
            .unwrap();
        let indent = &lines[start]
            [..lines[start].len() - lines[start].trim_start().len()];
        let todo = format!(
            "{indent}todo!(\"{}: {} (book §{})\")",
            e.id, e.title, e.section
        );
        let body: Vec<&str> = lines[start + 1..]
            .iter()
            .take_while(|l| l.trim() != format!("// EXERCISE_END: {}", e.id))
            .filter(|l| !l.contains("ANCHOR"))
            .copied()
            .collect();
        assert_eq!(body, vec![todo.as_str()], "in {}", rel.display());

        // Everything outside the regions is as it was.
        assert_eq!(
            outside_regions(&starter),
            outside_regions(&reference),
            "in {}",
            rel.display()
        );
    }

    // The CLI works in the student workspace, from a subdirectory too.
    kubelings(&ws.join("labs"))
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("0 of"));
}

#[test]
fn start_refuses_a_non_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "mine\n").unwrap();
    kubelings(&root())
        .arg("start")
        .arg(&ws)
        .assert()
        .failure()
        .stderr(predicate::str::contains("not empty"));
    // Nothing was touched, and no temporary copy is left beside it.
    let names: Vec<String> = std::fs::read_dir(&ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["notes.txt"]);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn start_into_an_empty_directory_works() {
    let tmp = tempfile::tempdir().unwrap();
    kubelings(&root())
        .arg("start")
        .arg(tmp.path())
        .assert()
        .success();
    assert!(tmp.path().join("labs/exercises.yaml").is_file());
}

#[test]
fn manifest_agrees_with_code_and_book() {
    kubelings(&root())
        .args(["verify", "--static-only"])
        .assert()
        .success()
        .stdout(predicate::str::contains("agree"));
}

#[test]
fn doctor_reports_the_host_and_every_exercise() {
    let assert = kubelings(&root()).arg("doctor").assert().success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let host = kubelings_probe::probe();
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("doctor has no `{name}` line:\n{out}"))
            .to_string()
    };
    assert_eq!(field("kernel"), host.kernel);
    assert_eq!(field("root"), if host.is_root { "yes" } else { "no" });
    assert_eq!(
        field("user namespaces"),
        if host.userns { "yes" } else { "no" }
    );
    assert_eq!(field("cgroups"), host.cgroups.to_string());
    // One line per exercise: whether it runs here, and what it needs.
    for e in &manifest().exercises {
        let need = format!("{:?}", e.privilege).to_lowercase();
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(e.id.as_str()))
            .unwrap_or_else(|| panic!("doctor lacks {}:\n{out}", e.id));
        let sudo = e.privilege == kubelings_probe::Privilege::Root
            && kubelings_probe::find_program("sudo").is_some();
        let (verb, need) = match host.allows(e.privilege) {
            Ok(()) => ("runs", format!("(needs: {need})")),
            Err(_) if sudo => {
                ("runs", format!("(needs: {need}; through sudo)"))
            }
            Err(_) => ("skips", format!("(needs: {need})")),
        };
        assert!(line.trim_start().starts_with(verb), "{line}");
        assert!(line.contains(&need), "{line}");
    }
}

/// Writes `files` (path, text) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn verify_names_each_broken_exercise() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            (
                "labs/exercises.yaml",
                r#"exercises:
  - id: labx-good
    lab: labx
    title: Good
    section: "9.1"
    page: ch09/page.md#a-heading
    privilege: none
    hints: [one, two, three]
    tests: [labx::t::good_test]
  - id: labx-bad
    lab: labx
    title: Bad
    section: "9.2"
    page: ch09/page.md#no-such-heading
    privilege: root
    hints: [one, ""]
    tests: [labx::t::missing_test, labx::nofile::x, other::t::good_test]
  - id: labx-unmarked
    lab: labx
    title: Unmarked
    section: "9.3"
    page: ch09/nope.md#x
    privilege: userns
    hints: [one, two, three]
    tests: []
"#,
            ),
            ("labs/labx-dir/Cargo.toml", "[package]\nname = \"labx\"\n"),
            (
                "labs/labx-dir/src/lib.rs",
                "pub fn good() -> u32 {\n    // EXERCISE: labx-good\n    1\n    // EXERCISE_END: labx-good\n}\n\
                 pub fn bad() -> u32 {\n    // EXERCISE: labx-bad\n    2\n    // EXERCISE_END: labx-bad\n}\n\
                 pub fn orphan() -> u32 {\n    // EXERCISE: labx-orphan\n    3\n    // EXERCISE_END: labx-orphan\n}\n",
            ),
            ("labs/labx-dir/tests/t.rs", "#[test]\nfn good_test() {}\n"),
            ("book/book.toml", "[book]\ntitle = \"x\"\n"),
            ("book/src/SUMMARY.md", "# Summary\n\n- [Nine](ch09/page.md)\n"),
            ("book/src/ch09/page.md", "# Nine\n\n## A heading\n\n[broken](gone.md)\n"),
        ],
    );
    let assert = kubelings(tmp.path())
        .args(["verify", "--static-only"])
        .assert()
        .failure();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for expected in [
        "labx-bad: book/src/ch09/page.md has no heading with id `no-such-heading`",
        "labx-bad: has 2 hints; it needs exactly 3",
        "labx-bad: hint 2 is empty",
        "labx-bad: test labx::t::missing_test: labs/labx-dir/tests/t.rs has no `fn missing_test(`",
        "labx-bad: test labx::nofile::x: no test file labs/labx-dir/tests/nofile.rs",
        "labx-bad: test other::t::good_test is in package other",
        "labx-unmarked: page book/src/ch09/nope.md does not exist",
        "labx-unmarked: lists no tests",
        "labx-unmarked: no `// EXERCISE: labx-unmarked`",
        "labs/labx-dir/src/lib.rs:12: EXERCISE: labx-orphan has no entry in labs/exercises.yaml",
        "book: book/src/ch09/page.md:5: link to gone.md: no file gone.md",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(!out.contains("labx-good:"), "{out}");

    // The export refuses to ship a region it cannot describe.
    kubelings(tmp.path())
        .arg("start")
        .arg(tmp.path().join("student"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("labx-orphan"));
    assert!(!tmp.path().join("student").exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".kubelings-start")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A tiny workbook in a temp dir: one lab crate (`labx`) with no
/// dependencies but a stand-in `kubelings-probe` of its own, a `ch01` bin
/// for the main job, a manifest and a book stub. Its cargo builds in
/// seconds, into its own target dir.
struct Fixture {
    tmp: tempfile::TempDir,
}

/// The lab's code: four exercises. `labx-loop`'s body never returns.
const FIXTURE_LIB: &str = "\
pub fn double(x: u32) -> u32 {
    // EXERCISE: labx-double
    x * 2
    // EXERCISE_END: labx-double
}

pub fn spin() -> u32 {
    // EXERCISE: labx-loop
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // EXERCISE_END: labx-loop
}

pub fn skip_reason() -> &'static str {
    // EXERCISE: labx-skip
    \"needs a unicorn\"
    // EXERCISE_END: labx-skip
}

pub fn triple(x: u32) -> u32 {
    // EXERCISE: labx-wrong
    x * 2
    // EXERCISE_END: labx-wrong
}
";

const FIXTURE_TESTS: &str = "\
use std::io::Write;

#[test]
fn doubles() {
    assert_eq!(labx::double(21), 42);
}

#[test]
fn loops() {
    labx::spin();
}

/// Skips as kubelings_probe::require does: a line in the skip log.
#[test]
fn skips() {
    let why = labx::skip_reason();
    let log = std::env::var_os(\"KUBELINGS_SKIP_LOG\").expect(\"a skip log\");
    let name = std::thread::current().name().unwrap().to_string();
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    f.write_all(format!(\"{name}\\t{why}\\n\").as_bytes()).unwrap();
}

#[test]
fn triples() {
    assert_eq!(labx::triple(3), 9, \"three tripled\");
}

#[test]
#[ignore]
fn ignored() {
    assert_eq!(labx::double(1), 2);
}
";

fn fixture_exercise(id: &str, title: &str, test: &str, extra: &str) -> String {
    format!(
        "  - id: {id}
    lab: labx
    title: {title}
    section: \"9.1\"
    page: ch09/page.md#a-heading
    privilege: none
    hints: [\"first hint of {id}\", two, three]
    tests: [labx::t::{test}]
{extra}"
    )
}

impl Fixture {
    fn new(lib: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let manifest = format!(
            "exercises:\n{}{}{}{}{}",
            fixture_exercise("labx-double", "Double a number", "doubles", ""),
            fixture_exercise("labx-loop", "Spin", "loops", "    timeout: 2\n"),
            fixture_exercise("labx-skip", "Skip", "skips", ""),
            fixture_exercise("labx-wrong", "Triple a number", "triples", ""),
            fixture_exercise("labx-ignored", "Ignored", "ignored", ""),
        );
        write_tree(
            tmp.path(),
            &[
                (
                    "Cargo.toml",
                    "[workspace]\nmembers = [\"labs/labx\", \"probe\"]\nresolver = \"2\"\n",
                ),
                ("labs/exercises.yaml", &manifest),
                (
                    "labs/labx/Cargo.toml",
                    "[package]\nname = \"labx\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                     description = \"Lab X\"\n\n\
                     [dependencies]\nkubelings-probe = { path = \"../../probe\" }\n",
                ),
                ("labs/labx/src/lib.rs", lib),
                (
                    "labs/labx/src/bin/ch01.rs",
                    "fn main() { assert_eq!(std::env::args().nth(1).as_deref(), Some(\"compare\")); \
                     println!(\"demo: compare ran\"); }\n",
                ),
                (
                    "labs/labx/src/bin/ch05.rs",
                    "fn main() { assert_eq!(std::env::args().nth(1).as_deref(), Some(\"tour\")); \
                     println!(\"demo: tour ran\"); }\n",
                ),
                ("labs/labx/tests/t.rs", FIXTURE_TESTS),
                (
                    "probe/Cargo.toml",
                    "[package]\nname = \"kubelings-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
                ),
                (
                    "probe/src/lib.rs",
                    "pub fn solved(id: &str) -> bool {\n    match std::env::var(\"KUBELINGS_SOLVED\") {\n        \
                     Err(_) => true,\n        Ok(l) => l.split(',').any(|s| s == id),\n    }\n}\n",
                ),
                ("book/book.toml", "[book]\ntitle = \"x\"\n"),
                ("book/src/SUMMARY.md", "# Summary\n\n- [Nine](ch09/page.md)\n"),
                ("book/src/ch09/page.md", "# Nine\n\n## A heading\n\nText.\n"),
            ],
        );
        Fixture { tmp }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn kubelings(&self) -> Command {
        let mut cmd = kubelings(self.dir());
        cmd.env("CARGO_TARGET_DIR", self.dir().join("target"))
            .env_remove("KUBELINGS_SOLVED")
            .timeout(std::time::Duration::from_secs(300));
        cmd
    }

    fn check(&self, target: &str) -> (bool, String) {
        let out = self.kubelings().args(["check", target]).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

#[test]
fn check_passes_fails_skips_and_times_out() {
    let fx = Fixture::new(FIXTURE_LIB);
    let (ok, out) = fx.check("labx-double");
    assert!(ok, "{out}");
    assert!(out.contains("pass  labx-double  Double a number"), "{out}");

    let (ok, out) = fx.check("labx-wrong");
    assert!(!ok, "{out}");
    assert!(out.contains("FAIL  labx-wrong  Triple a number"), "{out}");
    assert!(out.contains("three tripled"), "{out}");
    assert!(out.contains("first hint of labx-wrong"), "{out}");
    assert!(
        out.contains("cargo test -p labx --test t -- --exact triples"),
        "{out}"
    );

    let (ok, out) = fx.check("labx-skip");
    assert!(ok, "{out}");
    assert!(
        out.contains("skip  labx-skip  Skip: needs a unicorn"),
        "{out}"
    );

    let started = std::time::Instant::now();
    let (ok, out) = fx.check("labx-loop");
    assert!(!ok, "{out}");
    assert!(out.contains("timed out after 2 s"), "{out}");
    assert!(out.contains("first hint of labx-loop"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));

    // An #[ignore]d test checks nothing, so it cannot pass.
    let (ok, out) = fx.check("labx-ignored");
    assert!(!ok, "{out}");
    assert!(out.contains("t::ignored is #[ignore]d"), "{out}");

    // All of it was recorded, and list shows it.
    fx.kubelings()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("1 of 5 exercises done"))
        .stdout(predicate::str::contains("skipped: needs a unicorn"));
}

#[test]
fn a_lab_that_does_not_build_still_lists_hints_and_checks() {
    let broken = FIXTURE_LIB.replace(
        "    x * 2\n    // EXERCISE_END: labx-double",
        "    let y = ;\n    // EXERCISE_END: labx-double",
    );
    let fx = Fixture::new(&broken);
    fx.kubelings()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("labx-double"))
        .stdout(predicate::str::contains("Next: Double a number"));
    fx.kubelings()
        .args(["hint", "labx-double"])
        .assert()
        .success()
        .stdout(predicate::str::contains("first hint of labx-double"));
    let (ok, out) = fx.check("labx-double");
    assert!(!ok, "{out}");
    // The compiler's own error, pointing into the exercise's file.
    assert!(out.contains("does not build"), "{out}");
    assert!(
        out.contains("error: expected expression, found `;`"),
        "{out}"
    );
    assert!(out.contains("labs/labx/src/lib.rs:3:13"), "{out}");
    assert!(out.contains("let y = ;"), "{out}");
}

#[test]
fn verify_proves_each_exercise_needs_itself() {
    // labx-double is sound. labx-free's test passes without its solution.
    let lib = "\
pub fn double(x: u32) -> u32 {
    // EXERCISE: labx-double
    x * 2
    // EXERCISE_END: labx-double
}

pub fn free() -> u32 {
    // EXERCISE: labx-free
    1
    // EXERCISE_END: labx-free
}
";
    let fx = Fixture::new(lib);
    write_tree(
        fx.dir(),
        &[
            (
                "labs/exercises.yaml",
                &format!(
                    "exercises:\n{}{}",
                    fixture_exercise("labx-double", "Double a number", "doubles", ""),
                    fixture_exercise("labx-free", "Nothing", "free_test", ""),
                ),
            ),
            (
                "labs/labx/tests/t.rs",
                "#[test]\nfn doubles() { assert_eq!(labx::double(21), 42); }\n\
                 #[test]\nfn free_test() { let _ = std::hint::black_box(1); }\n",
            ),
        ],
    );
    let out = fx.kubelings().arg("verify").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    let row = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")) && l.contains(" | "))
            .unwrap_or_else(|| panic!("no row for {id}:\n{stdout}"))
            .to_string()
    };
    let cells = |id: &str| -> Vec<String> {
        row(id).split(" | ").map(|c| c.trim().to_string()).collect()
    };
    assert_eq!(
        cells("labx-double"),
        ["labx-double", "passes", "fails", "fails", "ok"]
    );
    assert_eq!(
        cells("labx-free"),
        ["labx-free", "passes", "PASSES", "PASSES", "ERROR"]
    );
    assert!(
        stdout.contains(
            "labx-free: leave-one-out: test t::free_test passes without the exercise solved"
        ),
        "{stdout}"
    );
}

#[test]
fn kubelings_test_lists_the_skips_and_keeps_cargos_status() {
    let fx = Fixture::new(FIXTURE_LIB);
    // `loops` would never end; `triples` fails (labx-wrong's body is wrong).
    let out = fx
        .kubelings()
        .args(["test", "--", "--", "--skip", "loops"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(101), "cargo's status:\n{stdout}");
    assert!(stdout.contains("test triples ... FAILED"), "{stdout}");
    let report =
        &stdout[stdout.find("tests that skipped here").expect(&stdout)..];
    assert!(report.contains("skips  needs a unicorn"), "{report}");
    assert!(report.contains("1 test skipped"), "{report}");

    // Without the failing test, cargo passes, and so does kubelings test.
    fx.kubelings()
        .args(["test", "--", "--", "--skip", "loops", "--skip", "triples"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 test skipped"));
}
