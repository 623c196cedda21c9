//! Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, SODA 2018).

use crate::Error;

/// Caps every backend's share of the outstanding load at a factor of its fair share, so that
/// a hot key or an unlucky table cannot overload one backend of a consistent hash.
///
/// `balance_factor` is a percentage, at least 100: HAProxy's `hash-balance-factor` and Envoy's
/// `hash_balance_factor` (both suggest 125 to 200). A pick walks the key's fallback sequence
/// as usual and passes over every backend already at its cap, so most keys keep their home
/// backend and only the overflow moves, each key to its own stable next choice.
///
/// A schedulable backend with outstanding load `load` and weight `w` takes one more when
///
/// ```text
/// load * 100 * total_weight < balance_factor * (total_load + 1) * w
/// ```
///
/// the totals being over the schedulable backends and `total_load + 1` counting the new
/// assignment. With equal weights and `n` backends, no backend goes past
/// `ceil(balance_factor / 100 * (total_load + 1) / n)` by taking it (the paper's bound
/// `ceil((1 + ε) m / n)`), and the least loaded backend relative to its weight always admits,
/// so a pick fails only when no backend is schedulable. Smaller factors balance more tightly
/// and move more keys off their home: 100 gives a perfectly even split and little affinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BoundedLoad {
    /// The cap as a percentage of the weighted average load; at least 100 (lower values are
    /// read as 100).
    pub balance_factor: u32,
}

impl BoundedLoad {
    /// Bounded load with this factor in percent; [`Error::InvalidParameter`] below 100.
    pub fn new(factor: u32) -> Result<BoundedLoad, Error> {
        if factor < 100 {
            return Err(Error::InvalidParameter {
                what: "balance factor",
                why: "at least 100",
            });
        }
        Ok(BoundedLoad {
            balance_factor: factor,
        })
    }

    /// Whether a backend with outstanding `load` and `weight` may take one more, given the
    /// schedulable backends' `total_load` and `total_weight`. Products are 128-bit; weight 0
    /// never admits.
    #[inline]
    pub(crate) fn admits(
        &self,
        load: u64,
        weight: u32,
        total_load: u64,
        total_weight: u64,
    ) -> bool {
        let factor = self.balance_factor.max(100) as u128;
        let used = (load as u128).saturating_mul(100 * total_weight as u128);
        let cap = (factor * weight as u128).saturating_mul(total_load as u128 + 1);
        used < cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn factor_below_100_is_rejected() {
        assert!(BoundedLoad::new(99).is_err());
        assert_eq!(
            BoundedLoad::new(100),
            Ok(BoundedLoad {
                balance_factor: 100
            })
        );
        assert_eq!(BoundedLoad::new(125).map(|b| b.balance_factor), Ok(125));
    }

    #[test]
    fn admits_follows_the_formula() {
        let b = BoundedLoad {
            balance_factor: 125,
        };
        // Four equal backends, 8 outstanding: cap 1.25 * 9 / 4 = 2.8125 per backend.
        assert!(b.admits(2, 1, 8, 4));
        assert!(!b.admits(3, 1, 8, 4));
        // Twice the weight, twice the cap.
        assert!(b.admits(5, 2, 8, 4));
        assert!(!b.admits(0, 0, 8, 4));
        // The very first request always fits.
        assert!(b.admits(0, 1, 0, 1000));
        // Factors below 100 behave as 100, so someone still admits.
        assert!(BoundedLoad { balance_factor: 0 }.admits(0, 1, 0, 1));
        // Saturating products: huge totals neither overflow nor panic.
        let _ = b.admits(u64::MAX, u32::MAX, u64::MAX, u64::MAX);
    }

    /// Feeds requests one at a time to the first admitting backend in a key-dependent order
    /// (what a hash's fallback sequence does) and checks the cap after every assignment.
    fn simulate(factor: u32, n: usize, steps: usize, seed: u64) {
        let b = BoundedLoad {
            balance_factor: factor,
        };
        let mut loads = alloc::vec![0u64; n];
        for step in 0..steps {
            let total: u64 = loads.iter().sum();
            let start = (super::super::mix64(seed ^ step as u64) % n as u64) as usize;
            let pos = (0..n)
                .map(|i| (start + i) % n)
                .find(|&p| b.admits(loads[p], 1, total, n as u64))
                .expect("someone admits");
            loads[pos] += 1;
            let cap = (factor as u64 * (total + 1)).div_ceil(100 * n as u64);
            assert!(loads[pos] <= cap, "load {} over cap {cap}", loads[pos]);
            // Requests also finish, so that the bound is checked under churn too.
            if step % 3 == 2 {
                let done = (super::super::mix64(!seed ^ step as u64) % n as u64) as usize;
                loads[done] = loads[done].saturating_sub(1);
            }
        }
    }

    #[test]
    fn equal_weights_stay_under_the_cap() {
        for factor in [100, 101, 125, 150, 200, 1000] {
            for n in [1, 2, 3, 7, 50] {
                simulate(factor, n, 3000, factor as u64 * 31 + n as u64);
            }
        }
    }

    proptest! {
        #[test]
        fn someone_always_admits(factor in 0u32..400,
                                 backends in prop::collection::vec((0u64..10_000, 1u32..=1000), 1..64)) {
            let b = BoundedLoad { balance_factor: factor };
            let total_load: u64 = backends.iter().map(|x| x.0).sum();
            let total_weight: u64 = backends.iter().map(|x| x.1 as u64).sum();
            prop_assert!(backends.iter().any(|&(l, w)| b.admits(l, w, total_load, total_weight)));
        }
    }
}
