//! The workers' ring: authenticated TCP connections to the two neighbours, and a chunked, pipelined ring
//! all-reduce over them.
//!
//! Rendezvous: each worker binds a [`Rendezvous`] on an ephemeral port and publishes its address (the JVM
//! exchanges them with `BarrierTaskContext.allGather`); [`Ring::connect`] then dials the right neighbour
//! (rank + 1) while accepting the left one (rank - 1). Every connection proves both ends hold the per-job
//! secret with a mutual HMAC-SHA256 challenge; a connection that fails it is logged and dropped, and the
//! wait for the real peer goes on. Every wait is bounded, and its error names the rank and address missing.
//!
//! Wire format: raw little-endian `f32`s (peers share the architecture: one build of this library).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"SPNDLRG1";
/// Bytes per pipelined chunk: large enough to amortise a syscall, small enough to overlap the phases.
const CHUNK_BYTES: usize = 256 * 1024;
/// How long one handshake may take, so a silent connection cannot hold the accept loop.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A bound listening socket whose address the peers learn through Spark.
pub struct Rendezvous {
    listener: TcpListener,
    address: String,
}

impl Rendezvous {
    /// Binds `host` on an ephemeral port.
    pub fn bind(host: &str) -> Result<Rendezvous> {
        let listener = TcpListener::bind((host, 0))
            .map_err(|e| Error::Cluster(format!("ring: binding a port on {host}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Cluster(format!("ring: reading the bound port: {e}")))?
            .port();
        Ok(Rendezvous {
            listener,
            address: format!("{host}:{port}"),
        })
    }

    /// `host:port` to publish.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// How one worker joins the ring.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// This worker's rank.
    pub rank: usize,
    /// Every rank's published address, indexed by rank.
    pub peers: Vec<String>,
    /// Per-job secret generated on the driver; a peer without it is rejected.
    pub secret: Vec<u8>,
    /// Bound on forming the ring.
    pub connect_timeout: Duration,
    /// Bound on any single read or write once the ring is formed.
    pub io_timeout: Duration,
}

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

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], tag: &[u8], nonce: &[u8], rank: usize, world: usize) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(tag);
    m.update(nonce);
    m.update(&(rank as u32).to_le_bytes());
    m.update(&(world as u32).to_le_bytes());
    m
}

fn peer_name(config: &RingConfig, rank: usize) -> String {
    format!("rank {rank} ({})", config.peers[rank])
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn set_timeouts(s: &TcpStream, t: Duration) -> std::io::Result<()> {
    s.set_read_timeout(Some(t))?;
    s.set_write_timeout(Some(t))
}

/// Dials `to` until the deadline and authenticates as the connecting side.
fn dial(c: &RingConfig, to: usize, deadline: Instant) -> Result<TcpStream> {
    let world = c.peers.len();
    let name = peer_name(c, to);
    let mut last = String::from("no attempt");
    let mut stream = loop {
        let Some(left) = remaining(deadline) else {
            return Err(Error::Cluster(format!(
                "ring: could not reach {name} within {:?}: {last}",
                c.connect_timeout
            )));
        };
        let addr = c.peers[to]
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        match addr.map(|a| TcpStream::connect_timeout(&a, left.min(Duration::from_secs(1)))) {
            Some(Ok(s)) => break s,
            Some(Err(e)) => last = e.to_string(),
            None => last = "the address does not resolve".into(),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let fail = |what: String| Error::Cluster(format!("ring: handshake with {name}: {what}"));
    let budget = remaining(deadline).unwrap_or(Duration::from_millis(1));
    set_timeouts(&stream, budget.min(HANDSHAKE)).map_err(|e| fail(e.to_string()))?;
    stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
    let mut challenge = [0u8; 32];
    stream
        .read_exact(&mut challenge)
        .map_err(|e| fail(format!("no challenge came ({e})")))?;
    let ours: [u8; 32] = rand::random();
    let proof = mac(&c.secret, b"connect", &challenge, c.rank, world).finalize();
    let mut hello = Vec::with_capacity(80);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&(c.rank as u32).to_le_bytes());
    hello.extend_from_slice(&(world as u32).to_le_bytes());
    hello.extend_from_slice(&ours);
    hello.extend_from_slice(&proof.into_bytes());
    stream.write_all(&hello).map_err(|e| fail(e.to_string()))?;
    let mut reply = [0u8; 33];
    if stream.read_exact(&mut reply).is_err() || reply[0] != 1 {
        return Err(fail(
            "it rejected this worker (authentication failed: a different job secret, rank or world size)".into(),
        ));
    }
    mac(&c.secret, b"accept", &ours, to, world)
        .verify_slice(&reply[1..])
        .map_err(|_| fail("authentication failed: the peer does not hold the job secret".into()))?;
    set_timeouts(&stream, c.io_timeout).map_err(|e| fail(e.to_string()))?;
    Ok(stream)
}

/// Authenticates an accepted connection as the left neighbour `from`; the error says why it was refused.
fn greet(
    mut stream: TcpStream,
    c: &RingConfig,
    from: usize,
) -> std::result::Result<TcpStream, String> {
    let world = c.peers.len();
    set_timeouts(&stream, HANDSHAKE).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let challenge: [u8; 32] = rand::random();
    stream.write_all(&challenge).map_err(|e| e.to_string())?;
    let mut hello = [0u8; 80];
    stream
        .read_exact(&mut hello)
        .map_err(|e| format!("no answer to the challenge ({e})"))?;
    let word = |at: usize| {
        u32::from_le_bytes([hello[at], hello[at + 1], hello[at + 2], hello[at + 3]]) as usize
    };
    let (rank, claimed_world) = (word(8), word(12));
    let why = if &hello[..8] != MAGIC {
        Some("not a Spindle ring peer".to_string())
    } else if mac(&c.secret, b"connect", &challenge, rank, claimed_world)
        .verify_slice(&hello[48..80])
        .is_err()
    {
        Some("authentication failed (wrong job secret)".to_string())
    } else if rank != from || claimed_world != world {
        Some(format!(
            "it is rank {rank} of {claimed_world}, expected rank {from} of {world}"
        ))
    } else {
        None
    };
    if let Some(why) = why {
        let _ = stream.write_all(&[0u8; 33]);
        return Err(why);
    }
    let mut reply = Vec::with_capacity(33);
    reply.push(1);
    reply.extend_from_slice(
        &mac(&c.secret, b"accept", &hello[16..48], c.rank, world)
            .finalize()
            .into_bytes(),
    );
    stream.write_all(&reply).map_err(|e| e.to_string())?;
    set_timeouts(&stream, c.io_timeout).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Accepts until the left neighbour `from` authenticates, the deadline passes, or `give_up` is set (the dial
/// to the right failed, so the ring cannot form anyway).
fn accept(
    listener: &TcpListener,
    c: &RingConfig,
    from: usize,
    deadline: Instant,
    give_up: &AtomicBool,
) -> Result<TcpStream> {
    let name = peer_name(c, from);
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Cluster(format!("ring: listening for {name}: {e}")))?;
    loop {
        if give_up.load(Ordering::Relaxed) {
            return Err(Error::Cluster(format!("ring: stopped waiting for {name}")));
        }
        if remaining(deadline).is_none() {
            return Err(Error::Cluster(format!(
                "ring: {name} did not connect within {:?}",
                c.connect_timeout
            )));
        }
        match listener.accept() {
            Ok((stream, addr)) => {
                let greeted = stream
                    .set_nonblocking(false)
                    .map_err(|e| e.to_string())
                    .and_then(|()| greet(stream, c, from));
                match greeted {
                    Ok(s) => return Ok(s),
                    Err(why) => log::warn!(
                        "ring: rank {} refused a connection from {addr}: {why}",
                        c.rank
                    ),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(Error::Cluster(format!("ring: accepting {name}: {e}"))),
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
        let world = config.peers.len();
        let rank = config.rank;
        if world < 2 || rank >= world {
            return Err(Error::Cluster(format!(
                "ring: rank {rank} of {world} workers: a ring needs two or more"
            )));
        }
        let (to, from) = ((rank + 1) % world, (rank + world - 1) % world);
        let deadline = Instant::now() + config.connect_timeout;
        let dial_failed = AtomicBool::new(false);
        let (right, left) = std::thread::scope(|s| {
            let dialing = s.spawn(|| {
                let right = dial(config, to, deadline);
                dial_failed.store(right.is_err(), Ordering::Relaxed);
                right
            });
            let left = accept(&rendezvous.listener, config, from, deadline, &dial_failed);
            let right = dialing
                .join()
                .unwrap_or_else(|_| Err(Error::Native("ring: the dialing thread panicked".into())));
            (right, left)
        });
        // The dial's error first: when it failed, the accept only stopped early because of it.
        let right = right?;
        Ok(Ring {
            rank,
            world,
            left: left?,
            right,
            left_name: peer_name(config, from),
            right_name: peer_name(config, to),
            calls: 0,
            scratch: vec![0; CHUNK_BYTES],
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
        let why = match e.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
                "the connection closed (its task failed or was stopped)".to_string()
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => "timed out".to_string(),
            _ => e.to_string(),
        };
        Error::Cluster(format!("ring: rank {} {verb} {name}: {why}", self.rank))
    }

    /// Sums `data` element-wise over every rank, in place.
    ///
    /// Reduce-scatter then all-gather over `world` segments, `2 (world - 1)` phases; in each phase a rank
    /// sends one segment right and receives one from the left, both in chunks, on two threads. A chunk of
    /// phase p is sent as soon as the same chunk of phase p - 1 has been received (and reduced), since the
    /// segment sent in phase p is the one received in phase p - 1: the phases pipeline.
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
        let segment = |i: usize| (i % n) * len / n..((i % n) + 1) * len / n;
        let per_chunk = CHUNK_BYTES / 4;
        let chunks = |r: &std::ops::Range<usize>| -> Vec<std::ops::Range<usize>> {
            (r.start..r.end)
                .step_by(per_chunk)
                .map(|s| s..(s + per_chunk).min(r.end))
                .collect()
        };
        let phases = 2 * (n - 1);
        // Segment received in phase p; the one sent in phase p is the one received in phase p - 1.
        let received = |p: usize| {
            if p < n - 1 {
                segment(rank + 2 * n - p - 1)
            } else {
                segment(rank + 2 * n - (p - (n - 1)))
            }
        };
        let sent = |p: usize| {
            if p == 0 {
                segment(rank)
            } else {
                received(p - 1)
            }
        };
        // Chunks received before phase p starts.
        let mut before = vec![0usize; phases + 1];
        for p in 0..phases {
            before[p + 1] = before[p] + chunks(&received(p)).len();
        }
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
                    for (c, chunk) in chunks(&sent(p)).iter().enumerate() {
                        if p > 0 && !progress.reached(before[p - 1] + c + 1) {
                            return Ok(()); // the receiver failed and reports it
                        }
                        // SAFETY: in bounds; not written by the receiver now (see the method doc).
                        let bytes = unsafe {
                            std::slice::from_raw_parts(as_bytes(shared.0, chunk), chunk.len() * 4)
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
                    for chunk in chunks(&received(p)) {
                        let bytes = chunk.len() * 4;
                        if p < n - 1 {
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
    fn drop(&mut self) {
        self.shut();
    }
}
