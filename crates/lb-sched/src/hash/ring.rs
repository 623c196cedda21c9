//! Ketama-style consistent hashing: every backend owns points on a 64-bit circle in proportion
//! to its weight, and a key belongs to the first point clockwise from its hash.
//!
//! A point depends only on its backend's identity and its ordinal, so adding, removing or
//! reweighting a backend moves exactly the keys of the points that appear or disappear. A
//! binary search over a 160k-point ring misses the cache several times per lookup; a radix
//! index on the top bits of the hash lands within a point or two of the answer instead.

use super::{backend_key, mix64};
use crate::Backend;
use alloc::vec::Vec;

/// Envoy's `maximum_ring_size`: past this the ring costs memory and build time and balances no
/// better.
const MAX_POINTS: u128 = 8_388_608;
/// At most 2^20 index buckets (4 MiB): about eight points per bucket on the largest ring.
const MAX_INDEX_BITS: u32 = 20;
const HASH_MASK: u64 = 0xffff_ffff_0000_0000;

#[derive(Clone, Debug)]
pub(crate) struct Ring {
    points_per_weight: u32,
    /// Sorted. A point's hash sits in the high 32 bits and its owner's position in the low 32,
    /// so the one load that finds a point also names its owner.
    points: Vec<u64>,
    /// `index[b]` is the first point whose top bits are at least `b`; `2^bits + 1` entries.
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
        // The low 32 bits of a point hold the position.
        let backends = &backends[..backends.len().min(u32::MAX as usize)];
        let ppw = self.points_per_weight.max(1) as u128;
        let total: u128 = backends.iter().map(|b| b.table_weight as u128 * ppw).sum();
        self.counts = backends
            .iter()
            .map(|b| {
                let want = b.table_weight as u128 * ppw;
                let n = if total <= MAX_POINTS || want == 0 {
                    want
                } else {
                    (want * MAX_POINTS / total).max(1)
                };
                n as u64
            })
            .collect();
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
        self.points.sort_unstable();
        self.build_index();
    }

    fn build_index(&mut self) {
        let len = self.points.len();
        let bits = (usize::BITS - len.saturating_sub(1).leading_zeros()).clamp(1, MAX_INDEX_BITS);
        self.shift = 64 - bits;
        let buckets = 1usize << bits;
        self.index.clear();
        self.index.reserve(buckets + 1);
        for (i, &p) in self.points.iter().enumerate() {
            let bucket = (p >> self.shift) as usize;
            while self.index.len() <= bucket {
                self.index.push(i as u32);
            }
        }
        self.index.resize(buckets + 1, len as u32);
    }

    /// The index of the key's home point: the first at or after its hash, wrapping to 0.
    #[inline]
    fn home(&self, key: u64) -> usize {
        let h = mix64(key);
        let target = h & HASH_MASK;
        let bucket = (h >> self.shift) as usize;
        let (mut i, end) = match (self.index.get(bucket), self.index.get(bucket + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, self.points.len()),
        };
        while i < end && self.points.get(i).is_some_and(|&p| p < target) {
            i += 1;
        }
        if i >= self.points.len() { 0 } else { i }
    }

    /// The key's home backend, then each other backend in the order its first point follows
    /// clockwise: the same sequence a ketama ring gives once the rejected backends are removed.
    #[inline]
    pub(crate) fn pick(&self, key: u64, mut accept: impl FnMut(usize) -> bool) -> Option<usize> {
        let start = self.home(key);
        let first = *self.points.get(start)? as u32 as usize;
        if accept(first) {
            return Some(first);
        }
        let mut offered = Offered::new(self.counts.len());
        offered.insert(first);
        let (wrapped, rest) = self.points.split_at(start);
        for &p in rest.iter().skip(1).chain(wrapped) {
            if offered.len() >= self.distinct {
                break;
            }
            let pos = p as u32 as usize;
            if offered.insert(pos) && accept(pos) {
                return Some(pos);
            }
        }
        None
    }

    pub(crate) fn shares(&self, n: usize) -> Vec<u64> {
        let mut shares = self.counts.clone();
        shares.resize(n, 0);
        shares
    }
}

/// How many rejected positions a fallback walk remembers before it needs a bitset.
const INLINE: usize = 8;

/// The positions a fallback sequence has offered: the first few inline, then a bitset, so the
/// common case of one or two unavailable backends never allocates.
pub(super) struct Offered {
    few: [u32; INLINE],
    len: usize,
    /// Empty until more than [`INLINE`] positions were offered; then it holds them all.
    bits: Vec<u64>,
    bound: usize,
}

impl Offered {
    /// `bound`: one past the largest position expected (a hint for the bitset's size).
    pub(super) fn new(bound: usize) -> Offered {
        Offered {
            few: [0; INLINE],
            len: 0,
            bits: Vec::new(),
            bound,
        }
    }

    /// Distinct positions recorded.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Records `pos`; false if it was recorded before.
    pub(super) fn insert(&mut self, pos: usize) -> bool {
        if self.bits.is_empty() {
            let few = &self.few[..self.len];
            if few.iter().any(|&p| p as usize == pos) {
                return false;
            }
            if let Some(slot) = self.few.get_mut(self.len) {
                *slot = pos as u32;
                self.len += 1;
                return true;
            }
            self.bits = alloc::vec![0; self.bound.max(pos + 1).div_ceil(64)];
            for p in self.few {
                Self::set(&mut self.bits, p as usize);
            }
        }
        let fresh = Self::set(&mut self.bits, pos);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendId;
    use proptest::prelude::*;

    fn pool(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(BackendId(i as u32), w))
            .collect()
    }

    fn owners(ring: &Ring, backends: &[Backend], keys: u64) -> Vec<u32> {
        (0..keys)
            .map(|k| {
                ring.pick(k, |_| true)
                    .map_or(u32::MAX, |p| backends[p].id.0)
            })
            .collect()
    }

    #[test]
    fn deterministic_and_shares_follow_weight() {
        let backends = pool(&[1, 2, 3, 0, 4]);
        let a = Ring::new(160, &backends);
        let b = Ring::new(160, &backends);
        assert_eq!(owners(&a, &backends, 10_000), owners(&b, &backends, 10_000));
        assert_eq!(a.shares(6), [160, 320, 480, 0, 640, 0]);
        // Keys follow the points within the noise of 160 random points per unit of weight.
        let mut hits = [0u32; 5];
        for k in 0..200_000 {
            hits[a.pick(k, |_| true).unwrap_or(3)] += 1;
        }
        assert_eq!(hits[3], 0);
        for (i, &w) in [1u32, 2, 3, 0, 4].iter().enumerate().filter(|p| *p.1 > 0) {
            let expect = 200_000.0 * w as f64 / 10.0;
            assert!(
                (hits[i] as f64 - expect).abs() < expect * 0.25,
                "{i}: {hits:?}"
            );
        }
    }

    #[test]
    fn index_agrees_with_binary_search() {
        let ring = Ring::new(160, &pool(&[3; 100]));
        for k in 0..50_000u64 {
            let target = mix64(k) & HASH_MASK;
            let i = ring.points.partition_point(|&p| p < target);
            assert_eq!(ring.home(k), if i == ring.points.len() { 0 } else { i });
        }
    }

    #[test]
    fn points_are_capped() {
        let ring = Ring::new(65536, &pool(&[u32::MAX, 1, 0, 500]));
        let total: u64 = ring.shares(4).iter().sum();
        assert!(total <= MAX_POINTS as u64 + 4, "{total}");
        assert_eq!(ring.shares(4)[1], 1);
        assert_eq!(ring.shares(4)[2], 0);
    }

    #[test]
    fn fallback_reaches_everyone_and_terminates() {
        let backends = pool(&[1, 0, 2, 1, 3, 1, 1, 1, 1, 1, 1, 2, 1]);
        let ring = Ring::new(16, &backends);
        for key in 0..200 {
            for target in 0..backends.len() {
                let got = ring.pick(key, |p| p == target);
                assert_eq!(got.is_some(), backends[target].table_weight > 0);
            }
            let mut offered = Vec::new();
            assert_eq!(
                ring.pick(key, |p| {
                    offered.push(p);
                    false
                }),
                None
            );
            offered.sort_unstable();
            assert_eq!(offered, [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        }
    }

    #[test]
    fn empty_and_zero_weights() {
        for backends in [pool(&[]), pool(&[0, 0, 0])] {
            let ring = Ring::new(160, &backends);
            assert_eq!(ring.pick(7, |_| true), None);
            assert!(ring.shares(backends.len()).iter().all(|&s| s == 0));
        }
    }

    fn moved(a: &[u32], b: &[u32]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    /// Only the removed backend's keys move. Its share is 1/N give or take the noise of 160
    /// random points (relative deviation about 1/sqrt(160) = 8%), so 1.5/N bounds it with room.
    #[test]
    fn removal_and_return_move_only_that_backends_keys() {
        const KEYS: u64 = 100_000;
        for n in [10usize, 20, 37, 50] {
            let full = pool(&alloc::vec![1; n]);
            let before = owners(&Ring::new(160, &full), &full, KEYS);
            let gone = n / 3;
            let mut less = full.clone();
            less.remove(gone);
            let mut ring = Ring::new(160, &less);
            let after = owners(&ring, &less, KEYS);
            let m = moved(&before, &after);
            assert!(
                before
                    .iter()
                    .zip(&after)
                    .all(|(b, a)| b == a || *b == gone as u32)
            );
            assert!((m as f64) < 1.5 * KEYS as f64 / n as f64, "n={n} moved {m}");
            ring.rebuild(&full);
            assert_eq!(owners(&ring, &full, KEYS), before);
        }
    }

    proptest! {
        #[test]
        fn never_zero_weight(weights in prop::collection::vec(0u32..=1000, 0..64), key: u64,
                             reject in prop::collection::vec(any::<bool>(), 64)) {
            let backends = pool(&weights);
            let ring = Ring::new(4, &backends);
            if let Some(p) = ring.pick(key, |p| !reject[p]) {
                prop_assert!(backends[p].table_weight > 0 && !reject[p]);
            } else {
                prop_assert!(backends.iter().zip(&reject).all(|(b, &r)| b.table_weight == 0 || r));
            }
        }
    }
}
