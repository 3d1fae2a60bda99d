//! The cost model's predictions as Markdown tables, for docs/scaling.md: per link speed, rank count and size,
//! the ring's time and the chosen algorithm's, one rank per host, 50 us per message (a TCP hop), additions free
//! (gamma 0), as the literature quotes them.
//!
//! Usage: cost_table

use spindle_runtime::algorithms::Algorithm;
use spindle_runtime::cost::{Cluster, Link};

fn main() {
    let sizes = [
        (64 << 10, "64 KiB"),
        (1 << 20, "1 MiB"),
        (16 << 20, "16 MiB"),
        (64 << 20, "64 MiB"),
    ];
    for gbe in [10.0, 25.0, 100.0] {
        println!("\n{gbe} GbE, 50 us per message: ring / chosen algorithm, milliseconds\n");
        let header: Vec<&str> = sizes.iter().map(|s| s.1).collect();
        println!("| ranks | {} |", header.join(" | "));
        println!("|---:|{}", "---|".repeat(sizes.len()));
        for p in [8, 16, 32, 64, 128, 256] {
            let network = Link {
                alpha: 50e-6,
                beta: 8.0 / (gbe * 1e9),
            };
            let cluster = Cluster::flat(p, network, 0.0);
            let cells: Vec<String> = sizes
                .iter()
                .map(|&(bytes, _)| {
                    let bytes = bytes as f64;
                    let ring = cluster.predict(Algorithm::Ring, Algorithm::Ring, bytes);
                    let best = cluster.choose(&Algorithm::ALL[..3], bytes);
                    format!(
                        "{:.2} / {:.2} {}",
                        ring * 1e3,
                        best.seconds * 1e3,
                        best.algorithm.name()
                    )
                })
                .collect();
            println!("| {p} | {} |", cells.join(" | "));
        }
    }
}
