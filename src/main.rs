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
            eprintln!("kubelings: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
