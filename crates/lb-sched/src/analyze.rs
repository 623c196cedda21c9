//! Measuring a choice of algorithm: each backend's share of the keys, and how many keys move
//! when the backend set or the weights change.
//!
//! ```
//! use lb_sched::{analyze, Algorithm, Backend, BackendId, Pool, PoolConfig, Request};
//!
//! let config = PoolConfig::new(Algorithm::from_name("maglev").unwrap());
//! let backends = (0..10).map(|i| Backend::new(BackendId(i), 1));
//! let before = Pool::with_backends(config.clone(), backends.clone()).unwrap();
//! let after = Pool::with_backends(config, backends.filter(|b| b.id() != BackendId(3))).unwrap();
//! let keys = (0..10_000u64).map(Request::from_key);
//! let d = analyze::disruption(&before, &after, keys).unwrap();
//! assert!(d.moved_fraction < 0.15); // about 1/10 of the keys, those of backend 3
//! ```

use crate::{BackendId, Error, Pool, Request};
use alloc::vec::Vec;
use core::time::Duration;
use rand_core::Rng;

/// How keys spread over backends.
#[derive(Clone, Debug, PartialEq)]
pub struct Shares {
    /// Keys per backend, in list order (backends with none included).
    pub counts: Vec<(BackendId, u64)>,
    /// Keys that found no backend.
    pub unplaced: u64,
    /// The smallest, largest and mean fraction of the keys a backend received.
    pub min: f64,
    /// See [`Shares::min`].
    pub max: f64,
    /// See [`Shares::min`].
    pub mean: f64,
    /// The standard deviation of the fractions.
    pub stddev: f64,
}

impl Shares {
    fn from_counts(counts: Vec<(BackendId, u64)>, unplaced: u64) -> Self {
        let placed: u64 = counts.iter().map(|c| c.1).sum();
        let fractions: Vec<f64> = counts
            .iter()
            .map(|c| {
                if placed == 0 {
                    0.0
                } else {
                    c.1 as f64 / placed as f64
                }
            })
            .collect();
        let n = fractions.len().max(1) as f64;
        let mean = fractions.iter().sum::<f64>() / n;
        let var = fractions
            .iter()
            .map(|f| (f - mean) * (f - mean))
            .sum::<f64>()
            / n;
        Shares {
            min: fractions
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min)
                .min(1.0),
            max: fractions.iter().copied().fold(0.0, f64::max),
            mean,
            stddev: libm::sqrt(var),
            counts,
            unplaced,
        }
    }

    /// The count for one backend.
    pub fn count(&self, id: BackendId) -> u64 {
        self.counts.iter().find(|c| c.0 == id).map_or(0, |c| c.1)
    }
}

/// The effect of a change, key by key.
#[derive(Clone, Debug, PartialEq)]
pub struct Disruption {
    /// Keys examined.
    pub keys: u64,
    /// Keys whose backend changed (including keys that lost or found a backend).
    pub moved: u64,
    /// `moved / keys`.
    pub moved_fraction: f64,
    /// Shares before.
    pub before: Shares,
    /// Shares after.
    pub after: Shares,
}

fn tally(pool: &Pool) -> Vec<(BackendId, u64)> {
    pool.backends().iter().map(|b| (b.id(), 0)).collect()
}

fn count(counts: &mut [(BackendId, u64)], unplaced: &mut u64, id: Option<BackendId>) {
    match id.and_then(|id| counts.iter_mut().find(|c| c.0 == id)) {
        Some(c) => c.1 += 1,
        None => *unplaced += 1,
    }
}

/// Where each key goes in `before` and in `after` ([`Pool::lookup`]: hashing algorithms only).
pub fn disruption(
    before: &Pool,
    after: &Pool,
    keys: impl IntoIterator<Item = Request>,
) -> Result<Disruption, Error> {
    let (mut b_counts, mut a_counts) = (tally(before), tally(after));
    let (mut b_none, mut a_none, mut n, mut moved) = (0, 0, 0u64, 0u64);
    for key in keys {
        let (b, a) = (before.lookup(&key)?, after.lookup(&key)?);
        n += 1;
        moved += (a != b) as u64;
        count(&mut b_counts, &mut b_none, b);
        count(&mut a_counts, &mut a_none, a);
    }
    Ok(Disruption {
        keys: n,
        moved,
        moved_fraction: if n == 0 { 0.0 } else { moved as f64 / n as f64 },
        before: Shares::from_counts(b_counts, b_none),
        after: Shares::from_counts(a_counts, a_none),
    })
}

/// How lookups of these keys spread ([`Pool::lookup`]: hashing algorithms only).
pub fn lookup_shares(
    pool: &Pool,
    keys: impl IntoIterator<Item = Request>,
) -> Result<Shares, Error> {
    let (mut counts, mut none) = (tally(pool), 0);
    for key in keys {
        count(&mut counts, &mut none, pool.lookup(&key)?);
    }
    Ok(Shares::from_counts(counts, none))
}

/// How successive picks spread, for any algorithm. Each pick counts as a connection opened and
/// closed at once, so load-aware algorithms see no load.
pub fn pick_shares(
    pool: &mut Pool,
    requests: impl IntoIterator<Item = Request>,
    now: Duration,
    rng: &mut dyn Rng,
) -> Shares {
    let (mut counts, mut none) = (tally(pool), 0);
    for req in requests {
        count(&mut counts, &mut none, pool.pick(&req, now, rng));
    }
    Shares::from_counts(counts, none)
}
