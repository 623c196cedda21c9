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

    /// The winner in one scan; after a rejection, everyone else ranked once, best first.
    /// `backends` bounds the positions, in case the list shrank without a rebuild.
    pub(crate) fn pick(
        &self,
        backends: &[Backend],
        key: u64,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let n = backends.len();
        let live = || self.entries.iter().take_while(|e| (e.pos as usize) < n);
        let mut best: Option<(u64, u32)> = None;
        for e in live() {
            let r = (self.rank(e, key), e.pos);
            if best.is_none_or(|b| r < b) {
                best = Some(r);
            }
        }
        let (_, first) = best?;
        if accept(first as usize) {
            return Some(first as usize);
        }
        let mut order: Vec<(u64, u32)> = live().map(|e| (self.rank(e, key), e.pos)).collect();
        order.sort_unstable();
        order
            .into_iter()
            .map(|(_, p)| p as usize)
            .filter(|&p| p != first as usize)
            .find(|&p| accept(p))
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

    fn owners(r: &Rendezvous, backends: &[Backend], keys: u64) -> Vec<u32> {
        (0..keys)
            .map(|k| {
                r.pick(backends, k, |_| true)
                    .map_or(u32::MAX, |p| backends[p].id.0)
            })
            .collect()
    }

    fn moved(a: &[u32], b: &[u32]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn deterministic_and_weighted() {
        let weights = [1u32, 2, 0, 3, 4];
        let backends = pool(&weights);
        let r = Rendezvous::new(&backends);
        assert_eq!(
            owners(&r, &backends, 1000),
            owners(&Rendezvous::new(&backends), &backends, 1000)
        );
        let mut hits = [0f64; 5];
        (0..200_000).for_each(|k| hits[r.pick(&backends, k, |_| true).unwrap_or(2)] += 1.0);
        assert_eq!(hits[2], 0.0);
        for (h, w) in hits.iter().zip(weights) {
            assert!((h / 200_000.0 - w as f64 / 10.0).abs() < 0.01, "{hits:?}");
        }
    }

    #[test]
    fn uniform_ranking_matches_the_logarithm() {
        let backends = pool(&[5; 30]);
        let uniform = Rendezvous::new(&backends);
        let mut weighted = uniform.clone();
        weighted.uniform = false;
        assert_eq!(
            owners(&uniform, &backends, 20_000),
            owners(&weighted, &backends, 20_000)
        );
    }

    #[test]
    fn fallback_reaches_everyone_and_terminates() {
        let backends = pool(&[1, 0, 2, 1, 3, 1, 1, 1]);
        let r = Rendezvous::new(&backends);
        for key in 0..200 {
            for target in 0..backends.len() {
                let got = r.pick(&backends, key, |p| p == target);
                assert_eq!(got.is_some(), backends[target].table_weight > 0);
            }
            let mut offered = Vec::new();
            assert_eq!(
                r.pick(&backends, key, |p| {
                    offered.push(p);
                    false
                }),
                None
            );
            offered.sort_unstable();
            assert_eq!(offered, [0, 2, 3, 4, 5, 6, 7]);
        }
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

    /// Removal moves exactly the removed backend's keys (about 1/N), adding it back restores
    /// the original assignment, under weights that differ too.
    #[test]
    fn churn() {
        const KEYS: u64 = 100_000;
        for n in [10usize, 25, 50] {
            let full: Vec<Backend> = (0..n)
                .map(|i| Backend::new(BackendId(i as u32), 1 + (i % 3) as u32))
                .collect();
            let before = owners(&Rendezvous::new(&full), &full, KEYS);
            let mut less = full.clone();
            let gone = less.remove(n / 2).id.0;
            let mut r = Rendezvous::new(&less);
            let after = owners(&r, &less, KEYS);
            assert!(before.iter().zip(&after).all(|(b, a)| b == a || *b == gone));
            let share = full[n / 2].table_weight as f64
                / full.iter().map(|b| b.table_weight as f64).sum::<f64>();
            assert!(
                (moved(&before, &after) as f64) < 1.1 * share * KEYS as f64,
                "n={n}"
            );
            r.rebuild(&full);
            assert_eq!(owners(&r, &full, KEYS), before);
        }
    }

    proptest! {
        #[test]
        fn never_zero_weight(weights in prop::collection::vec(0u32..=1000, 0..64), key: u64,
                             reject in prop::collection::vec(any::<bool>(), 64)) {
            let backends = pool(&weights);
            let r = Rendezvous::new(&backends);
            if let Some(p) = r.pick(&backends, key, |p| !reject[p]) {
                prop_assert!(backends[p].table_weight > 0 && !reject[p]);
            } else {
                prop_assert!(backends.iter().zip(&reject).all(|(b, &r)| b.table_weight == 0 || r));
            }
        }
    }
}
