//! A container's output into its CRI log file, without a thread per
//! stream: the runtime's event loop reads whatever a pipe holds when it is
//! readable and hands it to a [`LineCutter`], which cuts it into records
//! the way [`crate::logs::LogWriter::copy_stream`] does.

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::logs::{LogWriter, Stream, MAX_LINE};
use crate::SystemClock;

/// The log file of one container attempt, shared by its two streams.
pub type ContainerLog = Arc<LogWriter<File, SystemClock>>;

/// One stream's unfinished line.
pub struct LineCutter {
    stream: Stream,
    line: Vec<u8>,
    log: ContainerLog,
}

impl LineCutter {
    pub fn new(stream: Stream, log: ContainerLog) -> LineCutter {
        LineCutter {
            stream,
            line: Vec::new(),
            log,
        }
    }

    // ANCHOR: feed
    /// Takes the next bytes of the stream: every complete line becomes a
    /// full record (`F`), a line longer than [`MAX_LINE`] is cut into
    /// partial ones (`P`), and the rest waits for more.
    pub fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while let Some(&next) = bytes.first() {
            if self.line.len() == MAX_LINE {
                // A record's worth: the byte after it says whether the
                // line ends here or goes on.
                let ends = next == b'\n';
                self.log.record(self.stream, !ends, &self.line)?;
                self.line.clear();
                if ends {
                    bytes = &bytes[1..];
                }
                continue;
            }
            let room = MAX_LINE - self.line.len();
            let chunk = &bytes[..bytes.len().min(room)];
            match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    self.line.extend_from_slice(&chunk[..at]);
                    // Like Go's bufio ReadLine, a CRLF ending goes whole.
                    if self.line.last() == Some(&b'\r') {
                        self.line.pop();
                    }
                    self.log.record(self.stream, false, &self.line)?;
                    self.line.clear();
                    bytes = &bytes[at + 1..];
                }
                None => {
                    self.line.extend_from_slice(chunk);
                    bytes = &bytes[chunk.len()..];
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: feed

    /// The stream ended: what is left had no newline.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.log.record(self.stream, true, &self.line)?;
            self.line.clear();
        }
        Ok(())
    }
}
