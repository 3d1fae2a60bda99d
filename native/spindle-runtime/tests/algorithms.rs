//! Every all-reduce algorithm over real TCP sockets on loopback, each rank on its own thread. Emulated hosts
//! are loopback addresses 127.0.0.h: a rank's host is the address it publishes.

use std::time::Duration;

use spindle_runtime::algorithms::Algorithm;
use spindle_runtime::{Actors, Rendezvous, Ring, RingConfig};

/// Forms a ring of `hosts.len()` ranks, rank r bound on 127.0.0.(hosts[r] + 1), all running `algorithm`
/// (`None`: the cost model's choice), encrypting its connections or not, and returns what `work` returns on each rank.
fn on_ring<T: Send + 'static>(
    hosts: &[usize],
    algorithm: Option<Algorithm>,
    encrypt: bool,
    work: impl Fn(usize, &mut Ring) -> T + Send + Sync + Copy + 'static,
) -> Vec<T> {
    on_ring_with(hosts, algorithm, |_| encrypt, work)
}

/// [`on_ring`], with rank r encrypting when `encrypts(r)`.
fn on_ring_with<T: Send + 'static>(
    hosts: &[usize],
    algorithm: Option<Algorithm>,
    encrypts: impl Fn(usize) -> bool,
    work: impl Fn(usize, &mut Ring) -> T + Send + Sync + Copy + 'static,
) -> Vec<T> {
    let rendezvous: Vec<_> = hosts
        .iter()
        .map(|h| Rendezvous::bind(&format!("127.0.0.{}", h + 1)).expect("bind"))
        .collect();
    let peers: Vec<String> = rendezvous.iter().map(|r| r.address().to_string()).collect();
    let threads: Vec<_> = rendezvous
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            let config = RingConfig {
                rank,
                peers: peers.clone(),
                secret: b"secret".to_vec(),
                connect_timeout: Duration::from_secs(20),
                io_timeout: Duration::from_secs(20),
                heartbeat_timeout: Duration::from_secs(10),
                algorithm,
                encrypt: encrypts(rank),
            };
            std::thread::spawn(move || {
                let actors = Actors::start("algorithms test").expect("actors");
                let mut ring = Ring::connect(r, &config, &actors).expect("the ring forms");
                work(rank, &mut ring)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("rank thread"))
        .collect()
}

/// Values of mixed magnitudes, whose sums round differently in different orders.
fn values(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((rank * 7919 + i * 104_729) % 1000) as f32 * 0.37 / (1 + (rank + i) % 5) as f32)
        .collect()
}

/// Sizes: empty, fewer values than ranks, odd, across the ring's 256 KiB chunk, over a megabyte.
const SIZES: [usize; 6] = [0, 1, 7, 1000, 65_539, 300_001];

fn reduce_all(hosts: &[usize], algorithm: Option<Algorithm>) -> Vec<Vec<Vec<f32>>> {
    reduce_all_with(hosts, algorithm, false)
}

fn reduce_all_with(
    hosts: &[usize],
    algorithm: Option<Algorithm>,
    encrypt: bool,
) -> Vec<Vec<Vec<f32>>> {
    on_ring(hosts, algorithm, encrypt, |rank, ring| {
        SIZES
            .iter()
            .map(|&len| {
                let mut data = values(rank, len);
                ring.all_reduce(&mut data).expect("all-reduce");
                data
            })
            .collect()
    })
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn every_algorithm_agrees_bit_for_bit_on_every_rank_and_with_the_ring_to_rounding() {
    let layouts: Vec<Vec<usize>> = vec![
        (0..2).collect(),
        (0..3).collect(),
        (0..5).collect(),
        (0..6).map(|r| r / 2).collect(),
        (0..7).map(|r| r / 3).collect(),
        (0..8).collect(),
    ];
    for hosts in layouts {
        let ring = reduce_all(&hosts, Some(Algorithm::Ring));
        let mut forced: Vec<Option<Algorithm>> =
            Algorithm::ALL[1..].iter().copied().map(Some).collect();
        forced.push(None);
        for algorithm in forced {
            let out = reduce_all(&hosts, algorithm);
            for (s, len) in SIZES.iter().enumerate() {
                for r in 1..hosts.len() {
                    assert_eq!(
                        bits(&out[r][s]),
                        bits(&out[0][s]),
                        "{algorithm:?} hosts {hosts:?} len {len}: rank {r} differs from rank 0"
                    );
                }
                for (i, (got, want)) in out[0][s].iter().zip(&ring[0][s]).enumerate() {
                    let tolerance = 1e-5 * want.abs().max(1.0);
                    assert!(
                        (got - want).abs() <= tolerance,
                        "{algorithm:?} hosts {hosts:?} len {len} [{i}]: {got} against the ring's {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_rank_makes_the_same_choice_from_one_calibration() {
    let hosts: Vec<usize> = (0..6).map(|r| r / 2).collect();
    let choices = on_ring(&hosts, None, false, |_, ring| {
        let model = ring.cluster().expect("auto calibrates").clone();
        let picks: Vec<Algorithm> = [1, 1000, 1 << 20, 1 << 24]
            .iter()
            .map(|&len| ring.choice(len).algorithm)
            .collect();
        (format!("{model:?}"), picks)
    });
    for c in &choices[1..] {
        assert_eq!(c, &choices[0]);
    }
}

#[test]
fn a_mesh_peer_that_leaves_fails_the_others_naming_it() {
    let hosts: Vec<usize> = (0..4).collect();
    let errors = on_ring(
        &hosts,
        Some(Algorithm::RecursiveDoubling),
        false,
        |rank, ring| {
            if rank == 3 {
                return None; // leaves: its ring and mesh connections close
            }
            let mut data = values(rank, 100_000);
            Some(
                ring.all_reduce(&mut data)
                    .expect_err("a rank is gone")
                    .to_string(),
            )
        },
    );
    // Rank 2 swaps with rank 3 first; the others fail on rank 2's or 3's closed connections in turn.
    let named = errors[2].as_deref().expect("rank 2 ran");
    assert!(
        named.contains("recursive-doubling") && named.contains("rank 3 (127.0.0.4:"),
        "{named}"
    );
    for e in errors.iter().take(3) {
        assert!(
            e.as_deref().is_some_and(|e| e.contains("all-reduce")),
            "{e:?}"
        );
    }
}

#[test]
fn every_algorithm_gives_the_same_bits_encrypted_as_plain() {
    // 2 to 5 ranks, one per host, and two hosts of two ranks (two-level needs a shared host).
    let layouts: Vec<Vec<usize>> = vec![
        (0..2).collect(),
        (0..3).collect(),
        (0..4).collect(),
        (0..5).collect(),
        (0..4).map(|r| r / 2).collect(),
    ];
    for hosts in layouts {
        let shared = hosts.windows(2).any(|w| w[0] == w[1]);
        for algorithm in Algorithm::ALL {
            if algorithm == Algorithm::TwoLevel && !shared {
                continue;
            }
            let plain = reduce_all_with(&hosts, Some(algorithm), false);
            let sealed = reduce_all_with(&hosts, Some(algorithm), true);
            for r in 0..hosts.len() {
                for (s, len) in SIZES.iter().enumerate() {
                    assert_eq!(
                        bits(&sealed[r][s]),
                        bits(&plain[r][s]),
                        "{algorithm:?} hosts {hosts:?} len {len}: rank {r} encrypted differs from plain"
                    );
                }
            }
        }
    }
}

#[test]
fn an_encrypted_ring_refuses_a_plain_peer_naming_it() {
    // Rank 1 does not encrypt: rank 0 reads its plain header as a frame and fails, naming it.
    let results = on_ring_with(
        &[0, 0],
        Some(Algorithm::Ring),
        |rank| rank == 0,
        |rank, ring| {
            let mut data = values(rank, 1000);
            ring.all_reduce(&mut data).map_err(|e| e.to_string())
        },
    );
    let e = results[0].as_ref().expect_err("a plain peer");
    assert!(
        e.contains("rank 1 (127.0.0.1:") && e.contains("not encrypted"),
        "{e}"
    );
    assert!(results[1].is_err(), "the plain rank fails too");
}

#[test]
fn encrypted_ranks_out_of_step_fail_with_both_positions() {
    for algorithm in [Algorithm::Ring, Algorithm::HalvingDoubling] {
        let errors = on_ring(&[0, 1], Some(algorithm), true, |rank, ring| {
            let mut data = vec![1.0f32; 10 + rank];
            ring.all_reduce(&mut data).map_err(|e| e.to_string())
        });
        let message = errors[0].clone().expect_err("rank 0 fails");
        assert!(
            message.contains("is at all-reduce #1 of 11 values, rank 0 at #1 of 10"),
            "{algorithm:?}: {message}"
        );
        assert!(errors[1].is_err(), "rank 1 fails too");
    }
}
