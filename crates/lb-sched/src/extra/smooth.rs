//! nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`): every pick adds each
//! backend's weight to its credit, takes the highest credit (the first on a tie) and charges
//! it the total. Weights 5,1,1 give `0 0 1 0 2 0 0`.
//!
//! The sequence repeats every `sum(weight) / gcd` picks, so the cycle is computed once per
//! change of weights or availability and a pick reads the next entry: O(1). A backend that is
//! overloaded when its turn comes is skipped. Above [`MAX_CYCLE`] entries the credits are
//! updated on every pick instead, as nginx does: O(n).

use crate::Backend;
use crate::ipvs::gcd;
use crate::roster::Roster;
use alloc::vec::Vec;

/// The longest cycle kept in memory (4 MiB of positions).
pub(crate) const MAX_CYCLE: u64 = 1 << 20;

#[derive(Clone, Debug, Default)]
pub(crate) struct Smooth {
    /// The precomputed cycle of positions, or empty when credits are kept live.
    cycle: Vec<u32>,
    next: usize,
    /// Live credits, when the cycle would be too long.
    credits: Vec<i64>,
}

fn member(b: &Backend) -> bool {
    b.availability == crate::Availability::Up && b.effective_weight > 0
}

impl Smooth {
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let mut s = Smooth::default();
        s.rebuild(backends);
        s
    }

    /// Restarts from zero credits over the backends that are up and weighted.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.next = 0;
        self.cycle.clear();
        self.credits = alloc::vec![0; backends.len()];
        let g = backends
            .iter()
            .filter(|b| member(b))
            .fold(0, |g, b| gcd(g, b.effective_weight));
        if g == 0 {
            return;
        }
        let len: u64 = backends
            .iter()
            .filter(|b| member(b))
            .map(|b| (b.effective_weight / g) as u64)
            .sum();
        if len > MAX_CYCLE {
            return;
        }
        self.cycle.reserve(len as usize);
        for _ in 0..len {
            if let Some(pos) = self.step(backends, member, g) {
                self.cycle.push(pos as u32);
            }
        }
        self.credits.fill(0);
    }

    /// One step of nginx's loop over the backends `eligible` accepts.
    fn step(
        &mut self,
        backends: &[Backend],
        eligible: impl Fn(&Backend) -> bool,
        g: u32,
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut total = 0i64;
        for (i, b) in backends.iter().enumerate() {
            if !eligible(b) {
                continue;
            }
            let w = (b.effective_weight / g) as i64;
            self.credits[i] += w;
            total += w;
            if best.is_none_or(|j| self.credits[i] > self.credits[j]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.credits[best] -= total;
        Some(best)
    }

    #[inline]
    pub(crate) fn pick(&mut self, backends: &[Backend], roster: &Roster) -> Option<usize> {
        if self.cycle.is_empty() {
            return self.step(backends, Backend::is_schedulable, 1);
        }
        let len = self.cycle.len();
        for _ in 0..len {
            let pos = self.cycle[self.next] as usize;
            self.next += 1;
            if self.next == len {
                self.next = 0;
            }
            if roster.schedulable(pos) {
                return Some(pos);
            }
        }
        None
    }
}
