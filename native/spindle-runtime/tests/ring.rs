//! The ring over real TCP sockets on the loopback interface, each rank on its own thread.

use std::time::{Duration, Instant};

use spindle_runtime::algorithms::Algorithm;
use spindle_runtime::{Actors, Rendezvous, Ring, RingConfig};

fn bind(world: usize) -> (Vec<Rendezvous>, Vec<String>) {
    let rendezvous: Vec<_> = (0..world)
        .map(|_| Rendezvous::bind("127.0.0.1").expect("bind"))
        .collect();
    let peers = rendezvous.iter().map(|r| r.address().to_string()).collect();
    (rendezvous, peers)
}

fn config(rank: usize, peers: &[String], secret: &[u8], timeout: Duration) -> RingConfig {
    RingConfig {
        rank,
        peers: peers.to_vec(),
        secret: secret.to_vec(),
        connect_timeout: timeout,
        io_timeout: Duration::from_secs(20),
        heartbeat_timeout: Duration::from_secs(10),
        // These tests are about the ring itself; tests/algorithms.rs covers the others.
        algorithm: Some(Algorithm::Ring),
        encrypt: false,
    }
}

/// Runs `work` on every rank of a freshly formed ring and returns the results by rank.
fn on_ring<T: Send + 'static>(
    world: usize,
    work: impl Fn(usize, &mut Ring) -> T + Send + Sync + Copy + 'static,
) -> Vec<T> {
    let (rendezvous, peers) = bind(world);
    let threads: Vec<_> = rendezvous
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            let c = config(rank, &peers, b"secret", Duration::from_secs(10));
            std::thread::spawn(move || {
                let actors = Actors::start("ring test").expect("actors");
                let mut ring = Ring::connect(r, &c, &actors).expect("the ring forms");
                work(rank, &mut ring)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("rank thread"))
        .collect()
}

/// Small integers, so every sum is exact in f32 whatever the order of additions.
fn values(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((rank * 7 + i) % 13) as f32 - 6.0)
        .collect()
}

#[test]
fn sums_over_two_three_and_four_ranks_for_every_size() {
    // 0 and 1 have empty segments; 65_539 crosses the 256 KiB chunk; the rest test repeated calls.
    const SIZES: [usize; 6] = [0, 1, 3, 1000, 65_539, 1_000_003];
    for world in [2, 3, 4] {
        let results = on_ring(world, |rank, ring| {
            SIZES
                .iter()
                .map(|&len| {
                    let mut data = values(rank, len);
                    ring.all_reduce(&mut data).expect("all-reduce");
                    data
                })
                .collect::<Vec<_>>()
        });
        for (s, &len) in SIZES.iter().enumerate() {
            let mut expected = vec![0f32; len];
            for r in 0..world {
                expected
                    .iter_mut()
                    .zip(values(r, len))
                    .for_each(|(e, v)| *e += v);
            }
            for (rank, r) in results.iter().enumerate() {
                assert!(r[s] == expected, "world {world}, rank {rank}, {len} values");
            }
        }
    }
}

#[test]
fn a_connection_without_the_secret_is_rejected_and_the_ring_still_forms() {
    let (mut rendezvous, peers) = bind(2);
    let second = rendezvous.pop().expect("rank 1");
    let first = rendezvous.pop().expect("rank 0");
    let c0 = config(0, &peers, b"job secret", Duration::from_secs(20));
    let rank0 = std::thread::spawn(move || {
        let actors = Actors::start("ring test").expect("actors");
        let mut ring = Ring::connect(first, &c0, &actors)?;
        let mut data = vec![1.0f32; 5];
        ring.all_reduce(&mut data).map(|()| data)
    });
    // An impostor claims rank 1 and dials rank 0 with another secret.
    let impostor = Rendezvous::bind("127.0.0.1").expect("bind");
    let claimed = vec![peers[0].clone(), impostor.address().to_string()];
    let started = Instant::now();
    let actors = Actors::start("ring test").expect("actors");
    let refused = Ring::connect(
        impostor,
        &config(1, &claimed, b"guess", Duration::from_secs(5)),
        &actors,
    )
    .err()
    .expect("the impostor is refused");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refused at once, not by timeout"
    );
    let message = refused.to_string();
    assert!(message.contains("rejected"), "{message}");
    assert!(
        message.contains(&format!("rank 0 ({})", peers[0])),
        "{message}"
    );
    // The real rank 1 still gets in.
    let actors = Actors::start("ring test").expect("actors");
    let mut ring = Ring::connect(
        second,
        &config(1, &peers, b"job secret", Duration::from_secs(20)),
        &actors,
    )
    .expect("forms");
    let mut data = vec![2.0f32; 5];
    ring.all_reduce(&mut data).expect("all-reduce");
    assert_eq!(data, vec![3.0; 5]);
    // Both ends close together, exchanging goodbyes, as the workers of a job do.
    drop(ring);
    assert_eq!(
        rank0.join().expect("rank 0").expect("rank 0 all-reduce"),
        vec![3.0; 5]
    );
}

#[test]
fn a_missing_peer_fails_within_the_timeout_naming_its_rank_and_address() {
    let (mut rendezvous, peers) = bind(3);
    drop(rendezvous.pop()); // rank 2 never comes: its port is closed
    let timeout = Duration::from_millis(1500);
    let threads: Vec<_> = rendezvous
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            let c = config(rank, &peers, b"secret", timeout);
            std::thread::spawn(move || {
                let started = Instant::now();
                let actors = Actors::start("ring test").expect("actors");
                let error = Ring::connect(r, &c, &actors)
                    .err()
                    .expect("no ring without rank 2");
                (error.to_string(), started.elapsed())
            })
        })
        .collect();
    for (rank, t) in threads.into_iter().enumerate() {
        let (message, took) = t.join().expect("rank thread");
        // Rank 0 waits for rank 2 to dial it; rank 1 dials rank 2.
        assert!(
            message.contains(&format!("rank 2 ({})", peers[2])),
            "rank {rank}: {message}"
        );
        assert!(
            took < timeout + Duration::from_secs(2),
            "rank {rank} took {took:?}"
        );
    }
}

#[test]
fn a_peer_dying_mid_training_fails_the_others_instead_of_hanging() {
    let results = on_ring(3, |rank, ring| {
        let mut data = values(rank, 300_000);
        ring.all_reduce(&mut data).expect("first all-reduce");
        if rank == 2 {
            return Ok(Duration::ZERO); // dies: dropping the ring closes its sockets
        }
        let started = Instant::now();
        ring.all_reduce(&mut data).map(|()| started.elapsed())
    });
    for (rank, result) in results.iter().enumerate().take(2) {
        let message = result
            .as_ref()
            .expect_err("the all-reduce fails")
            .to_string();
        assert!(
            message.contains("connection closed"),
            "rank {rank}: {message}"
        );
    }
    let message = results[0].as_ref().expect_err("fails").to_string();
    assert!(message.contains("receiving from rank 2"), "{message}");
}

#[test]
fn ranks_disagreeing_on_the_call_fail_with_both_positions() {
    let results = on_ring(2, |rank, ring| {
        let mut data = vec![1.0f32; 10 + rank];
        ring.all_reduce(&mut data).map_err(|e| e.to_string())
    });
    let message = results[0].clone().expect_err("rank 0 fails");
    assert!(
        message.contains("is at all-reduce #1 of 11 values, rank 0 at #1 of 10"),
        "{message}"
    );
    assert!(results[1].is_err(), "rank 1 fails too");
}
