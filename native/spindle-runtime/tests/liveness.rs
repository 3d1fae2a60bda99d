//! Liveness of ring neighbours over real sockets on loopback: a peer whose process is stopped (SIGSTOP)
//! fails the ring within the heartbeat timeout, naming its rank and address, while a live peer that
//! takes long between all-reduces does not; a cancelled rendezvous stops waiting at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spindle_runtime::{Actors, Rendezvous, Ring, RingConfig};

const RANK0: &str = "SPINDLE_TEST_LIVENESS_RANK0";

fn config(rank: usize, peers: &[String], heartbeat_timeout: Duration) -> RingConfig {
    RingConfig {
        rank,
        peers: peers.to_vec(),
        secret: b"liveness".to_vec(),
        connect_timeout: Duration::from_secs(20),
        // Far above the heartbeat timeout: only the heartbeats can explain a quick failure.
        io_timeout: Duration::from_secs(120),
        heartbeat_timeout,
        algorithm: None,
        encrypt: false,
    }
}

/// Rank 1 of the stopped-peer test, run by it in a child process (ignored otherwise): joins the ring
/// whose rank 0 the environment names, prints its own address, and all-reduces until the ring fails.
#[test]
#[ignore = "the child process of a_stopped_peer_fails_the_ring_within_the_heartbeat_timeout"]
fn stopped_peer_child() {
    let Ok(rank0) = std::env::var(RANK0) else {
        return;
    };
    let rendezvous = Rendezvous::bind("127.0.0.1").expect("bind");
    println!("ADDRESS {}", rendezvous.address());
    let peers = vec![rank0, rendezvous.address().to_string()];
    let actors = Actors::start("ring test").expect("actors");
    let mut ring = Ring::connect(
        rendezvous,
        &config(1, &peers, Duration::from_secs(60)),
        &actors,
    )
    .expect("ring");
    let mut data = vec![1.0f32; 1000];
    while ring.all_reduce(&mut data).is_ok() {
        data.fill(1.0);
    }
}

/// Kills the child (stopped or not) whatever the test's outcome.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[test]
fn a_stopped_peer_fails_the_ring_within_the_heartbeat_timeout() {
    let rendezvous = Rendezvous::bind("127.0.0.1").expect("bind");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "stopped_peer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RANK0, rendezvous.address())
        .stdout(Stdio::piped())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("stdout");
    let peer = Peer(child);
    // Kept open until the end: the child writes more (libtest's report), and a closed pipe would fail it.
    let mut output = BufReader::new(stdout);
    let mut address = String::new();
    while address.is_empty() {
        let mut line = String::new();
        assert!(
            output.read_line(&mut line).expect("child output") > 0,
            "the child prints its address"
        );
        // libtest prints "test stopped_peer_child ... " on the same line, before it.
        if let Some((_, a)) = line.split_once("ADDRESS ") {
            address = a.trim().to_string();
        }
    }
    let peers = vec![rendezvous.address().to_string(), address.clone()];
    let timeout = Duration::from_secs(2);
    let actors = Actors::start("ring test").expect("actors");
    let mut ring = Ring::connect(rendezvous, &config(0, &peers, timeout), &actors).expect("ring");
    let mut data = vec![1.0f32; 1000];
    for _ in 0..5 {
        data.fill(1.0);
        ring.all_reduce(&mut data).expect("both ranks live");
        assert!(data.iter().all(|v| *v == 2.0));
    }
    signal(&peer.0, libc::SIGSTOP);
    let stopped = Instant::now();
    let error = loop {
        if let Err(e) = ring.all_reduce(&mut data) {
            break e;
        }
    };
    let took = stopped.elapsed();
    signal(&peer.0, libc::SIGCONT);
    let message = error.to_string();
    assert!(
        took < timeout + Duration::from_secs(3),
        "failed after {took:?}: {message}"
    );
    assert!(
        message.contains(&format!("rank 1 ({address})")) && message.contains("stopped answering"),
        "{message}"
    );
}

#[test]
fn a_live_peer_with_long_steps_does_not_trip_the_heartbeat_timeout() {
    live_peer_with_long_steps(false);
}

#[test]
fn encrypted_heartbeats_keep_a_live_peer_and_its_goodbye_ends_the_ring_at_once() {
    live_peer_with_long_steps(true);
}

/// Two ranks, one of which takes a step six heartbeat timeouts long; both end with goodbyes, which a ring
/// that missed them would wait 10 s for.
fn live_peer_with_long_steps(encrypt: bool) {
    let started = Instant::now();
    let rendezvous: Vec<_> = (0..2)
        .map(|_| Rendezvous::bind("127.0.0.1").expect("bind"))
        .collect();
    let peers: Vec<String> = rendezvous.iter().map(|r| r.address().to_string()).collect();
    let threads: Vec<_> = rendezvous
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            let peers = peers.clone();
            std::thread::spawn(move || {
                let actors = Actors::start("ring test").expect("actors");
                let config = RingConfig {
                    encrypt,
                    ..config(rank, &peers, Duration::from_millis(500))
                };
                let mut ring = Ring::connect(r, &config, &actors).expect("ring");
                let mut data = vec![rank as f32 + 1.0; 100];
                for step in 0..3 {
                    if rank == 1 && step == 1 {
                        // A step six heartbeat timeouts long: the peer computes, its heartbeats go on.
                        std::thread::sleep(Duration::from_secs(3));
                    }
                    data.fill(rank as f32 + 1.0);
                    ring.all_reduce(&mut data)?;
                    assert!(data.iter().all(|v| *v == 3.0));
                }
                Ok::<(), spindle_runtime::Error>(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic").expect("no rank fails");
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the goodbyes were missed: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_cancelled_rendezvous_stops_waiting_for_its_peers_at_once() {
    let rendezvous = Rendezvous::bind("127.0.0.1").expect("bind");
    let absent = Rendezvous::bind("127.0.0.1").expect("bind");
    let peers = vec![
        rendezvous.address().to_string(),
        absent.address().to_string(),
    ];
    drop(absent); // its task is gone: nothing listens there any more
    let canceller = rendezvous.canceller();
    let started = Instant::now();
    let cancelling = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        canceller.cancel();
    });
    // Rank 1 never runs: without the cancel, this waits out the 20 s connect timeout.
    let actors = Actors::start("ring test").expect("actors");
    let error = Ring::connect(
        rendezvous,
        &config(0, &peers, Duration::from_secs(10)),
        &actors,
    )
    .err()
    .expect("no ring");
    cancelling.join().expect("cancels");
    assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    assert!(error.to_string().contains("cancelled"), "{error}");
}
