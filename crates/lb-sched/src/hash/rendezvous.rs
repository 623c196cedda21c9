//! Weighted rendezvous (highest random weight) hashing.
//!
//! Every backend draws a uniform `u` in (0, 1) from the key and its own identity, and the
//! highest `-w / ln u` wins (Schindelhauer and Schomaker's logarithmic method for weighted
//! DHTs): backend i wins with probability exactly `w_i / sum w`, and a backend's arrival,
//! departure or weight change moves only keys it wins or loses. The price is O(n) per pick.
//! `libm`'s logarithm is plain software, so every platform ranks the same way.

use super::{backend_key, mix64};
use crate::Backend;
use alloc::vec::Vec;

/// 2^-53: turns 53 random bits into a double in [0, 1).
const UNIT: f64 = 1.0 / 9_007_199_254_740_992.0;

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    inv_weight: f64,
    pos: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Rendezvous {
    /// The backends with weight, in position order.
    entries: Vec<Entry>,
    /// All weights equal: `-w / ln u` then ranks as `u` does, so the hash itself is compared
    /// and no logarithm is taken.
    uniform: bool,
}

impl Rendezvous {
    pub(crate) fn new(backends: &[Backend]) -> Rendezvous {
        let mut r = Rendezvous {
            entries: Vec::new(),
            uniform: true,
        };
        r.rebuild(backends);
        r
    }

    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.entries = (0u32..)
            .zip(backends)
            .filter(|(_, b)| b.table_weight > 0)
            .map(|(pos, b)| Entry {
                key: backend_key(b),
                inv_weight: 1.0 / b.table_weight as f64,
                pos,
            })
            .collect();
        let first = self.entries.first().map(|e| e.inv_weight);
        self.uniform = self.entries.iter().all(|e| Some(e.inv_weight) == first);
    }

    /// The entry's rank for this key, lowest first, as a `u64` that orders like the score:
    /// `-ln(u) / w` is positive, and positive doubles order like their bits.
    #[inline]
    fn rank(&self, e: &Entry, key: u64) -> u64 {
        let h = mix64(key ^ e.key);
        if self.uniform {
            return !h;
        }
        let u = ((h >> 11) as f64 + 0.5) * UNIT;
        (-libm::log(u) * e.inv_weight).to_bits()
    }

    /// The winner in one scan; after a rejection, the next best in another scan, and so on:
    /// O(n) per candidate offered, with no allocation. `backends` bounds the positions, in
    /// case the list shrank without a rebuild.
    pub(crate) fn pick_in<T>(
        &self,
        backends: &[Backend],
        key: u64,
        mut accept: impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        let n = backends.len();
        let mut after: Option<(u64, u32)> = None;
        loop {
            let mut best: Option<(u64, u32)> = None;
            for e in self.entries.iter().take_while(|e| (e.pos as usize) < n) {
                let r = (self.rank(e, key), e.pos);
                if after.is_none_or(|a| r > a) && best.is_none_or(|b| r < b) {
                    best = Some(r);
                }
            }
            let (rank, pos) = best?;
            if let Some(taken) = accept(pos as usize) {
                return Some(taken);
            }
            after = Some((rank, pos));
        }
    }
}

#[cfg(test)]
impl Rendezvous {
    /// `pick_in` answering the position.
    pub(crate) fn pick(
        &self,
        backends: &[Backend],
        key: u64,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        self.pick_in(backends, key, |p| accept(p).then_some(p))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ring::testing::*;
    use super::*;
    use crate::BackendId;
    use proptest::prelude::*;

    #[test]
    fn deterministic_and_weighted() {
        let backends = pool(&[1, 2, 0, 3, 4]);
        let (a, b) = (Rendezvous::new(&backends), Rendezvous::new(&backends));
        let pick = |r: &Rendezvous| owners(&backends, 1000, |k| r.pick(&backends, k, |_| true));
        assert_eq!(pick(&a), pick(&b));
        let hits = fractions(5, 200_000, |k| a.pick(&backends, k, |_| true));
        for (h, w) in hits.iter().zip([1.0, 2.0, 0.0, 3.0, 4.0]) {
            assert!((h - w / 10.0).abs() < 0.01, "{hits:?}");
        }
    }

    #[test]
    fn uniform_ranking_matches_the_logarithm() {
        let backends = pool(&[5; 30]);
        let uniform = Rendezvous::new(&backends);
        let mut weighted = uniform.clone();
        weighted.uniform = false;
        let pick = |r: &Rendezvous| owners(&backends, 20_000, |k| r.pick(&backends, k, |_| true));
        assert_eq!(pick(&uniform), pick(&weighted));
    }

    #[test]
    fn fallback_reaches_everyone_and_terminates() {
        let backends = pool(&[1, 0, 2, 1, 3, 1, 1, 1]);
        let r = Rendezvous::new(&backends);
        check_fallback(&backends, |k, accept| r.pick(&backends, k, accept));
    }

    #[test]
    fn empty_and_zero_weights() {
        for backends in [pool(&[]), pool(&[0, 0, 0])] {
            assert_eq!(
                Rendezvous::new(&backends).pick(&backends, 7, |_| true),
                None
            );
        }
        // A list shorter than the one built from is read safely.
        assert_eq!(Rendezvous::new(&pool(&[1, 1])).pick(&[], 1, |_| true), None);
    }

    /// Removal moves exactly the removed backend's keys (its weight share of them), and adding
    /// it back restores the original assignment, under unequal weights.
    #[test]
    fn churn() {
        const KEYS: u64 = 100_000;
        for n in [10u32, 25, 50] {
            let full: Vec<Backend> = (0..n)
                .map(|i| Backend::new(BackendId(i), 1 + i % 3))
                .collect();
            let r = Rendezvous::new(&full);
            let before = owners(&full, KEYS, |k| r.pick(&full, k, |_| true));
            let mut less = full.clone();
            let gone = less.remove(n as usize / 2);
            let mut r = Rendezvous::new(&less);
            let after = owners(&less, KEYS, |k| r.pick(&less, k, |_| true));
            assert!(
                before
                    .iter()
                    .zip(&after)
                    .all(|(b, a)| b == a || *b == gone.id.0)
            );
            let total: u32 = full.iter().map(|b| b.table_weight).sum();
            let share = gone.table_weight as f64 / total as f64;
            assert!(
                (moved(&before, &after) as f64) < 1.1 * share * KEYS as f64,
                "n={n}"
            );
            r.rebuild(&full);
            assert_eq!(owners(&full, KEYS, |k| r.pick(&full, k, |_| true)), before);
        }
    }

    proptest! {
        #[test]
        fn never_zero_weight(weights in prop::collection::vec(0u32..=1000, 0..64), key: u64,
                             reject in prop::collection::vec(any::<bool>(), 64)) {
            let backends = pool(&weights);
            let r = Rendezvous::new(&backends);
            check_pick(&backends, &reject, r.pick(&backends, key, |p| !reject[p]))?;
        }
    }
}
