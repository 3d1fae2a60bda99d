//! The mesh: one authenticated connection per partner that the algorithms of `crate::algorithms` need
//! (formed by `crate::rendezvous`, next to the ring), and the runner of their steps over it.
//!
//! A step sends to one peer while receiving from one peer, often the same one: partners swap buffers, so
//! neither may wait for its write to finish before reading, or two full socket buffers deadlock. One
//! thread does both on non-blocking sockets, waiting in `poll` for whichever can move: no thread hand-off
//! per step, which matters for small buffers. What arrives lands in a scratch buffer and is added or
//! copied once the step's send is done, since recursive doubling sends the very values it adds to.
//!
//! Every message starts with the all-reduce's header (its number and length): ranks out of step fail
//! with both positions instead of adding mismatched buffers.
//!
//! Liveness stays with the ring (`crate::liveness`): when a neighbour goes silent, the ring's watcher
//! shuts these connections too, which wakes a `poll` waiting on a peer elsewhere in the mesh.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::algorithms::{Combine, Step};
use crate::error::{Error, Result};
use crate::liveness::clone;

/// Connections to this rank's mesh partners.
pub(crate) struct Mesh {
    /// By partner rank, sorted.
    links: Vec<(usize, TcpStream)>,
    scratch: Vec<u8>,
    /// Bound on a step that moves no byte.
    io_timeout: Duration,
}

/// Bytes of the header before every message: the all-reduce's number and its length in values.
pub(crate) const HEADER: usize = 16;

/// Which side of a step failed, and how.
pub(crate) struct StepError {
    pub(crate) peer: usize,
    pub(crate) sending: bool,
    pub(crate) error: std::io::Error,
}

/// What a step failed on.
pub(crate) enum Failure {
    /// A transfer.
    Io(StepError),
    /// A peer's header differs from ours: `peer` is at this one.
    OutOfStep { peer: usize, theirs: [u8; HEADER] },
}

impl Mesh {
    pub(crate) fn new(links: Vec<(usize, TcpStream)>, io_timeout: Duration) -> Result<Mesh> {
        for (_, s) in &links {
            s.set_nonblocking(true)
                .map_err(|e| Error::Native(format!("mesh: a non-blocking socket: {e}")))?;
        }
        Ok(Mesh {
            links,
            scratch: Vec::new(),
            io_timeout,
        })
    }

    /// Second handles on every connection, for whoever shuts them from another thread.
    pub(crate) fn clones(&self) -> Result<Vec<TcpStream>> {
        self.links.iter().map(|(_, s)| clone(s)).collect()
    }

    /// Shuts every connection; idempotent.
    pub(crate) fn shut(&self) {
        for (_, s) in &self.links {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Runs `steps` over `data`, in order, each message led by `header`.
    pub(crate) fn run(
        &mut self,
        steps: &[Step],
        data: &mut [f32],
        header: &[u8; HEADER],
    ) -> std::result::Result<(), Failure> {
        for step in steps {
            self.step(step, data, header)?;
        }
        Ok(())
    }

    fn step(
        &mut self,
        step: &Step,
        data: &mut [f32],
        header: &[u8; HEADER],
    ) -> std::result::Result<(), Failure> {
        let want = step
            .recv
            .as_ref()
            .map_or(0, |(_, r, _)| HEADER + r.len() * 4);
        if self.scratch.len() < want {
            self.scratch.resize(want, 0);
        }
        let links = &self.links;
        let link = |peer: usize| {
            links
                .binary_search_by_key(&peer, |l| l.0)
                .map(|i| &links[i].1)
                .map_err(|_| std::io::Error::other(format!("no mesh connection to rank {peer}")))
        };
        let fail = |peer, sending| {
            move |error| StepError {
                peer,
                sending,
                error,
            }
        };
        let send = match &step.send {
            Some((peer, range)) => {
                let link = link(*peer).map_err(|e| Failure::Io(fail(*peer, true)(e)))?;
                // SAFETY: f32 has no padding; the bytes live as long as `data`, which is only read here.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        data[range.clone()].as_ptr().cast::<u8>(),
                        range.len() * 4,
                    )
                };
                Some((*peer, link, [&header[..], bytes]))
            }
            None => None,
        };
        let recv = match &step.recv {
            Some((peer, _, _)) => Some((
                *peer,
                link(*peer).map_err(|e| Failure::Io(fail(*peer, false)(e)))?,
            )),
            None => None,
        };
        transfer(send, recv, &mut self.scratch[..want], self.io_timeout).map_err(Failure::Io)?;
        if let Some((peer, range, combine)) = &step.recv {
            if self.scratch[..HEADER] != header[..] {
                let mut theirs = [0; HEADER];
                theirs.copy_from_slice(&self.scratch[..HEADER]);
                return Err(Failure::OutOfStep {
                    peer: *peer,
                    theirs,
                });
            }
            let target = &mut data[range.clone()];
            let arrived = self.scratch[HEADER..want].chunks_exact(4);
            match combine {
                Combine::Add => {
                    for (t, b) in target.iter_mut().zip(arrived) {
                        *t += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    }
                }
                Combine::Copy => {
                    for (t, b) in target.iter_mut().zip(arrived) {
                        *t = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes `send`'s two byte slices, one after the other, to its peer while filling `into` from `recv`'s
/// peer, in one thread, waiting in `poll` whenever neither can move; fails when nothing moves for `timeout`.
fn transfer(
    send: Option<(usize, &TcpStream, [&[u8]; 2])>,
    recv: Option<(usize, &TcpStream)>,
    into: &mut [u8],
    timeout: Duration,
) -> std::result::Result<(), StepError> {
    let ([mut rest, mut then], out) = match send {
        Some((peer, link, parts)) => (parts, Some((peer, link))),
        None => ([&[][..]; 2], None),
    };
    let mut got = 0;
    let mut last = Instant::now();
    let none = libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    };
    while !rest.is_empty() || got < into.len() {
        let mut fds = [none, none];
        if let (false, Some((_, link))) = (rest.is_empty(), out) {
            fds[0] = libc::pollfd {
                fd: link.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
        }
        if let (true, Some((_, link))) = (got < into.len(), recv) {
            fds[1] = libc::pollfd {
                fd: link.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
        }
        let Some(wait) = timeout.checked_sub(last.elapsed()) else {
            // Name the side still waiting: the receive when both are.
            let (peer, sending) = match (recv, out) {
                (Some((p, _)), _) if got < into.len() => (p, false),
                (_, Some((p, _))) => (p, true),
                _ => (0, false),
            };
            return Err(StepError {
                peer,
                sending,
                error: ErrorKind::TimedOut.into(),
            });
        };
        // SAFETY: two valid pollfd entries (fd -1 ones are ignored by poll).
        let ready =
            unsafe { libc::poll(fds.as_mut_ptr(), 2, wait.as_millis().min(60_000) as i32 + 1) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                let peer = recv.or(out).map_or(0, |l| l.0);
                return Err(StepError {
                    peer,
                    sending: false,
                    error: e,
                });
            }
            continue;
        }
        if let (false, Some((peer, mut link))) = (rest.is_empty(), out) {
            match link.write(rest) {
                Ok(n) => {
                    rest = &rest[n..];
                    if rest.is_empty() {
                        (rest, then) = (then, &[]);
                    }
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(error) => {
                    return Err(StepError {
                        peer,
                        sending: true,
                        error,
                    })
                }
            }
        }
        if let (true, Some((peer, mut link))) = (got < into.len(), recv) {
            match link.read(&mut into[got..]) {
                Ok(0) => {
                    return Err(StepError {
                        peer,
                        sending: false,
                        error: ErrorKind::UnexpectedEof.into(),
                    })
                }
                Ok(n) => {
                    got += n;
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(error) => {
                    return Err(StepError {
                        peer,
                        sending: false,
                        error,
                    })
                }
            }
        }
    }
    Ok(())
}
