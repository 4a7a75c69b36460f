//! Gzip on every core: the stream is cut into fixed 128 KiB blocks, each
//! compressed on its own as one gzip member, and the members are written in
//! order. A file of several members is still one valid gzip file (RFC 1952
//! allows it; Go's, zlib's and flate2's readers read them all), and since the
//! cut depends only on the block size, the bytes, hence the digest, do not
//! depend on how many cores did the work. pigz and Go's pgzip use the same idea.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compression, GzBuilder};

/// Small enough that a block is mostly one kind of data (text, or already
/// compressed bytes), large enough that restarting the compressor costs
/// little (its window is 32 KiB anyway).
const BLOCK: usize = 128 << 10;
/// Blocks handed to a worker at a time: each handover costs a wake-up,
/// which on a busy machine can wait for a time slice.
const JOB: usize = 8 * BLOCK;

pub struct ParallelGz<W: Write> {
    out: W,
    /// The block being filled.
    block: Vec<u8>,
    pool: Pool,
    /// Blocks handed out, and the number of the next member to write.
    sent: u64,
    next: u64,
    /// Members that came back before their turn.
    early: BTreeMap<u64, io::Result<Vec<u8>>>,
    /// Blocks in flight at most, so memory stays bounded.
    depth: u64,
}

impl<W: Write> ParallelGz<W> {
    /// Starts one worker per core: they compress while the caller goes on
    /// reading files and writing tar, instead of taking turns with it.
    pub fn new(out: W) -> Self {
        let threads =
            std::thread::available_parallelism().map_or(1, |n| n.get());
        let depth = threads * 4;
        let (jobs, queue) = sync_channel::<(u64, Vec<u8>)>(depth);
        let queue = Arc::new(Mutex::new(queue));
        let (finished, done) = channel();
        let workers = (0..threads)
            .map(|_| {
                let queue = Arc::clone(&queue);
                let finished = finished.clone();
                std::thread::spawn(move || loop {
                    // The lock is held only to take a job.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok((n, block)) = job else { return };
                    // A panic still answers, or the writer would wait for
                    // this member forever.
                    let made = std::panic::catch_unwind(
                        std::panic::AssertUnwindSafe(|| members(&block)),
                    )
                    .unwrap_or_else(|_| {
                        Err(io::Error::other("a gzip worker panicked"))
                    });
                    if finished.send((n, made)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        ParallelGz {
            out,
            block: Vec::with_capacity(JOB),
            pool: Pool {
                jobs: Some(jobs),
                done,
                workers,
            },
            sent: 0,
            next: 0,
            early: BTreeMap::new(),
            depth: depth as u64,
        }
    }

    /// Hands the open block to the workers.
    fn submit(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(JOB));
        let jobs = self.pool.jobs.as_ref().ok_or_else(gone)?;
        jobs.send((self.sent, block)).map_err(|_| gone())?;
        self.sent += 1;
        // Write what is ready; wait while too much is in flight.
        self.collect(false)?;
        while self.sent - self.next > self.depth {
            self.collect(true)?;
        }
        Ok(())
    }

    /// Writes the members that are ready, in order; with `wait`, waits for
    /// at least one to come back first.
    fn collect(&mut self, wait: bool) -> io::Result<()> {
        if wait {
            let (n, member) = self.pool.done.recv().map_err(|_| gone())?;
            self.early.insert(n, member);
        }
        while let Ok((n, member)) = self.pool.done.try_recv() {
            self.early.insert(n, member);
        }
        while let Some(member) = self.early.remove(&self.next) {
            self.out.write_all(&member?)?;
            self.next += 1;
        }
        Ok(())
    }

    /// Writes what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() {
            self.submit()?;
        }
        while self.next < self.sent {
            self.collect(true)?;
        }
        Ok(self.out)
    }
}

/// The workers and their queues.
struct Pool {
    /// Blocks to compress, numbered; `None` closes the queue.
    jobs: Option<SyncSender<(u64, Vec<u8>)>>,
    /// Members as the workers finish them, in any order.
    done: Receiver<(u64, io::Result<Vec<u8>>)>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Pool {
    /// Ends the workers (they stop once the job queue is closed), whether
    /// the layer was finished or abandoned on an error.
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn gone() -> io::Error {
    io::Error::other("a gzip worker stopped")
}

/// The members of a job's blocks, one after the other: cut where a
/// block-at-a-time writer would cut, so the bytes are the same.
fn members(job: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(job.len() / 2 + 64);
    for block in job.chunks(BLOCK) {
        out.extend_from_slice(&member(block)?);
    }
    Ok(out)
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
            let take = (JOB - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == JOB {
                self.submit()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
