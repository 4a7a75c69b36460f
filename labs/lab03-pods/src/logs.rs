//! Container logs in the CRI log format, the one containerd and CRI-O write
//! and the kubelet reads for `kubectl logs`:
//!
//! ```text
//! 2026-12-01T20:15:02.123456789Z stdout F a whole line
//! 2026-12-01T20:15:02.2Z stderr P the first part of a long one
//! ```
//!
//! One record per line: a timestamp (RFC 3339 with up to nine fraction
//! digits, trailing zeros dropped, as Go's RFC3339Nano prints it), the
//! stream, a tag (`F` for a full line, `P` for a partial one), and the text.
//! A line longer than the writer's buffer is cut into `P` records followed
//! by an `F` one; bytes left without a newline when the stream ends are a
//! final `P` record.
//!
//! Each container has a directory of log files named by restart count,
//! `<container>/<restartCount>.log`, so the previous instance's log stays
//! beside the current one (`kubectl logs --previous`).

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::backoff::Clock;

/// The stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The stream as the format spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a CRI log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the runtime read the line from the container.
    pub time: DateTime<Utc>,
    /// The stream.
    pub stream: Stream,
    /// `P`: the text continues in the next record of the same stream.
    pub partial: bool,
    /// The text, without its newline.
    pub text: String,
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A field is missing: the line ends before it.
    #[error("the line ends before its {0}")]
    Missing(&'static str),
    /// The timestamp is not RFC 3339.
    #[error("bad timestamp {0:?}: not RFC 3339")]
    Timestamp(String),
    /// The stream is neither stdout nor stderr.
    #[error("bad stream {0:?}: want stdout or stderr")]
    Stream(String),
    /// The tag is neither F nor P.
    #[error("bad tag {0:?}: want F or P")]
    Tag(String),
}

/// A line of a log file that does not parse, with its line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct ParseError {
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub error: LineError,
}

/// Reading or writing a log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A line does not parse.
    #[error("{path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line and what is wrong.
        error: ParseError,
    },
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// A time as Go's RFC3339Nano prints it in UTC: nine fraction digits at
/// most, trailing zeros dropped, no fraction at all on a whole second.
pub fn format_time(time: DateTime<Utc>) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let nanos = time.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// A time with all nine fraction digits, as `kubectl logs --timestamps`
/// shows it (the kubelet's RFC3339NanoFixed).
pub fn format_time_fixed(time: DateTime<Utc>) -> String {
    format!(
        "{}.{:09}Z",
        time.format("%Y-%m-%dT%H:%M:%S"),
        time.nanosecond() % 1_000_000_000
    )
}

// ANCHOR: format_record
/// One record as a line of the file, with its newline.
pub fn format_record(time: DateTime<Utc>, stream: Stream, partial: bool, text: &[u8]) -> Vec<u8> {
    let tag = if partial { "P" } else { "F" };
    let mut line = format!("{} {stream} {tag} ", format_time(time)).into_bytes();
    line.extend_from_slice(text);
    line.push(b'\n');
    line
}
// ANCHOR_END: format_record

// ANCHOR: parse_line
/// Parses one line of a CRI log file (without its newline).
pub fn parse_line(line: &str) -> Result<Record, LineError> {
    // EXERCISE: lab03-cri-log-line
    let mut fields = line.splitn(4, ' ');
    let time = fields.next().filter(|t| !t.is_empty());
    let time = time.ok_or(LineError::Missing("timestamp"))?;
    let time = DateTime::parse_from_rfc3339(time)
        .map_err(|_| LineError::Timestamp(time.to_string()))?
        .with_timezone(&Utc);
    let stream = match fields.next().ok_or(LineError::Missing("stream"))? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        other => return Err(LineError::Stream(other.to_string())),
    };
    // The tag may carry more, colon-separated; the first says F or P.
    let tag = fields.next().ok_or(LineError::Missing("tag"))?;
    let partial = match tag.split(':').next() {
        Some("F") => false,
        Some("P") => true,
        _ => return Err(LineError::Tag(tag.to_string())),
    };
    // The writer always puts a space after the tag, even before no text.
    let text = fields.next().ok_or(LineError::Missing("text"))?;
    Ok(Record {
        time,
        stream,
        partial,
        text: text.to_string(),
    })
    // EXERCISE_END: lab03-cri-log-line
}
// ANCHOR_END: parse_line

/// Parses a whole log (the text of a file); an error names the line.
pub fn parse_log(text: &str) -> Result<Vec<Record>, ParseError> {
    text.lines()
        .enumerate()
        .map(|(i, line)| parse_line(line).map_err(|error| ParseError { line: i + 1, error }))
        .collect()
}

/// The longest text one record holds before a line is cut into partial
/// records: containerd's `max_container_log_line_size`, 16 KiB.
pub const MAX_LINE: usize = 16 * 1024;

/// Writes a container's two streams into one log file, a record per line.
/// Both streams share it, so each record is written whole under a lock.
pub struct LogWriter<W: Write, C: Clock> {
    out: Mutex<W>,
    clock: C,
    max_line: usize,
}

impl<W: Write, C: Clock> LogWriter<W, C> {
    /// A writer into `out`, stamping records with `clock`'s time, cutting
    /// lines longer than `max_line` bytes (at least 1).
    pub fn new(out: W, clock: C, max_line: usize) -> Self {
        LogWriter {
            out: Mutex::new(out),
            clock,
            max_line: max_line.max(1),
        }
    }

    /// Writes one record now.
    pub fn record(&self, stream: Stream, partial: bool, text: &[u8]) -> io::Result<()> {
        let time = DateTime::<Utc>::from(self.clock.now());
        let line = format_record(time, stream, partial, text);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&line)?;
        out.flush()
    }

    // ANCHOR: copy_stream
    /// Copies a stream into the log until it ends, a record per line. The
    /// runtime runs one of these per stream on its own thread: it always
    /// drains the pipe, so a container that writes much never blocks on a
    /// full one, however slowly anyone reads the log.
    pub fn copy_stream(&self, from: impl Read, stream: Stream) -> io::Result<()> {
        let mut from = io::BufReader::with_capacity(self.max_line, from);
        let mut line = Vec::new();
        loop {
            // Read up to a newline, but never more than one record's worth
            // and one byte (which tells a line that is too long).
            let want = (self.max_line + 1 - line.len()) as u64;
            let n = (&mut from).take(want).read_until(b'\n', &mut line)?;
            if line.last() == Some(&b'\n') {
                line.pop();
                // Like Go's bufio ReadLine, a CRLF ending goes whole.
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.record(stream, false, &line)?;
                line.clear();
            } else if n == 0 {
                // The stream ended; what is left had no newline.
                if !line.is_empty() {
                    self.record(stream, true, &line)?;
                }
                return Ok(());
            } else if line.len() > self.max_line {
                // Too long: cut a partial record, keep the byte after it.
                let rest = line.split_off(self.max_line);
                self.record(stream, true, &line)?;
                line = rest;
            }
        }
    }
    // ANCHOR_END: copy_stream

    /// The writer back (for tests).
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Which of a container's streams to show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Streams {
    /// Both, interleaved as written.
    #[default]
    All,
    /// One of them.
    Only(Stream),
}

/// What `kubectl logs` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `--tail N`: only the last N lines.
    pub tail: Option<usize>,
    /// `--since-time` (or `--since` from now): lines from then on.
    pub since: Option<SystemTime>,
    /// `--timestamps`: each line starts with its time.
    pub timestamps: bool,
    /// Which streams.
    pub streams: Streams,
}

/// A line as `kubectl logs` shows it: partial records joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The time of its first record.
    pub time: DateTime<Utc>,
    /// The stream.
    pub stream: Stream,
    /// The whole text.
    pub text: String,
    /// Whether it ended with a newline (a last `P` record did not).
    pub complete: bool,
}

/// Joins partial records into lines, stream by stream (an stdout line cut
/// in two may have stderr records between its parts).
pub fn join(records: &[Record]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    // Per stream, the index in `lines` of a line still open.
    let mut open: [Option<usize>; 2] = [None, None];
    for r in records {
        let slot = &mut open[r.stream as usize];
        match *slot {
            Some(i) => lines[i].text.push_str(&r.text),
            None => {
                lines.push(Line {
                    time: r.time,
                    stream: r.stream,
                    text: r.text.clone(),
                    complete: false,
                });
                *slot = Some(lines.len() - 1);
            }
        }
        if !r.partial {
            if let Some(i) = slot.take() {
                lines[i].complete = true;
            }
        }
    }
    lines
}

// ANCHOR: select
/// The lines `kubectl logs` shows for these options, in order: the stream
/// filter and `since` first, then `tail` of what is left.
pub fn select(records: &[Record], options: &LogOptions) -> Vec<Line> {
    let since = options.since.map(DateTime::<Utc>::from);
    let lines: Vec<Line> = join(records)
        .into_iter()
        .filter(|l| match options.streams {
            Streams::All => true,
            Streams::Only(s) => l.stream == s,
        })
        .filter(|l| since.is_none_or(|t| l.time >= t))
        .collect();
    let skip = options.tail.map_or(0, |n| lines.len().saturating_sub(n));
    lines.into_iter().skip(skip).collect()
}
// ANCHOR_END: select

/// Renders lines as `kubectl logs` prints them.
pub fn render(lines: &[Line], timestamps: bool) -> String {
    let mut out = String::new();
    for l in lines {
        if timestamps {
            out.push_str(&format_time_fixed(l.time));
            out.push(' ');
        }
        out.push_str(&l.text);
        if l.complete {
            out.push('\n');
        }
    }
    out
}

/// Reads a log file and renders what `kubectl logs` would print.
pub fn read(path: &Path, options: &LogOptions) -> Result<String, LogError> {
    let bytes = std::fs::read(path).map_err(|source| LogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Containers may print anything; show bad UTF-8 as U+FFFD, not fail.
    let text = String::from_utf8_lossy(&bytes);
    let records = parse_log(&text).map_err(|error| LogError::Parse {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(render(&select(&records, options), options.timestamps))
}

// ANCHOR: log_path
/// A pod's log directory, as the kubelet names it under /var/log/pods:
/// `<namespace>_<name>_<uid>`.
pub fn pod_log_dir(root: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    root.join(format!("{ns}_{name}_{uid}"))
}

/// The log file of one instance of a container, by its restart count:
/// `<container>/<restarts>.log`.
pub fn log_path(pod_dir: &Path, container: &str, restarts: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{restarts}.log"))
}

/// The previous instance's log (`--previous`) when the container has
/// restarted `n` times, if there was one.
pub fn previous_log_path(dir: &Path, name: &str, n: u32) -> Option<PathBuf> {
    n.checked_sub(1).map(|n| log_path(dir, name, n))
}

// ANCHOR_END: log_path

/// Removes a container's log files older than the previous instance's, so
/// the current and the previous one stay (what `--previous` needs).
/// Returns the files removed.
pub fn prune(pod_dir: &Path, container: &str, restart_count: u32) -> io::Result<Vec<PathBuf>> {
    let dir = pod_dir.join(container);
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let count = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = count {
            if n + 1 < restart_count {
                std::fs::remove_file(&path)?;
                removed.push(path);
            }
        }
    }
    removed.sort();
    Ok(removed)
}
