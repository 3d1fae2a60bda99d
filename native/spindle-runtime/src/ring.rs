//! The workers' ring: authenticated TCP connections to the two neighbours (formed by
//! [`crate::rendezvous`]), and a chunked, pipelined ring all-reduce over them (its chunk arithmetic in
//! `crate::schedule`). Next to it, the mesh connections of the other algorithms (`crate::mesh`), and the
//! choice among them for each buffer size, from a cost model (`crate::cost`) fed by timings of the ring
//! itself, taken once when it forms.
//!
//! Wire format: raw little-endian `f32`s (peers share the architecture: one build of this library). On an
//! encrypted ring (`RingConfig::encrypt`) the header and every chunk travel as one sealed frame each
//! (`crate::crypto`), at the chunk granularity the schedule pipelines: sealing one chunk overlaps the
//! network's carrying of the one before, and opening happens in place where the chunk lands.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::{Actor, Addr, Handler, SyncContext};
use crossbeam_channel::{bounded, unbounded, Receiver};

use crate::actors::{messages, Actors, Reply};
use crate::algorithms::{self, Algorithm, Step};
use crate::cost::{Choice, Cluster, Link};
use crate::crypto::{Opener, Sealer, OVERHEAD};
use crate::error::{Error, Result};
use crate::frames::{self, read_sealed};
use crate::liveness::{clone, Liveness};
use crate::mesh::{Failure, Mesh, StepError, HEADER};
use crate::rendezvous::{self, Links};
use crate::rendezvous::{Rendezvous, RingConfig};
use crate::schedule::Schedule;

/// Bytes per pipelined chunk: large enough to amortise a syscall, small enough to overlap the phases.
const CHUNK_BYTES: usize = 256 * 1024;

/// The link between two ranks of one host, which the ring's timings do not show (they take the slowest
/// hop): loopback on the machines Spindle has run on moves a few GB/s, a message in tens of microseconds.
const LOOPBACK: Link = Link {
    alpha: 20e-6,
    beta: 1.0 / 2e9,
};

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
    /// On an encrypted ring: the sealer of what goes right (the header here, the chunks in the sender:
    /// never at once, so the lock is never contended) and the opener of what comes from the left.
    sealer: Option<Arc<Mutex<Sealer>>>,
    opener: Option<Opener>,
    /// Sends this rank's chunks while the all-reduce's caller receives.
    sender: Addr<ChunkSender>,
    /// Heartbeats to the left neighbour and the watch on the right one; dropped after the connections shut.
    liveness: Liveness,
    /// Connections to the partners of the other algorithms.
    mesh: Mesh,
    /// Every rank's address, for errors.
    peers: Vec<String>,
    /// Each rank's host.
    hosts: Vec<usize>,
    /// What the choice may pick: one forced algorithm, or all that fit the hosts.
    candidates: Vec<Algorithm>,
    /// The cost model's picture of this job, from the ring's timings; `None` when nothing is left to choose.
    cluster: Option<Cluster>,
    /// The choice and steps of each buffer length met: training all-reduces a few lengths over and over.
    plans: HashMap<usize, Arc<(Choice, Vec<Step>)>>,
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
    /// On an encrypted ring, the sealer of the chunks, and the frame each is copied into and sealed in:
    /// the buffer itself must keep its values.
    sealer: Option<Arc<Mutex<Sealer>>>,
    frame: Vec<u8>,
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
        let sent = self.send(&m);
        let _ = m.reply.send(sent);
    }
}

impl ChunkSender {
    fn send(&mut self, m: &SendChunks) -> std::io::Result<()> {
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
                let at = as_bytes(m.buffer.0, &chunk) as *mut u8;
                // SAFETY: in bounds; not written by the receiver now (see `Ring::all_reduce`).
                let bytes = || unsafe { std::slice::from_raw_parts(at, chunk.len() * 4) };
                let [right, left] = &*self.links;
                let written = match &self.sealer {
                    None => (&*right).write_all(bytes()),
                    // What a rank sends while reducing it never reads again (the all-gather overwrites
                    // it: see `Ring::ring_all_reduce`), so it is sealed where it lies, with no copy.
                    Some(sealer) if schedule.reduces(p) => {
                        // SAFETY: as above; and the receiver rewrites this chunk only once it has come
                        // round the ring, after this send.
                        let body = unsafe { std::slice::from_raw_parts_mut(at, chunk.len() * 4) };
                        lock(sealer).seal_apart(body).map_err(frames::io).and_then(
                            |(prefix, tag)| frames::write_apart(right, &prefix, body, &tag),
                        )
                    }
                    // The all-gather's values are the result: sealed in a copy.
                    Some(sealer) => lock(sealer)
                        .seal_into(bytes(), &mut self.frame)
                        .map_err(frames::io)
                        .and_then(|()| (&*right).write_all(&self.frame)),
                };
                if let Err(e) = written {
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
    /// With a choice of algorithms, it then times a few ring all-reduces to feed the cost model.
    pub fn connect(rendezvous: Rendezvous, config: &RingConfig, actors: &Actors) -> Result<Ring> {
        let hosts = algorithms::hosts_of(&config.peers);
        let candidates = candidates(config.algorithm, &hosts);
        let partners = algorithms::partners(&candidates, config.rank, &hosts);
        let Links {
            left,
            right,
            left_name,
            right_name,
            left_keys,
            right_keys,
            mesh,
        } = rendezvous::form(rendezvous, config, &partners)?;
        let mesh = Mesh::new(mesh, config.io_timeout)?;
        // Data flows from the left and to the right; heartbeats the other way on each connection.
        let (beat_sealer, opener) = left_keys.map(|k| (k.sealer, k.opener)).unzip();
        let (sealer, beat_opener) = right_keys.map(|k| (k.sealer, k.opener)).unzip();
        let sealer = sealer.map(|s| Arc::new(Mutex::new(s)));
        let liveness = Liveness::start(
            actors,
            &left,
            &right,
            mesh.clones()?,
            config.rank,
            &right_name,
            config.heartbeat_timeout,
            (beat_sealer, beat_opener),
        )?;
        let links = Arc::new([clone(&right)?, clone(&left)?]);
        let sender_sealer = sealer.clone();
        let sender =
            actors.start_sync(format!("spindle-ring-send-{}", config.rank), move || {
                ChunkSender {
                    links: Arc::clone(&links),
                    sealer: sender_sealer.clone(),
                    frame: Vec::new(),
                }
            })?;
        let mut ring = Ring {
            rank: config.rank,
            world: config.peers.len(),
            left,
            right,
            left_name,
            right_name,
            calls: 0,
            scratch: vec![0; CHUNK_BYTES + OVERHEAD],
            sealer,
            opener,
            sender,
            liveness,
            mesh,
            peers: config.peers.clone(),
            hosts,
            candidates,
            cluster: None,
            plans: HashMap::new(),
        };
        // Two-level picks its leaders' algorithm by the model too.
        if ring.candidates.len() > 1 || ring.candidates == [Algorithm::TwoLevel] {
            ring.cluster = Some(ring.calibrate()?);
        }
        Ok(ring)
    }

    /// Times ring all-reduces of one value per rank (latency: `2 (p - 1) + 1` hops with the header) and of
    /// 64 KiB per rank, at least 256 KiB (bandwidth), and an addition locally, then averages the figures over
    /// the ranks with one more all-reduce, so that every rank holds the same model and makes the same choices.
    /// Each hop of the bandwidth probe moves 64 KiB or more: a switch's (or tbf's) burst lets a few KiB
    /// through faster than the link's rate, which smaller hops would take for bandwidth (at 32 ranks and 256
    /// KiB, 8 KiB per hop, the model was 26% optimistic on the emulated cluster).
    fn calibrate(&mut self) -> Result<Cluster> {
        let p = self.world;
        let fastest = |ring: &mut Ring, len: usize, times: usize| -> Result<f64> {
            let mut data = vec![1.0f32; len];
            let mut best = f64::MAX;
            for _ in 0..times {
                let t0 = Instant::now();
                ring.ring_all_reduce(&mut data)?;
                best = best.min(t0.elapsed().as_secs_f64());
            }
            Ok(best)
        };
        let hops = (2 * (p - 1) + 1) as f64;
        let alpha = fastest(self, p, 5)? / hops;
        let len = (16 * 1024 * p).max(64 * 1024);
        let bytes = (len * 4) as f64;
        let moved = 2.0 * (p - 1) as f64 / p as f64 * bytes;
        let beta = ((fastest(self, len, 3)? - hops * alpha) / moved).max(1e-12);
        let (mut a, b) = (vec![1.0f32; len], vec![2.0f32; len]);
        let mut gamma = f64::MAX;
        for _ in 0..3 {
            let t0 = Instant::now();
            for (x, y) in a.iter_mut().zip(&b) {
                *x += y;
            }
            std::hint::black_box(&a);
            gamma = gamma.min(t0.elapsed().as_secs_f64() / bytes);
        }
        // Each rank's figures, summed bit-identically on every rank by the ring.
        let mut figures = [alpha as f32, beta as f32, gamma as f32];
        self.ring_all_reduce(&mut figures)?;
        let mean = |v: f32| v as f64 / p as f64;
        let groups = algorithms::groups(&self.hosts);
        let cluster = Cluster {
            network: Link {
                alpha: mean(figures[0]),
                beta: mean(figures[1]),
            },
            local: LOOPBACK,
            gamma: mean(figures[2]),
            per_host: groups.iter().map(Vec::len).collect(),
            ring_crossings: ring_crossings(&self.hosts),
        };
        if self.rank == 0 {
            log::info!(
                "all-reduce: {p} ranks on {} hosts; measured {:.0} us per message, {:.1} MB/s, {:.2} GB/s added",
                groups.len(),
                cluster.network.alpha * 1e6,
                1e-6 / cluster.network.beta,
                1e-9 / cluster.gamma
            );
        }
        Ok(cluster)
    }

    /// Forces `algorithm` from now on (`None`: the model's choice again), on a ring formed with the
    /// model's choice (it has every connection and the timings). Every rank must do the same.
    pub fn set_algorithm(&mut self, algorithm: Option<Algorithm>) -> Result<()> {
        let all = candidates(None, &self.hosts);
        let connected = algorithms::partners(&all, self.rank, &self.hosts);
        let needed = candidates(algorithm, &self.hosts);
        if self.cluster.is_none()
            || !algorithms::partners(&needed, self.rank, &self.hosts).is_subset(&connected)
        {
            return Err(Error::Native(format!(
                "all-reduce: {algorithm:?} needs a ring formed with the automatic choice"
            )));
        }
        self.candidates = needed;
        self.plans.clear();
        Ok(())
    }

    /// The model of this job the choice uses, once the ring has timed itself.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// What an all-reduce of `len` values runs, and the time the model predicts (0 without a model).
    pub fn choice(&self, len: usize) -> Choice {
        let bytes = (len * 4) as f64;
        match &self.cluster {
            Some(c) => c.choose(&self.candidates, bytes),
            None => Choice {
                algorithm: self.candidates[0],
                inner: Algorithm::HalvingDoubling,
                seconds: 0.0,
            },
        }
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
        let mut all = vec![clone(&self.left)?, clone(&self.right)?];
        all.extend(self.mesh.clones()?);
        Ok(RingCloser(all))
    }

    fn shut(&self) {
        let _ = self.left.shutdown(Shutdown::Both);
        let _ = self.right.shutdown(Shutdown::Both);
        self.mesh.shut();
    }

    fn io_error(&self, sending: bool, e: std::io::Error) -> Error {
        let (verb, name) = if sending {
            ("sending to", &self.right_name)
        } else {
            ("receiving from", &self.left_name)
        };
        // A silent peer shut the ring: its watcher knows which and why.
        let why = self.why(&e);
        Error::Cluster(format!("ring: rank {} {verb} {name}: {why}", self.rank))
    }

    /// Sums `data` element-wise over every rank, in place, by the algorithm chosen for its length. Every
    /// rank ends with the same bits. After an error `data` holds no meaningful values (partial sums, or on
    /// an encrypted ring ciphertext too).
    pub fn all_reduce(&mut self, data: &mut [f32]) -> Result<()> {
        let len = data.len();
        let plan = match self.plans.get(&len) {
            Some(plan) => Arc::clone(plan),
            None => {
                let choice = self.choice(len);
                let steps =
                    algorithms::steps(choice.algorithm, choice.inner, self.rank, &self.hosts, len);
                if self.rank == 0 && self.cluster.is_some() {
                    log::info!(
                        "all-reduce of {len} values: {} (predicted {:.2} ms)",
                        choice.algorithm.name(),
                        choice.seconds * 1e3
                    );
                }
                let plan = Arc::new((choice, steps));
                self.plans.insert(len, Arc::clone(&plan));
                plan
            }
        };
        let (choice, steps) = &*plan;
        if choice.algorithm == Algorithm::Ring {
            return self.ring_all_reduce(data);
        }
        let algorithm = choice.algorithm;
        self.calls += 1;
        let header = header(self.calls, len);
        let failure = match self.mesh.run(steps, data, &header) {
            Ok(()) => return Ok(()),
            Err(f) => f,
        };
        self.shut();
        let (rank, name) = (self.rank, algorithm.name());
        Err(Error::Cluster(match failure {
            Failure::Io(StepError {
                peer,
                sending,
                error,
            }) => {
                let verb = if sending {
                    "sending to"
                } else {
                    "receiving from"
                };
                format!(
                    "all-reduce ({name}): rank {rank} {verb} {}: {}",
                    self.peer_name(peer),
                    self.why(&error)
                )
            }
            Failure::OutOfStep { peer, theirs } => {
                self.out_of_step(&self.peer_name(peer), &theirs, len)
            }
        }))
    }

    /// The error of ranks out of step: `peer` sent `theirs` where this rank is at its own header.
    fn out_of_step(&self, peer: &str, theirs: &[u8; HEADER], len: usize) -> String {
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        format!(
            "ring: {peer} is at all-reduce #{} of {} values, rank {} at #{} of {len}",
            word(&theirs[..8]),
            word(&theirs[8..]),
            self.rank,
            self.calls
        )
    }

    fn peer_name(&self, rank: usize) -> String {
        format!(
            "rank {rank} ({})",
            self.peers.get(rank).map_or("?", |p| p.as_str())
        )
    }

    /// Why a transfer failed: a silent peer the ring's watcher found, else what the socket said.
    fn why(&self, e: &std::io::Error) -> String {
        self.liveness.failure().unwrap_or_else(|| match e.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
                "the connection closed (its task failed or was stopped)".to_string()
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => "timed out".to_string(),
            _ => e.to_string(),
        })
    }

    /// The pipelined ring all-reduce of `data`.
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
    ///
    /// Encrypted, the sender seals each chunk it sends while reducing where it lies in the buffer (the
    /// all-gather overwrites every such chunk with the result, and by the argument above only after the
    /// send), and copies the all-gather's chunks, which are the result, into a frame of its own.
    fn ring_all_reduce(&mut self, data: &mut [f32]) -> Result<()> {
        self.calls += 1;
        let (n, rank, len) = (self.world, self.rank, data.len());
        let header = header(self.calls, len);
        let mut theirs = [0u8; HEADER];
        // 16 bytes (36 sealed) fit any socket buffer, so writing before reading cannot deadlock.
        let written = match &self.sealer {
            None => (&self.right).write_all(&header),
            Some(sealer) => {
                let mut frame = Vec::with_capacity(HEADER + OVERHEAD);
                lock(sealer)
                    .seal_into(&header, &mut frame)
                    .map_err(frames::io)
                    .and_then(|()| (&self.right).write_all(&frame))
            }
        };
        let exchanged = match written {
            Err(e) => Err(self.io_error(true, e)),
            Ok(()) => match &mut self.opener {
                None => (&self.left).read_exact(&mut theirs),
                Some(opener) => read_sealed(&self.left, opener, &mut theirs),
            }
            .map_err(|e| self.io_error(false, e)),
        };
        if let Err(e) = exchanged {
            self.shut();
            return Err(e);
        }
        if theirs != header {
            self.shut();
            return Err(Error::Cluster(self.out_of_step(
                &self.left_name,
                &theirs,
                len,
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
        let mut opener = self.opener.as_mut();
        // One chunk from the left: sealed, its ciphertext lands in `into` and is opened there.
        let mut read = |into: &mut [u8]| match &mut opener {
            None => left.read_exact(into),
            Some(opener) => read_sealed(&mut left, opener, into),
        };
        let received_result = (|| -> std::io::Result<()> {
            for p in 0..phases {
                for chunk in schedule.chunks(schedule.received(p)) {
                    let bytes = chunk.len() * 4;
                    if schedule.reduces(p) {
                        read(&mut scratch[..bytes])?;
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
                        read(target)?;
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

/// The sealer, even if a thread panicked holding it (it holds no invariant a panic can break halfway:
/// its counter moves only after a frame is sealed).
fn lock(sealer: &Mutex<Sealer>) -> std::sync::MutexGuard<'_, Sealer> {
    sealer.lock().unwrap_or_else(|e| e.into_inner())
}

/// The most ring connections that leave one host (rank r sends to r + 1).
fn ring_crossings(hosts: &[usize]) -> usize {
    let p = hosts.len();
    let mut leaving = vec![0; hosts.iter().max().map_or(0, |h| h + 1)];
    for r in 0..p {
        if hosts[r] != hosts[(r + 1) % p] {
            leaving[hosts[r]] += 1;
        }
    }
    leaving.into_iter().max().unwrap_or(0).max(1)
}

/// What the choice may pick: the forced algorithm, or every one that fits the hosts (two-level only where
/// a host holds several ranks).
fn candidates(forced: Option<Algorithm>, hosts: &[usize]) -> Vec<Algorithm> {
    let shared = algorithms::groups(hosts).iter().any(|g| g.len() > 1);
    match forced {
        Some(a) => vec![a],
        None => Algorithm::ALL
            .into_iter()
            .filter(|a| *a != Algorithm::TwoLevel || shared)
            .collect(),
    }
}

/// The header before an all-reduce's data: its number and its length in values.
fn header(call: u64, len: usize) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&call.to_le_bytes());
    header[8..].copy_from_slice(&(len as u64).to_le_bytes());
    header
}

impl Drop for Ring {
    /// Ends the ring: the mesh at once (it carries no heartbeats, and a peer still reading from it learns
    /// we are gone); a FIN after the data sent; goodbyes with the neighbours (see `crate::liveness`); then
    /// both connections shut. On a ring a failure already shut, at once.
    fn drop(&mut self) {
        self.mesh.shut();
        let _ = self.right.shutdown(Shutdown::Write);
        self.liveness.finish();
        self.shut();
    }
}
