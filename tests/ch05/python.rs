//! The Python the tests drive the official client (PyPI `kubernetes`)
//! with: `$KUBELINGS_PYTHON` (a virtualenv's python), else `python3`.

use std::process::Command;

use lab01::probe::ci;

/// The Python to use, if it has the `kubernetes` package.
pub fn python() -> Option<String> {
    let python = std::env::var("KUBELINGS_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Some(python);
    }
    let why = format!(
        "{python} cannot import kubernetes (pip install kubernetes, and \
         KUBELINGS_PYTHON=<that python>)"
    );
    assert!(!ci(), "CI=true and this test cannot run here: {why}");
    eprintln!("SKIP: {why}");
    None
}
