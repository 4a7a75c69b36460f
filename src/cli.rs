//! Argument parsing and the small commands (list, hint, start, book).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::manifest::Exercise;
use crate::progress::{Progress, Status};
use crate::workspace::Workspace;

#[derive(Debug, Parser)]
#[command(
    name = "kubelings",
    version,
    about = "The kubelings workbook: exercises, self-checks, hints and the book",
    after_help = "Run without a command to see your progress, what to do next, and chapter 1's demo."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List chapters and exercises with their status, and what to do next.
    List,
    /// Run the self-checks of one exercise, one lab (e.g. lab01), or all.
    Check {
        /// An exercise id or a lab name; all exercises if omitted.
        target: Option<String>,
    },
    /// Show a hint for an exercise (the next one you have not seen).
    Hint {
        /// The exercise id, as `kubelings list` shows it.
        id: String,
        /// Which hint: 1 (a nudge) to 3 (nearly the answer).
        #[arg(long, short, value_parser = clap::value_parser!(u8).range(1..=3))]
        level: Option<u8>,
    },
    /// Export a student workspace: the workbook with every exercise emptied.
    Start {
        /// Where to create it; must not exist, or be empty.
        dir: PathBuf,
    },
    /// Check the workbook itself: manifest, markers, book, and that every
    /// exercise fails in the starter and passes in the reference.
    Verify {
        /// Only the static checks (manifest, markers, book); runs no cargo.
        #[arg(long)]
        static_only: bool,
        /// Run the dynamic checks of these exercises only (the static
        /// checks still cover them all).
        #[arg(long, value_name = "ID", num_args = 1..)]
        only: Vec<String>,
    },
    /// Show what this machine can do and which self-checks will run here.
    Doctor,
    /// Run every test (`cargo test --workspace`), then say which tests
    /// skipped on this machine and why.
    Test {
        /// Passed on to cargo test, e.g. `kubelings test -- -p lab01`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Check and build the book into target/book.
    Book,
}

/// Parses the command line and runs the command.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let ws = Workspace::discover()?;
    let Some(command) = cli.command else {
        return Ok(if overview(&ws)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    };
    if let Cmd::Test { args } = &command {
        return crate::skips::cargo_test(&ws, args);
    }
    let ok = match command {
        Cmd::List => list(&ws)?,
        Cmd::Check { target } => crate::check::run(&ws, target.as_deref())?,
        Cmd::Hint { id, level } => hint(&ws, &id, level)?,
        Cmd::Start { dir } => start(&ws, &dir)?,
        Cmd::Verify { static_only, only } => crate::verify::run(&ws, static_only, &only)?,
        Cmd::Doctor => crate::doctor::run(&ws)?,
        Cmd::Book => book(&ws)?,
        Cmd::Test { .. } => unreachable!("handled above"),
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The main job (`cargo run --release`): the workbook's state, then, as
/// root, chapter 5's tour (a cluster of your own runs, scales and heals
/// kubia); without root it says what the tour needs and runs what it
/// can, chapter 1's host and container side by side. False if the demo
/// did not run.
fn overview(ws: &Workspace) -> Result<bool> {
    list(ws)?;
    // Subprocesses: the CLI links no lab, so a lab that does not build
    // stops the demo, never the workbook.
    let host = kubelings_probe::probe();
    if host.is_root {
        println!(
            "\nChapter 5's tour (`ch05 tour`): your own cluster runs, scales and heals kubia.\n"
        );
        let ran = release_bin(ws, "ch05", "tour");
        if !ran {
            println!(
                "The tour could not run here (see above).\n`kubelings doctor` says what this machine can do."
            );
        }
        return Ok(ran);
    }
    println!(
        "\nThe main job ends with chapter 5's tour, a cluster of your own, which needs root\n\
         (network namespaces, cgroups, containers): `cargo build --release --bins`, then\n\
         `sudo -E ./target/release/ch05 tour`. What runs here without root:"
    );
    println!(
        "\nChapter 1's demo (`ch01 compare`): the same script on the host and in a container.\n"
    );
    // cargo runs as the user; without root the demo uses a user
    // namespace, and where the kernel allows none only the built demo
    // runs as root, through sudo.
    let ran = if host.userns || !crate::runner::have_program("sudo") {
        release_bin(ws, "ch01", "compare")
    } else {
        println!("(no user namespaces here: running the demo as root, through sudo)\n");
        match crate::runner::build_bin(&ws.root, "ch01") {
            Ok(exe) => std::process::Command::new("sudo")
                .arg(exe)
                .arg("compare")
                .status()
                .is_ok_and(|s| s.success()),
            Err(err) => {
                eprintln!("kubelings: {err}");
                false
            }
        }
    };
    if !ran {
        println!(
            "The demo could not run here (see above).\n`kubelings doctor` says what this machine can do."
        );
    }
    Ok(ran)
}

/// `cargo run --release --bin BIN -- COMMAND`; true if it succeeded.
fn release_bin(ws: &Workspace, bin: &str, command: &str) -> bool {
    std::process::Command::new(crate::runner::cargo())
        .args(["run", "--quiet", "--release", "--bin", bin, "--", command])
        .current_dir(&ws.root)
        .status()
        .is_ok_and(|s| s.success())
}

/// Loads the progress file; a corrupt one is reported and ignored, since it
/// only records history.
pub fn load_progress(ws: &Workspace) -> Progress {
    Progress::load(&ws.root).unwrap_or_else(|e| {
        eprintln!("kubelings: warning: {e}");
        Progress::default()
    })
}

/// The exercise with this id, or an error that says how to find the ids.
pub fn exercise<'a>(ws: &'a Workspace, id: &str) -> Result<&'a Exercise> {
    match ws.exercise(id) {
        Some(e) => Ok(e),
        None => bail!("unknown exercise `{id}`; `kubelings list` shows them all"),
    }
}

fn status_label(progress: &Progress, id: &str) -> String {
    let entry = progress.entry(id);
    match entry.status {
        Some(Status::Done) => "done".into(),
        Some(Status::Failing) => "failing".into(),
        Some(Status::Skipped) => match entry.reason {
            Some(reason) => format!("skipped: {reason}"),
            None => "skipped".into(),
        },
        None => "not yet checked".into(),
    }
}

fn list(ws: &Workspace) -> Result<bool> {
    let progress = load_progress(ws);
    let exercises = &ws.manifest.exercises;
    let done = exercises
        .iter()
        .filter(|e| progress.status(&e.id) == Some(Status::Done))
        .count();
    println!("kubelings: {done} of {} exercises done", exercises.len());

    let id_width = exercises.iter().map(|e| e.id.len()).max().unwrap_or(0);
    let sec_width = exercises
        .iter()
        .map(|e| e.section.len() + 1)
        .max()
        .unwrap_or(0);
    for lab in ws.manifest.labs() {
        println!();
        match ws.labs.get(lab) {
            Some(l) => match &l.description {
                Some(d) => println!("{lab}  {}  {d}", l.dir.display()),
                None => println!("{lab}  {}", l.dir.display()),
            },
            None => println!("{lab}  (no crate named {lab} under labs/)"),
        }
        for e in exercises.iter().filter(|e| e.lab == lab) {
            println!(
                "  {:<sec_width$}  {:<id_width$}  {:<16}  {}",
                format!("§{}", e.section),
                e.id,
                status_label(&progress, &e.id),
                e.title
            );
        }
    }

    println!();
    let next = exercises.iter().find(|e| {
        !matches!(
            progress.status(&e.id),
            Some(Status::Done) | Some(Status::Skipped)
        )
    });
    match next {
        Some(e) => {
            println!("Next: {} ({})", e.title, e.id);
            println!("  read   {}", e.book_ref());
            match ws.marker_of(&e.id) {
                Some((file, line)) => println!(
                    "  write  {}:{line} (between the EXERCISE markers)",
                    file.display()
                ),
                None => println!(
                    "  write  (no EXERCISE marker for it yet in labs/{}*)",
                    e.lab
                ),
            }
            println!("  check  kubelings check {}", e.id);
            println!("  stuck? kubelings hint {}", e.id);
        }
        None if done == exercises.len() => println!("All exercises done. Well built!"),
        None => {
            println!("Every exercise left is skipped on this machine; `kubelings doctor` says why.")
        }
    }
    Ok(true)
}

fn hint(ws: &Workspace, id: &str, level: Option<u8>) -> Result<bool> {
    let e = exercise(ws, id)?;
    let mut progress = load_progress(ws);
    let count = e.hints.len();
    if count == 0 {
        bail!("exercise `{id}` has no hints in the manifest");
    }
    let seen = usize::from(progress.entry(id).hints_seen);
    let level = match level {
        Some(l) => usize::from(l),
        None => (seen + 1).min(count),
    };
    let Some(text) = e.hints.get(level - 1) else {
        bail!("exercise `{id}` has {count} hints, not {level}");
    };
    println!("Hint {level}/{count} for {id} ({}):", e.title);
    println!();
    println!("  {text}");
    println!();
    println!("Read: {}", e.book_ref());
    if level < count {
        println!(
            "More: kubelings hint {id}   (hint {} of {count})",
            level + 1
        );
    }
    // u8: there are exactly three hints, and `level` is at most their number.
    progress.saw_hint(id, u8::try_from(level).unwrap_or(u8::MAX));
    if let Err(err) = progress.save(&ws.root) {
        eprintln!("kubelings: warning: {err}");
    }
    Ok(true)
}

fn start(ws: &Workspace, dir: &std::path::Path) -> Result<bool> {
    let report = crate::export::export(ws, dir)
        .with_context(|| format!("cannot export the workbook to {}", dir.display()))?;
    println!(
        "Exported the workbook to {} ({} files, {} exercises to write).",
        dir.display(),
        report.files,
        report.regions.len()
    );
    println!();
    println!("Next steps:");
    println!("  cd {}", dir.display());
    println!("  cargo run -- list");
    Ok(true)
}

fn book(ws: &Workspace) -> Result<bool> {
    let book_dir = ws.root.join("book");
    // Too-wide lines and unshown pictures fail tests/book.rs, not the build.
    let problems: Vec<_> = (crate::book::check(&book_dir)?.into_iter())
        .filter(|p| crate::book::ProblemKind::blocks_build(p.kind))
        .collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        bail!(
            "the book has {} broken references (listed above)",
            problems.len()
        );
    }
    let index = crate::book::build(&book_dir, Some(&ws.root.join("target/book")))?;
    println!("Built the book: {}", index.display());
    Ok(true)
}
