//! IPVS `twos` (ip_vs_twos.c): two weighted random draws, keep the less loaded per unit of
//! weight.

use crate::Backend;
use crate::fenwick::WeightSums;
use rand_core::Rng;

/// `ip_vs_twos_schedule`: `r = rand32 % (total + 1)` twice; each draw lands on the first
/// schedulable backend whose running weight sum reaches it; the second wins only if
/// `w2 * overhead1 > w1 * overhead2`.
pub(crate) fn pick(backends: &[Backend], sums: &WeightSums, rng: &mut dyn Rng) -> Option<usize> {
    let total = sums.total();
    if total == 0 {
        return None;
    }
    let modulus = total + 1;
    let r1 = rng.next_u32() as u64 % modulus;
    let r2 = rng.next_u32() as u64 % modulus;
    let c1 = sums.find(r1.max(1))?;
    let c2 = sums.find(r2.max(1))?;
    let (b1, b2) = (&backends[c1], &backends[c2]);
    let w1 = b1.effective_weight as u128;
    let w2 = b2.effective_weight as u128;
    let better = w2 * b1.load.ipvs_overhead() as u128 > w1 * b2.load.ipvs_overhead() as u128;
    Some(if better { c2 } else { c1 })
}
