//! Weighted random and power of d choices.

use crate::Backend;
use crate::fenwick::WeightSums;
use rand_core::Rng;

/// One draw in proportion to weight among the schedulable backends.
#[inline]
pub(crate) fn weighted(sums: &WeightSums, rng: &mut dyn Rng) -> Option<usize> {
    let total = sums.total();
    if total == 0 {
        return None;
    }
    sums.find(1 + rng.next_u64() % total)
}

/// `choices` weighted draws; the lowest `(outstanding + 1) / weight` wins, the earliest draw on
/// a tie (Envoy's least request with `choice_count`, weighted by its load formula with bias 1).
pub(crate) fn power_of_choices(
    backends: &[Backend],
    sums: &WeightSums,
    choices: u8,
    rng: &mut dyn Rng,
) -> Option<usize> {
    let mut best = weighted(sums, rng)?;
    for _ in 1..choices {
        let Some(other) = weighted(sums, rng) else {
            break;
        };
        let (b, o) = (&backends[best], &backends[other]);
        let b_cost = (b.load.outstanding() + 1) as u128 * o.effective_weight as u128;
        let o_cost = (o.load.outstanding() + 1) as u128 * b.effective_weight as u128;
        if o_cost < b_cost {
            best = other;
        }
    }
    Some(best)
}
