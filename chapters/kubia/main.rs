//! kubia: the running example of *Kubernetes in Action*, in Rust.
//!
//! An HTTP server on port 8080 that answers every request with
//! `You've hit <hostname>`, so you can tell which container (later: which
//! pod) served you. Binds 127.0.0.1 unless told otherwise; its image passes
//! `--addr 0.0.0.0:8080`, which inside a container means the container's own
//! network namespace.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            _ => {
                eprintln!("usage: kubia [--addr HOST:PORT]");
                std::process::exit(2);
            }
        }
    }
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kubia: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("Kubia server starting on {addr}...");
    for stream in listener.incoming().flatten() {
        if let Err(e) = answer(stream) {
            eprintln!("kubia: {e}");
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

// ANCHOR: answer
/// Reads the request head, answers, closes.
fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    println!("Received request from {}", peer.ip());
    let body = format!("You've hit {}\n", hostname());
    write!(
        stream,
        concat!(
            "HTTP/1.1 200 OK\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Length: {}\r\n",
            "Connection: close\r\n",
            "\r\n",
            "{}"
        ),
        body.len(),
        body
    )?;
    stream.flush()
}
// ANCHOR_END: answer
