//! How the peers' bytes travel when their connections are encrypted (`crate::crypto` seals and opens one
//! frame): the ring's blocking reads of one frame, the heartbeats' one-byte frames, and the mesh's messages
//! cut into frames. Each also has a plain mode that puts on the wire exactly what an unencrypted ring
//! always did, with no copy and no extra byte.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use crate::crypto::{FrameError, Opener, Sealer, LEN, OVERHEAD, TAG};

/// Plaintext bytes per frame of a mesh message: the ring's chunk, so that sealing one frame overlaps the
/// kernel's sending of the one before.
pub(crate) const MESH_FRAME: usize = 256 * 1024;

/// A frame error as the socket errors it travels with (the cause kept inside).
pub(crate) fn io(e: FrameError) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, e)
}

/// Reads one frame of exactly `into.len()` plaintext bytes from `stream` and opens it into `into` (the
/// ciphertext lands there and is decrypted in place: no copy).
pub(crate) fn read_sealed(
    mut stream: impl Read,
    opener: &mut Opener,
    into: &mut [u8],
) -> std::io::Result<()> {
    let mut prefix = [0u8; LEN];
    stream.read_exact(&mut prefix)?;
    opener.expect(&prefix, into.len()).map_err(io)?;
    stream.read_exact(into)?;
    let mut tag = [0u8; TAG];
    stream.read_exact(&mut tag)?;
    opener.open(&prefix, into, &tag).map_err(io)
}

/// Writes a frame whose parts lie apart (its body sealed where it lies), in as few calls as the socket
/// allows.
pub(crate) fn write_apart(
    mut stream: impl Write,
    prefix: &[u8; LEN],
    body: &[u8],
    tag: &[u8; TAG],
) -> std::io::Result<()> {
    let mut parts = [IoSlice::new(prefix), IoSlice::new(body), IoSlice::new(tag)];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        match stream.write_vectored(parts) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The sending side of the heartbeats: one byte at a time, never blocking.
pub(crate) struct BeatSender {
    sealer: Option<Sealer>,
    /// The part of a sealed beat the socket did not take yet: a frame is never cut short, or the stream
    /// would lose its framing.
    pending: Vec<u8>,
}

impl BeatSender {
    pub(crate) fn new(sealer: Option<Sealer>) -> BeatSender {
        BeatSender {
            sealer,
            pending: Vec::new(),
        }
    }

    /// Sends `byte` without blocking: a full send buffer means the neighbour reads nothing (it is
    /// stopped, which its own watcher sees), so the byte is skipped, or, encrypted, what the socket did
    /// not take of its frame goes first next time. False once the connection is closed.
    pub(crate) fn send(&mut self, s: &TcpStream, byte: u8) -> bool {
        let Some(sealer) = &mut self.sealer else {
            return send_now(s, &[byte]).is_some();
        };
        // The rest of an earlier beat first; this byte only once it is out (so a goodbye follows it).
        for fresh in [false, true] {
            if fresh && sealer.seal_into(&[byte], &mut self.pending).is_err() {
                return false;
            }
            if !self.pending.is_empty() {
                let Some(n) = send_now(s, &self.pending) else {
                    return false;
                };
                self.pending.drain(..n);
                if !self.pending.is_empty() {
                    return true; // the buffer is full: what is left goes next time
                }
            }
        }
        true
    }
}

/// Sends what the socket takes of `bytes` at once: the count (0 when its buffer is full), or `None` once
/// the connection is closed.
fn send_now(s: &TcpStream, bytes: &[u8]) -> Option<usize> {
    // SAFETY: a valid open descriptor and a buffer that outlives the call.
    let sent = unsafe {
        libc::send(
            s.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent >= 0 {
        Some(sent as usize)
    } else if std::io::Error::last_os_error().kind() == ErrorKind::WouldBlock {
        Some(0)
    } else {
        None
    }
}

/// The receiving side of the heartbeats: whether `byte` arrived among what was read.
pub(crate) struct BeatReader {
    opener: Option<Opener>,
    /// Bytes of an encrypted beat not complete yet.
    partial: Vec<u8>,
}

impl BeatReader {
    pub(crate) fn new(opener: Option<Opener>) -> BeatReader {
        BeatReader {
            opener,
            partial: Vec::new(),
        }
    }

    /// Takes `read`, just read from the stream; whether `byte` is among the beats it completes.
    pub(crate) fn saw(&mut self, read: &[u8], byte: u8) -> Result<bool, FrameError> {
        let Some(opener) = &mut self.opener else {
            return Ok(read.contains(&byte));
        };
        self.partial.extend_from_slice(read);
        let mut seen = false;
        let mut at = 0;
        while self.partial.len() - at >= LEN {
            let prefix: &[u8; LEN] = self.partial[at..at + LEN].try_into().expect("LEN bytes");
            // A beat is one byte: a longer claim is not waited for.
            opener.expect(prefix, 1)?;
            let end = at + 1 + OVERHEAD;
            if self.partial.len() < end {
                break;
            }
            seen |= opener.open_frame(&mut self.partial[at..end])? == [byte];
            at = end;
        }
        self.partial.drain(..at);
        Ok(seen)
    }
}

/// What one mesh step sends: the header, then the data; as they are, or as frames (the header's own,
/// then the data's, `MESH_FRAME` bytes each), each sealed when the one before has been written.
pub(crate) struct Outbox<'a> {
    header: &'a [u8],
    data: &'a [u8],
    sealing: Option<(&'a mut Sealer, &'a mut Vec<u8>)>,
    /// Bytes of the current frame written (sealed mode).
    written: usize,
    /// Whether the header's frame was sealed, and how much of `data` (sealed mode).
    header_sealed: bool,
    sealed: usize,
}

impl<'a> Outbox<'a> {
    /// `frame` is the sealer's scratch, reused from step to step.
    pub(crate) fn new(
        header: &'a [u8],
        data: &'a [u8],
        sealing: Option<(&'a mut Sealer, &'a mut Vec<u8>)>,
    ) -> Outbox<'a> {
        let mut outbox = Outbox {
            header,
            data,
            sealing,
            written: 0,
            header_sealed: false,
            sealed: 0,
        };
        if let Some((_, frame)) = &mut outbox.sealing {
            frame.clear();
        }
        outbox
    }

    /// Seals the next frame once the current one is written (sealed mode); call before `bytes`.
    pub(crate) fn prepare(&mut self) -> Result<(), FrameError> {
        let Some((sealer, frame)) = &mut self.sealing else {
            return Ok(());
        };
        if self.written < frame.len() {
            return Ok(());
        }
        let next = if !self.header_sealed {
            self.header_sealed = true;
            self.header
        } else if self.sealed < self.data.len() {
            let end = (self.sealed + MESH_FRAME).min(self.data.len());
            let piece = &self.data[self.sealed..end];
            self.sealed = end;
            piece
        } else {
            return Ok(());
        };
        sealer.seal_into(next, frame)?;
        self.written = 0;
        Ok(())
    }

    /// What to write next: empty once everything is written.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.sealing {
            Some((_, frame)) => &frame[self.written..],
            None if !self.header.is_empty() => self.header,
            None => self.data,
        }
    }

    /// Whether everything is written (after `prepare`).
    pub(crate) fn done(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Counts `n` bytes of `bytes` as written.
    pub(crate) fn wrote(&mut self, n: usize) {
        match &self.sealing {
            Some(_) => self.written += n,
            None if !self.header.is_empty() => self.header = &self.header[n..],
            None => self.data = &self.data[n..],
        }
    }
}

/// What one mesh step receives: a header of `header` bytes then `data` bytes, laid out on the wire as
/// [`Outbox`] sends them, into a scratch buffer; frames are opened in place as they complete.
pub(crate) struct Inbox<'a> {
    wire: &'a mut [u8],
    got: usize,
    header: usize,
    data: usize,
    opener: Option<&'a mut Opener>,
    /// Wire bytes of the frames opened so far (sealed mode).
    opened: usize,
}

impl<'a> Inbox<'a> {
    /// Wire bytes of a message of `header` and `data` bytes.
    pub(crate) fn wire_len(header: usize, data: usize, sealed: bool) -> usize {
        if sealed {
            header + data + OVERHEAD * (1 + data.div_ceil(MESH_FRAME))
        } else {
            header + data
        }
    }

    /// Receives into the start of `scratch`, which holds at least [`Self::wire_len`] bytes.
    pub(crate) fn new(
        scratch: &'a mut [u8],
        header: usize,
        data: usize,
        opener: Option<&'a mut Opener>,
    ) -> Self {
        let wire = &mut scratch[..Inbox::wire_len(header, data, opener.is_some())];
        Inbox {
            wire,
            got: 0,
            header,
            data,
            opener,
            opened: 0,
        }
    }

    /// Where the next bytes read go: empty once the message is complete.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        &mut self.wire[self.got..]
    }

    /// Whether the whole message arrived (and, sealed, was opened).
    pub(crate) fn done(&self) -> bool {
        self.got == self.wire.len()
    }

    /// Counts `n` bytes read into `space`, opening every frame they complete.
    pub(crate) fn received(&mut self, n: usize) -> Result<(), FrameError> {
        self.got += n;
        let Some(opener) = &mut self.opener else {
            return Ok(());
        };
        while self.opened < self.got {
            let body = next_body(self.opened, self.header, self.data);
            let end = self.opened + body + OVERHEAD;
            if self.got < end {
                break;
            }
            opener.open_frame(&mut self.wire[self.opened..end])?;
            self.opened = end;
        }
        Ok(())
    }

    /// The header received (once `done`).
    pub(crate) fn header(&self) -> &[u8] {
        match self.opener {
            Some(_) => &self.wire[LEN..LEN + self.header],
            None => &self.wire[..self.header],
        }
    }

    /// The data received, in order, one piece per frame (once `done`).
    pub(crate) fn data(&self) -> impl Iterator<Item = &[u8]> {
        let (start, step) = match self.opener {
            Some(_) => (self.header + OVERHEAD, MESH_FRAME + OVERHEAD),
            None => (self.header, usize::MAX),
        };
        let sealed = self.opener.is_some();
        self.wire[start.min(self.wire.len())..]
            .chunks(step)
            .map(move |f| if sealed { &f[LEN..f.len() - TAG] } else { f })
    }
}

/// Plaintext bytes of the frame at wire offset `opened` of a message of `header` and `data` bytes: the
/// header's, then the data's (all full but the last).
fn next_body(opened: usize, header: usize, data: usize) -> usize {
    if opened == 0 {
        return header;
    }
    let full = (opened - header - OVERHEAD) / (MESH_FRAME + OVERHEAD);
    (data - full * MESH_FRAME).min(MESH_FRAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Channel, Keys};

    fn keys() -> (Keys, Keys) {
        let d = Keys::derive(
            b"s",
            &[1; 32],
            &[2; 32],
            Channel::Mesh,
            true,
            "rank 1 (h:1)",
        );
        let a = Keys::derive(
            b"s",
            &[1; 32],
            &[2; 32],
            Channel::Mesh,
            false,
            "rank 0 (h:0)",
        );
        (d, a)
    }

    /// Moves a message from an outbox to an inbox in writes of `step` bytes.
    fn carry(outbox: &mut Outbox, inbox: &mut Inbox, step: usize) {
        loop {
            outbox.prepare().expect("seals");
            if outbox.done() {
                break;
            }
            let bytes = outbox.bytes();
            let n = bytes.len().min(step).min(inbox.space().len());
            inbox.space()[..n].copy_from_slice(&bytes[..n]);
            outbox.wrote(n);
            inbox.received(n).expect("opens");
        }
        assert!(inbox.done());
    }

    #[test]
    fn a_mesh_message_travels_in_frames_and_plain_exactly_as_before() {
        let header = [3u8; 16];
        for len in [
            0,
            1,
            MESH_FRAME - 1,
            MESH_FRAME,
            MESH_FRAME + 1,
            3 * MESH_FRAME + 5,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            // Plain: the wire holds the header and the data, nothing else.
            let mut wire = vec![0u8; Inbox::wire_len(16, len, false)];
            let mut outbox = Outbox::new(&header, &data, None);
            let mut inbox = Inbox::new(&mut wire, 16, len, None);
            carry(&mut outbox, &mut inbox, 100_000);
            assert_eq!(inbox.header(), header);
            assert_eq!(inbox.data().collect::<Vec<_>>().concat(), data);
            assert_eq!(wire, [&header[..], &data].concat());
            // Sealed: the same message back, and neither header nor data readable on the wire.
            let (mut d, mut a) = keys();
            let mut frame = Vec::new();
            let mut wire = vec![0u8; Inbox::wire_len(16, len, true)];
            let mut outbox = Outbox::new(&header, &data, Some((&mut d.sealer, &mut frame)));
            let mut inbox = Inbox::new(&mut wire, 16, len, Some(&mut a.opener));
            carry(&mut outbox, &mut inbox, 70_001);
            assert_eq!(inbox.header(), header);
            assert_eq!(inbox.data().collect::<Vec<_>>().concat(), data, "len {len}");
        }
    }

    #[test]
    fn a_changed_mesh_byte_fails() {
        let (mut d, mut a) = keys();
        let data = vec![9u8; 1000];
        let mut frame = Vec::new();
        let mut outbox = Outbox::new(&[0u8; 16], &data, Some((&mut d.sealer, &mut frame)));
        let mut sent = Vec::new();
        loop {
            outbox.prepare().expect("seals");
            if outbox.done() {
                break;
            }
            sent.extend_from_slice(outbox.bytes());
            let n = outbox.bytes().len();
            outbox.wrote(n);
        }
        sent[500] ^= 1;
        let mut inbox = Inbox::new(&mut sent, 16, 1000, Some(&mut a.opener));
        let n = inbox.space().len();
        assert!(matches!(
            inbox.received(n),
            Err(FrameError::Tampered { .. })
        ));
    }

    #[test]
    fn beats_are_seen_across_partial_reads() {
        let (mut d, a) = keys();
        let mut wire = Vec::new();
        let mut frame = Vec::new();
        for b in [0xB7, 0xB7, 0xB8] {
            d.sealer.seal_into(&[b], &mut frame).expect("seals");
            wire.extend_from_slice(&frame);
        }
        let mut reader = BeatReader::new(Some(a.opener));
        let mut seen = Vec::new();
        for piece in wire.chunks(7) {
            seen.push(reader.saw(piece, 0xB8).expect("opens"));
        }
        assert_eq!(seen.iter().filter(|s| **s).count(), 1);
        assert!(*seen.last().unwrap());
        let mut plain = BeatReader::new(None);
        assert!(plain.saw(&[0xB7, 0xB8], 0xB8).unwrap());
        assert!(!plain.saw(&[0xB7], 0xB8).unwrap());
        // Plain bytes read by an encrypting end fail.
        let (_, a) = keys();
        let mut reader = BeatReader::new(Some(a.opener));
        assert!(reader.saw(&[0xB7; 30], 0xB8).is_err());
    }
}
