//! One rank of an all-reduce benchmark or check, as its own process: the launcher (`benches/allreduce-grid.sh`,
//! `tests/netns/allreduce-check.sh`) starts one per rank, each in the network namespace of its emulated host.
//!
//! Usage: allreduce_rank --rank R --peers HOST:PORT,HOST:PORT,... [--algorithms auto,ring,...]
//!                       [--sizes BYTES,...] [--repeats K] [--check] [--encrypt] [--times]
//! The job's secret comes from the environment (`SPINDLE_BENCH_SECRET`), never from a socket.
//!
//! The ranks form one ring with the automatic choice (every mesh connection, the timings of the cost model),
//! then, per size and algorithm: one untimed all-reduce, then K timed ones, each after a barrier; a run's
//! time is its slowest rank's. Rank 0 prints, per case:
//!   BENCH allreduce bytes B ranks P algorithm A chosen C best_ms X median_ms Y predicted_ms Z encrypted E
//! With --encrypt every connection is encrypted (`RingConfig::encrypt`; `benches/encryption.sh`). With
//! --times rank 0 also prints every timed run (the slowest rank's), for a launcher that pools launches:
//!   TIMES allreduce bytes B ranks P algorithm A encrypted E ms T1 T2 ...
//! With --check, instead: each algorithm sums values of mixed magnitudes; rank 0 prints
//!   CHECK algorithm A bytes B ranks P identical-on-every-rank true|false max-rel-vs-ring E
//! and the process fails unless every rank holds the same bits and the ring's result to 1e-5.

use std::time::{Duration, Instant};

use spindle_runtime::algorithms::Algorithm;
use spindle_runtime::{Actors, Rendezvous, Ring, RingConfig};

struct Args {
    rank: usize,
    peers: Vec<String>,
    algorithms: Vec<Option<Algorithm>>,
    sizes: Vec<usize>,
    repeats: usize,
    check: bool,
    encrypt: bool,
    times: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        rank: usize::MAX,
        peers: Vec::new(),
        algorithms: vec![None],
        sizes: vec![1 << 20],
        repeats: 5,
        check: false,
        encrypt: false,
        times: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if matches!(flag.as_str(), "--check" | "--encrypt" | "--times") {
            args.check |= flag == "--check";
            args.encrypt |= flag == "--encrypt";
            args.times |= flag == "--times";
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let list = || value.split(',').map(str::to_string);
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--rank" => args.rank = number(&value)?,
            "--peers" => args.peers = list().collect(),
            "--algorithms" => {
                args.algorithms = list()
                    .map(|a| match a.as_str() {
                        "auto" => Ok(None),
                        _ => Algorithm::parse(&a)
                            .map(Some)
                            .ok_or(format!("no algorithm {a}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--sizes" => args.sizes = list().map(|v| number(&v)).collect::<Result<_, _>>()?,
            "--repeats" => args.repeats = number(&value)?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.rank >= args.peers.len() {
        return Err("--rank must index --peers".into());
    }
    Ok(args)
}

fn name(a: Option<Algorithm>) -> &'static str {
    a.map_or("auto", Algorithm::name)
}

/// Each rank's `mine` at its own slot, summed: every rank's figures on every rank.
fn gather(ring: &mut Ring, mine: &[f32]) -> Result<Vec<Vec<f32>>, String> {
    let (p, k) = (ring.world(), mine.len());
    let mut all = vec![0f32; p * k];
    all[ring.rank() * k..(ring.rank() + 1) * k].copy_from_slice(mine);
    ring.all_reduce(&mut all).map_err(|e| e.to_string())?;
    Ok(all.chunks(k).map(<[f32]>::to_vec).collect())
}

fn values(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((rank * 7919 + i * 104_729) % 1000) as f32 * 0.37 / (1 + (rank + i) % 5) as f32)
        .collect()
}

fn bench(ring: &mut Ring, args: &Args) -> Result<(), String> {
    let p = ring.world();
    for &bytes in &args.sizes {
        let mut data = vec![1.0f32; bytes / 4];
        for &algorithm in &args.algorithms {
            ring.set_algorithm(algorithm).map_err(|e| e.to_string())?;
            let choice = ring.choice(data.len());
            let mut times = Vec::with_capacity(args.repeats);
            for run in 0..=args.repeats {
                ring.all_reduce(&mut [0.0]).map_err(|e| e.to_string())?; // a barrier
                let t0 = Instant::now();
                ring.all_reduce(&mut data).map_err(|e| e.to_string())?;
                if run > 0 {
                    times.push(t0.elapsed().as_secs_f32() * 1e3);
                }
            }
            ring.set_algorithm(None).map_err(|e| e.to_string())?;
            let all = gather(ring, &times)?;
            let mut slowest: Vec<f32> = (0..args.repeats)
                .map(|i| all.iter().map(|t| t[i]).fold(0.0, f32::max))
                .collect();
            if ring.rank() == 0 && args.times {
                let ms: Vec<String> = slowest.iter().map(|t| format!("{t:.3}")).collect();
                println!(
                    "TIMES allreduce bytes {bytes} ranks {p} algorithm {} encrypted {} ms {}",
                    name(algorithm),
                    args.encrypt,
                    ms.join(" ")
                );
            }
            slowest.sort_by(f32::total_cmp);
            if ring.rank() == 0 {
                println!(
                    "BENCH allreduce bytes {bytes} ranks {p} algorithm {} chosen {} best_ms {:.3} median_ms {:.3} predicted_ms {:.3} encrypted {}",
                    name(algorithm),
                    choice.algorithm.name(),
                    slowest[0],
                    slowest[slowest.len() / 2],
                    choice.seconds * 1e3,
                    args.encrypt
                );
            }
        }
    }
    Ok(())
}

fn check(ring: &mut Ring, args: &Args) -> Result<bool, String> {
    let (p, rank) = (ring.world(), ring.rank());
    let mut ok = true;
    for &bytes in &args.sizes {
        let len = bytes / 4;
        ring.set_algorithm(Some(Algorithm::Ring))
            .map_err(|e| e.to_string())?;
        let mut reference = values(rank, len);
        ring.all_reduce(&mut reference).map_err(|e| e.to_string())?;
        for &algorithm in &args.algorithms {
            ring.set_algorithm(algorithm).map_err(|e| e.to_string())?;
            let mut data = values(rank, len);
            ring.all_reduce(&mut data).map_err(|e| e.to_string())?;
            // A digest of the bits, in 16-bit pieces that f32 holds exactly.
            let digest = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
                (h ^ v.to_bits() as u64).wrapping_mul(0x0100_0000_01b3)
            });
            let pieces: Vec<f32> = (0..4)
                .map(|i| ((digest >> (16 * i)) & 0xffff) as f32)
                .collect();
            let max_rel = data
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0.0, f32::max);
            ring.set_algorithm(None).map_err(|e| e.to_string())?;
            let digests = gather(ring, &pieces)?;
            let errors = gather(ring, &[max_rel])?;
            let identical = digests.iter().all(|d| *d == digests[0]);
            let worst = errors.iter().map(|e| e[0]).fold(0.0, f32::max);
            ok &= identical && worst <= 1e-5;
            if rank == 0 {
                println!(
                    "CHECK algorithm {} bytes {bytes} ranks {p} identical-on-every-rank {identical} max-rel-vs-ring {worst:.2e}",
                    name(algorithm)
                );
            }
        }
    }
    Ok(ok)
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("allreduce_rank: {e}");
        std::process::exit(2)
    });
    let secret = std::env::var("SPINDLE_BENCH_SECRET").unwrap_or_else(|_| {
        eprintln!("allreduce_rank: SPINDLE_BENCH_SECRET is not set");
        std::process::exit(2)
    });
    let me = &args.peers[args.rank];
    let (host, port) = me.rsplit_once(':').expect("HOST:PORT");
    let run = || -> Result<bool, String> {
        let rendezvous =
            Rendezvous::bind_port(host, port.parse().map_err(|e| format!("{me}: {e}"))?)
                .map_err(|e| e.to_string())?;
        let actors = Actors::start("allreduce rank").map_err(|e| e.to_string())?;
        let config = RingConfig {
            rank: args.rank,
            peers: args.peers.clone(),
            secret: secret.into_bytes(),
            connect_timeout: Duration::from_secs(120),
            io_timeout: Duration::from_secs(300),
            heartbeat_timeout: Duration::from_secs(60),
            algorithm: None,
            encrypt: args.encrypt,
        };
        let mut ring = Ring::connect(rendezvous, &config, &actors).map_err(|e| e.to_string())?;
        if args.rank == 0 {
            if let Some(c) = ring.cluster() {
                println!(
                    "MODEL ranks {} hosts {} alpha_us {:.1} network_MBps {:.2} add_GBps {:.2}",
                    ring.world(),
                    c.per_host.len(),
                    c.network.alpha * 1e6,
                    1e-6 / c.network.beta,
                    1e-9 / c.gamma
                );
            }
        }
        if args.check {
            check(&mut ring, &args)
        } else {
            bench(&mut ring, &args).map(|()| true)
        }
    };
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("allreduce_rank {}: {e}", args.rank);
            std::process::exit(1)
        }
    }
}
