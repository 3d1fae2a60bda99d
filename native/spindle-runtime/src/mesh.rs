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
//! On an encrypted mesh a message travels as frames (`crate::frames`): the header in a sealed frame of its
//! own, then the data in sealed frames of `MESH_FRAME` bytes. The header goes inside a frame rather than
//! as associated data in clear: it then needs no exception on the wire (nothing after the handshake is
//! readable), and it is authenticated and numbered like the rest. Frames are sealed one by one as the
//! socket takes them and opened as they complete, so the cipher overlaps the network.
//!
//! Liveness stays with the ring (`crate::liveness`): when a neighbour goes silent, the ring's watcher
//! shuts these connections too, which wakes a `poll` waiting on a peer elsewhere in the mesh.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::algorithms::{Combine, Step};
use crate::crypto::{Keys, Opener, Sealer};
use crate::error::{Error, Result};
use crate::frames::{self, Inbox, Outbox};
use crate::liveness::clone;

/// Connections to this rank's mesh partners.
pub(crate) struct Mesh {
    /// By partner rank, sorted.
    links: Vec<(usize, TcpStream)>,
    /// On an encrypted mesh, each link's sealer and opener (by the index of `links`), and the frame the
    /// sealer fills.
    sealers: Vec<Option<Sealer>>,
    openers: Vec<Option<Opener>>,
    frame: Vec<u8>,
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
    pub(crate) fn new(
        connections: Vec<(usize, TcpStream, Option<Keys>)>,
        io_timeout: Duration,
    ) -> Result<Mesh> {
        let mut links = Vec::with_capacity(connections.len());
        let (mut sealers, mut openers) = (Vec::new(), Vec::new());
        for (peer, s, keys) in connections {
            s.set_nonblocking(true)
                .map_err(|e| Error::Native(format!("mesh: a non-blocking socket: {e}")))?;
            links.push((peer, s));
            let (sealer, opener) = keys.map(|k| (k.sealer, k.opener)).unzip();
            sealers.push(sealer);
            openers.push(opener);
        }
        Ok(Mesh {
            links,
            sealers,
            openers,
            frame: Vec::new(),
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
        let links = &self.links;
        let index = |peer: usize, sending: bool| {
            links.binary_search_by_key(&peer, |l| l.0).map_err(|_| {
                Failure::Io(StepError {
                    peer,
                    sending,
                    error: std::io::Error::other(format!("no mesh connection to rank {peer}")),
                })
            })
        };
        let send = match &step.send {
            Some((peer, range)) => {
                let i = index(*peer, true)?;
                // SAFETY: f32 has no padding; the bytes live as long as `data`, which is only read here.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        data[range.clone()].as_ptr().cast::<u8>(),
                        range.len() * 4,
                    )
                };
                let sealing = self.sealers[i].as_mut().map(|s| (s, &mut self.frame));
                Some((*peer, &links[i].1, Outbox::new(header, bytes, sealing)))
            }
            None => None,
        };
        let recv = match &step.recv {
            Some((peer, range, _)) => {
                let i = index(*peer, false)?;
                let opener = self.openers[i].as_mut();
                let want = Inbox::wire_len(HEADER, range.len() * 4, opener.is_some());
                if self.scratch.len() < want {
                    self.scratch.resize(want, 0);
                }
                let inbox = Inbox::new(&mut self.scratch, HEADER, range.len() * 4, opener);
                Some((*peer, &links[i].1, inbox))
            }
            None => None,
        };
        let (_, recv) = transfer(send, recv, self.io_timeout).map_err(Failure::Io)?;
        if let (Some((peer, range, combine)), Some(inbox)) = (&step.recv, recv) {
            if inbox.header() != header {
                let mut theirs = [0; HEADER];
                theirs.copy_from_slice(inbox.header());
                return Err(Failure::OutOfStep {
                    peer: *peer,
                    theirs,
                });
            }
            // One piece per frame (the whole data when plain), each combined in one tight loop.
            let mut target = &mut data[range.clone()];
            for piece in inbox.data() {
                let (here, rest) = target.split_at_mut(piece.len() / 4);
                combine_into(here, piece, *combine);
                target = rest;
            }
        }
        Ok(())
    }
}

/// Adds `arrived` (little-endian f32s) to `target`, or copies it there.
fn combine_into(target: &mut [f32], arrived: &[u8], combine: Combine) {
    let arrived = arrived.chunks_exact(4);
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

type Side<'a, T> = Option<(usize, &'a TcpStream, T)>;

/// Writes `send`'s message to its peer while receiving `recv`'s from its peer, in one thread, waiting in
/// `poll` whenever neither can move; fails when nothing moves for `timeout`. Returns both ends, the
/// inbox holding what arrived.
fn transfer<'a>(
    mut send: Side<'a, Outbox<'a>>,
    mut recv: Side<'a, Inbox<'a>>,
    timeout: Duration,
) -> std::result::Result<(Option<Outbox<'a>>, Option<Inbox<'a>>), StepError> {
    let mut last = Instant::now();
    let none = libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    };
    let fail = |peer, sending| {
        move |e| StepError {
            peer,
            sending,
            error: frames::io(e),
        }
    };
    loop {
        if let Some((peer, _, outbox)) = &mut send {
            outbox.prepare().map_err(fail(*peer, true))?;
        }
        let sending = send.as_ref().filter(|(_, _, o)| !o.done());
        let receiving = recv.as_ref().filter(|(_, _, i)| !i.done());
        if sending.is_none() && receiving.is_none() {
            break;
        }
        let mut fds = [none, none];
        if let Some((_, link, _)) = sending {
            fds[0] = libc::pollfd {
                fd: link.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
        }
        if let Some((_, link, _)) = receiving {
            fds[1] = libc::pollfd {
                fd: link.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
        }
        let Some(wait) = timeout.checked_sub(last.elapsed()) else {
            // Name the side still waiting: the receive when both are.
            let (peer, sending) = match (receiving, sending) {
                (Some((p, _, _)), _) => (*p, false),
                (_, Some((p, _, _))) => (*p, true),
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
                let peer = (recv.as_ref().map(|r| r.0))
                    .or(send.as_ref().map(|s| s.0))
                    .unwrap_or(0);
                return Err(StepError {
                    peer,
                    sending: false,
                    error: e,
                });
            }
            continue;
        }
        if let Some((peer, mut link, outbox)) = send.as_mut().filter(|(_, _, o)| !o.done()) {
            match link.write(outbox.bytes()) {
                Ok(n) => {
                    outbox.wrote(n);
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(error) => {
                    return Err(StepError {
                        peer: *peer,
                        sending: true,
                        error,
                    })
                }
            }
        }
        if let Some((peer, mut link, inbox)) = recv.as_mut().filter(|(_, _, i)| !i.done()) {
            match link.read(inbox.space()) {
                Ok(0) => {
                    return Err(StepError {
                        peer: *peer,
                        sending: false,
                        error: ErrorKind::UnexpectedEof.into(),
                    })
                }
                Ok(n) => {
                    inbox.received(n).map_err(fail(*peer, false))?;
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(error) => {
                    return Err(StepError {
                        peer: *peer,
                        sending: false,
                        error,
                    })
                }
            }
        }
    }
    Ok((send.map(|s| s.2), recv.map(|r| r.2)))
}
