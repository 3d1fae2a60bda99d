//! How the workers form their ring: each binds a [`Rendezvous`] on an ephemeral port and publishes its
//! address (the JVM exchanges them with `BarrierTaskContext.allGather`); [`crate::Ring::connect`] then dials
//! the right neighbour (rank + 1) while accepting the left one (rank - 1). The same way, each worker dials
//! the mesh partners above its rank that the other all-reduce algorithms need (`crate::algorithms`) and
//! accepts those below it: one connection per pair, used both ways.
//!
//! Every connection proves both ends hold the per-job secret with a mutual HMAC-SHA256 challenge: the
//! accepting side sends a random challenge; the dialling side answers with a magic, its rank, the world
//! size, a challenge of its own and the HMAC of ("connect", the challenge, its rank, the world); the
//! accepting side checks it and answers with a status byte and the HMAC of ("accept", the dialler's
//! challenge, its own rank, the world). Mesh connections use their own magic and tags ("mesh connect",
//! "mesh accept"), so that neither kind of connection passes for the other. A connection that fails it is logged and dropped, and the wait
//! for the real peer goes on. Every wait is bounded, and its error names the rank and address missing.
//!
//! When the job asks for encryption (`RingConfig::encrypt`), each end also derives the connection's keys
//! from the secret and the two challenges (`crate::crypto`): every byte after the handshake then travels
//! sealed. The handshake itself carries no secret (only HMACs of fresh challenges), so it stays plain.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::{Channel, Keys};
use crate::error::{Error, Result};

/// A ring connection (data one way, heartbeats the other) or a mesh one (data both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ring,
    Mesh,
}

impl Kind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Ring => b"SPNDLRG1",
            Kind::Mesh => b"SPNDLMS1",
        }
    }

    fn channel(self) -> Channel {
        match self {
            Kind::Ring => Channel::Ring,
            Kind::Mesh => Channel::Mesh,
        }
    }

    fn tags(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Kind::Ring => (b"connect", b"accept"),
            Kind::Mesh => (b"mesh connect", b"mesh accept"),
        }
    }
}

/// How long one handshake may take, so a silent connection cannot hold the accept loop.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A bound listening socket whose address the peers learn through Spark.
pub struct Rendezvous {
    listener: TcpListener,
    address: String,
    cancelled: Arc<AtomicBool>,
}

/// Stops a rendezvous's wait for its peers from another thread (the task was killed while its ring forms):
/// forming the ring then fails at once instead of waiting out `connect_timeout`.
#[derive(Clone)]
pub struct RendezvousCanceller(Arc<AtomicBool>);

impl RendezvousCanceller {
    /// Cancels the wait; idempotent.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Rendezvous {
    /// Binds `host` on an ephemeral port.
    pub fn bind(host: &str) -> Result<Rendezvous> {
        Rendezvous::bind_port(host, 0)
    }

    /// Binds `host` on `port` (0: an ephemeral one), for launchers that fix the addresses beforehand.
    pub fn bind_port(host: &str, port: u16) -> Result<Rendezvous> {
        let listener = TcpListener::bind((host, port))
            .map_err(|e| Error::Cluster(format!("ring: binding port {port} on {host}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Cluster(format!("ring: reading the bound port: {e}")))?
            .port();
        Ok(Rendezvous {
            listener,
            address: format!("{host}:{port}"),
            cancelled: Arc::default(),
        })
    }

    /// A handle that cancels forming the ring from another thread.
    pub fn canceller(&self) -> RendezvousCanceller {
        RendezvousCanceller(Arc::clone(&self.cancelled))
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
    /// A neighbour silent this long (no heartbeat: its process stopped, the network cut) fails the ring;
    /// heartbeats flow while a step computes, so a long step never trips it.
    pub heartbeat_timeout: Duration,
    /// The all-reduce algorithm, or `None` for the one the cost model predicts fastest for each size.
    pub algorithm: Option<crate::algorithms::Algorithm>,
    /// Encrypts and authenticates every frame after the handshake (AES-256-GCM under keys derived per
    /// connection and direction; see `crate::crypto`). Off, the wire carries the plain values, as ever.
    pub encrypt: bool,
}

/// A worker's two authenticated connections, as the ring is formed.
pub(crate) struct Links {
    /// From the left neighbour (rank - 1), which sends to us.
    pub(crate) left: TcpStream,
    /// To the right neighbour (rank + 1), which we send to.
    pub(crate) right: TcpStream,
    /// `rank r (host:port)` of the left neighbour, for errors.
    pub(crate) left_name: String,
    /// `rank r (host:port)` of the right neighbour, for errors.
    pub(crate) right_name: String,
    /// This end's keys on `left` and on `right`, when the job encrypts.
    pub(crate) left_keys: Option<Keys>,
    pub(crate) right_keys: Option<Keys>,
    /// One connection per mesh partner, both ways, by the partner's rank, with its keys.
    pub(crate) mesh: Vec<(usize, TcpStream, Option<Keys>)>,
}

/// Dials the right neighbour and the mesh `partners` above this rank while accepting the left neighbour and
/// the partners below it (with two workers the neighbours are one), authenticating every connection. Fails
/// after `connect_timeout`, naming the missing peer.
pub(crate) fn form(
    rendezvous: Rendezvous,
    config: &RingConfig,
    partners: &BTreeSet<usize>,
) -> Result<Links> {
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
    let cancelled = &*rendezvous.cancelled;
    let mut dials = vec![(to, Kind::Ring)];
    dials.extend(partners.range(rank + 1..).map(|&p| (p, Kind::Mesh)));
    let mut expected = vec![(from, Kind::Ring)];
    expected.extend(partners.range(..rank).map(|&p| (p, Kind::Mesh)));
    let (dialed, accepted) = std::thread::scope(|s| {
        let dialing = s.spawn(|| {
            let dialed: Result<Vec<_>> = dials
                .iter()
                .map(|&(p, kind)| {
                    let (stream, keys) = dial(config, p, kind, deadline, cancelled)?;
                    Ok((p, kind, stream, keys))
                })
                .collect();
            dial_failed.store(dialed.is_err(), Ordering::Relaxed);
            dialed
        });
        let give_up = || dial_failed.load(Ordering::Relaxed) || cancelled.load(Ordering::Relaxed);
        let accepted = accept(&rendezvous.listener, config, expected, deadline, &give_up);
        let dialed = dialing
            .join()
            .unwrap_or_else(|_| Err(Error::Native("ring: the dialing thread panicked".into())));
        (dialed, accepted)
    });
    // The dial's error first: when it failed, the accept only stopped early because of it.
    let mut streams = dialed?;
    streams.extend(accepted?);
    let mut right = None;
    let mut left = None;
    let mut mesh = Vec::new();
    for (p, kind, stream, keys) in streams {
        match kind {
            Kind::Ring if right.is_none() && p == to => right = Some((stream, keys)),
            Kind::Ring => left = Some((stream, keys)),
            Kind::Mesh => mesh.push((p, stream, keys)),
        }
    }
    mesh.sort_by_key(|m| m.0);
    let (left, left_keys) = left.expect("the left neighbour was accepted");
    let (right, right_keys) = right.expect("the right neighbour was dialed");
    Ok(Links {
        left,
        right,
        left_name: peer_name(config, from),
        right_name: peer_name(config, to),
        left_keys,
        right_keys,
        mesh,
    })
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

/// This end's keys for a connection to `peer` whose handshake exchanged these challenges, when the job
/// encrypts.
fn keys(
    c: &RingConfig,
    kind: Kind,
    peer: usize,
    acceptor_challenge: &[u8],
    dialler_challenge: &[u8],
    we_are_dialler: bool,
) -> Option<Keys> {
    c.encrypt.then(|| {
        Keys::derive(
            &c.secret,
            acceptor_challenge,
            dialler_challenge,
            kind.channel(),
            we_are_dialler,
            &peer_name(c, peer),
        )
    })
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
fn dial(
    c: &RingConfig,
    to: usize,
    kind: Kind,
    deadline: Instant,
    cancelled: &AtomicBool,
) -> Result<(TcpStream, Option<Keys>)> {
    let world = c.peers.len();
    let name = peer_name(c, to);
    let mut last = String::from("no attempt");
    let mut stream = loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(Error::Cluster(format!(
                "ring: rank {} stopped dialling {name}: the task was cancelled",
                c.rank
            )));
        }
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
    let (connect, accept) = kind.tags();
    let proof = mac(&c.secret, connect, &challenge, c.rank, world).finalize();
    let mut hello = Vec::with_capacity(80);
    hello.extend_from_slice(kind.magic());
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
    mac(&c.secret, accept, &ours, to, world)
        .verify_slice(&reply[1..])
        .map_err(|_| fail("authentication failed: the peer does not hold the job secret".into()))?;
    set_timeouts(&stream, c.io_timeout).map_err(|e| fail(e.to_string()))?;
    let keys = keys(c, kind, to, &challenge, &ours, true);
    Ok((stream, keys))
}

/// An authenticated connection: the peer's rank, the kind, the stream and this end's keys.
type Accepted = (usize, Kind, TcpStream, Option<Keys>);

/// Authenticates an accepted connection as one of the peers still `expected`, which it returns with the
/// connection; the error says why it was refused.
fn greet(
    mut stream: TcpStream,
    c: &RingConfig,
    expected: &[(usize, Kind)],
) -> std::result::Result<Accepted, String> {
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
    let kind = [Kind::Ring, Kind::Mesh]
        .into_iter()
        .find(|k| &hello[..8] == k.magic());
    let why = match kind {
        None => Some("not a Spindle ring peer".to_string()),
        Some(k)
            if mac(&c.secret, k.tags().0, &challenge, rank, claimed_world)
                .verify_slice(&hello[48..80])
                .is_err() =>
        {
            Some("authentication failed (wrong job secret)".to_string())
        }
        Some(k) if !expected.contains(&(rank, k)) || claimed_world != world => {
            let waited: Vec<String> = expected.iter().map(|(r, _)| r.to_string()).collect();
            Some(format!(
                "it is rank {rank} of {claimed_world}, expected one of ranks {} of {world}",
                waited.join(", ")
            ))
        }
        Some(_) => None,
    };
    let Some(kind) = kind.filter(|_| why.is_none()) else {
        let _ = stream.write_all(&[0u8; 33]);
        return Err(why.unwrap_or_default());
    };
    let mut reply = Vec::with_capacity(33);
    reply.push(1);
    reply.extend_from_slice(
        &mac(&c.secret, kind.tags().1, &hello[16..48], c.rank, world)
            .finalize()
            .into_bytes(),
    );
    stream.write_all(&reply).map_err(|e| e.to_string())?;
    set_timeouts(&stream, c.io_timeout).map_err(|e| e.to_string())?;
    let keys = keys(c, kind, rank, &challenge, &hello[16..48], false);
    Ok((rank, kind, stream, keys))
}

/// Accepts until every `expected` peer authenticates, the deadline passes, or `give_up` says so (a dial
/// failed, so the ring cannot form anyway, or the task was cancelled).
fn accept(
    listener: &TcpListener,
    c: &RingConfig,
    mut expected: Vec<(usize, Kind)>,
    deadline: Instant,
    give_up: &dyn Fn() -> bool,
) -> Result<Vec<Accepted>> {
    let names = |expected: &[(usize, Kind)]| {
        let names: Vec<String> = expected.iter().map(|&(r, _)| peer_name(c, r)).collect();
        names.join(", ")
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Cluster(format!("ring: listening for {}: {e}", names(&expected))))?;
    let mut accepted = Vec::with_capacity(expected.len());
    while !expected.is_empty() {
        if give_up() {
            return Err(Error::Cluster(format!(
                "ring: stopped waiting for {}",
                names(&expected)
            )));
        }
        if remaining(deadline).is_none() {
            return Err(Error::Cluster(format!(
                "ring: {} did not connect within {:?}",
                names(&expected),
                c.connect_timeout
            )));
        }
        match listener.accept() {
            Ok((stream, addr)) => {
                let greeted = stream
                    .set_nonblocking(false)
                    .map_err(|e| e.to_string())
                    .and_then(|()| greet(stream, c, &expected));
                match greeted {
                    Ok(greeted) => {
                        expected.retain(|e| *e != (greeted.0, greeted.1));
                        accepted.push(greeted);
                    }
                    Err(why) => log::warn!(
                        "ring: rank {} refused a connection from {addr}: {why}",
                        c.rank
                    ),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => {
                return Err(Error::Cluster(format!(
                    "ring: accepting {}: {e}",
                    names(&expected)
                )))
            }
        }
    }
    Ok(accepted)
}
