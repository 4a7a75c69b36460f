//! kubia: the running example of *Kubernetes in Action*, in Rust.
//!
//! An HTTP server on port 8080 that answers every request with
//! `You've hit <hostname>`, so you can tell which container (later: which
//! pod) served you. Binds 127.0.0.1 unless told otherwise; its image passes
//! `--addr 0.0.0.0:8080`, which inside a container means the container's own
//! network namespace. `--unhealthy-after N` makes it the book's unhealthy
//! kubia: from its N+1st request on it answers 500, which a liveness probe
//! notices. `GET /ready` answers 200 while it is ready and 503 once a
//! `POST /ready` with body `false` made it not ready (`true` makes it ready
//! again): chapter 4's readiness probe and demo use it. `--v2` makes it
//! the book's second version (`This is v2 running in pod <hostname>`),
//! for chapter 5's rolling update. With `KUBIA_DRAIN_SECONDS=N` in its
//! environment it keeps answering for N seconds after SIGTERM before it
//! exits, long enough for every node's proxy to stop sending it
//! requests (what a preStop sleep does for apps that cannot wait).

use std::io::Read;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Requests answered so far.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// What `GET /ready` says.
static READY: AtomicBool = AtomicBool::new(true);
/// `--v2`: the book's second version.
static V2: AtomicBool = AtomicBool::new(false);
/// Set by the SIGTERM handler.
static TERMINATING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATING.store(true, Ordering::SeqCst);
}

/// With `KUBIA_DRAIN_SECONDS`, SIGTERM starts a drain: kubia answers on
/// for that long, then exits 0.
fn drain_on_sigterm() {
    let Some(seconds) = std::env::var("KUBIA_DRAIN_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; installed before any other thread starts.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_sigterm as *const () as libc::sighandler_t,
        );
    }
    std::thread::spawn(move || {
        while !TERMINATING.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        println!("Kubia server draining for {seconds} s...");
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        std::process::exit(0);
    });
}

fn main() {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut healthy_for = u64::MAX;
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        if arg == "--v2" {
            V2.store(true, Ordering::SeqCst);
            continue;
        }
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            ("--unhealthy-after", Some(n)) if n.parse::<u64>().is_ok() => {
                healthy_for = n.parse().unwrap_or(u64::MAX)
            }
            _ => {
                eprintln!(
                    "usage: kubia [--addr HOST:PORT] [--unhealthy-after N] [--v2]"
                );
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
    drain_on_sigterm();
    println!("Kubia server starting on {addr}...");
    // A thread per connection, and a limit on how long one may keep
    // kubia waiting for its request: a slow or silent client (a probe cut
    // short, a proxy's dead connection) holds up nobody else.
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)));
            match answer(stream, healthy_for) {
                Ok(()) => {}
                // The client left before the answer (a probe or a request
                // given up): nothing went wrong here, so nothing is logged.
                Err(e) if gone(&e) => {}
                Err(e) => eprintln!("kubia: {e}"),
            }
        });
    }
}

/// Whether `e` says the other end closed the connection.
fn gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted)
}

/// What a request gets: v1's words or v2's, as the book's two images.
fn greeting() -> String {
    if V2.load(Ordering::SeqCst) {
        format!("This is v2 running in pod {}\n", hostname())
    } else {
        format!("You've hit {}\n", hostname())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The request's method, path and body length, from its head.
struct Head {
    method: String,
    path: String,
    length: usize,
}

fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Head> {
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut words = request.split_whitespace();
    Ok(Head {
        method: words.next().unwrap_or("").to_string(),
        path: words.next().unwrap_or("/").to_string(),
        length,
    })
}

// ANCHOR: answer
/// Reads the request head, answers, closes.
fn answer(mut stream: TcpStream, healthy_for: u64) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let head = read_head(&mut reader)?;
    if head.path == "/ready" {
        return readiness(stream, reader, &head.method, head.length.min(16));
    }
    println!("Received request from {}", peer.ip());
    let n = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
    let (status, body) = if n > healthy_for {
        (
            "500 Internal Server Error",
            "I'm not well. Please restart me!\n".into(),
        )
    } else {
        ("200 OK", greeting())
    };
    write!(
        stream,
        concat!(
            "HTTP/1.1 {}\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Length: {}\r\n",
            "Connection: close\r\n",
            "\r\n",
            "{}"
        ),
        status,
        body.len(),
        body
    )?;
    stream.flush()
}
// ANCHOR_END: answer

/// `GET /ready`: 200 or 503; `POST /ready` with `true` or `false` sets it.
fn readiness(
    mut stream: TcpStream,
    mut reader: BufReader<TcpStream>,
    method: &str,
    length: usize,
) -> std::io::Result<()> {
    if method == "POST" {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        READY.store(body.trim_ascii() != b"false", Ordering::SeqCst);
    }
    let (status, body) = if READY.load(Ordering::SeqCst) {
        ("200 OK", "ready\n")
    } else {
        ("503 Service Unavailable", "not ready\n")
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
