//! Ketama-style consistent hashing: every backend owns points on a 64-bit circle in proportion
//! to its weight, and a key belongs to the first point clockwise from its hash.
//!
//! A point depends only on its backend's identity and its ordinal, so adding, removing or
//! reweighting a backend moves exactly the keys of the points that appear or disappear
//! (unless the ring is at its size cap, where every backend's count is scaled down). A
//! binary search over a 160k-point ring misses the cache several times per lookup; a radix
//! index on the top bits of the hash, with at least as many buckets as points, answers most lookups by
//! itself and lands the others on their point.

use super::{backend_key, mix64};
use crate::Backend;
use alloc::vec::Vec;

/// Envoy's `maximum_ring_size`: past this the ring costs memory and build time and balances no
/// better.
const MAX_POINTS: u128 = 8_388_608;
/// Extra index bits beyond the points' count rounded up to a power of two. With 0, one to two
/// buckets per point: a lookup reads its bucket and at most a point or two. One more bit
/// (two to four buckets per point) saves about a nanosecond per lookup but doubles the
/// index, and the build then costs twice as much (measured: 2.9 ms against 5.6 ms for 1000
/// backends of 160 points).
const INDEX_EXTRA_BITS: u32 = 0;
/// At most 2^22 index buckets (16 MiB), half a bucket per point on the largest ring.
const MAX_INDEX_BITS: u32 = 22;
/// Marks an index entry that names the owner of its whole bucket rather than a point.
const DIRECT: u32 = 1 << 31;
const HASH_MASK: u64 = 0xffff_ffff_0000_0000;

#[derive(Clone, Debug)]
pub(crate) struct Ring {
    points_per_weight: u32,
    /// Sorted. A point's hash sits in the high 32 bits and its owner's position in the low 32,
    /// so the one load that finds a point also names its owner.
    points: Vec<u64>,
    /// One entry per bucket of the top `bits` bits of the hash: the index of the bucket's first
    /// point or, when no point falls inside the bucket, `DIRECT | owner` of the next point.
    index: Vec<u32>,
    /// `64 - bits`: a hash's bucket is `hash >> shift`.
    shift: u32,
    /// Points per position.
    counts: Vec<u64>,
    /// Positions that own at least one point: a fallback walk ends after offering them all.
    distinct: usize,
}

impl Ring {
    pub(crate) fn new(points_per_weight: u32, backends: &[Backend]) -> Ring {
        let mut ring = Ring {
            points_per_weight,
            points: Vec::new(),
            index: Vec::new(),
            shift: 63,
            counts: Vec::new(),
            distinct: 0,
        };
        ring.rebuild(backends);
        ring
    }

    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        // Positions must fit the low 31 bits of a point and of a direct index entry.
        let backends = &backends[..backends.len().min(DIRECT as usize - 1)];
        self.counts = point_counts(self.points_per_weight, backends, MAX_POINTS);
        self.distinct = self.counts.iter().filter(|&&c| c > 0).count();
        self.points.clear();
        self.points
            .reserve(self.counts.iter().sum::<u64>() as usize);
        for (pos, (b, &count)) in backends.iter().zip(&self.counts).enumerate() {
            let key = backend_key(b);
            // Ordinal j hashes the same whatever the weight: a weight change adds or removes
            // only the backend's last points.
            self.points
                .extend((0..count).map(|j| (mix64(key ^ mix64(j)) & HASH_MASK) | pos as u64));
        }
        sort_points(&mut self.points);
        self.build_index();
    }

    fn build_index(&mut self) {
        let len = self.points.len();
        self.index.clear();
        if len == 0 {
            return;
        }
        let bits =
            (usize::BITS - (len - 1).leading_zeros() + INDEX_EXTRA_BITS).clamp(1, MAX_INDEX_BITS);
        self.shift = 64 - bits;
        // One pass over the points: the buckets before a point's own bucket hold no point and
        // name its owner; its bucket starts at it (the first point of a bucket wins).
        self.index.resize(1 << bits, 0);
        let mut next = 0;
        for (i, &p) in self.points.iter().enumerate() {
            let bucket = (p >> self.shift) as usize;
            if bucket >= next {
                self.index[next..bucket].fill(DIRECT | p as u32);
                self.index[bucket] = i as u32;
                next = bucket + 1;
            }
        }
        let wrap = DIRECT | self.points.first().map_or(0, |&p| p as u32);
        self.index[next..].fill(wrap);
    }

    /// The index of the home point of hash `h`: the first point at or after it, wrapping.
    fn start(&self, h: u64) -> usize {
        let target = h & HASH_MASK;
        let i = match self.index.get((h >> self.shift) as usize) {
            Some(&e) if e & DIRECT == 0 => e as usize,
            _ => self.points.partition_point(|&p| p < target),
        };
        let skip = self
            .points
            .get(i..)
            .map_or(0, |rest| rest.iter().take_while(|&&p| p < target).count());
        if i + skip >= self.points.len() {
            0
        } else {
            i + skip
        }
    }

    /// The key's home backend, then each other backend in the order its first point follows
    /// clockwise: the same sequence a ketama ring gives once the rejected backends are removed.
    #[inline]
    pub(crate) fn pick_in<T>(
        &self,
        key: u64,
        scratch: &mut Vec<u64>,
        mut accept: impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        let h = mix64(key);
        let first = match *self.index.get((h >> self.shift) as usize)? {
            e if e & DIRECT != 0 => (e & !DIRECT) as usize,
            e => {
                let target = h & HASH_MASK;
                let mut i = e as usize;
                while self.points.get(i).is_some_and(|&p| p < target) {
                    i += 1;
                }
                self.points
                    .get(i)
                    .or(self.points.first())
                    .map_or(0, |&p| p as u32 as usize)
            }
        };
        if let Some(taken) = accept(first) {
            return Some(taken);
        }
        self.fall_back(h, first, scratch, accept)
    }

    /// The rest of [`Ring::pick_in`]'s sequence after the home backend `first` of hash `h`:
    /// out of line, so that the common pick stays small.
    #[inline(never)]
    fn fall_back<T>(
        &self,
        h: u64,
        first: usize,
        scratch: &mut Vec<u64>,
        mut accept: impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        let start = self.start(h);
        let mut offered = Offered::new(self.counts.len(), scratch);
        offered.insert(first);
        let (wrapped, rest) = self.points.split_at(start);
        let positions = rest
            .iter()
            .skip(1)
            .chain(wrapped)
            .map(|&p| p as u32 as usize);
        offered.offer(self.distinct, positions, &mut accept)
    }

    pub(crate) fn shares(&self, n: usize) -> Vec<u64> {
        let mut shares = self.counts.clone();
        shares.resize(n, 0);
        shares
    }
}

/// Points per backend: `weight * points_per_weight`, scaled down in proportion (at least one
/// for a backend with weight) when they would add up to more than `cap`.
fn point_counts(points_per_weight: u32, backends: &[Backend], cap: u128) -> Vec<u64> {
    let ppw = points_per_weight.max(1) as u128;
    let total: u128 = backends.iter().map(|b| b.table_weight as u128 * ppw).sum();
    let scale = |want: u128| match want {
        0 => 0,
        _ if total <= cap => want,
        _ => (want * cap / total).max(1),
    };
    backends
        .iter()
        .map(|b| scale(b.table_weight as u128 * ppw) as u64)
        .collect()
}

/// Sorts points by hash, then position: an LSD radix sort on the hash's 32 bits in three
/// stable 11-bit passes over points generated in position order: linear time for the large
/// rings; small ones use the comparison sort.
fn sort_points(points: &mut Vec<u64>) {
    if points.len() < 1 << 12 {
        points.sort_unstable();
        return;
    }
    let mut other = alloc::vec![0u64; points.len()];
    for shift in [32u32, 43, 54] {
        let digit = |p: u64| ((p >> shift) & 0x7ff) as usize;
        let mut starts = [0usize; 2048];
        for &p in points.iter() {
            starts[digit(p)] += 1;
        }
        let mut sum = 0;
        for s in starts.iter_mut() {
            (*s, sum) = (sum, sum + *s);
        }
        for &p in points.iter() {
            let d = digit(p);
            other[starts[d]] = p;
            starts[d] += 1;
        }
        core::mem::swap(points, &mut other);
    }
}

/// How many rejected positions a fallback walk remembers before it needs a bitset.
const INLINE: usize = 8;

/// The positions a fallback sequence has offered: the first few inline, then a bitset in a
/// scratch buffer the scheduler keeps sized to the pool, so no pick allocates. The bitset is
/// cleared again when the walk ends.
pub(super) struct Offered<'a> {
    few: [u32; INLINE],
    len: usize,
    spilled: bool,
    bits: &'a mut Vec<u64>,
    bound: usize,
}

impl<'a> Offered<'a> {
    /// `bound`: one past the largest position expected; `bits`: an all-zero scratch bitset
    /// (grown here only if it is smaller than `bound` bits).
    pub(super) fn new(bound: usize, bits: &'a mut Vec<u64>) -> Offered<'a> {
        Offered {
            few: [0; INLINE],
            len: 0,
            spilled: false,
            bits,
            bound,
        }
    }

    /// Offers `accept` each of `positions` not offered before, in order, until it takes one
    /// or `distinct` positions (all there are) have been offered.
    pub(super) fn offer<T>(
        &mut self,
        distinct: usize,
        positions: impl IntoIterator<Item = usize>,
        accept: &mut impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        for pos in positions {
            if self.len >= distinct {
                break;
            }
            if self.insert(pos) {
                if let Some(taken) = accept(pos) {
                    return Some(taken);
                }
            }
        }
        None
    }

    /// Records `pos`; false if it was recorded before.
    pub(super) fn insert(&mut self, pos: usize) -> bool {
        if !self.spilled {
            if self.few[..self.len].iter().any(|&p| p as usize == pos) {
                return false;
            }
            if let Some(slot) = self.few.get_mut(self.len) {
                *slot = pos as u32;
                self.len += 1;
                return true;
            }
            self.spilled = true;
            let words = self.bound.max(pos + 1).div_ceil(64);
            if self.bits.len() < words {
                self.bits.resize(words, 0);
            }
            for p in self.few {
                Self::set(self.bits, p as usize);
            }
        }
        let fresh = Self::set(self.bits, pos);
        self.len += fresh as usize;
        fresh
    }

    fn set(bits: &mut Vec<u64>, pos: usize) -> bool {
        let (word, mask) = (pos / 64, 1u64 << (pos % 64));
        if word >= bits.len() {
            bits.resize(word + 1, 0);
        }
        match bits.get_mut(word) {
            Some(w) if *w & mask == 0 => {
                *w |= mask;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Offered<'_> {
    fn drop(&mut self) {
        if self.spilled {
            self.bits.fill(0);
        }
    }
}

/// Helpers shared by the hashes' tests.
#[cfg(test)]
pub(super) mod testing {
    use crate::{Backend, BackendId};
    use alloc::vec::Vec;
    use proptest::prelude::*;

    pub(crate) type Accept<'a> = &'a mut dyn FnMut(usize) -> bool;

    pub(crate) fn pool(weights: &[u32]) -> Vec<Backend> {
        (0..)
            .zip(weights)
            .map(|(i, &w)| Backend::new(BackendId(i), w))
            .collect()
    }

    /// Each key's owner by id (`u32::MAX` for none), so that lists of different lengths
    /// compare.
    pub(crate) fn owners(
        b: &[Backend],
        keys: u64,
        pick: impl Fn(u64) -> Option<usize>,
    ) -> Vec<u32> {
        (0..keys)
            .map(|k| pick(k).map_or(u32::MAX, |p| b[p].id.0))
            .collect()
    }

    pub(crate) fn moved(a: &[u32], b: &[u32]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    /// Each position's fraction of `keys` keys.
    pub(crate) fn fractions(n: usize, keys: u64, pick: impl Fn(u64) -> Option<usize>) -> Vec<f64> {
        let mut hits = alloc::vec![0.0; n];
        (0..keys)
            .filter_map(&pick)
            .for_each(|p| hits[p] += 1.0 / keys as f64);
        hits
    }

    /// Every backend with weight is reachable, and refusing everyone offers each of them once.
    pub(crate) fn check_fallback(b: &[Backend], pick: impl Fn(u64, Accept<'_>) -> Option<usize>) {
        let live: Vec<usize> = (0..b.len()).filter(|&p| b[p].table_weight > 0).collect();
        for key in 0..200 {
            for target in 0..b.len() {
                assert_eq!(
                    pick(key, &mut |p| p == target).is_some(),
                    live.contains(&target)
                );
            }
            let mut offered = Vec::new();
            assert_eq!(
                pick(key, &mut |p| {
                    offered.push(p);
                    false
                }),
                None
            );
            offered.sort_unstable();
            assert_eq!(offered, live);
        }
    }

    /// A pick returns an accepted backend with weight, and `None` only when there is none.
    pub(crate) fn check_pick(
        b: &[Backend],
        reject: &[bool],
        got: Option<usize>,
    ) -> Result<(), TestCaseError> {
        match got {
            Some(p) => prop_assert!(b[p].table_weight > 0 && !reject[p]),
            None => prop_assert!(b.iter().zip(reject).all(|(b, &r)| b.table_weight == 0 || r)),
        }
        Ok(())
    }
}

#[cfg(test)]
impl Ring {
    /// `pick_in` with a scratch buffer of its own.
    pub(crate) fn pick(&self, key: u64, mut accept: impl FnMut(usize) -> bool) -> Option<usize> {
        self.pick_in(key, &mut Vec::new(), |p| accept(p).then_some(p))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn radix_sort_orders_like_a_comparison_sort() {
        // As a ring generates them: position by position, with colliding hashes across
        // positions (every hash value used by several positions).
        let mut points: Vec<u64> = (0..600u64)
            .flat_map(|pos| {
                (0..160u64).map(move |j| (mix64((pos * 160 + j) % 20_000) & HASH_MASK) | pos)
            })
            .collect();
        let mut expected = points.clone();
        expected.sort_unstable();
        sort_points(&mut points);
        assert_eq!(points, expected);
    }

    #[test]
    fn deterministic_and_shares_follow_weight() {
        let backends = pool(&[1, 2, 3, 0, 4]);
        let (a, b) = (Ring::new(160, &backends), Ring::new(160, &backends));
        let pick = |r: &Ring| owners(&backends, 10_000, |k| r.pick(k, |_| true));
        assert_eq!(pick(&a), pick(&b));
        assert_eq!(a.shares(6), [160, 320, 480, 0, 640, 0]);
        // Keys follow the points within the noise of 160 random points per unit of weight.
        let hits = fractions(5, 200_000, |k| a.pick(k, |_| true));
        for (h, w) in hits.iter().zip([1.0, 2.0, 3.0, 0.0, 4.0]) {
            assert!((h - w / 10.0).abs() <= w / 10.0 * 0.25, "{hits:?}");
        }
    }

    #[test]
    fn index_agrees_with_binary_search() {
        for ring in [
            Ring::new(1, &pool(&[1])),
            Ring::new(1, &pool(&[1, 0, 1])),
            Ring::new(160, &pool(&[3; 100])),
        ] {
            for k in 0..50_000u64 {
                let target = mix64(k) & HASH_MASK;
                let i = ring.points.partition_point(|&p| p < target);
                let i = if i == ring.points.len() { 0 } else { i };
                assert_eq!(ring.start(mix64(k)), i);
                assert_eq!(ring.pick(k, |_| true), Some(ring.points[i] as u32 as usize));
            }
        }
    }

    #[test]
    fn points_are_capped() {
        let backends = pool(&[u32::MAX, 1, 0, 500]);
        let counts = point_counts(65536, &backends, MAX_POINTS);
        assert!(
            counts.iter().sum::<u64>() <= MAX_POINTS as u64 + 4,
            "{counts:?}"
        );
        assert_eq!(counts[1..3], [1, 0]);
        assert_eq!(
            point_counts(10, &pool(&[30, 1, 0, 69]), 500),
            [150, 5, 0, 345]
        );
        assert_eq!(
            point_counts(10, &pool(&[30, 1, 0, 69]), 1000),
            [300, 10, 0, 690]
        );
    }

    #[test]
    fn fallback_reaches_everyone_and_terminates() {
        let backends = pool(&[1, 0, 2, 1, 3, 1, 1, 1, 1, 1, 1, 2, 1]);
        let ring = Ring::new(16, &backends);
        check_fallback(&backends, |k, accept| ring.pick(k, accept));
    }

    #[test]
    fn empty_and_zero_weights() {
        for backends in [pool(&[]), pool(&[0, 0, 0])] {
            let ring = Ring::new(160, &backends);
            assert_eq!(ring.pick(7, |_| true), None);
            assert!(ring.shares(backends.len()).iter().all(|&s| s == 0));
        }
    }

    /// Only the removed backend's keys move. Its share is 1/N give or take the noise of 160
    /// random points (relative deviation about 1/sqrt(160) = 8%; the largest of 1000
    /// backends' measured 1.24/N), so 1.5/N bounds it with room.
    #[test]
    fn removal_and_return_move_only_that_backends_keys() {
        const KEYS: u64 = 100_000;
        for n in [10usize, 20, 37, 50] {
            let full = pool(&alloc::vec![1; n]);
            let ring = Ring::new(160, &full);
            let before = owners(&full, KEYS, |k| ring.pick(k, |_| true));
            let mut less = full.clone();
            let gone = less.remove(n / 3).id.0;
            let mut ring = Ring::new(160, &less);
            let after = owners(&less, KEYS, |k| ring.pick(k, |_| true));
            assert!(before.iter().zip(&after).all(|(b, a)| b == a || *b == gone));
            let m = moved(&before, &after);
            assert!((m as f64) < 1.5 * KEYS as f64 / n as f64, "n={n} moved {m}");
            ring.rebuild(&full);
            assert_eq!(owners(&full, KEYS, |k| ring.pick(k, |_| true)), before);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn never_zero_weight(weights in prop::collection::vec(0u32..=1000, 0..64), key: u64,
                             reject in prop::collection::vec(any::<bool>(), 64)) {
            let backends = pool(&weights);
            let ring = Ring::new(1, &backends);
            check_pick(&backends, &reject, ring.pick(key, |p| !reject[p]))?;
        }
    }
}
