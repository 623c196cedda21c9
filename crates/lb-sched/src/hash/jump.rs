//! Jump consistent hashing (Lamping and Veach, arXiv 1406.2294), weighted by giving each
//! backend as many consecutive slots as its weight.
//!
//! Jump hash needs no table of its own and balances almost perfectly, but it numbers its
//! buckets: growing from n to n + 1 buckets moves exactly 1/(n + 1) of the keys, and only to
//! the new one. So appending a backend (or raising the last one's weight) is minimally
//! disruptive, while removing or reweighting one in the middle renumbers every slot after it.
//! Use it for pools that only grow at the end, or whose members go down rather than leave
//! (availability never rebuilds the slots; the fallback sequence handles it).

use super::mix64;
use super::ring::Offered;
use crate::Backend;
use alloc::vec::Vec;

/// At most 2^20 slots (4 MiB): larger weights are scaled down in proportion.
const MAX_SLOTS: u128 = 1 << 20;
/// Rehashed attempts before the fallback walks the slots in order.
const ATTEMPTS: u64 = 32;

#[derive(Clone, Debug)]
pub(crate) struct Jump {
    /// Each slot's owning position, in list order.
    slots: Vec<u32>,
    /// One past the largest position with a slot.
    bound: usize,
    distinct: usize,
}

impl Jump {
    pub(crate) fn new(backends: &[Backend]) -> Jump {
        let mut jump = Jump {
            slots: Vec::new(),
            bound: 0,
            distinct: 0,
        };
        jump.rebuild(backends);
        jump
    }

    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        // Positions are stored as u32.
        let backends = &backends[..backends.len().min(u32::MAX as usize)];
        let total: u128 = backends.iter().map(|b| b.table_weight as u128).sum();
        self.slots.clear();
        self.distinct = 0;
        self.bound = 0;
        for (pos, b) in (0u32..).zip(backends) {
            let w = b.table_weight as u128;
            let n = if total <= MAX_SLOTS || w == 0 {
                w
            } else {
                (w * MAX_SLOTS / total).max(1)
            };
            if n > 0 {
                self.slots.extend(core::iter::repeat_n(pos, n as usize));
                self.distinct += 1;
                self.bound = pos as usize + 1;
            }
        }
    }

    /// The slot a hash lands in: `mix64(key ^ attempt)` for attempt 0, 1, ...
    #[inline]
    fn slot(&self, h: u64) -> usize {
        jump(h, self.slots.len() as u64) as usize
    }

    /// The key's slot, then up to [`ATTEMPTS`] slots of the rehashed key (as if the rejected
    /// backends had never been numbered), then every slot in order from the last one tried.
    #[inline]
    pub(crate) fn pick_in(
        &self,
        key: u64,
        scratch: &mut Vec<u64>,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let first = *self.slots.get(self.slot(mix64(key)))? as usize;
        if accept(first) {
            return Some(first);
        }
        self.fall_back(key, first, scratch, accept)
    }

    /// The rest of [`Jump::pick_in`]'s sequence after the key's first backend `first`: out of
    /// line, so that the common pick stays small.
    #[inline(never)]
    fn fall_back(
        &self,
        key: u64,
        first: usize,
        scratch: &mut Vec<u64>,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut offered = Offered::new(self.bound, scratch);
        offered.insert(first);
        let mut last = 0;
        for attempt in 1..=ATTEMPTS {
            if offered.len() >= self.distinct {
                return None;
            }
            last = self.slot(mix64(key ^ attempt));
            let pos = self.slots.get(last).copied().unwrap_or(0) as usize;
            if offered.insert(pos) && accept(pos) {
                return Some(pos);
            }
        }
        let (wrapped, rest) = self.slots.split_at(last.min(self.slots.len()));
        for &pos in rest.iter().chain(wrapped) {
            if offered.len() >= self.distinct {
                break;
            }
            if offered.insert(pos as usize) && accept(pos as usize) {
                return Some(pos as usize);
            }
        }
        None
    }
}

/// Lamping and Veach's jump: follows the key's bucket as the bucket count grows, one
/// pseudo-random jump at a time, and returns the last one below `buckets` (0 for 0 buckets).
///
/// The reference's exact arithmetic (a 64-bit linear congruential step, then
/// `(b + 1) * (2^31 / ((key >> 33) + 1))` in double precision, truncated), so that keys land
/// where the published function puts them. Two rearrangements make it faster without
/// changing a result: the loop ends when the product reaches `buckets` as a double (its
/// truncation reaches an integer bound exactly when it does), and the product is truncated
/// to `i64` only when the loop goes on (one conversion instead of the saturating `u64`
/// sequence). What remains is about ln(buckets) + 1 dependent steps of a multiplication and
/// two conversions, some 15 cycles each, ended by a mispredicted exit: at 5500 buckets about
/// 58 ns for a call whose result the next one waits for (94 ns before) and 36 ns for
/// independent calls (77 ns before), well above 10 ns either way.
#[inline]
fn jump(mut key: u64, buckets: u64) -> u64 {
    if buckets == 0 {
        return 0;
    }
    // Exact for every bucket count below 2^53.
    let limit = buckets as f64;
    let mut bucket = 0i64;
    loop {
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // The next bucket count at which this key moves: (b + 1) / r, r uniform in (0, 1].
        let next = (bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64);
        // Never NaN: a positive integer times a positive quotient.
        if next >= limit {
            return bucket as u64;
        }
        // 1 <= next < limit: the truncation is in range.
        bucket = next as i64;
    }
}

#[cfg(test)]
impl Jump {
    /// `pick_in` with a scratch buffer of its own.
    pub(crate) fn pick(&self, key: u64, accept: impl FnMut(usize) -> bool) -> Option<usize> {
        self.pick_in(key, &mut Vec::new(), accept)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ring::testing::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn jump_moves_only_to_the_new_bucket() {
        for n in 1..200u64 {
            for k in 0..200u64 {
                let (a, b) = (jump(mix64(k), n), jump(mix64(k), n + 1));
                assert!(a < n && (a == b || b == n));
            }
        }
        assert_eq!(jump(5, 0), 0);
    }

    /// Values of the paper's C++ function (Lamping and Veach 2014, Figure 1) compiled with
    /// gcc: `JumpConsistentHash(key, buckets)` for each key (rows) and bucket count (columns).
    #[test]
    fn matches_the_reference_implementation() {
        const KEYS: [u64; 10] = [
            0,
            1,
            2,
            0xdead_beef,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            1 << 63,
            42,
            1_000_000_007,
            0x9e37_79b9_7f4a_7c15,
        ];
        const BUCKETS: [u64; 10] = [
            1,
            2,
            3,
            10,
            100,
            1000,
            5500,
            65536,
            1_000_000,
            2_147_483_647,
        ];
        const EXPECTED: [[u64; 10]; 10] = [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 6, 55, 549, 2323, 21134, 985611, 262355607],
            [0, 0, 0, 6, 62, 338, 3927, 3927, 152951, 736532115],
            [0, 1, 2, 5, 87, 285, 2238, 64244, 479362, 1452406526],
            [0, 0, 0, 0, 57, 194, 1504, 33301, 352229, 1651575352],
            [0, 1, 2, 9, 92, 313, 1921, 18311, 589430, 699554662],
            [0, 1, 1, 5, 84, 453, 453, 53854, 802256, 1119800965],
            [0, 1, 2, 2, 43, 571, 571, 5747, 153897, 1603940301],
            [0, 0, 0, 7, 65, 790, 3190, 3190, 130025, 794687178],
            [0, 1, 1, 3, 71, 838, 4862, 56183, 972672, 1680513372],
        ];
        for (key, row) in KEYS.iter().zip(EXPECTED) {
            let got: Vec<u64> = BUCKETS.iter().map(|&n| jump(*key, n)).collect();
            assert_eq!(got, row, "key {key:#x}");
        }
    }

    #[test]
    fn deterministic_and_weighted() {
        let backends = pool(&[1, 2, 0, 3, 4]);
        let (a, b) = (Jump::new(&backends), Jump::new(&backends));
        assert_eq!(a.slots, b.slots);
        let hits = fractions(5, 200_000, |k| a.pick(k, |_| true));
        for (h, w) in hits.iter().zip([1.0, 2.0, 0.0, 3.0, 4.0]) {
            assert!((h - w / 10.0).abs() < 0.01, "{hits:?}");
        }
    }

    #[test]
    fn slots_are_capped() {
        let j = Jump::new(&pool(&[u32::MAX, 1, 0, 7]));
        assert!(j.slots.len() as u128 <= MAX_SLOTS + 4);
        assert_eq!(j.slots.iter().filter(|&&p| p == 1).count(), 1);
        assert_eq!(j.distinct, 3);
    }

    #[test]
    fn fallback_reaches_everyone_and_terminates() {
        // More backends than rehashed attempts, so the final walk is needed too.
        let mut weights = alloc::vec![1; 40];
        weights[1] = 0;
        weights[4] = 3;
        let backends = pool(&weights);
        let j = Jump::new(&backends);
        check_fallback(&backends, |k, accept| j.pick(k, accept));
    }

    #[test]
    fn empty_and_zero_weights() {
        for backends in [pool(&[]), pool(&[0, 0, 0])] {
            assert_eq!(Jump::new(&backends).pick(7, |_| true), None);
        }
    }

    /// Appending a backend to N moves only keys to it, about 1/(N + 1) of them; removing the
    /// last restores the assignment.
    #[test]
    fn append_churn() {
        const KEYS: u64 = 100_000;
        for n in [10usize, 25, 50] {
            let (short, long) = (pool(&alloc::vec![2; n]), pool(&alloc::vec![2; n + 1]));
            let mut j = Jump::new(&short);
            let before = owners(&short, KEYS, |k| j.pick(k, |_| true));
            j.rebuild(&long);
            let after = owners(&long, KEYS, |k| j.pick(k, |_| true));
            assert!(
                before
                    .iter()
                    .zip(&after)
                    .all(|(b, a)| b == a || *a == n as u32)
            );
            let m = moved(&before, &after) as f64;
            assert!(m < 1.1 * KEYS as f64 / (n + 1) as f64, "n={n} moved {m}");
            j.rebuild(&short);
            assert_eq!(owners(&short, KEYS, |k| j.pick(k, |_| true)), before);
        }
    }

    proptest! {
        #[test]
        fn never_zero_weight(weights in prop::collection::vec(0u32..=1000, 0..64), key: u64,
                             reject in prop::collection::vec(any::<bool>(), 64)) {
            let backends = pool(&weights);
            let j = Jump::new(&backends);
            check_pick(&backends, &reject, j.pick(key, |p| !reject[p]))?;
        }
    }
}
