//! Ring all-reduce time against the ideal 2 (N - 1) / N x S / B, where B is the point-to-point throughput of one
//! loopback TCP connection measured in the same run (same 256 KiB writes, TCP_NODELAY). Each rank is a thread.
//!
//! Also printed: the time of the ring's traffic (2 (N - 1) / N x S per rank) over N loopback connections running at
//! once, without reduction or pipelining: where the machine has fewer cores than the N links need (each link is a
//! sending and a receiving thread plus the kernel's copies), this, not one connection alone, bounds the ring.
//!
//! Usage: allreduce_bench [repeats=5] [sizes in MB=1,10,100] [ranks=2,4]
//! Every figure is the best of `repeats` timed runs after one untimed run (B: of 4 x `repeats`, as it is cheap).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use spindle_runtime::{Actors, Rendezvous, Ring, RingConfig};

const MB: usize = 1 << 20;

fn list(arg: Option<String>, default: &[usize]) -> Vec<usize> {
    arg.map(|a| a.split(',').map(|v| v.parse().expect("a number")).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Seconds for `world` loopback connections, all at once, each to move `bytes`: the ring's traffic with neither
/// reduction nor pipelining. On a machine with fewer cores than the links need, this is the bound the ring meets.
/// With `world` 1 it is the point-to-point time of one connection.
fn concurrent_links(world: usize, bytes: usize, repeats: usize) -> f64 {
    let barrier = Arc::new(Barrier::new(world));
    let links: Vec<_> = (0..world)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Vec<f64> {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("address");
                let reader = std::thread::spawn(move || {
                    let (mut s, _) = listener.accept().expect("accept");
                    let mut buf = vec![0u8; bytes];
                    for _ in 0..=repeats {
                        s.read_exact(&mut buf).expect("read");
                        s.write_all(&[1]).expect("ack");
                    }
                });
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let data = vec![7u8; bytes];
                let times = (0..=repeats)
                    .map(|_| {
                        barrier.wait();
                        let t0 = Instant::now();
                        for chunk in data.chunks(256 * 1024) {
                            s.write_all(chunk).expect("write");
                        }
                        s.read_exact(&mut [0u8]).expect("ack");
                        t0.elapsed().as_secs_f64()
                    })
                    .collect();
                reader.join().expect("reader");
                times
            })
        })
        .collect();
    let times: Vec<Vec<f64>> = links.into_iter().map(|t| t.join().expect("link")).collect();
    slowest_of_best_round(&times, repeats)
}

/// The best round (after the untimed round 0), each round timed by its slowest participant.
fn slowest_of_best_round(times: &[Vec<f64>], repeats: usize) -> f64 {
    (1..=repeats)
        .map(|i| times.iter().map(|t| t[i]).fold(0.0, f64::max))
        .fold(f64::MAX, f64::min)
}

/// Seconds for one all-reduce of `bytes` over `world` ranks, best of `repeats` (the slowest rank of each run).
fn ring(world: usize, bytes: usize, repeats: usize) -> f64 {
    let rendezvous: Vec<_> = (0..world)
        .map(|_| Rendezvous::bind("127.0.0.1").expect("bind"))
        .collect();
    let peers: Vec<String> = rendezvous.iter().map(|r| r.address().to_string()).collect();
    let barrier = Arc::new(Barrier::new(world));
    let threads: Vec<_> = rendezvous
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            let config = RingConfig {
                rank,
                peers: peers.clone(),
                secret: b"bench".to_vec(),
                connect_timeout: Duration::from_secs(30),
                io_timeout: Duration::from_secs(60),
                heartbeat_timeout: Duration::from_secs(10),
                algorithm: None,
                encrypt: false,
            };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let actors = Actors::start("ring test").expect("actors");
                let mut ring = Ring::connect(r, &config, &actors).expect("ring");
                let mut data = vec![1.0f32; bytes / 4];
                (0..=repeats)
                    .map(|_| {
                        barrier.wait();
                        let t0 = Instant::now();
                        ring.all_reduce(&mut data).expect("all-reduce");
                        t0.elapsed().as_secs_f64()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let times: Vec<Vec<f64>> = threads
        .into_iter()
        .map(|t| t.join().expect("rank"))
        .collect();
    slowest_of_best_round(&times, repeats)
}

fn main() {
    // The runtime's log lines go to stderr at the level RUST_LOG names (only errors when unset), apart from
    // the figures on stdout.
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let repeats = args
        .next()
        .map(|r| r.parse().expect("repeats"))
        .unwrap_or(5);
    let sizes = list(args.next(), &[1, 10, 100]);
    let worlds = list(args.next(), &[2, 4]);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("all-reduce over loopback TCP, {cores} cores, best of {repeats}");
    for &mb in &sizes {
        let bytes = mb * MB;
        let b = bytes as f64 / concurrent_links(1, bytes, 4 * repeats);
        println!("BENCH p2p {mb:>4} MB  B = {:8.0} MB/s", b / MB as f64);
        for &n in &worlds {
            let took = ring(n, bytes, repeats);
            let traffic = 2 * (n - 1) * bytes / n;
            let ideal = traffic as f64 / b;
            let links = concurrent_links(n, traffic, repeats);
            println!(
                "BENCH allreduce {mb:>4} MB  {n} ranks  {:9.2} ms  ideal {:9.2} ms  ratio {:.2} (target <= 1.25)  \
                 | {n} links at once {:9.2} ms  ratio {:.2}",
                took * 1e3,
                ideal * 1e3,
                took / ideal,
                links * 1e3,
                took / links
            );
        }
    }
}
