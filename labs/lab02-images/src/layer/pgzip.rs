//! Gzip on every core: the stream is cut into fixed 128 KiB blocks, each
//! compressed on its own as one gzip member, and the members are written in
//! order. A file of several members is still one valid gzip file (RFC 1952
//! allows it; Go's, zlib's and flate2's readers read them all), and since the
//! cut depends only on the block size, the bytes, hence the digest, do not
//! depend on how many cores did the work. pigz and Go's pgzip use the same idea.

use std::io::{self, Write};

use flate2::{Compression, GzBuilder};

/// Small enough that a block is mostly one kind of data (text, or already
/// compressed bytes), large enough that restarting the compressor costs
/// little (its window is 32 KiB anyway).
const BLOCK: usize = 128 << 10;

pub struct ParallelGz<W: Write> {
    out: W,
    /// Blocks waiting to be compressed; the last one may be partial.
    pending: Vec<Vec<u8>>,
    threads: usize,
}

impl<W: Write> ParallelGz<W> {
    pub fn new(out: W) -> Self {
        let threads =
            std::thread::available_parallelism().map_or(1, |n| n.get());
        ParallelGz {
            out,
            pending: vec![Vec::with_capacity(BLOCK)],
            threads,
        }
    }

    /// Compresses the full blocks (all of them when `all`) and writes them.
    fn drain(&mut self, all: bool) -> io::Result<()> {
        let keep_last =
            !all && self.pending.last().is_some_and(|b| b.len() < BLOCK);
        let ready = if keep_last {
            self.pending.len() - 1
        } else {
            self.pending.len()
        };
        if ready == 0 {
            return Ok(());
        }
        let blocks: Vec<Vec<u8>> = self.pending.drain(..ready).collect();
        let members: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = blocks
                .chunks(blocks.len().div_ceil(self.threads))
                .map(|group| {
                    scope.spawn(move || {
                        group.iter().map(|b| member(b)).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(io::Error::other("gzip worker panicked"))]
                    })
                })
                .collect()
        });
        for m in members {
            self.out.write_all(&m?)?;
        }
        if self.pending.is_empty() {
            self.pending.push(Vec::with_capacity(BLOCK));
        }
        Ok(())
    }

    /// Writes what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending.iter().any(|b| !b.is_empty()) {
            self.pending.retain(|b| !b.is_empty());
            self.drain(true)?;
        }
        Ok(self.out)
    }
}

// ANCHOR: member
/// One block as one gzip member: no name, no time. A block that does not
/// compress (already compressed data, binaries' random-looking parts) is
/// stored as it is, which costs a copy instead of a futile search; the
/// choice depends on the bytes alone, so the output stays deterministic.
fn member(block: &[u8]) -> io::Result<Vec<u8>> {
    let level = if compresses(block) {
        Compression::fast()
    } else {
        Compression::none()
    };
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(block.len() / 2 + 64), level);
    gz.write_all(block)?;
    gz.finish()
}

/// Whether a sample of the block's start shrinks by at least a tenth.
fn compresses(block: &[u8]) -> bool {
    let sample = &block[..block.len().min(16 << 10)];
    let mut probe =
        flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
    if probe.write_all(sample).is_err() {
        return true;
    }
    probe
        .finish()
        .map_or(true, |out| out.len() * 10 < sample.len() * 9)
}
// ANCHOR_END: member

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let last = self.pending.last_mut().expect("always one open block");
            let take = (BLOCK - last.len()).min(buf.len());
            last.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if last.len() == BLOCK {
                if self.pending.len() >= self.threads * 32 {
                    self.drain(false)?;
                }
                self.pending.push(Vec::with_capacity(BLOCK));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
