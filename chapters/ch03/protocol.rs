//! The node's control protocol: one JSON object per line over the unix
//! socket in the node's directory. The manifest directory says which pods
//! run (the static-pod model); the socket only answers what runs, how it
//! is doing, and runs `exec`s. An exec's streams are not copied through the
//! socket: the daemon hands over the descriptors themselves (SCM_RIGHTS),
//! so the client reads and writes the command's pipes or terminal directly.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Event, Pod};
use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Is anybody there?
    Ping,
    /// Every pod with its status and events.
    Pods,
    /// Every Service with its EndpointSlices and events (chapter 4).
    Services,
    /// Run a command in a container of a pod.
    Exec(ExecRequest),
    /// Stop every pod, remove the node, exit.
    Shutdown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
}

/// A pod as the node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodView {
    /// Spec and status, as the API server would hold them.
    pub pod: Pod,
    /// What happened to it, oldest first.
    pub events: Vec<Event>,
    /// Its log directory (`<ns>_<name>_<uid>`).
    pub log_dir: std::path::PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Pong {
        pid: u32,
    },
    Pods(Vec<PodView>),
    Services(Vec<crate::service_node::ServiceView>),
    /// The exec runs; its descriptors came with this line, in the order
    /// stdin, stdout, stderr of those that are `true`.
    ExecStarted {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// The exec ended with this code (128 + signal when killed).
    Exited(i32),
    Done,
    Error(String),
}

/// Sends one line, with descriptors riding along when there are any.
pub fn send(
    stream: &UnixStream,
    message: &Response,
    fds: &[RawFd],
) -> Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    if fds.is_empty() {
        (&*stream).write_all(&line)?;
        return Ok(());
    }
    let cmsg = [ControlMessage::ScmRights(fds)];
    let iov = [IoSlice::new(&line)];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        None,
    )?;
    // The descriptors went with the first byte; the rest is plain data.
    (&*stream).write_all(&line[sent..])?;
    Ok(())
}

/// A client's connection to a node.
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// What `exec_response` read past its line.
    pending: Vec<u8>,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client> {
        let stream = UnixStream::connect(socket).with_context(|| {
            format!("connect to the node at {}", socket.display())
        })?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client {
            stream,
            reader,
            pending: Vec::new(),
        })
    }

    pub fn timeout(self, t: Duration) -> Result<Client> {
        self.stream.set_read_timeout(Some(t))?;
        Ok(self)
    }

    pub fn request(&mut self, request: &Request) -> Result<()> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.stream.write_all(&line)?;
        Ok(())
    }

    pub fn response(&mut self) -> Result<Response> {
        let mut line = std::mem::take(&mut self.pending);
        if !line.ends_with(b"\n")
            && self.reader.read_until(b'\n', &mut line)? == 0
        {
            bail!("the node closed the connection");
        }
        match serde_json::from_slice(&line)? {
            Response::Error(e) => bail!("{e}"),
            r => Ok(r),
        }
    }

    pub fn call(&mut self, request: &Request) -> Result<Response> {
        self.request(request)?;
        self.response()
    }

    /// Reads the answer to an exec: its first line with the descriptors.
    /// Read before anything went through the buffered reader, so no byte
    /// of it is stuck there.
    pub fn exec_response(&mut self) -> Result<(Response, Vec<OwnedFd>)> {
        let mut line = Vec::new();
        let mut fds = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            let mut space = nix::cmsg_space!([RawFd; 3]);
            let (n, got) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<()>(
                    self.stream.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )?;
                let mut got = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        got.extend(list);
                    }
                }
                (msg.bytes, got)
            };
            for fd in got {
                // SAFETY: the kernel just installed this descriptor in our
                // table for us; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            if n == 0 {
                bail!("the node closed the connection");
            }
            line.extend_from_slice(&buf[..n]);
            if let Some(end) = line.iter().position(|&b| b == b'\n') {
                // A quick command's exit line may have come along.
                self.pending = line.split_off(end + 1);
                break;
            }
        }
        match serde_json::from_slice(&line)? {
            Response::Error(e) => bail!("{e}"),
            r => Ok((r, fds)),
        }
    }
}
