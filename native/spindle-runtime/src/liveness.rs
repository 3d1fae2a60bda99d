//! Liveness of a worker's ring neighbours: a peer that stops answering fails the ring within a bound,
//! while a step that legitimately takes minutes never does.
//!
//! A TCP connection to a stopped process (SIGSTOP, a machine swapping to death) or across a network
//! partition that sends no FIN stays open: reads just wait. So every worker sends a heartbeat byte every
//! `interval` on its connection *from* its left neighbour, in the direction the all-reduce never uses,
//! and reads its right neighbour's heartbeats on its connection *to* it, which the all-reduce only writes.
//! The heartbeats come from threads of their own, whatever the trainer is doing (a long TensorFlow step,
//! a slow Spark partition), so only a peer that cannot run at all misses them.
//!
//! When no heartbeat comes for `timeout`, the watcher records which peer went silent and shuts the
//! ring's connections: a transfer blocked on that peer fails at once with that reason, and the closed
//! connections fail the other neighbours in turn, all around the ring. A connection the right neighbour
//! closes without a goodbye (its task failed or was killed) also shuts the ring, so that failure travels
//! around it too.
//!
//! Ending: a ring that ends normally says goodbye ([`Liveness::finish`]): its sender sends `BYE` and a
//! FIN, and its watcher drains the right neighbour's heartbeats until that neighbour says goodbye too (at
//! most `DRAIN`). Closing a socket that still holds unread heartbeats would send a reset, which can
//! destroy all-reduce data the neighbour has not read yet.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The heartbeat byte.
const BEAT: u8 = 0xB7;
/// The goodbye byte: the ring ends normally, stop watching.
const BYE: u8 = 0xB8;
/// How long a ring that ends waits for its right neighbour's goodbye. Neighbours end within moments of
/// each other (the same last all-reduce); only the chief may end later, after its export, which the job
/// waits for anyway.
const DRAIN: Duration = Duration::from_secs(10);

/// One worker's heartbeat sender and its watcher of the right neighbour. Finished on drop.
pub(crate) struct Liveness {
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<String>>>,
    sender: Option<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
}

fn clone(s: &TcpStream) -> Result<TcpStream> {
    s.try_clone()
        .map_err(|e| Error::Native(format!("ring: cloning a socket: {e}")))
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .map_err(|e| Error::Native(format!("starting a ring liveness thread: {e}")))
}

/// Beats on `left` every `interval` until `stop`; then says goodbye.
fn beat(mut left: TcpStream, interval: Duration, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if left.write_all(&[BEAT]).is_err() {
            return; // the connection closed: the all-reduce reports it
        }
        std::thread::park_timeout(interval);
    }
    // On a ring a failure already shut, both fail, and the neighbour sees a close without a goodbye.
    let _ = left.write_all(&[BYE]);
    let _ = left.shutdown(Shutdown::Write);
}

/// How the watch of the right neighbour ended.
enum Watched {
    /// It said goodbye, or the ring ended on our side and it is gone or drained.
    Ended,
    /// It closed its connection without a goodbye (its task failed or was killed).
    Closed,
    /// It sent nothing for this long.
    Silent(Duration),
}

/// Reads the right neighbour's heartbeats on `right` (its read timeout is one interval) until it ends.
fn watch(right: &mut TcpStream, timeout: Duration, stop: &AtomicBool) -> Watched {
    let mut last = Instant::now();
    let mut stopped: Option<Instant> = None;
    let mut buffer = [0u8; 64];
    loop {
        match right.read(&mut buffer) {
            Ok(n) if buffer[..n].contains(&BYE) => return Watched::Ended,
            Ok(0) | Err(_) if stop.load(Ordering::Relaxed) => return Watched::Ended,
            Ok(0) => return Watched::Closed,
            Ok(_) => last = Instant::now(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Watched::Closed,
        }
        if stop.load(Ordering::Relaxed) {
            // Ending: drain until the neighbour's goodbye, for at most DRAIN.
            if stopped.get_or_insert_with(Instant::now).elapsed() >= DRAIN {
                return Watched::Ended;
            }
        } else if last.elapsed() >= timeout {
            return Watched::Silent(last.elapsed());
        }
    }
}

impl Liveness {
    /// Starts beating on `left` and watching `right` (`right_name` names that peer in the failure);
    /// `timeout` without a heartbeat shuts both connections. Beats come every second, or four times per
    /// `timeout` when it is shorter (tests).
    pub(crate) fn start(
        left: &TcpStream,
        right: &TcpStream,
        rank: usize,
        right_name: &str,
        timeout: Duration,
    ) -> Result<Liveness> {
        let timeout = timeout.max(Duration::from_millis(100));
        let interval = (timeout / 4).min(Duration::from_secs(1));
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None));
        let sender = {
            let (left, stop) = (clone(left)?, Arc::clone(&stop));
            spawn(format!("spindle-ring-heartbeat-{rank}"), move || {
                beat(left, interval, &stop)
            })?
        };
        let (mut watched, shut_left, shut_right) = (clone(right)?, clone(left)?, clone(right)?);
        // Only this thread reads the connection to the right neighbour: its read timeout is ours to set.
        watched
            .set_read_timeout(Some(interval))
            .map_err(|e| Error::Native(format!("ring: setting a read timeout: {e}")))?;
        let watcher = {
            let (stop, failure, name) = (
                Arc::clone(&stop),
                Arc::clone(&failure),
                right_name.to_string(),
            );
            spawn(format!("spindle-ring-watch-{rank}"), move || {
                match watch(&mut watched, timeout, &stop) {
                    Watched::Ended => return,
                    Watched::Closed => {}
                    Watched::Silent(silent) => {
                        let why = format!(
                            "{name} stopped answering: no heartbeat for {:.0} s (its process is stopped \
                             or the network to it is cut)",
                            silent.as_secs_f64()
                        );
                        log::error!("ring: rank {rank}: {why}");
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                    }
                }
                let _ = shut_left.shutdown(Shutdown::Both);
                let _ = shut_right.shutdown(Shutdown::Both);
            })?
        };
        Ok(Liveness {
            stop,
            failure,
            sender: Some(sender),
            watcher: Some(watcher),
        })
    }

    /// Ends normally: stops the heartbeats with a goodbye and waits (at most `DRAIN`) for the right
    /// neighbour's; the caller then shuts the connections. On a ring a failure shut, returns at once.
    /// Idempotent.
    pub(crate) fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sender) = self.sender.take() {
            sender.thread().unpark();
            let _ = sender.join();
        }
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }

    /// Why the right neighbour was declared dead, if it was.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.finish();
    }
}
