//! The real kubectl against a test's own server on loopback: a
//! kubeconfig in a home of the test's own, and every run bounded in time.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Writes `home/kubeconfig` for a plain-HTTP server at `addr`, no user.
pub fn write_kubeconfig(home: &Path, addr: SocketAddr) {
    std::fs::write(
        home.join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: \
             {{server: \"http://{addr}\"}}}}]\nusers: [{{name: u, user: \
             {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u, \
             namespace: default}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
}

fn drain(
    pipe: Option<impl Read + Send + 'static>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// Runs kubectl with `home`'s kubeconfig; killed, and the test failed,
/// after 30 s. Its pipes are read while it runs, so a long answer never
/// blocks it.
pub fn run(home: &Path, args: &[&str]) -> Run {
    run_with_input(home, args, None).0
}

/// [`run`] with `input` written to kubectl's stdin (then closed), and
/// its exit code beside what it printed.
pub fn run_with_input(
    home: &Path,
    args: &[&str],
    input: Option<&[u8]>,
) -> (Run, i32) {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("HOME", home)
        .env("KUBECONFIG", home.join("kubeconfig"))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kubectl {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        ok: status.success(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (run, status.code().unwrap_or(-1))
}
