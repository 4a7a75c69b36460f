//! Decompressing on one core while extracting on another, as `tar -xzf`
//! does with gzip in a process of its own: the caller's thread inflates the
//! layer into chunks, a second thread parses the tar and makes the files,
//! and a small queue between them keeps both busy.

use std::io::{self, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};

use super::UnpackError;
use crate::layer::compression::uncompressed;

/// Bytes handed over at a time: few handovers, since each may wait for a
/// time slice on a busy machine.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: enough to ride out a slow file, little memory.
const DEPTH: usize = 8;

/// Runs `work` on the tar stream inside `layer` (gzip, zstd or plain),
/// which another thread reads while this one decompresses. A read error
/// reaches `work` as its reader's error; when `work` returns early (a
/// refused entry, or the tar's end before the stream's), decompression
/// stops too.
pub(crate) fn with_tar_stream<T: Send>(
    layer: impl Read,
    work: impl FnOnce(&mut dyn Read) -> Result<T, UnpackError> + Send,
) -> Result<T, UnpackError> {
    let mut tar = uncompressed(layer).map_err(|source| UnpackError::Read {
        entry: None,
        source,
    })?;
    let (full, queue) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
    // Emptied chunks come back, so the same few buffers go round.
    let (give_back, spare) = channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            work(&mut ChunkReader {
                queue,
                give_back,
                chunk: Vec::new(),
                at: 0,
            })
        });
        loop {
            let mut chunk = spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
            let filled = fill(&mut tar, &mut chunk);
            let done = !matches!(&filled, Ok(n) if *n > 0);
            let sent = match filled {
                Ok(0) => true,
                Ok(_) => full.send(Ok(chunk)).is_ok(),
                Err(e) => full.send(Err(e)).is_ok(),
            };
            if done || !sent {
                break;
            }
        }
        // The end of the stream, for a worker still reading.
        drop(full);
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Reads up to [`CHUNK`] bytes into `chunk` (emptied first); 0 at the end.
fn fill(from: &mut dyn Read, chunk: &mut Vec<u8>) -> io::Result<usize> {
    chunk.clear();
    chunk.resize(CHUNK, 0);
    let mut got = 0;
    while got < CHUNK {
        match from.read(&mut chunk[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    chunk.truncate(got);
    Ok(got)
}

/// The worker's side: the chunks as one stream.
struct ChunkReader {
    queue: Receiver<io::Result<Vec<u8>>>,
    give_back: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.queue.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.chunk, next);
                    // The decompressing side may be gone: nothing to do.
                    let _ = self.give_back.send(used);
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                // Sender dropped: the stream ended.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
