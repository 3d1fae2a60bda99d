//! The chunk schedule of the ring all-reduce: which part of the buffer a rank sends and receives in
//! each phase, and how it is cut into chunks. Pure arithmetic, apart from the sockets and threads of
//! [`crate::Ring::all_reduce`], so that it is tested without either.

use std::ops::Range;

/// Where one rank's sends and receives fall in a ring all-reduce of `len` values over `world` ranks.
///
/// The buffer is cut into `world` segments: segment `i` is `i * len / world .. (i + 1) * len / world`
/// (some are empty when `len < world`). The all-reduce takes `2 (world - 1)` phases; in each, every rank
/// sends one segment to its right neighbour (rank + 1) and receives one from its left (rank - 1). What a
/// rank sends in phase `p` is what it received in phase `p - 1`; in phase 0 it sends its own segment
/// `rank`.
///
/// - Reduce-scatter, phases `0 .. world - 1`: in phase `p` rank `r` receives segment `r - p - 1` (modulo
///   `world`) and adds it to its own values. Segment `s` sets out from rank `s` and each phase carries its
///   partial sum one rank further, one rank's values more in it, so after the last of these phases rank
///   `r` holds the whole sum of segment `r + 1`, the one it received last. It never receives segment `r`.
/// - All-gather, phases `world - 1 .. 2 (world - 1)`: in phase `world - 1 + q` rank `r` receives segment
///   `r - q` and overwrites its values with it. The whole sums go around the ring once more, each rank
///   starting with the one it finished; it never receives that one, segment `r + 1`.
///
/// A segment travels in chunks of `per_chunk` values, the last one shorter, cut alike on both sides of a
/// connection. A rank numbers the chunks it receives across phases: the chunks of phase `p` follow the
/// [`Self::chunks_before`]`(p)` chunks of the phases before it. Since `sent(p) == received(p - 1)`, chunk
/// `c` of phase `p` may be sent once `chunks_before(p - 1) + c + 1` chunks have arrived (and been
/// reduced): the phases pipeline, chunk by chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    world: usize,
    rank: usize,
    len: usize,
    per_chunk: usize,
}

impl Schedule {
    /// The schedule of `rank` among `world` ranks (at least two) for `len` values in chunks of
    /// `per_chunk` values (at least one).
    pub(crate) fn new(world: usize, rank: usize, len: usize, per_chunk: usize) -> Schedule {
        assert!(
            world >= 2 && rank < world && per_chunk > 0,
            "a ring schedule needs 2 or more ranks, a rank below them and chunks of a value or more"
        );
        Schedule {
            world,
            rank,
            len,
            per_chunk,
        }
    }

    /// Number of phases: `world - 1` to reduce-scatter, as many to all-gather.
    pub(crate) fn phases(&self) -> usize {
        2 * (self.world - 1)
    }

    /// Whether phase `p` adds what it receives (reduce-scatter) rather than overwriting (all-gather).
    pub(crate) fn reduces(&self, p: usize) -> bool {
        p < self.world - 1
    }

    /// Segment `i` (modulo `world`) of the buffer.
    pub(crate) fn segment(&self, i: usize) -> Range<usize> {
        let (n, i) = (self.world, i % self.world);
        i * self.len / n..(i + 1) * self.len / n
    }

    /// Index of the segment received in phase `p`.
    fn received_segment(&self, p: usize) -> usize {
        let (n, rank) = (self.world, self.rank);
        if self.reduces(p) {
            (rank + 2 * n - p - 1) % n
        } else {
            (rank + 2 * n - (p - (n - 1))) % n
        }
    }

    /// Index of the segment sent in phase `p`: the one received in phase `p - 1`.
    fn sent_segment(&self, p: usize) -> usize {
        if p == 0 {
            self.rank
        } else {
            self.received_segment(p - 1)
        }
    }

    /// The values received from the left neighbour in phase `p`.
    pub(crate) fn received(&self, p: usize) -> Range<usize> {
        self.segment(self.received_segment(p))
    }

    /// The values sent to the right neighbour in phase `p`.
    pub(crate) fn sent(&self, p: usize) -> Range<usize> {
        self.segment(self.sent_segment(p))
    }

    /// `range` cut into chunks of `per_chunk` values, the last one shorter; none when it is empty.
    pub(crate) fn chunks(&self, range: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        let (per_chunk, end) = (self.per_chunk, range.end);
        range
            .step_by(per_chunk)
            .map(move |start| start..(start + per_chunk).min(end))
    }

    /// Chunks received before phase `p` starts.
    pub(crate) fn chunks_before(&self, p: usize) -> usize {
        (0..p)
            .map(|q| self.received(q).len().div_ceil(self.per_chunk))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORLDS: [usize; 4] = [2, 3, 4, 5];
    /// 0 and 1, below every world, divisible by none of the worlds or chunk sizes, and multiples of both.
    const LENGTHS: [usize; 11] = [0, 1, 2, 3, 4, 7, 23, 60, 61, 97, 1000];
    const CHUNKS: [usize; 4] = [1, 3, 7, 256];

    fn schedules() -> impl Iterator<Item = Schedule> {
        WORLDS.into_iter().flat_map(|world| {
            LENGTHS.into_iter().flat_map(move |len| {
                CHUNKS.into_iter().flat_map(move |per_chunk| {
                    (0..world).map(move |rank| Schedule::new(world, rank, len, per_chunk))
                })
            })
        })
    }

    #[test]
    fn segments_cover_the_buffer_in_order() {
        for s in schedules() {
            let mut at = 0;
            for i in 0..s.world {
                let segment = s.segment(i);
                assert_eq!(segment.start, at, "{s:?}");
                at = segment.end;
            }
            assert_eq!(at, s.len, "{s:?}");
        }
    }

    #[test]
    fn each_phase_sends_what_the_phase_before_received() {
        for s in schedules() {
            assert_eq!(s.sent_segment(0), s.rank, "{s:?}");
            for p in 1..s.phases() {
                assert_eq!(s.sent(p), s.received(p - 1), "{s:?}, phase {p}");
                assert_eq!(s.sent_segment(p), s.received_segment(p - 1));
            }
        }
    }

    #[test]
    fn a_phase_never_sends_and_receives_the_same_segment() {
        // The sending thread and the receiving one work on the same buffer at once.
        for s in schedules() {
            for p in 0..s.phases() {
                assert_ne!(s.sent_segment(p), s.received_segment(p), "{s:?}, phase {p}");
            }
        }
    }

    #[test]
    fn each_half_receives_every_segment_but_one_exactly_once() {
        for s in schedules() {
            let n = s.world;
            let mut reduced = vec![0; n];
            let mut gathered = vec![0; n];
            for p in 0..s.phases() {
                let counts = if s.reduces(p) {
                    &mut reduced
                } else {
                    &mut gathered
                };
                counts[s.received_segment(p)] += 1;
            }
            for i in 0..n {
                // The reduce-scatter never brings back the rank's own segment; the all-gather never
                // brings the one the rank finished summing itself.
                let own = i == s.rank;
                let finished = i == (s.rank + 1) % n;
                assert_eq!(reduced[i], usize::from(!own), "{s:?}, segment {i}");
                assert_eq!(gathered[i], usize::from(!finished), "{s:?}, segment {i}");
            }
            assert_eq!(s.received_segment(n - 2), (s.rank + 1) % n, "{s:?}");
            assert_eq!(s.sent_segment(n - 1), (s.rank + 1) % n, "{s:?}");
        }
    }

    #[test]
    fn chunks_cut_a_range_into_whole_chunks_and_a_shorter_last() {
        let s = Schedule::new(2, 0, 0, 3);
        let cut = |r: Range<usize>| s.chunks(r).map(|c| (c.start, c.end)).collect::<Vec<_>>();
        assert_eq!(cut(5..5), []);
        assert_eq!(cut(5..7), [(5, 7)]);
        assert_eq!(cut(5..8), [(5, 8)]);
        assert_eq!(cut(5..12), [(5, 8), (8, 11), (11, 12)]);
    }

    #[test]
    fn chunks_before_a_phase_count_the_chunks_of_the_phases_before() {
        for s in schedules() {
            assert_eq!(s.chunks_before(0), 0);
            for p in 0..s.phases() {
                let this = s.chunks(s.received(p)).count();
                assert_eq!(s.chunks_before(p + 1), s.chunks_before(p) + this, "{s:?}");
            }
        }
    }

    /// Small integers, so that every sum is exact in f32 whatever the order of the additions.
    fn values(rank: usize, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((rank * 7 + i) % 13) as f32 - 6.0)
            .collect()
    }

    /// Runs the whole schedule on every rank at once, phase by phase, over plain buffers: what each rank
    /// sends in a phase is read before anything of that phase is received, as in the ring, where a
    /// phase's sent and received segments differ.
    fn simulate(world: usize, len: usize, per_chunk: usize) -> Vec<Vec<f32>> {
        let ranks: Vec<Schedule> = (0..world)
            .map(|rank| Schedule::new(world, rank, len, per_chunk))
            .collect();
        let mut data: Vec<Vec<f32>> = (0..world).map(|rank| values(rank, len)).collect();
        for p in 0..ranks[0].phases() {
            let messages: Vec<Vec<(Range<usize>, Vec<f32>)>> = ranks
                .iter()
                .map(|s| {
                    s.chunks(s.sent(p))
                        .map(|c| (c.clone(), data[s.rank][c].to_vec()))
                        .collect()
                })
                .collect();
            for (from, chunks) in messages.into_iter().enumerate() {
                let to = &ranks[(from + 1) % world];
                let expected: Vec<Range<usize>> = to.chunks(to.received(p)).collect();
                let sent: Vec<Range<usize>> = chunks.iter().map(|(c, _)| c.clone()).collect();
                assert_eq!(
                    sent, expected,
                    "world {world}, len {len}, phase {p}, rank {from}"
                );
                for (chunk, values) in chunks {
                    let target = &mut data[to.rank][chunk];
                    if to.reduces(p) {
                        target.iter_mut().zip(values).for_each(|(t, v)| *t += v);
                    } else {
                        target.copy_from_slice(&values);
                    }
                }
            }
        }
        data
    }

    #[test]
    fn the_whole_schedule_sums_every_buffer_on_every_rank() {
        for world in WORLDS {
            for len in LENGTHS {
                for per_chunk in CHUNKS {
                    let mut expected = vec![0f32; len];
                    for rank in 0..world {
                        expected
                            .iter_mut()
                            .zip(values(rank, len))
                            .for_each(|(e, v)| *e += v);
                    }
                    for (rank, got) in simulate(world, len, per_chunk).iter().enumerate() {
                        assert!(
                            *got == expected,
                            "world {world}, len {len}, chunks of {per_chunk}, rank {rank}"
                        );
                    }
                }
            }
        }
    }
}
