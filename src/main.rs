//! `kubelings`: the workbook's command line. See `kubelings --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match kubelings::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kubelings: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
