//! `kubectl exec` on the node: the agent's `GET /exec/<ns>/<pod>/<container>`
//! upgraded to a WebSocket that speaks Kubernetes' remote-command
//! protocol, `v5.channel.k8s.io` (what kubectl v1.32 asks for) or
//! `v4.channel.k8s.io` (what the Python client asks for).
//!
//! Every message is binary and starts with a channel byte: 0 stdin,
//! 1 stdout, 2 stderr, 3 the outcome (a `metav1.Status`), 4 terminal
//! resizes (`{"Width":80,"Height":24}`); v5 adds 255, "this channel is
//! closed", which is how `echo hi | kubectl exec -i … -- cat` ends cat's
//! input. The command itself runs through lab03's runtime (the CRI's
//! `Exec`), which hands back its pipes or its pseudo-terminal.
//!
//! A real kubelet answers the CRI's `Exec` with a URL of the runtime's
//! own streaming server and proxies to it (over SPDY, which kube-apiserver
//! translates to WebSocket for a v1.30+ kubectl). Here the runtime is in
//! the agent's process, so the agent streams the descriptors itself.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use lab03::cri::{ExecRequest, ExecSession, RuntimeService};
use serde_json::{json, Value};

use super::logs::Refusal;

/// The channel bytes of the remote-command protocol.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5 only: `[255, channel]` closes that channel.
pub const CLOSE: u8 = 255;

/// The subprotocols served, the newest first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

// ANCHOR: options
/// What an exec request asks for, from its query: `command` (repeated,
/// one per argument), `stdin`, `stdout`, `stderr`, `tty`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn parse(query: &str) -> Result<ExecOptions, Refusal> {
        let mut o = ExecOptions::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let on = value == "true" || value == "1";
            match key.as_ref() {
                "command" => o.command.push(value.into_owned()),
                "stdin" => o.stdin = on,
                "stdout" => o.stdout = on,
                "stderr" => o.stderr = on,
                "tty" => o.tty = on,
                _ => {}
            }
        }
        if o.command.is_empty() {
            return Err(bad("you must specify at least one command"));
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(bad(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        // A terminal has one output: stderr goes where stdout goes.
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }
}
// ANCHOR_END: options

fn bad(message: &str) -> Refusal {
    Refusal {
        code: 400,
        message: message.to_string(),
    }
}

// ANCHOR: outcome
/// The Status on the error channel when the command has ended: Success,
/// or the kubelet's NonZeroExitCode with the code as its cause, which
/// kubectl turns into its own exit code.
pub fn outcome(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    let message = format!(
        "command terminated with non-zero exit code: \
         command [{}] exited with {code}",
        command.join(" ")
    );
    let cause = json!({"reason": "ExitCode", "message": code.to_string()});
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NonZeroExitCode",
        "details": {"causes": [cause]},
    })
}
// ANCHOR_END: outcome

/// The Status of an exec that could not start.
pub fn failure(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}

/// One message: the channel byte, then the data.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// What a message from the client asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    Stdin(&'a [u8]),
    Resize { width: u16, height: u16 },
    Close(u8),
    Ignored,
}

/// Reads a client's message by its channel byte (v4 has no CLOSE).
pub fn inbound(data: &[u8], v5: bool) -> Inbound<'_> {
    match data.split_first() {
        Some((&STDIN, rest)) => Inbound::Stdin(rest),
        Some((&RESIZE, rest)) => {
            let size: Value =
                serde_json::from_slice(rest).unwrap_or(Value::Null);
            let dim =
                |k: &str| size[k].as_u64().and_then(|n| u16::try_from(n).ok());
            match (dim("Width"), dim("Height")) {
                (Some(width), Some(height)) => {
                    Inbound::Resize { width, height }
                }
                _ => Inbound::Ignored,
            }
        }
        Some((&CLOSE, [channel, ..])) if v5 => Inbound::Close(*channel),
        _ => Inbound::Ignored,
    }
}

/// Runs one exec over an upgraded socket, from start to the Status.
pub async fn session(
    socket: WebSocket,
    runtime: Arc<dyn RuntimeService>,
    container_id: String,
    options: ExecOptions,
) {
    let v5 =
        socket.protocol().and_then(|p| p.to_str().ok()) == Some(PROTOCOLS[0]);
    let (mut sink, mut incoming) = socket.split();
    let request = ExecRequest {
        cmd: options.command.clone(),
        tty: options.tty,
        stdin: options.stdin,
        stdout: options.stdout || options.tty,
        stderr: options.stderr,
    };
    let started = tokio::task::spawn_blocking(move || {
        runtime.exec(&container_id, &request)
    })
    .await;
    let session = match started {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let status = failure(&e.to_string());
            let _ = sink
                .send(Message::Binary(
                    frame(ERROR, status.to_string().as_bytes()).into(),
                ))
                .await;
            let _ = sink.send(normal_close()).await;
            return;
        }
        Err(_) => return,
    };
    let pid = session.pid;
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let streams = Streams::start(session, options, out_tx);
    // Everything the command writes, then its Status, goes out in order.
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(Message::Binary(message.into())).await.is_err() {
                return false;
            }
        }
        let _ = sink.send(normal_close()).await;
        true
    });
    let mut writer = writer;
    let mut stdin = streams.stdin;
    let finished = loop {
        let message = tokio::select! {
            m = incoming.next() => m,
            _ = &mut writer => break true,
        };
        let Some(Ok(message)) = message else {
            break false;
        };
        let data = match &message {
            Message::Binary(b) => b.as_ref(),
            Message::Text(t) => t.as_bytes(),
            Message::Close(_) => break false,
            _ => continue,
        };
        match inbound(data, v5) {
            Inbound::Stdin(bytes) => {
                if let Some(tx) = &stdin {
                    if tx.send(bytes.to_vec()).is_err() {
                        stdin = None;
                    }
                }
            }
            Inbound::Close(STDIN) => stdin = None,
            Inbound::Resize { width, height } => {
                if let Some(tty) = &streams.tty {
                    resize(tty, width, height);
                }
            }
            Inbound::Close(_) | Inbound::Ignored => {}
        }
    };
    drop(stdin);
    if !finished && !writer.is_finished() {
        // The client left first: the command goes too, as it would with
        // its terminal hung up, rather than run on unattended.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A close with code 1000: kubectl reads anything else (even a close
/// without a code) as the connection failing.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

/// The command's streams, each pumped by a thread of its own (the
/// descriptors block), and the thread that waits for its end.
struct Streams {
    stdin: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    /// The terminal's master side, for resizes.
    tty: Option<OwnedFd>,
}

impl Streams {
    fn start(
        session: ExecSession,
        options: ExecOptions,
        out: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Streams {
        let ExecSession {
            stdin,
            stdout,
            stderr,
            wait,
            ..
        } = session;
        let tty = if options.tty {
            stdout.as_ref().and_then(|fd| fd.try_clone().ok())
        } else {
            None
        };
        let stdin = stdin.map(|fd| {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            std::thread::spawn(move || {
                let mut file = std::fs::File::from(fd);
                for bytes in rx {
                    if file.write_all(&bytes).is_err() {
                        return;
                    }
                }
            });
            tx
        });
        let pumps: Vec<_> = [(STDOUT, stdout), (STDERR, stderr)]
            .into_iter()
            .filter_map(|(channel, fd)| fd.map(|fd| (channel, fd)))
            .map(|(channel, fd)| {
                let out = out.clone();
                std::thread::spawn(move || pump(channel, fd, &out))
            })
            .collect();
        let command = options.command;
        std::thread::spawn(move || {
            for p in pumps {
                let _ = p.join();
            }
            let status = match wait() {
                Ok(code) => outcome(&command, code),
                Err(e) => failure(&e.to_string()),
            };
            let _ =
                out.blocking_send(frame(ERROR, status.to_string().as_bytes()));
        });
        Streams { stdin, tty }
    }
}

/// Copies what `fd` gives to `channel` until its end (a terminal's
/// master side ends with EIO once the command has gone).
fn pump(channel: u8, fd: OwnedFd, out: &tokio::sync::mpsc::Sender<Vec<u8>>) {
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.blocking_send(frame(channel, &buf[..n])).is_err() {
                    return;
                }
            }
        }
    }
}

nix::ioctl_write_ptr_bad!(
    set_window_size,
    nix::libc::TIOCSWINSZ,
    nix::libc::winsize
);

/// Tells the terminal its new size (the command gets SIGWINCH).
fn resize(tty: &OwnedFd, width: u16, height: u16) {
    let size = nix::libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: the descriptor is an open terminal master we own, and
    // TIOCSWINSZ only reads the winsize it is given.
    let _ = unsafe { set_window_size(tty.as_raw_fd(), &size) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_each_argument_and_stream() {
        let o = ExecOptions::parse(
            "command=sh&command=-c&command=echo+hi&container=kubia&stdin=true&stdout=true&stderr=true&tty=false",
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let tty =
            ExecOptions::parse("command=sh&stdout=true&stderr=true&tty=true")
                .unwrap();
        assert!(!tty.stderr, "a terminal has no stderr of its own");
        assert_eq!(
            ExecOptions::parse("stdout=true").unwrap_err().message,
            "you must specify at least one command"
        );
        assert_eq!(ExecOptions::parse("command=ls").unwrap_err().code, 400);
    }

    #[test]
    fn a_non_zero_exit_is_a_failure_with_the_code_as_cause() {
        assert_eq!(outcome(&["true".into()], 0)["status"], "Success");
        let failed = outcome(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }

    #[test]
    fn client_messages_are_read_by_their_channel() {
        assert_eq!(inbound(b"\x00hi", true), Inbound::Stdin(b"hi"));
        assert_eq!(
            inbound(b"\x04{\"Width\":80,\"Height\":24}", true),
            Inbound::Resize {
                width: 80,
                height: 24
            }
        );
        assert_eq!(inbound(&[255, 0], true), Inbound::Close(0));
        assert_eq!(
            inbound(&[255, 0], false),
            Inbound::Ignored,
            "v4 has no close"
        );
        assert_eq!(inbound(&[], true), Inbound::Ignored);
    }
}
