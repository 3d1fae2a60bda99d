//! The cost model that picks an all-reduce algorithm: the predicted time of each, from the latency and
//! bandwidth of the network, as Thakur, Rabenseifner and Gropp give it ("Optimization of Collective
//! Communication Operations in MPICH", 2005). Pure arithmetic.
//!
//! For `p` ranks and `n` bytes, with `alpha` the time of one message, `beta` the time per byte sent and
//! `gamma` the time per byte added:
//! - ring: `2 (p - 1) alpha + 2 (p - 1) / p n beta + (p - 1) / p n gamma`;
//! - recursive doubling: `lg p (alpha + n beta + n gamma)`;
//! - halving-doubling (Rabenseifner): `2 lg p alpha + 2 (p - 1) / p n beta + (p - 1) / p n gamma`;
//! - a rank count that is not a power of two folds into `p' = 2^floor(lg p)` ranks first, which costs
//!   `2 (alpha + n beta) + n gamma` more (one send in, one result back);
//! - two-level, `h` hosts of at most `m` ranks each: `(m - 1)` sends and adds over the host's own link,
//!   the leaders' all-reduce over the network, `(m - 1)` sends back.

use crate::algorithms::{pof2, Algorithm};

/// How much faster than the ring another algorithm must be predicted before it is chosen. The model does not see
/// that the ring pipelines its chunks and overlaps its additions with the transfers, while the others exchange
/// whole ranges both ways at once, step by step, each step waiting for its slowest pair: on the emulated cluster
/// (benches/allreduce-grid.sh) halving-doubling took 1.2x to 1.9x the ring's time for 16 MiB at 4 to 32 ranks,
/// where the model predicts them equal, and 1.8x for 1 MiB at 64 ranks, where it predicts halving-doubling 13%
/// faster. Where latency rules, the model's wins held: 0.64x the ring for 64 KiB at 32 ranks (predicted 46%
/// faster), 0.35x at 64 (67%).
pub const RING_MARGIN: f64 = 0.15;

/// The cost of moving bytes over one kind of link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Seconds per message (latency).
    pub alpha: f64,
    /// Seconds per byte sent (1 / bandwidth).
    pub beta: f64,
}

/// What the model knows of a job's workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Between hosts.
    pub network: Link,
    /// Between ranks of one host (loopback).
    pub local: Link,
    /// Seconds per byte added.
    pub gamma: f64,
    /// Ranks per host, one entry per host.
    pub per_host: Vec<usize>,
    /// The most ring connections that leave one host: 1 when each host's ranks are consecutive, as Spark's
    /// barrier tasks usually are, so the ring crosses each host's link once each way however many ranks it holds.
    pub ring_crossings: usize,
}

/// A choice, with the time the model predicts for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub algorithm: Algorithm,
    /// What the leaders of a two-level all-reduce run among themselves.
    pub inner: Algorithm,
    pub seconds: f64,
}

impl Cluster {
    /// `p` ranks, one per host, on a network of `network`.
    pub fn flat(p: usize, network: Link, gamma: f64) -> Cluster {
        Cluster {
            network,
            local: network,
            gamma,
            per_host: vec![1; p],
            ring_crossings: 1,
        }
    }

    pub fn ranks(&self) -> usize {
        self.per_host.iter().sum()
    }

    /// Predicted seconds for `algorithm` over every rank on `bytes` (a two-level one with `inner`).
    pub fn predict(&self, algorithm: Algorithm, inner: Algorithm, bytes: f64) -> f64 {
        let p = self.ranks();
        match algorithm {
            Algorithm::TwoLevel => {
                let m = self.per_host.iter().copied().max().unwrap_or(1) as f64 - 1.0;
                let (local, n) = (self.local, bytes);
                m * (local.alpha + n * local.beta + n * self.gamma)
                    + flat(inner, self.per_host.len(), n, self.network, self.gamma)
                    + m * (local.alpha + n * local.beta)
            }
            // Ranks of one host share its link: halving-doubling and recursive doubling move `per host` times
            // the bytes through it at once, the ring as many times as it leaves the host.
            _ => {
                let sharing = match algorithm {
                    Algorithm::Ring => self.ring_crossings,
                    _ => self.per_host.iter().copied().max().unwrap_or(1),
                } as f64;
                let shared = Link {
                    alpha: self.network.alpha,
                    beta: self.network.beta * sharing,
                };
                flat(algorithm, p, bytes, shared, self.gamma)
            }
        }
    }

    /// The algorithm with the least predicted time for `bytes`, among `candidates` (ties: the first); another
    /// than the ring only when it is predicted [`RING_MARGIN`] faster than the ring.
    pub fn choose(&self, candidates: &[Algorithm], bytes: f64) -> Choice {
        // Compared by the time each must beat: the others' predictions count for 1 / (1 - margin) more.
        let weighed = |c: &Choice| match c.algorithm {
            Algorithm::Ring => c.seconds,
            _ => c.seconds / (1.0 - RING_MARGIN),
        };
        let inners = [Algorithm::HalvingDoubling, Algorithm::RecursiveDoubling];
        let mut best: Option<Choice> = None;
        for &algorithm in candidates {
            for inner in inners {
                if algorithm != Algorithm::TwoLevel && inner != inners[0] {
                    continue;
                }
                let choice = Choice {
                    algorithm,
                    inner,
                    seconds: self.predict(algorithm, inner, bytes),
                };
                if best.is_none_or(|b| weighed(&choice) < weighed(&b)) {
                    best = Some(choice);
                }
            }
        }
        best.expect("at least one candidate")
    }
}

/// One level: `p` ranks on links of `link`.
fn flat(algorithm: Algorithm, p: usize, n: f64, link: Link, gamma: f64) -> f64 {
    if p < 2 {
        return 0.0;
    }
    let Link { alpha, beta } = link;
    let core = pof2(p);
    let fold = if core == p {
        0.0
    } else {
        2.0 * (alpha + n * beta) + n * gamma
    };
    let lg = core.trailing_zeros() as f64;
    let share = (core as f64 - 1.0) / core as f64;
    match algorithm {
        Algorithm::Ring => {
            let (p, share) = (p as f64, (p as f64 - 1.0) / p as f64);
            2.0 * (p - 1.0) * alpha + 2.0 * share * n * beta + share * n * gamma
        }
        Algorithm::RecursiveDoubling => lg * (alpha + n * beta + n * gamma) + fold,
        Algorithm::HalvingDoubling | Algorithm::TwoLevel => {
            2.0 * lg * alpha + 2.0 * share * n * beta + share * n * gamma + fold
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Algorithm::*;

    /// 50 us per TCP hop and 10 GbE (1.25e9 bytes/s), no reduction cost: the figures the literature and
    /// the issue quote for a 1 MB (1e6 bytes) all-reduce.
    fn ten_gbe(p: usize) -> Cluster {
        Cluster::flat(
            p,
            Link {
                alpha: 50e-6,
                beta: 1.0 / 1.25e9,
            },
            0.0,
        )
    }

    fn ms(c: &Cluster, a: Algorithm) -> f64 {
        (c.predict(a, HalvingDoubling, 1e6) * 1e4).round() / 10.0
    }

    #[test]
    fn the_published_figures() {
        assert_eq!(ms(&ten_gbe(64), Ring), 7.9);
        assert_eq!(ms(&ten_gbe(256), Ring), 27.1);
        assert_eq!(ms(&ten_gbe(64), HalvingDoubling), 2.2);
        assert_eq!(ms(&ten_gbe(256), HalvingDoubling), 2.4);
    }

    #[test]
    fn the_formulas_term_by_term() {
        let c = Cluster::flat(
            8,
            Link {
                alpha: 1.0,
                beta: 10.0,
            },
            100.0,
        );
        // 2 (p - 1) alpha + 2 (p - 1) / p n beta + (p - 1) / p n gamma with p = 8, n = 1.
        assert_eq!(c.predict(Ring, Ring, 1.0), 14.0 + 17.5 + 87.5);
        assert_eq!(c.predict(RecursiveDoubling, Ring, 1.0), 3.0 * 111.0);
        assert_eq!(c.predict(HalvingDoubling, Ring, 1.0), 6.0 + 17.5 + 87.5);
        // 6 ranks fold into 4: the fold's 2 (alpha + n beta) + n gamma on top.
        let c6 = Cluster {
            per_host: vec![1; 6],
            ..c.clone()
        };
        // Two ranks on each of 3 hosts: the other algorithms share each link by 2, a ring of consecutive ranks
        // does not (it leaves each host once).
        let shared = Cluster {
            per_host: vec![2; 3],
            ..c6.clone()
        };
        assert_eq!(shared.predict(Ring, Ring, 1.0), c6.predict(Ring, Ring, 1.0));
        assert_eq!(
            shared.predict(HalvingDoubling, Ring, 1.0),
            4.0 + 2.0 * 15.0 + 75.0 + 2.0 * (1.0 + 20.0) + 100.0
        );
        assert_eq!(
            c6.predict(HalvingDoubling, Ring, 1.0),
            4.0 + 15.0 + 75.0 + 122.0
        );
    }

    #[test]
    fn small_buffers_take_recursive_doubling_and_large_ones_a_bandwidth_optimal_algorithm() {
        let c = ten_gbe(64);
        let all = [Ring, HalvingDoubling, RecursiveDoubling];
        assert_eq!(c.choose(&all, 1024.0).algorithm, RecursiveDoubling);
        assert_eq!(c.choose(&all, 1e6).algorithm, HalvingDoubling);
        assert_eq!(c.choose(&[Ring], 1e6).algorithm, Ring);
        // Two ranks: the ring's two messages against halving-doubling's two, the same bytes: a tie, and
        // the ring comes first.
        assert_eq!(
            ten_gbe(2).choose(&[Ring, HalvingDoubling], 64e6).algorithm,
            Ring
        );
        // 64 MB at 64 ranks: halving-doubling is predicted faster, but within the ring's margin.
        let c = ten_gbe(64);
        let (ring, hd) = (
            c.predict(Ring, Ring, 64e6),
            c.predict(HalvingDoubling, Ring, 64e6),
        );
        assert!(hd < ring && hd > ring * (1.0 - RING_MARGIN));
        assert_eq!(c.choose(&all, 64e6).algorithm, Ring);
    }

    #[test]
    fn two_level_wins_when_hosts_hold_several_ranks_the_ring_leaves_often() {
        let network = Link {
            alpha: 100e-6,
            beta: 1.0 / 12.5e6,
        };
        let local = Link {
            alpha: 20e-6,
            beta: 1.0 / 2e9,
        };
        let c = Cluster {
            network,
            local,
            gamma: 1.0 / 4e9,
            per_host: vec![4; 8],
            // Ranks dealt to hosts in turn: every ring connection leaves its host.
            ring_crossings: 4,
        };
        let pick = c.choose(&Algorithm::ALL, 1e6);
        assert_eq!(pick.algorithm, TwoLevel);
        // Leaders: 8 hosts, a power of two, so the leaders' all-reduce is halving-doubling.
        assert_eq!(pick.inner, HalvingDoubling);
        assert!(pick.seconds < c.predict(Ring, Ring, 1e6) / 2.0);
        // Consecutive ranks per host: the ring leaves each host once, and two-level gains too little on it.
        let consecutive = Cluster {
            ring_crossings: 1,
            ..c
        };
        assert_eq!(consecutive.choose(&Algorithm::ALL, 1e6).algorithm, Ring);
    }
}
