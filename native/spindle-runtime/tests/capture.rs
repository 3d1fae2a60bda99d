//! What an eavesdropper on the network sees of an all-reduce: a raw packet socket on loopback (`AF_PACKET`,
//! every protocol, bound to `lo`; needs root or CAP_NET_RAW, and skips with the reason otherwise) captures
//! the TCP payloads of a ring's connections while it all-reduces buffers of a recognisable pattern under a
//! known secret. Plain, the pattern is on the wire (so the capture works and the test can fail); encrypted,
//! neither the pattern nor the secret is. The secret never travels in either case.
//!
//! Only packets to or from the ring's listening ports count, so other loopback traffic does not matter.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_runtime::algorithms::Algorithm;
use spindle_runtime::{Actors, Rendezvous, Ring, RingConfig};

const SECRET: &[u8] = b"capture-test-secret-7f3a9c51d2";
/// Two distinctive f32s, alternating in every rank's buffer: 8 bytes that random ciphertext all but never
/// holds (about one chance in 2^60 over the bytes captured).
const PATTERN: [u32; 2] = [0x5EC2_E7A5, 0x5EC2_E7B6];
/// Bounds on the capture: packets and time.
const MAX_PACKETS: usize = 1_000_000;
const MAX_TIME: Duration = Duration::from_secs(60);
/// How long the capture drains its queue once the all-reduces ended: their packets were queued before.
const DRAIN: Duration = Duration::from_secs(2);

/// A raw packet socket on `lo`, or why none can be opened.
struct Capture(libc::c_int);

impl Capture {
    fn open() -> Result<Capture, String> {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket calls on a descriptor we own, with structures sized as the kernel expects.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, all as libc::c_int);
            if fd < 0 {
                return Err(format!(
                    "no raw packet socket: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let capture = Capture(fd);
            let index = libc::if_nametoindex(c"lo".as_ptr());
            if index == 0 {
                return Err("no loopback interface".into());
            }
            let mut at: libc::sockaddr_ll = std::mem::zeroed();
            at.sll_family = libc::AF_PACKET as u16;
            at.sll_protocol = all;
            at.sll_ifindex = index as i32;
            if libc::bind(
                fd,
                (&at as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                return Err(format!(
                    "binding to lo: {}",
                    std::io::Error::last_os_error()
                ));
            }
            // A large buffer, so that the reader keeps up with a burst (root may exceed rmem_max).
            let size: libc::c_int = 64 << 20;
            let set = |option| {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    4,
                )
            };
            if set(libc::SO_RCVBUFFORCE) != 0 {
                set(libc::SO_RCVBUF);
            }
            let wait = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&wait as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            Ok(capture)
        }
    }

    /// The TCP payloads to or from `ports`, until `stop` (and the socket is drained) or the bounds.
    fn payloads(&self, ports: &BTreeSet<u16>, stop: &AtomicBool) -> Vec<Vec<u8>> {
        let mut payloads = Vec::new();
        let mut packet = vec![0u8; 70_000];
        let started = Instant::now();
        let mut seen = 0;
        let mut stopped: Option<Instant> = None;
        while seen < MAX_PACKETS && started.elapsed() < MAX_TIME {
            if stop.load(Ordering::Relaxed) {
                // Other loopback traffic may never let the queue run dry: drain for a bounded time.
                if stopped.get_or_insert_with(Instant::now).elapsed() > DRAIN {
                    break;
                }
            }
            // SAFETY: reads at most the buffer's length into it.
            let n = unsafe { libc::recv(self.0, packet.as_mut_ptr().cast(), packet.len(), 0) };
            if n <= 0 {
                if stopped.is_some() {
                    break; // nothing more within the read timeout, after the all-reduces ended
                }
                continue;
            }
            seen += 1;
            if let Some(p) = tcp_payload(&packet[..n as usize], ports) {
                payloads.push(p.to_vec());
            }
        }
        payloads
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// The payload of an Ethernet-framed IPv4 TCP packet to or from one of `ports` (loopback frames carry an
/// Ethernet header of zero addresses).
fn tcp_payload<'a>(frame: &'a [u8], ports: &BTreeSet<u16>) -> Option<&'a [u8]> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    let header = usize::from(ip[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let tcp = ip.get(header..total)?;
    let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    if tcp.len() < 20 || !(ports.contains(&port(0)) || ports.contains(&port(2))) {
        return None;
    }
    tcp.get(usize::from(tcp[12] >> 4) * 4..)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What was seen on the wire of one run.
struct Seen {
    payload_bytes: usize,
    pattern: bool,
    secret: bool,
}

/// Runs `world` ranks (rank r on 127.0.0.(r + 1)) through the ring, halving-doubling and recursive
/// doubling over buffers of the pattern, capturing their connections.
fn capture_run(capture: &Capture, world: usize, encrypt: bool) -> Seen {
    let rendezvous: Vec<_> = (0..world)
        .map(|r| Rendezvous::bind(&format!("127.0.0.{}", r + 1)).expect("bind"))
        .collect();
    let peers: Vec<String> = rendezvous.iter().map(|r| r.address().to_string()).collect();
    let ports: BTreeSet<u16> = peers
        .iter()
        .map(|p| {
            p.rsplit_once(':')
                .expect("host:port")
                .1
                .parse()
                .expect("port")
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let payloads = std::thread::scope(|s| {
        let capturing = s.spawn(|| capture.payloads(&ports, &stop));
        let ranks: Vec<_> = rendezvous
            .into_iter()
            .enumerate()
            .map(|(rank, r)| {
                let config = RingConfig {
                    rank,
                    peers: peers.clone(),
                    secret: SECRET.to_vec(),
                    connect_timeout: Duration::from_secs(20),
                    io_timeout: Duration::from_secs(20),
                    heartbeat_timeout: Duration::from_secs(10),
                    algorithm: None,
                    encrypt,
                };
                s.spawn(move || {
                    let actors = Actors::start("capture test").expect("actors");
                    let mut ring = Ring::connect(r, &config, &actors).expect("the ring forms");
                    for algorithm in [
                        Algorithm::Ring,
                        Algorithm::HalvingDoubling,
                        Algorithm::RecursiveDoubling,
                    ] {
                        ring.set_algorithm(Some(algorithm))
                            .expect("connected for it");
                        let mut data: Vec<f32> = (0..100_000)
                            .map(|i| f32::from_bits(PATTERN[i % 2]))
                            .collect();
                        ring.all_reduce(&mut data).expect("all-reduce");
                    }
                })
            })
            .collect();
        for r in ranks {
            r.join().expect("rank");
        }
        stop.store(true, Ordering::Relaxed);
        capturing.join().expect("capture")
    });
    let pattern: Vec<u8> = PATTERN.iter().flat_map(|p| p.to_le_bytes()).collect();
    let swapped: Vec<u8> = PATTERN.iter().rev().flat_map(|p| p.to_le_bytes()).collect();
    Seen {
        payload_bytes: payloads.iter().map(Vec::len).sum(),
        pattern: payloads
            .iter()
            .any(|p| contains(p, &pattern) || contains(p, &swapped)),
        secret: payloads.iter().any(|p| contains(p, SECRET)),
    }
}

#[test]
fn an_eavesdropper_sees_the_gradients_of_a_plain_ring_and_nothing_of_an_encrypted_one() {
    let capture = match Capture::open() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: {why} (the capture needs root or CAP_NET_RAW)");
            return;
        }
    };
    for world in [2, 3] {
        let plain = capture_run(&capture, world, false);
        // Each rank sends at least its own share of 400 KB per algorithm.
        assert!(
            plain.payload_bytes > 400_000,
            "{world} ranks: only {} bytes captured",
            plain.payload_bytes
        );
        assert!(
            plain.pattern,
            "{world} ranks plain: the pattern should be on the wire"
        );
        assert!(!plain.secret, "{world} ranks plain: the secret travelled");
        let sealed = capture_run(&capture, world, true);
        assert!(
            sealed.payload_bytes > 400_000,
            "{world} ranks: only {} bytes captured",
            sealed.payload_bytes
        );
        assert!(
            !sealed.pattern,
            "{world} ranks encrypted: the pattern is on the wire"
        );
        assert!(
            !sealed.secret,
            "{world} ranks encrypted: the secret travelled"
        );
        eprintln!(
            "{world} ranks: captured {} bytes plain, {} encrypted",
            plain.payload_bytes, sealed.payload_bytes
        );
    }
}
