//! Encryption of the peers' connections, when a job asks for it (`RingConfig::encrypt`): keys, nonces and
//! the frame of one sealed message. Pure: the streams that carry frames are `crate::frames`'s.
//!
//! Keys: every connection already proves both ends hold the job secret, and both ends have sent a fresh
//! random challenge (`crate::rendezvous`). HKDF-SHA256 turns the secret (input key material), the two
//! challenges (salt: the acceptor's, then the dialler's) and the connection's kind and direction (info)
//! into one AES-256-GCM key per connection and direction: no two streams, in this job or any other, share
//! a key, so a frame cannot be replayed from one stream into another, nor reflected back to its sender.
//!
//! Nonces: a per-direction frame counter (96 bits: 4 zero bytes, then the counter as a little-endian
//! `u64`). Both ends count the frames of a direction, so nothing travels but the frames themselves, a
//! frame dropped, replayed or reordered fails authentication, and a nonce is never used twice under one
//! key: a sealer refuses a frame rather than let its counter wrap.
//!
//! A frame on the wire: the ciphertext's length (`u32`, little-endian), the ciphertext, then its 16-byte
//! tag. The length is authenticated too (as associated data), so it cannot be changed unseen either.
//!
//! The cipher is `ring`'s AES-256-GCM (BoringSSL's assembly: AES-NI/VAES with carry-less multiplication,
//! interleaved), about six times RustCrypto's `aes-gcm` 0.10 on the machines measured. Its "less safe" key
//! takes the nonce from the caller: the counters here are what keeps it unique.

use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use sha2::Sha256;

/// Bytes of a frame's length prefix.
pub(crate) const LEN: usize = 4;
/// Bytes of a frame's authentication tag.
pub(crate) const TAG: usize = 16;
/// Bytes a frame adds to its plaintext.
pub(crate) const OVERHEAD: usize = LEN + TAG;

/// Why a frame could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The tag does not match: the frame was changed, forged, replayed, or the peer does not encrypt.
    #[error("frame from {peer} failed authentication: tampered or not encrypted")]
    Tampered {
        /// `rank r (host:port)`.
        peer: String,
    },
    /// The length prefix is not the one both ends' schedules agree on.
    #[error(
        "frame from {peer} holds {got} bytes where {expected} were expected: tampered, out of step \
         or not encrypted"
    )]
    Length {
        /// `rank r (host:port)`.
        peer: String,
        /// The length the frame claims.
        got: usize,
        /// The length this end expects.
        expected: usize,
    },
    /// The direction's counter is spent (2^64 - 1 frames): a nonce would repeat.
    #[error("2^64 - 1 frames sent under one key: refusing to reuse a nonce")]
    Exhausted,
}

/// Which connection keys are derived for (part of the HKDF info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Ring,
    Mesh,
}

impl Channel {
    fn label(self) -> &'static [u8] {
        match self {
            Channel::Ring => b"ring",
            Channel::Mesh => b"mesh",
        }
    }
}

/// One end's keys for one connection: the sealer of what it sends and the opener of what it receives.
pub(crate) struct Keys {
    pub(crate) sealer: Sealer,
    pub(crate) opener: Opener,
}

const TO_ACCEPTOR: &[u8] = b"dialler to acceptor";
const TO_DIALLER: &[u8] = b"acceptor to dialler";

impl Keys {
    /// The keys of one end of a connection whose handshake exchanged `acceptor_challenge` and
    /// `dialler_challenge` under `secret`; `peer` (`rank r (host:port)`) names the other end in errors.
    pub(crate) fn derive(
        secret: &[u8],
        acceptor_challenge: &[u8],
        dialler_challenge: &[u8],
        channel: Channel,
        we_are_dialler: bool,
        peer: &str,
    ) -> Keys {
        let mut salt = Vec::with_capacity(acceptor_challenge.len() + dialler_challenge.len());
        salt.extend_from_slice(acceptor_challenge);
        salt.extend_from_slice(dialler_challenge);
        let hkdf = Hkdf::<Sha256>::new(Some(&salt), secret);
        let key = |direction: &[u8]| {
            let info = [b"spindle ".as_slice(), channel.label(), b" ", direction].concat();
            let mut key = [0u8; 32];
            hkdf.expand(&info, &mut key)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte AES-256-GCM key"),
            )
        };
        let (send, receive) = if we_are_dialler {
            (TO_ACCEPTOR, TO_DIALLER)
        } else {
            (TO_DIALLER, TO_ACCEPTOR)
        };
        Keys {
            sealer: Sealer {
                cipher: key(send),
                sent: 0,
            },
            opener: Opener {
                cipher: key(receive),
                received: 0,
                peer: peer.to_string(),
            },
        }
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals the frames of one direction, numbering them.
pub(crate) struct Sealer {
    cipher: LessSafeKey,
    sent: u64,
}

impl Sealer {
    /// Seals `frame`, laid out as a frame is on the wire (`LEN` bytes, the plaintext, `TAG` bytes), in
    /// place: writes the length, encrypts the plaintext and writes its tag.
    pub(crate) fn seal(&mut self, frame: &mut [u8]) -> Result<(), FrameError> {
        assert!(
            frame.len() >= OVERHEAD,
            "a frame has room for its length and tag"
        );
        let (prefix, rest) = frame.split_at_mut(LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG);
        let (p, t) = self.seal_apart(body)?;
        prefix.copy_from_slice(&p);
        tag.copy_from_slice(&t);
        Ok(())
    }

    /// Encrypts `body` in place where it lies; returns the frame's length prefix and tag, which travel
    /// before and after it.
    pub(crate) fn seal_apart(
        &mut self,
        body: &mut [u8],
    ) -> Result<([u8; LEN], [u8; TAG]), FrameError> {
        if self.sent == u64::MAX {
            return Err(FrameError::Exhausted);
        }
        let len = u32::try_from(body.len()).expect("frames carry at most 4 GiB");
        let prefix = len.to_le_bytes();
        let sealed = self
            .cipher
            .seal_in_place_separate_tag(nonce(self.sent), Aad::from(&prefix), body)
            .expect("AES-GCM seals any frame under 64 GiB");
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(sealed.as_ref());
        self.sent += 1;
        Ok((prefix, tag))
    }

    /// Sets `out` to the frame of `plaintext` (one copy, then sealed in place).
    pub(crate) fn seal_into(
        &mut self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        out.clear();
        out.resize(LEN, 0);
        out.extend_from_slice(plaintext);
        out.resize(plaintext.len() + OVERHEAD, 0);
        self.seal(out)
    }
}

/// The plaintext length a frame's prefix announces.
pub(crate) fn announced(prefix: &[u8; LEN]) -> usize {
    u32::from_le_bytes(*prefix) as usize
}

/// Opens the frames of one direction, in the order they were sealed.
pub(crate) struct Opener {
    cipher: LessSafeKey,
    received: u64,
    peer: String,
}

impl Opener {
    /// Fails unless `prefix` announces `expected` bytes.
    pub(crate) fn expect(&self, prefix: &[u8; LEN], expected: usize) -> Result<(), FrameError> {
        let got = announced(prefix);
        if got == expected {
            Ok(())
        } else {
            Err(FrameError::Length {
                peer: self.peer.clone(),
                got,
                expected,
            })
        }
    }

    /// Decrypts `ciphertext` in place, checking it and `prefix` against `tag`. On failure `ciphertext`
    /// holds garbage and the connection must be dropped.
    pub(crate) fn open(
        &mut self,
        prefix: &[u8; LEN],
        ciphertext: &mut [u8],
        tag: &[u8; TAG],
    ) -> Result<(), FrameError> {
        self.expect(prefix, ciphertext.len())?;
        // The peer's sealer refuses a frame at u64::MAX, so an honest stream never gets here.
        if self.received == u64::MAX {
            return Err(FrameError::Exhausted);
        }
        self.cipher
            .open_in_place_separate_tag(
                nonce(self.received),
                Aad::from(prefix),
                Tag::from(*tag),
                ciphertext,
                0..,
            )
            .map_err(|_| FrameError::Tampered {
                peer: self.peer.clone(),
            })?;
        self.received += 1;
        Ok(())
    }

    /// Opens a whole frame (`LEN` bytes, ciphertext, `TAG` bytes) in place; returns its plaintext.
    pub(crate) fn open_frame<'a>(
        &mut self,
        frame: &'a mut [u8],
    ) -> Result<&'a mut [u8], FrameError> {
        let Some(body) = frame.len().checked_sub(OVERHEAD) else {
            return Err(FrameError::Length {
                peer: self.peer.clone(),
                got: frame.len(),
                expected: OVERHEAD,
            });
        };
        let (prefix, rest) = frame.split_at_mut(LEN);
        let (ciphertext, tag) = rest.split_at_mut(body);
        let prefix: &[u8; LEN] = (&*prefix).try_into().expect("LEN bytes");
        let tag: &[u8; TAG] = (&*tag).try_into().expect("TAG bytes");
        self.open(prefix, ciphertext, tag)?;
        Ok(ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const D: [u8; 32] = [2; 32];

    fn pair(channel: Channel) -> (Keys, Keys) {
        // Each end's opener names the other end.
        let dialler = Keys::derive(b"job secret", &A, &D, channel, true, "rank 0 (h:0)");
        let acceptor = Keys::derive(b"job secret", &A, &D, channel, false, "rank 1 (h:1)");
        (dialler, acceptor)
    }

    fn frame(sealer: &mut Sealer, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        sealer.seal_into(plaintext, &mut out).expect("seals");
        out
    }

    #[test]
    fn a_frame_goes_round_both_ways_and_hides_its_plaintext() {
        let (mut d, mut a) = pair(Channel::Ring);
        let plaintext = b"gradients gradients gradients".to_vec();
        let mut f = frame(&mut d.sealer, &plaintext);
        assert_eq!(f.len(), plaintext.len() + OVERHEAD);
        assert_eq!(announced(f[..LEN].try_into().unwrap()), plaintext.len());
        assert!(!f.windows(9).any(|w| w == b"gradients"));
        assert_eq!(a.opener.open_frame(&mut f).expect("opens"), &plaintext[..]);
        let mut back = frame(&mut a.sealer, b"beat");
        assert_eq!(d.opener.open_frame(&mut back).expect("opens"), b"beat");
        let mut empty = frame(&mut d.sealer, b"");
        assert_eq!(a.opener.open_frame(&mut empty).expect("opens"), b"");
    }

    #[test]
    fn a_changed_byte_anywhere_fails_naming_the_peer() {
        let (mut d, _) = pair(Channel::Ring);
        let f = frame(&mut d.sealer, &[7u8; 100]);
        for at in [LEN, LEN + 50, f.len() - 1, f.len() - TAG] {
            let (_, mut a) = pair(Channel::Ring);
            let mut bad = f.clone();
            bad[at] ^= 0x01;
            let e = a.opener.open_frame(&mut bad).expect_err("tampered");
            assert_eq!(
                e.to_string(),
                "frame from rank 1 (h:1) failed authentication: tampered or not encrypted"
            );
        }
        // A changed length is caught too, against the expected length or the tag.
        let (_, mut a) = pair(Channel::Ring);
        let mut bad = f.clone();
        bad[0] ^= 0x01;
        assert!(matches!(
            a.opener.open_frame(&mut bad),
            Err(FrameError::Length {
                got: 101,
                expected: 100,
                ..
            })
        ));
    }

    #[test]
    fn plaintext_and_other_keys_fail() {
        let (mut d, _) = pair(Channel::Ring);
        let f = frame(&mut d.sealer, &[7u8; 64]);
        // Another job's secret, other challenges, the other kind of connection.
        let others = [
            Keys::derive(b"other secret", &A, &D, Channel::Ring, false, "p"),
            Keys::derive(b"job secret", &D, &A, Channel::Ring, false, "p"),
            Keys::derive(b"job secret", &A, &D, Channel::Mesh, false, "p"),
        ];
        for mut other in others {
            assert!(matches!(
                other.opener.open_frame(&mut f.clone()),
                Err(FrameError::Tampered { .. })
            ));
        }
        // A peer that does not encrypt: its bytes, read as a frame, fail.
        let (_, mut a) = pair(Channel::Ring);
        let mut plain = [64u8, 0, 0, 0].to_vec();
        plain.extend_from_slice(&[7u8; 64 + TAG]);
        assert!(matches!(
            a.opener.open_frame(&mut plain),
            Err(FrameError::Tampered { .. })
        ));
    }

    #[test]
    fn the_two_directions_have_different_keys() {
        let (mut d, mut a) = pair(Channel::Mesh);
        let from_d = frame(&mut d.sealer, &[9u8; 32]);
        let from_a = frame(&mut a.sealer, &[9u8; 32]);
        assert_ne!(
            from_d, from_a,
            "same counter, same plaintext: only the key differs"
        );
        // A frame reflected back to its sender does not open; each opens at its receiver.
        assert!(d.opener.open_frame(&mut from_d.clone()).is_err());
        assert!(a.opener.open_frame(&mut from_a.clone()).is_err());
        assert!(d.opener.open_frame(&mut from_a.clone()).is_ok());
        assert!(a.opener.open_frame(&mut from_d.clone()).is_ok());
    }

    #[test]
    fn the_counter_moves_on_so_frames_can_be_neither_replayed_nor_reordered() {
        let (mut d, mut a) = pair(Channel::Ring);
        let first = frame(&mut d.sealer, &[5u8; 16]);
        let second = frame(&mut d.sealer, &[5u8; 16]);
        assert_ne!(first, second, "one plaintext, two nonces");
        assert!(
            a.opener.open_frame(&mut second.clone()).is_err(),
            "reordered"
        );
        let (_, mut a2) = pair(Channel::Ring);
        assert!(a2.opener.open_frame(&mut first.clone()).is_ok());
        assert!(
            a2.opener.open_frame(&mut first.clone()).is_err(),
            "replayed"
        );
        let (_, mut a3) = pair(Channel::Ring);
        a3.opener.open_frame(&mut first.clone()).expect("first");
        a3.opener
            .open_frame(&mut second.clone())
            .expect("then second");
        let _ = &mut a;
    }

    #[test]
    fn a_spent_counter_refuses_instead_of_wrapping() {
        let (mut d, _) = pair(Channel::Ring);
        d.sealer.sent = u64::MAX - 1;
        frame(&mut d.sealer, b"last");
        let mut out = Vec::new();
        assert_eq!(
            d.sealer.seal_into(b"one too many", &mut out),
            Err(FrameError::Exhausted)
        );
    }
}
