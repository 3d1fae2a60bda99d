//! The workers' ring: authenticated TCP connections to the two neighbours (formed by
//! [`crate::rendezvous`]), and a chunked, pipelined ring all-reduce over them (its chunk arithmetic in
//! `crate::schedule`).
//!
//! Wire format: raw little-endian `f32`s (peers share the architecture: one build of this library).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::rendezvous::{self, Links};
use crate::rendezvous::{Rendezvous, RingConfig};
use crate::schedule::Schedule;

/// Bytes per pipelined chunk: large enough to amortise a syscall, small enough to overlap the phases.
const CHUNK_BYTES: usize = 256 * 1024;

/// Connections to the left and right neighbours. Dropping it shuts both, which wakes peers blocked on us.
pub struct Ring {
    rank: usize,
    world: usize,
    left: TcpStream,
    right: TcpStream,
    left_name: String,
    right_name: String,
    calls: u64,
    scratch: Vec<u8>,
    /// Heartbeats to the left neighbour and the watch on the right one; dropped after the connections shut.
    liveness: Liveness,
}

/// Shuts a ring's connections from another thread (a task being closed while its trainer is blocked).
pub struct RingCloser(Vec<TcpStream>);

impl RingCloser {
    /// Shuts both connections; idempotent.
    pub fn close(&self) {
        for s in &self.0 {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Progress of the receiving side, which the sending side follows chunk by chunk.
struct Progress {
    chunks: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Progress {
    fn advance(&self) {
        self.chunks.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
        self.changed.notify_all();
    }

    fn abort(&self) {
        self.chunks.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.changed.notify_all();
    }

    /// Waits until `n` chunks were received; false when the receiver gave up.
    fn reached(&self, n: usize) -> bool {
        let mut g = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
        while g.0 < n && !g.1 {
            g = self.changed.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.0 >= n
    }
}

/// A raw view of the buffer shared by the sending thread and the receiving one (see `all_reduce`).
#[derive(Clone, Copy)]
struct Buffer(*mut f32);
// SAFETY: the two threads touch disjoint ranges at any time, as `all_reduce` explains.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

fn as_bytes(p: *const f32, range: &std::ops::Range<usize>) -> *const u8 {
    // SAFETY: callers pass ranges inside the buffer.
    unsafe { p.add(range.start) as *const u8 }
}

impl Ring {
    /// Forms the ring: dials the right neighbour while accepting the left one (with two workers each is both),
    /// authenticating both connections. Fails after `connect_timeout`, naming the missing peer.
    pub fn connect(rendezvous: Rendezvous, config: &RingConfig) -> Result<Ring> {
        let Links {
            left,
            right,
            left_name,
            right_name,
        } = rendezvous::form(rendezvous, config)?;
        let liveness = Liveness::start(
            &left,
            &right,
            config.rank,
            &right_name,
            config.heartbeat_timeout,
        )?;
        Ok(Ring {
            rank: config.rank,
            world: config.peers.len(),
            left,
            right,
            left_name,
            right_name,
            calls: 0,
            scratch: vec![0; CHUNK_BYTES],
            liveness,
        })
    }

    /// This worker's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of workers.
    pub fn world(&self) -> usize {
        self.world
    }

    /// A handle that shuts this ring's connections from another thread.
    pub fn closer(&self) -> Result<RingCloser> {
        let clone = |s: &TcpStream| {
            s.try_clone()
                .map_err(|e| Error::Native(format!("ring: cloning a socket: {e}")))
        };
        Ok(RingCloser(vec![clone(&self.left)?, clone(&self.right)?]))
    }

    fn shut(&self) {
        let _ = self.left.shutdown(Shutdown::Both);
        let _ = self.right.shutdown(Shutdown::Both);
    }

    fn io_error(&self, sending: bool, e: std::io::Error) -> Error {
        let (verb, name) = if sending {
            ("sending to", &self.right_name)
        } else {
            ("receiving from", &self.left_name)
        };
        // A silent peer shut the ring: its watcher knows which and why.
        let why = self.liveness.failure().unwrap_or_else(|| match e.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
                "the connection closed (its task failed or was stopped)".to_string()
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => "timed out".to_string(),
            _ => e.to_string(),
        });
        Error::Cluster(format!("ring: rank {} {verb} {name}: {why}", self.rank))
    }

    /// Sums `data` element-wise over every rank, in place.
    ///
    /// Reduce-scatter then all-gather over `world` segments, `2 (world - 1)` phases, as `schedule::Schedule`
    /// lays out; in each phase a rank sends one segment right and receives one from the left, both in
    /// chunks, on two threads. A chunk of phase p is sent as soon as the same chunk of phase p - 1 has been
    /// received (and reduced), since the segment sent in phase p is the one received in phase p - 1: the
    /// phases pipeline.
    ///
    /// Why the two threads never touch the same memory: in phase p the sender reads a chunk the receiver
    /// finished in phase p - 1, while the receiver writes the segment of its own phase. A segment is
    /// received twice, in the reduce-scatter phase a and again in the all-gather phase a + world; the
    /// sender reads it in phase a + 1. Data of phase q reaches this rank only after going once around the
    /// ring, which needs this rank to have sent the same chunk of phase q - world + 1 first; so the rewrite
    /// of phase a + world waits for the send of phase a + 1.
    pub fn all_reduce(&mut self, data: &mut [f32]) -> Result<()> {
        self.calls += 1;
        let (n, rank, len) = (self.world, self.rank, data.len());
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&self.calls.to_le_bytes());
        header[8..].copy_from_slice(&(len as u64).to_le_bytes());
        let mut theirs = [0u8; 16];
        // 16 bytes fit any socket buffer, so writing before reading cannot deadlock.
        let exchanged = (&self.right)
            .write_all(&header)
            .map_err(|e| self.io_error(true, e))
            .and_then(|()| {
                (&self.left)
                    .read_exact(&mut theirs)
                    .map_err(|e| self.io_error(false, e))
            });
        if let Err(e) = exchanged {
            self.shut();
            return Err(e);
        }
        if theirs != header {
            self.shut();
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
            return Err(Error::Cluster(format!(
                "ring: {} is at all-reduce #{} of {} values, rank {rank} at #{} of {len}",
                self.left_name,
                word(&theirs[..8]),
                word(&theirs[8..]),
                self.calls
            )));
        }
        if len == 0 {
            return Ok(());
        }
        let schedule = Schedule::new(n, rank, len, CHUNK_BYTES / 4);
        let phases = schedule.phases();
        let progress = Progress {
            chunks: Mutex::new((0, false)),
            changed: Condvar::new(),
        };
        let buffer = Buffer(data.as_mut_ptr());
        let (left, right) = (&self.left, &self.right);
        let scratch = &mut self.scratch;
        let (sent_result, received_result) = std::thread::scope(|s| {
            let sender = s.spawn(|| -> std::io::Result<()> {
                // Captures the whole Buffer (Send), not its raw pointer field.
                let shared = buffer;
                let mut right = right;
                for p in 0..phases {
                    // Chunk c of this phase is chunk c of the last phase's receipts.
                    let ready = if p > 0 {
                        schedule.chunks_before(p - 1)
                    } else {
                        0
                    };
                    for (c, chunk) in schedule.chunks(schedule.sent(p)).enumerate() {
                        if p > 0 && !progress.reached(ready + c + 1) {
                            return Ok(()); // the receiver failed and reports it
                        }
                        // SAFETY: in bounds; not written by the receiver now (see the method doc).
                        let bytes = unsafe {
                            std::slice::from_raw_parts(as_bytes(shared.0, &chunk), chunk.len() * 4)
                        };
                        if let Err(e) = right.write_all(bytes) {
                            let _ = left.shutdown(Shutdown::Both);
                            return Err(e);
                        }
                    }
                }
                Ok(())
            });
            let mut left_stream = left;
            let received_result = (|| -> std::io::Result<()> {
                for p in 0..phases {
                    for chunk in schedule.chunks(schedule.received(p)) {
                        let bytes = chunk.len() * 4;
                        if schedule.reduces(p) {
                            left_stream.read_exact(&mut scratch[..bytes])?;
                            // SAFETY: in bounds; the sender reads this chunk only after `advance`.
                            let target = unsafe {
                                std::slice::from_raw_parts_mut(
                                    buffer.0.add(chunk.start),
                                    chunk.len(),
                                )
                            };
                            for (t, b) in target.iter_mut().zip(scratch[..bytes].chunks_exact(4)) {
                                *t += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                            }
                        } else {
                            // SAFETY: as above; the all-gather overwrites the chunk in place.
                            let target = unsafe {
                                std::slice::from_raw_parts_mut(
                                    buffer.0.add(chunk.start) as *mut u8,
                                    bytes,
                                )
                            };
                            left_stream.read_exact(target)?;
                        }
                        progress.advance();
                    }
                }
                Ok(())
            })();
            if received_result.is_err() {
                progress.abort();
                let _ = right.shutdown(Shutdown::Both);
            }
            let sent_result = sender
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the sending thread panicked")));
            (sent_result, received_result)
        });
        let failure = match (received_result, sent_result) {
            (Err(e), _) => Some(self.io_error(false, e)),
            (Ok(()), Err(e)) => Some(self.io_error(true, e)),
            _ => None,
        };
        match failure {
            Some(e) => {
                self.shut();
                Err(e)
            }
            None => Ok(()),
        }
    }
}

impl Drop for Ring {
    /// Ends the ring: a FIN after the data sent; goodbyes with the neighbours (see `crate::liveness`);
    /// then both connections shut. On a ring a failure already shut, at once.
    fn drop(&mut self) {
        let _ = self.right.shutdown(Shutdown::Write);
        self.liveness.finish();
        self.shut();
    }
}
