//! Jump consistent hashing, weighted by giving each backend as many consecutive slots as its
//! weight. Two functions map a key to a slot: JumpBackHash (Ertl, arXiv 2403.18682; the
//! default), which walks the key's jump points backwards in expected constant time, and
//! Lamping and Veach's original (arXiv 1406.2294), about ln(slots) + 1 dependent
//! floating-point steps, for callers that must agree with other implementations of it.
//!
//! Both follow the same law: a key's slot for n slots is the largest of its "jump points"
//! below n, where each slot j is a jump point with probability 1/(j + 1), independently.
//! So the hash needs no table of its own and balances almost perfectly, but it numbers its
//! buckets: growing from n to n + 1 buckets moves exactly 1/(n + 1) of the keys, and only to
//! the new one. So appending a backend (or raising the last one's weight) is minimally
//! disruptive, while removing or reweighting one in the middle renumbers every slot after it.
//! Use it for pools that only grow at the end, or whose members go down rather than leave
//! (availability never rebuilds the slots; the fallback sequence handles it).

use super::ring::Offered;
use super::{GOLDEN_GAMMA, mix64};
use crate::Backend;
use alloc::vec::Vec;

/// At most 2^20 slots (4 MiB): larger weights are scaled down in proportion.
const MAX_SLOTS: u128 = 1 << 20;
/// [`mix_key`]'s constants: the seed (digits of pi) and an odd factor (digits of e).
const KEY_SEED: u64 = 0x243f_6a88_85a3_08d3;
const KEY_FACTOR: u64 = 0xb7e1_5162_8aed_2a6b;
/// Rehashed attempts before the fallback walks the slots in order.
const ATTEMPTS: u64 = 32;

/// Which function maps a key to a slot: given by the caller on each pick (the two are
/// separate [`crate::hash::ConsistentHash`] variants), so that a pick tests no flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JumpFunction {
    /// JumpBackHash: expected constant time.
    Back,
    /// Lamping and Veach's published function, value for value.
    Classic,
}

#[derive(Clone, Debug)]
pub(crate) struct Jump {
    /// Each slot's owning position, in list order.
    slots: Vec<u32>,
    /// The slot count's [`Ranges`].
    ranges: Ranges,
    /// One past the largest position with a slot.
    bound: usize,
    distinct: usize,
}

impl Jump {
    pub(crate) fn new(backends: &[Backend]) -> Jump {
        let mut jump = Jump {
            slots: Vec::new(),
            ranges: Ranges::new(0),
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
        self.ranges = Ranges::new(self.slots.len() as u32);
    }

    /// The slot a key lands in (attempt 0 hashes the key, attempt k the key XOR k).
    #[inline(always)]
    fn slot(&self, function: JumpFunction, key: u64) -> usize {
        match function {
            // At most 2^20 slots.
            JumpFunction::Back => jump_back(key, self.slots.len() as u32, self.ranges) as usize,
            JumpFunction::Classic => self.classic_slot(key),
        }
    }

    /// [`Jump::slot`] with the classic function: out of line, so that the default stays small.
    #[inline(never)]
    fn classic_slot(&self, key: u64) -> usize {
        jump(mix64(key), self.slots.len() as u64) as usize
    }

    /// The key's slot, then up to [`ATTEMPTS`] slots of the rehashed key (as if the rejected
    /// backends had never been numbered), then every slot in order from the last one tried.
    #[inline]
    pub(crate) fn pick_in<T>(
        &self,
        function: JumpFunction,
        key: u64,
        scratch: &mut Vec<u64>,
        mut accept: impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        let first = *self.slots.get(self.slot(function, key))? as usize;
        if let Some(taken) = accept(first) {
            return Some(taken);
        }
        self.fall_back(function, key, first, scratch, accept)
    }

    /// The rest of [`Jump::pick_in`]'s sequence after the key's first backend `first`: out of
    /// line, so that the common pick stays small.
    #[inline(never)]
    fn fall_back<T>(
        &self,
        function: JumpFunction,
        key: u64,
        first: usize,
        scratch: &mut Vec<u64>,
        mut accept: impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        let mut offered = Offered::new(self.bound, scratch);
        offered.insert(first);
        let mut last = 0;
        let attempts = (1..=ATTEMPTS).map(|attempt| {
            last = self.slot(function, key ^ attempt);
            self.slots.get(last).copied().unwrap_or(0) as usize
        });
        if let Some(taken) = offered.offer(self.distinct, attempts, &mut accept) {
            return Some(taken);
        }
        // Then every slot from the last attempt's on, wrapping around.
        let (wrapped, rest) = self.slots.split_at(last.min(self.slots.len()));
        let positions = rest.iter().chain(wrapped).map(|&pos| pos as usize);
        offered.offer(self.distinct, positions, &mut accept)
    }
}

/// JumpBackHash: the largest of the key's jump points below `buckets` (0 for fewer than 2).
///
/// One folded multiply of the key ([`mix_key`]), `r0`, supplies the ranges and their points: the
/// bits of `r0 ^ (r0 >> 32)` say, for each range `[2^i, 2^(i+1))`, whether it holds a
/// jump point (the chance is exactly 1/2: no jump point in `[m, 2m)` has probability
/// `m / 2m`), and given that it does, its largest jump point is uniform in the range; so the
/// answer is in the highest flagged range at or below `buckets - 1`'s, at an offset taken
/// from `r0`'s low or high half. Consecutive flagged ranges take alternate halves (by the
/// parity of the flags up to them), so the two ranges one call can read stay independent.
/// When that largest point is `buckets` or more (only in the top range), the next lower
/// ones are drawn uniformly from the range, two per random value, until one is below
/// `buckets` (the answer) or below the range (none left there: the answer is the next
/// flagged range's largest point). Every draw ends the walk with probability above 1/2.
///
/// The two ranges read are the top one (`buckets - 1`'s, whose bounds are the table's
/// [`Ranges`]) and the highest flagged one below it, which one leading-zero count finds.
/// The first two draws are the halves of `r1`, one 128-bit multiply of `r0` folded to 64 bits
/// ([`fold`]); later ones come from [`top_range_point`].
/// Written without data-dependent branches for those two draws: the walk goes on past them
/// for under 4 % of keys.
#[inline(always)]
fn jump_back(key: u64, buckets: u32, ranges: Ranges) -> u32 {
    let r0 = mix_key(key);
    let r1 = fold(r0, GOLDEN_GAMMA);
    let flags = (r0 ^ (r0 >> 32)) as u32;
    // The flagged ranges below the top one (none for fewer than 2 buckets).
    let under = flags & ranges.under_top;
    // The highest of them takes the half the parity of their flags picks, the top range the
    // other one (its flags are one more), which is `half ^ flags`.
    let half = if under.count_ones() & 1 != 0 {
        (r0 >> 32) as u32
    } else {
        r0 as u32
    };
    let below = largest_point(under, half);
    let mask = ranges.top | ranges.under_top;
    // The top range's largest point, its offset `(half ^ flags) & under_top` and its flag
    // `flags & top`: below the range when it is not flagged.
    let largest = (half & ranges.under_top) ^ (flags & mask);
    let (d1, d2) = (r1 as u32 & mask, (r1 >> 32) as u32 & mask);
    let draw = if d1 < buckets { d1 } else { d2 };
    // The top range's largest point if it is below `buckets`, else the first draw below it;
    // either below the range means none is there.
    let point = if largest < buckets { largest } else { draw };
    // One test, almost never true: a branch on each comparison would be mispredicted often.
    let point = if point >= buckets {
        // 0 (below the range) when it has no point below `buckets`.
        top_range_point(key, ranges.top, buckets).unwrap_or(0)
    } else {
        point
    };
    if point < ranges.top { below } else { point }
}

/// `x` times an odd `factor` as a 128-bit product, its halves XORed (every bit of `x`
/// reaches every bit of the high half). [`jump_back`]'s second random value is `r0`'s.
#[inline(always)]
fn fold(x: u64, factor: u64) -> u64 {
    let product = x as u128 * factor as u128;
    product as u64 ^ (product >> 64) as u64
}

/// [`jump_back`]'s first random value: one [`fold`] of the key XOR a seed, instead of the
/// SplitMix64 finaliser's two multiplies and three shifts on the pick's critical path.
/// Sequential keys (addresses and ports packed as `addr << 16 | port`) spread at least as
/// evenly as random ones (`tests/consistent.rs`, `jump_spreads_structured_keys`).
#[inline(always)]
fn mix_key(key: u64) -> u64 {
    fold(key ^ KEY_SEED, KEY_FACTOR)
}

/// The ranges `[2^i, 2^(i+1))` at or below `buckets - 1`'s, as masks with bit `i` for each:
/// the top one (`buckets - 1`'s) and those under it (none of either for fewer than 2 buckets).
#[derive(Clone, Copy, Debug)]
struct Ranges {
    top: u32,
    under_top: u32,
}

impl Ranges {
    fn new(buckets: u32) -> Ranges {
        let all = match buckets {
            0 | 1 => 0,
            n => u32::MAX >> (n - 1).leading_zeros(),
        };
        Ranges {
            top: all ^ (all >> 1),
            under_top: all >> 1,
        }
    }
}

/// The highest flagged range's largest jump point, at the offset `half` gives; 0 when none
/// is flagged. `flagged` is below 2^31 (it holds no top range).
#[inline(always)]
fn largest_point(flagged: u32, half: u32) -> u32 {
    // Range `i`'s flag at bit `i + 1`, above a marker at bit 0: never 0 and in 32 bits.
    let end = 1u32 << (flagged << 1 | 1).ilog2();
    // Twice the range's low end (1 when none is flagged) plus twice the offset (below
    // it, so `+` is `|`), halved.
    ((half << 1 & (end - 1)) + end) >> 1
}

/// The largest jump point in `[low, buckets)` from the draws after [`jump_back`]'s first two
/// (the halves of SplitMix64's outputs 1, 2, ... for the key), when `[low, 2 * low)`'s
/// largest and those two draws are all `buckets` or more; `None` when the range has none
/// below `buckets` (or there are no buckets).
#[cold]
#[inline(never)]
fn top_range_point(key: u64, low: u32, buckets: u32) -> Option<u32> {
    if buckets == 0 {
        return None;
    }
    let mask = (low as u64 * 2 - 1) as u32;
    let mut state = key;
    loop {
        state = state.wrapping_add(GOLDEN_GAMMA);
        let r = mix64(state);
        for draw in [r as u32 & mask, (r >> 32) as u32 & mask] {
            if draw < low {
                return None;
            }
            if draw < buckets {
                return Some(draw);
            }
        }
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
    /// [`jump_back`] for a bucket count.
    fn back(key: u64, buckets: u32) -> u32 {
        jump_back(key, buckets, Ranges::new(buckets))
    }

    /// `pick_in` with a scratch buffer of its own.
    pub(crate) fn pick(
        &self,
        function: JumpFunction,
        key: u64,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        self.pick_in(function, key, &mut Vec::new(), |p| accept(p).then_some(p))
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

    /// [`jump_back`] as a plain loop over the flagged ranges and the top range's draws.
    fn jump_back_reference(key: u64, buckets: u32) -> u32 {
        if buckets < 2 {
            return 0;
        }
        let r0 = mix_key(key);
        let mut flagged = ((r0 ^ (r0 >> 32)) as u32) & (u32::MAX >> (buckets - 1).leading_zeros());
        let r1 = fold(r0, GOLDEN_GAMMA);
        let later = (1u64..).flat_map(|k| {
            let r = mix64(key.wrapping_add(k.wrapping_mul(GOLDEN_GAMMA)));
            [r as u32, (r >> 32) as u32]
        });
        let mut draws = [r1 as u32, (r1 >> 32) as u32].into_iter().chain(later);
        while flagged != 0 {
            let low = 1u32 << (31 - flagged.leading_zeros());
            let half = (r0 >> ((flagged.count_ones() & 1) * 32)) as u32;
            let largest = low | (half & (low - 1));
            if largest < buckets {
                return largest;
            }
            let mask = (low as u64 * 2 - 1) as u32;
            for draw in draws.by_ref().map(|d| d & mask) {
                if draw < low {
                    break;
                }
                if draw < buckets {
                    return draw;
                }
            }
            flagged ^= low;
        }
        0
    }

    #[test]
    fn jump_back_matches_its_loop_form() {
        for n in (0..5000u32).chain([65535, 65536, 65537, 1 << 20, u32::MAX]) {
            for k in 0..200u64 {
                let key = mix64(k ^ n as u64);
                assert_eq!(Jump::back(key, n), jump_back_reference(key, n), "{key} {n}");
            }
        }
    }

    #[test]
    fn jump_back_moves_only_to_the_new_bucket() {
        for n in 0..2100u32 {
            for k in 0..300u64 {
                let (a, b) = (Jump::back(k, n), Jump::back(k, n + 1));
                assert!(
                    a < n.max(1) && (a == b || b == n),
                    "key {k} n {n}: {a} then {b}"
                );
            }
        }
        // The largest bucket counts: the top range's mask and draws stay in 32 bits.
        for k in 0..1000u64 {
            assert!(Jump::back(k, u32::MAX) < u32::MAX);
            let (a, b) = (Jump::back(k, (1 << 31) + 1), Jump::back(k, (1 << 31) + 2));
            assert!(a == b || b == (1 << 31) + 1);
        }
    }

    /// The same law as Lamping and Veach's function: uniform over the buckets, and growing
    /// from n to n + 1 moves 1/(n + 1) of the keys, for bucket counts at, just above and
    /// just below powers of two (where the top range is nearly empty or nearly full).
    #[test]
    fn jump_back_is_uniform_and_moves_one_share() {
        const KEYS: u64 = 200_000;
        for n in [3u32, 10, 64, 65, 127, 1000, 5500] {
            let mut hits = alloc::vec![0u64; n as usize + 1];
            let mut moved = 0u64;
            for k in 0..KEYS {
                let key = mix64(k ^ 0x5eed);
                let (a, b) = (Jump::back(key, n), Jump::back(key, n + 1));
                hits[a as usize] += 1;
                moved += (a != b) as u64;
            }
            let expected = KEYS as f64 / n as f64;
            let worst = hits[..n as usize]
                .iter()
                .map(|&h| (h as f64 - expected).abs() / expected.sqrt())
                .fold(0.0, f64::max);
            // Binomial counts: more than 5.5 standard deviations off is a broken law.
            assert!(worst < 5.5, "n={n}: {worst:.1} sd off");
            let share = KEYS as f64 / (n + 1) as f64;
            assert!(
                (moved as f64 - share).abs() < 5.5 * share.sqrt(),
                "n={n} moved {moved}, expected {share:.0}"
            );
        }
    }

    /// A few values, so that the function cannot change unnoticed (keys' slots are part of
    /// the contract between a pool's users).
    #[test]
    fn jump_back_values() {
        let got: Vec<u32> = [(0u64, 10u32), (1, 1000), (42, 5500), (u64::MAX, 65537)]
            .iter()
            .map(|&(k, n)| Jump::back(k, n))
            .collect();
        assert_eq!(got, [3, 911, 4355, 60228]);
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

    const BOTH: [JumpFunction; 2] = [JumpFunction::Back, JumpFunction::Classic];

    #[test]
    fn deterministic_and_weighted() {
        let backends = pool(&[1, 2, 0, 3, 4]);
        for f in BOTH {
            let (a, b) = (Jump::new(&backends), Jump::new(&backends));
            assert_eq!(a.slots, b.slots);
            let hits = fractions(5, 200_000, |k| a.pick(f, k, |_| true));
            for (h, w) in hits.iter().zip([1.0, 2.0, 0.0, 3.0, 4.0]) {
                assert!((h - w / 10.0).abs() < 0.01, "{f:?} {hits:?}");
            }
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
        for f in BOTH {
            let j = Jump::new(&backends);
            check_fallback(&backends, |k, accept| j.pick(f, k, accept));
        }
    }

    #[test]
    fn empty_and_zero_weights() {
        for backends in [pool(&[]), pool(&[0, 0, 0])] {
            for f in BOTH {
                assert_eq!(Jump::new(&backends).pick(f, 7, |_| true), None);
            }
        }
    }

    /// Appending a backend to N moves only keys to it, about 1/(N + 1) of them; removing the
    /// last restores the assignment.
    #[test]
    fn append_churn() {
        const KEYS: u64 = 100_000;
        for (n, f) in [10usize, 25, 50]
            .into_iter()
            .flat_map(|n| BOTH.map(|f| (n, f)))
        {
            let (short, long) = (pool(&alloc::vec![2; n]), pool(&alloc::vec![2; n + 1]));
            let mut j = Jump::new(&short);
            let before = owners(&short, KEYS, |k| j.pick(f, k, |_| true));
            j.rebuild(&long);
            let after = owners(&long, KEYS, |k| j.pick(f, k, |_| true));
            assert!(
                before
                    .iter()
                    .zip(&after)
                    .all(|(b, a)| b == a || *a == n as u32)
            );
            let m = moved(&before, &after) as f64;
            assert!(m < 1.1 * KEYS as f64 / (n + 1) as f64, "n={n} moved {m}");
            j.rebuild(&short);
            assert_eq!(owners(&short, KEYS, |k| j.pick(f, k, |_| true)), before);
        }
    }

    proptest! {
        #[test]
        fn never_zero_weight(weights in prop::collection::vec(0u32..=1000, 0..64), key: u64,
                             reject in prop::collection::vec(any::<bool>(), 64)) {
            let backends = pool(&weights);
            for f in BOTH {
                let j = Jump::new(&backends);
                check_pick(&backends, &reject, j.pick(f, key, |p| !reject[p]))?;
            }
        }
    }
}
