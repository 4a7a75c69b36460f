//! `kubelings test`: `cargo test --workspace` with the skip log on, so the
//! tests that could not run on this machine are listed at the end instead
//! of passing unseen.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::runner::{cargo, read_skip_log, SKIP_LOG_ENV};
use crate::workspace::Workspace;

/// Runs cargo test; its exit status is ours.
pub fn cargo_test(ws: &Workspace, args: &[String]) -> Result<ExitCode> {
    let log = tempfile::Builder::new()
        .prefix("kubelings-skips-")
        .tempfile()
        .context("cannot create the skip log")?;
    let mut cmd = Command::new(cargo());
    cmd.args(["test", "--workspace"])
        .args(args)
        .current_dir(&ws.root)
        .env(SKIP_LOG_ENV, log.path());
    let shown = format!("cargo test --workspace {}", args.join(" "));
    println!("kubelings: {}", shown.trim_end());
    let status = cmd
        .status()
        .with_context(|| format!("cannot run `{}`", shown.trim_end()))?;
    let skips = read_skip_log(log.path());
    println!();
    print!("{}", summary(&skips));
    // cargo's own status: a failing test fails this, a skip does not.
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The closing report: each skipped test and why, then the count.
pub fn summary(skips: &[(String, String)]) -> String {
    if skips.is_empty() {
        return "kubelings: no test skipped; everything ran on this machine\n".to_string();
    }
    let width = skips.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::from("kubelings: tests that skipped here, and why:\n");
    for (name, why) in skips {
        out.push_str(&format!("  {name:<width$}  {why}\n"));
    }
    let n = skips.len();
    let tests = if n == 1 { "test" } else { "tests" };
    out.push_str(&format!(
        "kubelings: {n} {tests} skipped; `kubelings doctor` says what this machine lacks\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_skip_and_counts_them() {
        let skips = vec![
            (
                "pid::proc_is_the_containers".to_string(),
                "needs root".to_string(),
            ),
            (
                "interop::runc".to_string(),
                "runc is not installed".to_string(),
            ),
        ];
        assert_eq!(
            summary(&skips),
            "kubelings: tests that skipped here, and why:\n  \
             pid::proc_is_the_containers  needs root\n  \
             interop::runc                runc is not installed\n\
             kubelings: 2 tests skipped; `kubelings doctor` says what this machine lacks\n"
        );
        assert!(summary(&[]).contains("no test skipped"));
    }
}
