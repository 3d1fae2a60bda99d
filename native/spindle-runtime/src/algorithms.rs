//! The all-reduce algorithms besides the ring, as pure schedules: for one rank, the list of steps it takes,
//! each a send to one peer and a receive from one peer (the same or another), with what to do with what
//! arrives. [`crate::mesh`] runs them over sockets; [`crate::cost`] says which is fastest. The ring's own
//! pipelined schedule is `crate::schedule`.
//!
//! - Recursive doubling: `lg p` steps; in step k, rank r swaps its whole buffer with `r xor 2^k` and adds.
//!   Fewest messages, for small buffers.
//! - Halving-doubling (Rabenseifner): reduce-scatter by recursive halving (swap half of the current range
//!   with `r xor 2^k`, keep and add the other half), then all-gather by recursive doubling in reverse.
//!   `2 lg p` messages and the ring's bandwidth term.
//! - Two-level: every rank sends its buffer to the first rank of its host (its leader), which adds them in
//!   rank order; the leaders all-reduce among themselves (halving-doubling or recursive doubling); each
//!   leader sends the sum back to its host. Only one rank per host crosses the network. The
//!   reduce-scatter form (every rank of a host owning a slice across hosts) would split the network work
//!   over a host's ranks; on hosts whose ranks share one link, as here, it moves the same bytes over that
//!   link, so the simpler form is kept.
//!
//! Rank counts that are not a power of two fold as MPICH does: of the first `2 r` ranks (r = p - 2^lg p),
//! each even one sends its buffer to the odd one above it and sits out; the remaining `2^lg p` ranks run
//! the algorithm; then each odd one sends the result back.
//!
//! Every rank ends with the same bits: each sum is formed on one rank and copied (halving-doubling,
//! two-level, the fold), or formed on both partners as `a + b` and `b + a`, which IEEE addition makes equal
//! (recursive doubling).

use std::collections::BTreeSet;
use std::ops::Range;

/// An all-reduce algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// The pipelined, chunked ring (`crate::ring`).
    Ring,
    HalvingDoubling,
    RecursiveDoubling,
    TwoLevel,
}

impl Algorithm {
    /// Every algorithm, in the order a tie in predicted time is broken.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Ring,
        Algorithm::HalvingDoubling,
        Algorithm::RecursiveDoubling,
        Algorithm::TwoLevel,
    ];

    /// The name the `allReduceAlgorithm` Param and the logs use.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::HalvingDoubling => "halving-doubling",
            Algorithm::RecursiveDoubling => "recursive-doubling",
            Algorithm::TwoLevel => "two-level",
        }
    }

    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// What a receiving rank does with the values that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Adds them to its own.
    Add,
    /// Overwrites its own with them.
    Copy,
}

/// One step of a rank: at most one send and one receive, which run at once (partners swap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// To whom, and which values.
    pub send: Option<(usize, Range<usize>)>,
    /// From whom, which values, and what to do with them.
    pub recv: Option<(usize, Range<usize>, Combine)>,
}

impl Step {
    fn send(peer: usize, range: Range<usize>) -> Step {
        Step {
            send: Some((peer, range)),
            recv: None,
        }
    }

    fn recv(peer: usize, range: Range<usize>, combine: Combine) -> Step {
        Step {
            send: None,
            recv: Some((peer, range, combine)),
        }
    }

    fn swap(peer: usize, send: Range<usize>, recv: Range<usize>, combine: Combine) -> Step {
        Step {
            send: Some((peer, send)),
            recv: Some((peer, recv, combine)),
        }
    }
}

/// The largest power of two not above `n` (n >= 1).
pub(crate) fn pof2(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Each rank's host, numbered by first appearance, from the published `host:port` addresses: emulated
/// hosts share a hostname, so the address Spark gave the executor is the identity.
pub fn hosts_of(peers: &[String]) -> Vec<usize> {
    let mut names: Vec<&str> = Vec::new();
    peers
        .iter()
        .map(|p| {
            let host = p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h);
            names.iter().position(|n| *n == host).unwrap_or_else(|| {
                names.push(host);
                names.len() - 1
            })
        })
        .collect()
}

/// The ranks of each host, in rank order; hosts in order of their first rank.
pub(crate) fn groups(hosts: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (rank, &h) in hosts.iter().enumerate() {
        if groups.len() <= h {
            groups.resize(h + 1, Vec::new());
        }
        groups[h].push(rank);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// The steps of `rank` (of `hosts.len()` ranks, `hosts[r]` the host of rank r) in an all-reduce of `len`
/// values by `algorithm`; `inner` is what the leaders of a two-level all-reduce run among themselves
/// (halving-doubling or recursive doubling). The ring has no steps here: it is `crate::schedule`.
pub fn steps(
    algorithm: Algorithm,
    inner: Algorithm,
    rank: usize,
    hosts: &[usize],
    len: usize,
) -> Vec<Step> {
    let world: Vec<usize> = (0..hosts.len()).collect();
    let mut out = Vec::new();
    match algorithm {
        Algorithm::Ring => {}
        Algorithm::HalvingDoubling | Algorithm::RecursiveDoubling => {
            folded(algorithm, &world, rank, len, &mut out)
        }
        Algorithm::TwoLevel => {
            let groups = groups(hosts);
            let leaders: Vec<usize> = groups.iter().map(|g| g[0]).collect();
            let group = groups.iter().find(|g| g.contains(&rank)).expect("a host");
            let all = 0..len;
            if group[0] != rank {
                out.push(Step::send(group[0], all.clone()));
                out.push(Step::recv(group[0], all, Combine::Copy));
            } else {
                for &m in &group[1..] {
                    out.push(Step::recv(m, all.clone(), Combine::Add));
                }
                folded(inner, &leaders, rank, len, &mut out);
                for &m in &group[1..] {
                    out.push(Step::send(m, all.clone()));
                }
            }
        }
    }
    out
}

/// `algorithm` (halving-doubling or recursive doubling) among `members` (global ranks), as `me` runs it,
/// folding a count that is not a power of two.
fn folded(algorithm: Algorithm, members: &[usize], me: usize, len: usize, out: &mut Vec<Step>) {
    let m = members.len();
    if m < 2 {
        return;
    }
    let i = members.iter().position(|&r| r == me).expect("a member");
    let core = pof2(m);
    let extra = m - core;
    let all = 0..len;
    // Core rank c is member `real(c)`.
    let real = |c: usize| members[if c < extra { 2 * c + 1 } else { c + extra }];
    if i < 2 * extra && i % 2 == 0 {
        out.push(Step::send(members[i + 1], all.clone()));
        out.push(Step::recv(members[i + 1], all, Combine::Copy));
        return;
    }
    if i < 2 * extra {
        out.push(Step::recv(members[i - 1], all.clone(), Combine::Add));
    }
    let c = if i < 2 * extra { i / 2 } else { i - extra };
    match algorithm {
        Algorithm::RecursiveDoubling => {
            let mut mask = 1;
            while mask < core {
                let p = real(c ^ mask);
                out.push(Step::swap(p, all.clone(), all.clone(), Combine::Add));
                mask <<= 1;
            }
        }
        _ => halving_doubling(c, core, len, &real, out),
    }
    if i < 2 * extra {
        out.push(Step::send(members[i - 1], all));
    }
}

/// Halving-doubling of core rank `c` among `core` (a power of two) ranks.
fn halving_doubling(
    c: usize,
    core: usize,
    len: usize,
    real: &dyn Fn(usize) -> usize,
    out: &mut Vec<Step>,
) {
    // Reduce-scatter: halve the range held, distance doubling; partners hold the same range.
    let mut held = 0..len;
    let mut before = Vec::new();
    let mut mask = 1;
    while mask < core {
        let mid = held.start + held.len() / 2;
        let (lower, upper) = (held.start..mid, mid..held.end);
        let (keep, give) = if c & mask == 0 {
            (lower, upper)
        } else {
            (upper, lower)
        };
        out.push(Step::swap(real(c ^ mask), give, keep.clone(), Combine::Add));
        before.push(held);
        held = keep;
        mask <<= 1;
    }
    // All-gather: the same steps in reverse, each sending what is held and receiving the partner's half.
    while let Some(whole) = before.pop() {
        mask >>= 1;
        let theirs = if c & mask == 0 {
            held.end..whole.end
        } else {
            whole.start..held.start
        };
        out.push(Step::swap(real(c ^ mask), held, theirs, Combine::Copy));
        held = whole;
    }
}

/// The peers `rank` exchanges with in any of `algorithms` (with either inner algorithm): the mesh
/// connections it needs. The same on both ends of every pair.
pub fn partners(algorithms: &[Algorithm], rank: usize, hosts: &[usize]) -> BTreeSet<usize> {
    let mut peers = BTreeSet::new();
    for &a in algorithms {
        for inner in [Algorithm::HalvingDoubling, Algorithm::RecursiveDoubling] {
            // Lengths do not change who talks to whom; 2 values per rank keep every range non-empty.
            for step in steps(a, inner, rank, hosts, 2 * hosts.len()) {
                peers.extend(step.send.map(|s| s.0));
                peers.extend(step.recv.map(|r| r.0));
            }
        }
    }
    peers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};

    const MESH: [Algorithm; 3] = [
        Algorithm::HalvingDoubling,
        Algorithm::RecursiveDoubling,
        Algorithm::TwoLevel,
    ];

    /// Runs every rank's steps in one thread, with one FIFO per directed link, as sockets would: a step
    /// posts its send at once and finishes when its receive has arrived. Panics on a deadlock or on a
    /// message whose length does not match its receive. Returns every rank's buffer.
    fn simulate(
        algorithm: Algorithm,
        inner: Algorithm,
        hosts: &[usize],
        inputs: &[Vec<f32>],
    ) -> Vec<Vec<f32>> {
        let world = hosts.len();
        let len = inputs[0].len();
        let plans: Vec<Vec<Step>> = (0..world)
            .map(|r| steps(algorithm, inner, r, hosts, len))
            .collect();
        let mut data = inputs.to_vec();
        let mut at = vec![0usize; world];
        let mut posted = vec![false; world];
        let mut links: HashMap<(usize, usize), VecDeque<Vec<f32>>> = HashMap::new();
        loop {
            let mut progress = false;
            for r in 0..world {
                let Some(step) = plans[r].get(at[r]) else {
                    continue;
                };
                if !posted[r] {
                    if let Some((to, range)) = &step.send {
                        assert_ne!(*to, r, "{algorithm:?} rank {r} sends to itself");
                        let values = data[r][range.clone()].to_vec();
                        links.entry((r, *to)).or_default().push_back(values);
                    }
                    posted[r] = true;
                    progress = true;
                }
                let done = match &step.recv {
                    None => true,
                    Some((from, range, combine)) => {
                        match links.get_mut(&(*from, r)).and_then(|q| q.pop_front()) {
                            None => false,
                            Some(values) => {
                                assert_eq!(values.len(), range.len(), "{algorithm:?} {from}->{r}");
                                for (d, v) in data[r][range.clone()].iter_mut().zip(values) {
                                    match combine {
                                        Combine::Add => *d += v,
                                        Combine::Copy => *d = v,
                                    }
                                }
                                true
                            }
                        }
                    }
                };
                if done {
                    at[r] += 1;
                    posted[r] = false;
                    progress = true;
                }
            }
            if (0..world).all(|r| at[r] == plans[r].len()) {
                break;
            }
            assert!(progress, "{algorithm:?} deadlocks with hosts {hosts:?}");
        }
        assert!(links.values().all(|q| q.is_empty()), "messages left over");
        data
    }

    fn inputs(world: usize, len: usize) -> Vec<Vec<f32>> {
        // Values of mixed magnitude, so that the order of the additions shows in the low bits.
        (0..world)
            .map(|r| {
                (0..len)
                    .map(|i| ((r * 7919 + i * 104_729) % 1000) as f32 * 0.37 / (1 + r % 3) as f32)
                    .collect()
            })
            .collect()
    }

    /// Hosts of ranks: one per host, and `k` per host (the last host fuller or emptier).
    fn layouts(world: usize) -> Vec<Vec<usize>> {
        let mut out = vec![(0..world).collect::<Vec<_>>()];
        for k in [2, 3] {
            out.push((0..world).map(|r| r / k).collect());
        }
        out.push(vec![0; world]);
        out
    }

    #[test]
    fn every_algorithm_sums_and_agrees_bit_for_bit_on_every_rank() {
        for world in 2..=13 {
            for hosts in layouts(world) {
                for len in [0, 1, 2, 3, world - 1, world, 2 * world + 1, 100] {
                    let inputs = inputs(world, len);
                    let exact: Vec<f64> = (0..len)
                        .map(|i| inputs.iter().map(|v| v[i] as f64).sum())
                        .collect();
                    for a in MESH {
                        for inner in [Algorithm::HalvingDoubling, Algorithm::RecursiveDoubling] {
                            let out = simulate(a, inner, &hosts, &inputs);
                            for r in 1..world {
                                assert_eq!(
                                    out[r].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                                    out[0].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                                    "{a:?}/{inner:?} world {world} hosts {hosts:?} len {len}: rank {r}"
                                );
                            }
                            for (got, want) in out[0].iter().zip(&exact) {
                                let err = (*got as f64 - want).abs();
                                assert!(err <= 1e-5 * want.abs().max(1.0), "{a:?} {got} vs {want}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn step_counts_follow_the_published_message_counts() {
        let one_per_host = |p: usize| (0..p).collect::<Vec<_>>();
        for (p, lg) in [(2, 1), (4, 2), (8, 3), (64, 6)] {
            let hosts = one_per_host(p);
            let rd = steps(
                Algorithm::RecursiveDoubling,
                Algorithm::Ring,
                0,
                &hosts,
                1000,
            );
            let hd = steps(Algorithm::HalvingDoubling, Algorithm::Ring, 0, &hosts, 1000);
            assert_eq!(rd.len(), lg);
            assert_eq!(hd.len(), 2 * lg);
        }
        // 6 ranks fold into 4: rank 0 sends and receives the result; rank 1 adds it, runs 4-rank
        // halving-doubling (4 steps) and sends it back.
        let hosts = one_per_host(6);
        assert_eq!(
            steps(Algorithm::HalvingDoubling, Algorithm::Ring, 0, &hosts, 60).len(),
            2
        );
        assert_eq!(
            steps(Algorithm::HalvingDoubling, Algorithm::Ring, 1, &hosts, 60).len(),
            6
        );
        assert_eq!(
            steps(Algorithm::HalvingDoubling, Algorithm::Ring, 5, &hosts, 60).len(),
            4
        );
    }

    #[test]
    fn halving_doubling_sends_half_then_a_quarter() {
        let hosts: Vec<usize> = (0..4).collect();
        let s = steps(Algorithm::HalvingDoubling, Algorithm::Ring, 0, &hosts, 8);
        assert_eq!(s[0], Step::swap(1, 4..8, 0..4, Combine::Add));
        assert_eq!(s[1], Step::swap(2, 2..4, 0..2, Combine::Add));
        assert_eq!(s[2], Step::swap(2, 0..2, 2..4, Combine::Copy));
        assert_eq!(s[3], Step::swap(1, 0..4, 4..8, Combine::Copy));
    }

    #[test]
    fn two_level_sends_once_per_host_across_hosts() {
        // 8 ranks on 4 hosts: only leaders talk across hosts.
        let hosts: Vec<usize> = (0..8).map(|r| r / 2).collect();
        for r in 0..8 {
            for p in partners(&[Algorithm::TwoLevel], r, &hosts) {
                if hosts[p] != hosts[r] {
                    assert!(
                        r % 2 == 0 && p % 2 == 0,
                        "rank {r} talks to {p} across hosts"
                    );
                }
            }
        }
    }

    #[test]
    fn hosts_come_from_the_addresses() {
        let peers: Vec<String> = ["10.0.0.2:7", "10.0.0.1:8", "10.0.0.2:9", "[::1]:5"]
            .map(String::from)
            .to_vec();
        assert_eq!(hosts_of(&peers), vec![0, 1, 0, 2]);
        assert_eq!(
            groups(&hosts_of(&peers)),
            vec![vec![0, 2], vec![1], vec![3]]
        );
    }

    #[test]
    fn partners_are_symmetric() {
        for world in 2..=17 {
            for hosts in layouts(world) {
                for r in 0..world {
                    for p in partners(&MESH, r, &hosts) {
                        assert!(partners(&MESH, p, &hosts).contains(&r), "{r} {p} {hosts:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
        }
        assert_eq!(Algorithm::parse("tree"), None);
    }
}
