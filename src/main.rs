//! `kubelings`: the workbook's command line. See `kubelings --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    // `kubelings list | head` should end quietly, as other tools do, not
    // panic on the closed pipe.
    #[cfg(unix)]
    // SAFETY: at the start of main, before any thread; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match kubelings::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kubelings: error: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause once: our error types already
/// name their cause in their own message, so `{:#}` would repeat it.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = anyhow::Error::new(kubelings::runner::RunnerError::Spawn {
            command: "cargo test".into(),
            source: io,
        })
        .context("checking lab01");
        assert_eq!(
            message(&err),
            "checking lab01: cannot run `cargo test`: permission denied"
        );
    }
}
