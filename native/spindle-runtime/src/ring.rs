//! The workers' ring: authenticated TCP connections to the two neighbours (formed by
//! [`crate::rendezvous`]), and a chunked, pipelined ring all-reduce over them (its chunk arithmetic in
//! `crate::schedule`).
//!
//! Wire format: raw little-endian `f32`s (peers share the architecture: one build of this library).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use actix::{Actor, Addr, Handler, SyncContext};
use crossbeam_channel::{bounded, unbounded, Receiver};

use crate::actors::{messages, Actors, Reply};
use crate::error::{Error, Result};
use crate::liveness::{clone, Liveness};
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
    /// Sends this rank's chunks while the all-reduce's caller receives.
    sender: Addr<ChunkSender>,
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

/// The sending half of the all-reduce: it blocks on socket writes, so it has a thread of its own.
struct ChunkSender {
    /// The connections to the right neighbour (written) and from the left one (shut on a failure).
    links: Arc<[TcpStream; 2]>,
}

impl Actor for ChunkSender {
    type Context = SyncContext<Self>;
}

/// Sends this rank's chunks of one all-reduce over `buffer` as `schedule` says, each once `received`
/// has counted the chunks it depends on (one `()` per chunk received). Replies when done; the caller
/// keeps `buffer` alive until then.
struct SendChunks {
    buffer: Buffer,
    schedule: Schedule,
    received: Receiver<()>,
    reply: Reply<std::io::Result<()>>,
}

messages!(SendChunks);

impl Handler<SendChunks> for ChunkSender {
    type Result = ();
    fn handle(&mut self, m: SendChunks, _: &mut SyncContext<Self>) {
        let _ = m.reply.send(self.send(&m));
    }
}

impl ChunkSender {
    fn send(&self, m: &SendChunks) -> std::io::Result<()> {
        let schedule = &m.schedule;
        let mut received = 0;
        for p in 0..schedule.phases() {
            // Chunk c of this phase is chunk c of the last phase's receipts.
            let ready = if p > 0 {
                schedule.chunks_before(p - 1)
            } else {
                0
            };
            for (c, chunk) in schedule.chunks(schedule.sent(p)).enumerate() {
                while p > 0 && received < ready + c + 1 {
                    if m.received.recv().is_err() {
                        return Ok(()); // the receiver failed and reports it
                    }
                    received += 1;
                }
                // SAFETY: in bounds; not written by the receiver now (see `Ring::all_reduce`).
                let bytes = unsafe {
                    std::slice::from_raw_parts(as_bytes(m.buffer.0, &chunk), chunk.len() * 4)
                };
                let [right, left] = &*self.links;
                if let Err(e) = (&*right).write_all(bytes) {
                    let _ = left.shutdown(Shutdown::Both);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Ring {
    /// Forms the ring: dials the right neighbour while accepting the left one (with two workers each is both),
    /// authenticating both connections. Fails after `connect_timeout`, naming the missing peer.
    /// Its heartbeats, watcher and chunk sender are actors on `actors`, which must outlive the ring.
    pub fn connect(rendezvous: Rendezvous, config: &RingConfig, actors: &Actors) -> Result<Ring> {
        let Links {
            left,
            right,
            left_name,
            right_name,
        } = rendezvous::form(rendezvous, config)?;
        let liveness = Liveness::start(
            actors,
            &left,
            &right,
            config.rank,
            &right_name,
            config.heartbeat_timeout,
        )?;
        let links = Arc::new([clone(&right)?, clone(&left)?]);
        let sender =
            actors.start_sync(format!("spindle-ring-send-{}", config.rank), move || {
                ChunkSender {
                    links: Arc::clone(&links),
                }
            })?;
        Ok(Ring {
            rank: config.rank,
            world: config.peers.len(),
            left,
            right,
            left_name,
            right_name,
            calls: 0,
            scratch: vec![0; CHUNK_BYTES],
            sender,
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
    /// chunks: the calling thread receives while the ring's `ChunkSender` actor sends, following the
    /// count of chunks received on a channel. A chunk of phase p is sent as soon as the same chunk of phase p - 1 has been
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
        let buffer = Buffer(data.as_mut_ptr());
        let (advance, received) = unbounded();
        let (reply, sent) = bounded(1);
        self.sender.do_send(SendChunks {
            buffer,
            schedule,
            received,
            reply,
        });
        let mut left = &self.left;
        let scratch = &mut self.scratch;
        let received_result = (|| -> std::io::Result<()> {
            for p in 0..phases {
                for chunk in schedule.chunks(schedule.received(p)) {
                    let bytes = chunk.len() * 4;
                    if schedule.reduces(p) {
                        left.read_exact(&mut scratch[..bytes])?;
                        // SAFETY: in bounds; the sender reads this chunk only once it is counted.
                        let target = unsafe {
                            std::slice::from_raw_parts_mut(buffer.0.add(chunk.start), chunk.len())
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
                        left.read_exact(target)?;
                    }
                    let _ = advance.send(());
                }
            }
            Ok(())
        })();
        if received_result.is_err() {
            drop(advance); // the sender stops waiting for chunks
            let _ = self.right.shutdown(Shutdown::Both);
        }
        // The buffer stays borrowed until the sender replies: it reads the buffer until then.
        let sent_result = sent.recv().unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the ring's sending actor has stopped",
            ))
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
