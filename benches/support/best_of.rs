//! Best-of-N timing for shared, noisy machines: the fastest of N rounds is the cost with the
//! least interference from other tenants, where criterion's estimates carry their load.

/// Runs `rounds` rounds of `per_round` calls of `step` (given a running count) and returns
/// the fastest round's nanoseconds per call.
pub(crate) fn best_of(rounds: usize, per_round: usize, mut step: impl FnMut(usize)) -> f64 {
    let mut best = f64::MAX;
    let mut k = 0;
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        for _ in 0..per_round {
            step(k);
            k += 1;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / per_round as f64);
    }
    best
}
