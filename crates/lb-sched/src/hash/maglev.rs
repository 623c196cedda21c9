//! Weighted Maglev hashing (Eisenbud et al., NSDI 2016) with churn-minimising rebuilds.
//!
//! Every backend walks its own permutation of the table's M slots (M prime, so
//! `offset + j * skip` visits every slot) and claims free slots in rounds until it holds its
//! quota, M split in proportion to weight. A fresh build moves about twice the keys of a
//! removed backend, because the rounds replay differently; so a rebuild instead keeps every
//! slot whose owner is still present and under its new quota, frees the rest, and lets the
//! backends short of their quota claim the free slots along their permutations. Removing one
//! of N backends then moves only its own 1/N of the keys.

use super::ring::Offered;
use super::{backend_key, mix64};
use crate::Backend;
use crate::algorithm::is_prime;
use alloc::vec::Vec;

const NONE: u32 = u32::MAX;
/// Fallback probes at pseudo-random slots before walking the table in order.
const RANDOM_PROBES: u64 = 32;
/// At most this many population rounds: the heaviest backend claims several slots a round
/// beyond it, which changes which slots it gets but not how many, and bounds the build at
/// `MAX_ROUNDS * N` steps however skewed the weights.
const MAX_ROUNDS: u64 = 256;
const OFFSET_SALT: u64 = 0x6f66_6673_6574_5f31;
const SKIP_SALT: u64 = 0x736b_6970_5f5f_5f32;

#[derive(Clone, Debug)]
pub(crate) struct Maglev {
    size: u32,
    /// Each slot's owning position; [`NONE`] only when no backend has weight.
    table: Vec<u32>,
    /// The identity of each position the table was built for, to find an old slot's owner in
    /// the next list, where positions may have shifted.
    keys: Vec<u64>,
    /// Slots per position.
    counts: Vec<u64>,
    distinct: usize,
}

impl Maglev {
    /// `table_size` should be prime: otherwise permutations would not cover the table, and
    /// every backend probes linearly instead.
    pub(crate) fn new(table_size: u32, backends: &[Backend]) -> Maglev {
        let mut maglev = Maglev {
            size: table_size,
            table: Vec::new(),
            keys: Vec::new(),
            counts: Vec::new(),
            distinct: 0,
        };
        maglev.rebuild(backends);
        maglev
    }

    /// Rebuilds for a new list, keeping every slot it can (a fresh build on the first call).
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        let m = self.size as usize;
        let backends = &backends[..backends.len().min(NONE as usize)];
        let keys: Vec<u64> = backends.iter().map(backend_key).collect();
        let quotas = quotas(self.size, backends, &keys);
        let mut deficits = quotas.clone();
        if self.table.len() == m {
            let remap = remap(&self.keys, &keys);
            for slot in self.table.iter_mut() {
                let new = remap.get(*slot as usize).copied().unwrap_or(NONE);
                *slot = match deficits.get_mut(new as usize) {
                    Some(d) if *d > 0 => {
                        *d -= 1;
                        new
                    }
                    _ => NONE,
                };
            }
        } else {
            self.table = alloc::vec![NONE; m];
        }
        populate(&mut self.table, self.size, &keys, &deficits);
        self.distinct = quotas.iter().filter(|&&q| q > 0).count();
        self.counts = quotas;
        self.keys = keys;
    }

    /// Multiply-shift reduction of a hash to a slot: uniform, and no division.
    #[inline]
    fn slot(&self, h: u64) -> usize {
        ((h as u128 * self.size as u128) >> 64) as usize
    }

    /// The key's slot, then [`RANDOM_PROBES`] slots drawn from the key (so that the backends a
    /// failed one's keys fall back to are spread like the keys), then the table in order from
    /// the home slot, which reaches every backend holding a slot.
    #[inline]
    pub(crate) fn pick(&self, key: u64, mut accept: impl FnMut(usize) -> bool) -> Option<usize> {
        let home = self.slot(mix64(key));
        let first = *self.table.get(home)?;
        if first != NONE && accept(first as usize) {
            return Some(first as usize);
        }
        let mut offered = Offered::new(self.counts.len());
        if first != NONE {
            offered.insert(first as usize);
        }
        let len = self.table.len();
        let probes = (1..=RANDOM_PROBES).map(|i| self.slot(mix64(key ^ mix64(i))));
        let walk = (1..len).map(|i| {
            if home + i >= len {
                home + i - len
            } else {
                home + i
            }
        });
        for s in probes.chain(walk) {
            if offered.len() >= self.distinct {
                break;
            }
            let pos = self.table.get(s).copied().unwrap_or(NONE);
            if pos != NONE && offered.insert(pos as usize) && accept(pos as usize) {
                return Some(pos as usize);
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

/// Each position's slot quota: one slot for every backend with weight (when there are slots
/// enough, as Envoy attempts), the rest split by weight with the largest remainders rounded
/// up. Equal remainders go in identity order, so the winners do not shift with positions.
fn quotas(size: u32, backends: &[Backend], keys: &[u64]) -> Vec<u64> {
    let mut quotas = alloc::vec![0u64; backends.len()];
    let live = backends.iter().filter(|b| b.table_weight > 0).count() as u64;
    if live == 0 {
        return quotas;
    }
    let base = (live <= size as u64) as u64;
    let rest = (size as u64 - base * live) as u128;
    let total: u128 = backends.iter().map(|b| b.table_weight as u128).sum();
    let mut left = rest;
    let mut remainders = Vec::with_capacity(live as usize);
    for (i, (b, q)) in backends.iter().zip(quotas.iter_mut()).enumerate() {
        if b.table_weight > 0 {
            let share = rest * b.table_weight as u128;
            *q = base + (share / total) as u64;
            left -= share / total;
            remainders.push((share % total, keys.get(i).copied().unwrap_or(0), i));
        }
    }
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, _, i) in remainders.iter().take(left as usize) {
        if let Some(q) = quotas.get_mut(i) {
            *q += 1;
        }
    }
    quotas
}

/// For each old position, its position in the new list (found by identity), or [`NONE`].
fn remap(old: &[u64], new: &[u64]) -> Vec<u32> {
    if old == new {
        return (0..old.len() as u32).collect();
    }
    let mut sorted: Vec<(u64, u32)> = new.iter().zip(0u32..).map(|(&k, i)| (k, i)).collect();
    sorted.sort_unstable();
    old.iter()
        .map(|&k| match sorted.get(sorted.partition_point(|e| e.0 < k)) {
            Some(&(key, pos)) if key == k => pos,
            _ => NONE,
        })
        .collect()
}

/// Fills the free slots: in each round, every backend short of its quota earns credit in
/// proportion to its deficit and spends it on the next free slots along its permutation.
/// The deficits add up to the free slots, so every claim finds one.
fn populate(table: &mut [u32], size: u32, keys: &[u64], deficits: &[u64]) {
    struct Claimant {
        pos: u32,
        next: u32,
        skip: u32,
        share: u64,
        left: u64,
        credit: u64,
    }
    let rounds = deficits.iter().copied().max().unwrap_or(0).min(MAX_ROUNDS);
    if rounds == 0 || size == 0 {
        return;
    }
    let prime = is_prime(size);
    let m = size as u64;
    let mut claimants: Vec<Claimant> = (0u32..)
        .zip(keys.iter().zip(deficits))
        .filter(|(_, (_, d))| **d > 0)
        .map(|(pos, (&key, &left))| Claimant {
            pos,
            next: (mix64(key ^ OFFSET_SALT) % m) as u32,
            skip: if prime {
                (mix64(key ^ SKIP_SALT) % (m - 1)) as u32 + 1
            } else {
                1
            },
            share: left,
            left,
            // Everyone claims in the first round, and exactly `left` over all the rounds.
            credit: rounds - 1,
        })
        .collect();
    for _ in 0..rounds {
        for c in claimants.iter_mut() {
            c.credit += c.share;
            while c.credit >= rounds && c.left > 0 {
                c.credit -= rounds;
                c.left -= 1;
                // A permutation visits every slot in `size` steps: past that, no slot is free.
                let mut steps = 0;
                while table.get(c.next as usize).is_some_and(|&s| s != NONE) && steps < size {
                    c.next += c.skip;
                    if c.next >= size {
                        c.next -= size;
                    }
                    steps += 1;
                }
                match table.get_mut(c.next as usize) {
                    Some(s) if *s == NONE => *s = c.pos,
                    _ => c.left = 0,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendId;
    use proptest::prelude::*;

    const M: u32 = 65537;

    fn pool(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(BackendId(i as u32), w))
            .collect()
    }

    fn owners(maglev: &Maglev, backends: &[Backend], keys: u64) -> Vec<u32> {
        (0..keys)
            .map(|k| {
                maglev
                    .pick(k, |_| true)
                    .map_or(u32::MAX, |p| backends[p].id.0)
            })
            .collect()
    }

    fn moved(a: &[u32], b: &[u32]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    fn table_counts(maglev: &Maglev, n: usize) -> Vec<u64> {
        let mut counts = alloc::vec![0u64; n];
        maglev
            .table
            .iter()
            .filter(|&&p| p != NONE)
            .for_each(|&p| counts[p as usize] += 1);
        counts
    }

    #[test]
    fn quotas_follow_weight() {
        // Envoy's documented split for weights 1:2 at 65537.
        let maglev = Maglev::new(M, &pool(&[1, 2]));
        assert_eq!(maglev.shares(2), [21846, 43691]);
        let weights = [1u32, 7, 0, 3, 100, 42, 5, 5, 9, 1000];
        let backends = pool(&weights);
        let maglev = Maglev::new(M, &backends);
        assert_eq!(
            table_counts(&maglev, weights.len()),
            maglev.shares(weights.len())
        );
        let total: u32 = weights.iter().sum();
        for (&w, &s) in weights.iter().zip(&maglev.shares(weights.len())) {
            let exact = M as f64 * w as f64 / total as f64;
            assert!(
                (s as f64 - exact).abs() <= 1.0 + exact * 0.01,
                "{w}: {s} vs {exact}"
            );
        }
    }

    #[test]
    fn deterministic_and_keys_follow_slots() {
        let backends = pool(&[3, 1, 2, 2]);
        let a = Maglev::new(M, &backends);
        assert_eq!(
            owners(&a, &backends, 10_000),
            owners(&Maglev::new(M, &backends), &backends, 10_000)
        );
        let mut hits = [0f64; 4];
        (0..400_000).for_each(|k| hits[a.pick(k, |_| true).unwrap_or(0)] += 1.0);
        for (h, w) in hits.iter().zip([3.0, 1.0, 2.0, 2.0]) {
            assert!(
                (h / 400_000.0 - w / 8.0).abs() < 0.01 * w / 8.0 + 0.002,
                "{hits:?}"
            );
        }
    }

    #[test]
    fn fallback_reaches_everyone_and_terminates() {
        let backends = pool(&[1, 0, 2, 1, 3, 1, 1, 1, 1, 1, 1, 2, 1]);
        let maglev = Maglev::new(251, &backends);
        for key in 0..200 {
            for target in 0..backends.len() {
                let got = maglev.pick(key, |p| p == target);
                assert_eq!(got.is_some(), backends[target].table_weight > 0);
            }
            let mut offered = Vec::new();
            assert_eq!(
                maglev.pick(key, |p| {
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
    fn empty_zero_and_odd_sizes() {
        for backends in [pool(&[]), pool(&[0, 0, 0])] {
            let maglev = Maglev::new(M, &backends);
            assert_eq!(maglev.pick(7, |_| true), None);
            assert!(maglev.shares(backends.len()).iter().all(|&s| s == 0));
        }
        // Not prime (never validated through here, but must not hang), tiny, and fewer slots
        // than backends.
        for size in [0, 1, 2, 100, 7] {
            let backends = pool(&[1; 10]);
            let maglev = Maglev::new(size, &backends);
            assert_eq!(table_counts(&maglev, 10).iter().sum::<u64>(), size as u64);
            assert_eq!(maglev.pick(3, |_| true).is_some(), size > 0);
        }
    }

    /// Removing one of N moves only the removed backend's slots (1/N of the keys); adding it
    /// back frees 1/N of the others' slots for it. Both stay within (1 + 0.1)/N of 100k keys.
    #[test]
    fn rebuild_churn() {
        const KEYS: u64 = 100_000;
        for n in [10usize, 17, 30, 50] {
            let full = pool(&alloc::vec![1; n]);
            let mut maglev = Maglev::new(M, &full);
            let before = owners(&maglev, &full, KEYS);
            let mut less = full.clone();
            less.remove(n / 2);
            maglev.rebuild(&less);
            let after = owners(&maglev, &less, KEYS);
            assert!(
                before
                    .iter()
                    .zip(&after)
                    .all(|(b, a)| b == a || *b == (n / 2) as u32)
            );
            let bound = 1.1 * KEYS as f64 / n as f64;
            assert!((moved(&before, &after) as f64) < bound, "n={n} remove");
            assert_eq!(table_counts(&maglev, n - 1), maglev.shares(n - 1));
            maglev.rebuild(&full);
            let back = owners(&maglev, &full, KEYS);
            assert!((moved(&after, &back) as f64) < bound, "n={n} add");
            assert_eq!(table_counts(&maglev, n), maglev.shares(n));
            assert_eq!(maglev.shares(n), Maglev::new(M, &full).shares(n));
        }
    }

    #[test]
    fn reweighting_moves_the_difference() {
        let mut backends = pool(&[1; 20]);
        let mut maglev = Maglev::new(M, &backends);
        let before = owners(&maglev, &backends, 100_000);
        backends[4].table_weight = 2;
        maglev.rebuild(&backends);
        // Backend 4 goes from 1/20 to 2/21 of the table: about 4.5% of the keys move to it.
        let m = moved(&before, &owners(&maglev, &backends, 100_000)) as f64 / 100_000.0;
        assert!(m < (2.0 / 21.0 - 1.0 / 20.0) * 1.1, "{m}");
    }

    proptest! {
        #[test]
        fn never_zero_weight(weights in prop::collection::vec(0u32..=1000, 0..64), key: u64,
                             reject in prop::collection::vec(any::<bool>(), 64),
                             next in prop::collection::vec(0u32..=1000, 0..64)) {
            let backends = pool(&weights);
            let mut maglev = Maglev::new(1021, &backends);
            for round in 0..2 {
                let backends = if round == 0 { backends.clone() } else { pool(&next) };
                maglev.rebuild(&backends);
                let n = backends.len();
                prop_assert_eq!(table_counts(&maglev, n), maglev.shares(n));
                if let Some(p) = maglev.pick(key, |p| !reject[p]) {
                    prop_assert!(backends[p].table_weight > 0 && !reject[p]);
                } else {
                    prop_assert!(backends.iter().zip(&reject).all(|(b, &r)| b.table_weight == 0 || r));
                }
            }
        }
    }
}
