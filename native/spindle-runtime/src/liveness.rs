//! Liveness of a worker's ring neighbours: a peer that stops answering fails the ring within a bound,
//! while a step that legitimately takes minutes never does.
//!
//! A TCP connection to a stopped process (SIGSTOP, a machine swapping to death) or across a network
//! partition that sends no FIN stays open: reads just wait. So every worker sends a heartbeat byte every
//! `interval` on its connection *from* its left neighbour, in the direction the all-reduce never uses,
//! and reads its right neighbour's heartbeats on its connection *to* it, which the all-reduce only writes.
//! The heartbeats come from a timer actor on the trainer's actor system and the watch from a blocking actor
//! of its own (`crate::actors`), whatever the trainer is doing (a long TensorFlow step, a slow Spark
//! partition), so only a peer that cannot run at all misses them.
//!
//! When no heartbeat comes for `timeout`, the watcher reports which peer went silent and shuts the
//! ring's connections: a transfer blocked on that peer fails at once with that reason, and the closed
//! connections fail the other neighbours in turn, all around the ring. A connection the right neighbour
//! closes without a goodbye (its task failed or was killed) also shuts the ring, so that failure travels
//! around it too.
//!
//! Ending: a ring that ends normally says goodbye ([`Liveness::finish`]): its sender sends `BYE` and a
//! FIN, and its watcher drains the right neighbour's heartbeats until that neighbour says goodbye too (at
//! most `DRAIN`). Closing a socket that still holds unread heartbeats would send a reset, which can
//! destroy all-reduce data the neighbour has not read yet.
//!
//! On an encrypted ring each heartbeat and goodbye is a sealed frame of its own (`crate::frames`), so
//! that nothing travels in clear after the handshake and a forged goodbye cannot end a watch: a beat
//! that fails authentication fails the ring, naming the neighbour.

use std::cell::OnceCell;
use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, SyncContext};
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};

use crate::actors::{ask, messages, Actors, Reply};
use crate::crypto::{Opener, Sealer};
use crate::error::{Error, Result};
use crate::frames::{BeatReader, BeatSender};

/// The heartbeat byte.
const BEAT: u8 = 0xB7;
/// The goodbye byte: the ring ends normally, stop watching.
const BYE: u8 = 0xB8;
/// How long a ring that ends waits for its right neighbour's goodbye. Neighbours end within moments of
/// each other (the same last all-reduce); only the chief may end later, after its export, which the job
/// waits for anyway.
const DRAIN: Duration = Duration::from_secs(10);

/// A second handle on one of the ring's connections (the ring and its actors each hold one).
pub(crate) fn clone(s: &TcpStream) -> Result<TcpStream> {
    s.try_clone()
        .map_err(|e| Error::Native(format!("ring: cloning a socket: {e}")))
}

/// Beats on the connection from the left neighbour every `interval`, on the actor system's timer.
struct Heartbeat {
    left: TcpStream,
    interval: Duration,
    /// Sends each beat without blocking (sealed, on an encrypted ring).
    beats: BeatSender,
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |hb, ctx| {
            if !hb.beats.send(&hb.left, BEAT) {
                ctx.stop(); // the connection closed: the all-reduce reports it
            }
        });
    }
}

/// Ends the heartbeats with a goodbye and a FIN.
struct Goodbye(Reply<()>);

impl Handler<Goodbye> for Heartbeat {
    type Result = ();
    fn handle(&mut self, Goodbye(reply): Goodbye, ctx: &mut Context<Self>) {
        // On a ring a failure already shut, both fail, and the neighbour sees a close without a goodbye.
        self.beats.send(&self.left, BYE);
        let _ = self.left.shutdown(Shutdown::Write);
        ctx.stop();
        let _ = reply.send(());
    }
}

/// Reads the right neighbour's heartbeats, blocking on its socket: on a thread of its own.
struct Watcher;

impl Actor for Watcher {
    type Context = SyncContext<Self>;
}

/// Watches `right` (its read timeout is one heartbeat interval) until the neighbour ends, or until
/// `stop` disconnects and the neighbour's goodbye comes. Replies with why the neighbour was declared
/// dead (`None`: it ended normally), before shutting the ring's connections `shut`.
struct Watch {
    right: TcpStream,
    timeout: Duration,
    stop: Receiver<()>,
    shut: Vec<TcpStream>,
    /// `rank N (host:port)`: the watched peer, as the failure names it.
    name: String,
    rank: usize,
    /// Finds the beats among the bytes read (opens them, on an encrypted ring).
    beats: BeatReader,
    reply: Reply<Option<String>>,
}

messages!(Goodbye, Watch);

/// How the watch of the right neighbour ended.
enum Watched {
    /// It said goodbye, or the ring ended on our side and it is gone or drained.
    Ended,
    /// It closed its connection without a goodbye (its task failed or was killed).
    Closed,
    /// It sent nothing for this long.
    Silent(Duration),
    /// What it sent failed authentication (or was not sealed on an encrypted ring).
    Forged(String),
}

impl Watch {
    fn stopping(&self) -> bool {
        matches!(self.stop.try_recv(), Err(TryRecvError::Disconnected))
    }

    fn watch(&mut self) -> Watched {
        let mut last = Instant::now();
        let mut stopped: Option<Instant> = None;
        let mut buffer = [0u8; 64];
        loop {
            match self.right.read(&mut buffer) {
                Ok(0) | Err(_) if self.stopping() => return Watched::Ended,
                Ok(0) => return Watched::Closed,
                Ok(n) => match self.beats.saw(&buffer[..n], BYE) {
                    Ok(true) => return Watched::Ended,
                    Ok(false) => last = Instant::now(),
                    Err(e) => return Watched::Forged(e.to_string()),
                },
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Watched::Closed,
            }
            if self.stopping() {
                // Ending: drain until the neighbour's goodbye, for at most DRAIN.
                if stopped.get_or_insert_with(Instant::now).elapsed() >= DRAIN {
                    return Watched::Ended;
                }
            } else if last.elapsed() >= self.timeout {
                return Watched::Silent(last.elapsed());
            }
        }
    }
}

impl Handler<Watch> for Watcher {
    type Result = ();
    fn handle(&mut self, mut w: Watch, _: &mut SyncContext<Self>) {
        let why = match w.watch() {
            Watched::Ended => {
                let _ = w.reply.send(None);
                return;
            }
            Watched::Closed => None,
            Watched::Silent(silent) => {
                let why = format!(
                    "{} stopped answering: no heartbeat for {:.0} s (its process is stopped or the \
                     network to it is cut)",
                    w.name,
                    silent.as_secs_f64()
                );
                log::error!("ring: rank {}: {why}", w.rank);
                Some(why)
            }
            Watched::Forged(why) => {
                log::error!("ring: rank {}: {why}", w.rank);
                Some(why)
            }
        };
        // The reason goes first, so that the transfer failing on the shut connections finds it.
        let _ = w.reply.send(why);
        for s in &w.shut {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// One worker's heartbeats to its left neighbour and its watch of the right one. Finished on drop.
pub(crate) struct Liveness {
    heartbeat: Option<Addr<Heartbeat>>,
    /// Dropped to end the watch.
    stop: Option<Sender<()>>,
    outcome: Receiver<Option<String>>,
    /// The watch's outcome, once it came.
    ended: OnceCell<Option<String>>,
}

impl Liveness {
    /// Starts beating on `left` and watching `right` (`right_name` names that peer in the failure) on
    /// `actors`; `timeout` without a heartbeat shuts both connections and `also` (the mesh's). Beats come
    /// every second, or four times per `timeout` when it is shorter (tests). On an encrypted ring `keys`
    /// are the sealer of the beats sent on `left` and the opener of those read on `right`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        actors: &Actors,
        left: &TcpStream,
        right: &TcpStream,
        also: Vec<TcpStream>,
        rank: usize,
        right_name: &str,
        timeout: Duration,
        keys: (Option<Sealer>, Option<Opener>),
    ) -> Result<Liveness> {
        let timeout = timeout.max(Duration::from_millis(100));
        let interval = (timeout / 4).min(Duration::from_secs(1));
        let watched = clone(right)?;
        // Only the watcher reads the connection to the right neighbour: its read timeout is ours to set.
        watched
            .set_read_timeout(Some(interval))
            .map_err(|e| Error::Native(format!("ring: setting a read timeout: {e}")))?;
        let (stop, stopped) = bounded(0);
        let (reply, outcome) = bounded(1);
        let watcher = actors.start_sync(format!("spindle-ring-watch-{rank}"), || Watcher)?;
        watcher.do_send(Watch {
            right: watched,
            timeout,
            stop: stopped,
            shut: [clone(left)?, clone(right)?]
                .into_iter()
                .chain(also)
                .collect(),
            name: right_name.to_string(),
            rank,
            beats: BeatReader::new(keys.1),
            reply,
        });
        let heartbeat = actors.start_actor(Heartbeat {
            left: clone(left)?,
            interval,
            beats: BeatSender::new(keys.0),
        });
        Ok(Liveness {
            heartbeat: Some(heartbeat),
            stop: Some(stop),
            outcome,
            ended: OnceCell::new(),
        })
    }

    /// Ends normally: stops the heartbeats with a goodbye and waits (at most `DRAIN`) for the right
    /// neighbour's; the caller then shuts the connections. On a ring a failure shut, returns at once.
    /// Idempotent.
    pub(crate) fn finish(&mut self) {
        self.stop.take();
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = ask(&heartbeat, Goodbye, "the ring's heartbeat");
        }
        if self.ended.get().is_none() {
            let _ = self.ended.set(self.outcome.recv().ok().flatten());
        }
    }

    /// Why the right neighbour was declared dead, if it was.
    pub(crate) fn failure(&self) -> Option<String> {
        if let Some(ended) = self.ended.get() {
            return ended.clone();
        }
        let ended = self.outcome.try_recv().ok()?;
        self.ended.get_or_init(|| ended).clone()
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.finish();
    }
}
