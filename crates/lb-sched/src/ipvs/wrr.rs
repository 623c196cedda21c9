//! IPVS `wrr` (ip_vs_wrr.c): passes with a decreasing weight floor `cw`, from the largest
//! weight down to 1 in steps of the weights' gcd; each pass takes, in list order, every backend
//! whose weight reaches the floor.
//!
//! The kernel scans the list and skips the backends below the floor. Here the passes are laid
//! out once per weight change as one cycle of positions, so a pick reads the next entry and
//! skips only entries whose backend refuses connections. The kernel's cursor and floor are
//! kept alongside, so weight changes and failed picks leave exactly the kernel's state. Cycles
//! longer than [`MAX_CYCLE`] fall back to the kernel's scan.

use crate::Backend;
use alloc::vec::Vec;

/// The longest cycle laid out (8 MiB of positions).
const MAX_CYCLE: u64 = 1 << 21;

#[derive(Clone, Debug)]
pub(crate) struct WeightedRoundRobin {
    /// The last backend picked, or the list head (`mark->cl`).
    cursor: Option<usize>,
    /// The current weight floor.
    cw: i64,
    /// The first floor: the largest weight less the gcd plus one, so that the last pass runs
    /// at 1.
    mw: i64,
    /// The step: the gcd of the positive weights (1 if none).
    di: i64,
    /// The laid-out passes, unless the cycle is too long.
    cycle: Option<Cycle>,
}

/// Every pass's backends in list order, one pass after the other.
#[derive(Clone, Debug, Default)]
struct Cycle {
    entries: Vec<u32>,
    /// Where each pass starts in `entries`, plus the end.
    pass_start: Vec<usize>,
    /// The next entry to examine: just after the cursor in the current pass.
    next: usize,
    /// The pass the last entry picked belongs to.
    pass: usize,
}

impl WeightedRoundRobin {
    /// `ip_vs_wrr_init_svc`: the first pass starts at the largest weight.
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let (di, mw) = Self::steps(backends);
        let mut wrr = WeightedRoundRobin {
            cursor: None,
            cw: mw,
            mw,
            di,
            cycle: None,
        };
        wrr.lay_out(backends);
        wrr
    }

    #[cfg(test)]
    fn scanning(backends: &[Backend]) -> Self {
        let mut wrr = Self::new(backends);
        wrr.cycle = None;
        wrr
    }

    fn steps(backends: &[Backend]) -> (i64, i64) {
        let mut g = 0u32;
        let mut max = 0u32;
        for b in backends {
            let w = b.effective_weight;
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            max = max.max(w);
        }
        let di = if g == 0 { 1 } else { g as i64 };
        (di, max as i64 - (di - 1))
    }

    /// `ip_vs_wrr_dest_changed`: after any add, removal or weight change the scan restarts
    /// from the list head, and the floor is kept on the new step grid.
    pub(crate) fn changed(&mut self, backends: &[Backend]) {
        self.cursor = None;
        (self.di, self.mw) = Self::steps(backends);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
        self.lay_out(backends);
    }

    /// Lays out the passes for the current weights, positioned at the current state.
    fn lay_out(&mut self, backends: &[Backend]) {
        self.cycle = None;
        if self.mw <= 0 {
            return;
        }
        let len: u64 = backends
            .iter()
            .map(|b| (b.effective_weight as i64 / self.di) as u64)
            .sum();
        if len > MAX_CYCLE {
            return;
        }
        let mut cycle = Cycle {
            entries: Vec::with_capacity(len as usize),
            ..Cycle::default()
        };
        let mut floor = self.mw;
        while floor > 0 {
            cycle.pass_start.push(cycle.entries.len());
            let members = backends
                .iter()
                .enumerate()
                .filter(|(_, b)| b.effective_weight as i64 >= floor);
            cycle.entries.extend(members.map(|(i, _)| i as u32));
            floor -= self.di;
        }
        cycle.pass_start.push(cycle.entries.len());
        self.cycle = Some(cycle);
        self.seek();
    }

    /// Points the cycle just after the kernel's cursor in the pass of the current floor.
    fn seek(&mut self) {
        let Some(cycle) = &mut self.cycle else { return };
        let passes = cycle.pass_start.len() - 1;
        let pass = (((self.mw - self.cw) / self.di).max(0) as usize).min(passes.saturating_sub(1));
        let (start, end) = (cycle.pass_start[pass], cycle.pass_start[pass + 1]);
        let after = match self.cursor {
            None => 0,
            Some(c) => cycle.entries[start..end].partition_point(|&p| p as usize <= c),
        };
        cycle.next = start + after;
        cycle.pass = pass;
    }

    /// `ip_vs_wrr_schedule`.
    #[inline]
    pub(crate) fn pick(&mut self, backends: &[Backend]) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let Some(cycle) = &mut self.cycle else {
            return self.scan(backends);
        };
        let len = cycle.entries.len();
        for _ in 0..len {
            if cycle.next == len {
                cycle.next = 0;
            }
            let at = cycle.next;
            let pos = cycle.entries[at] as usize;
            cycle.next += 1;
            if backends[pos].is_schedulable() {
                // The pass holding `at` gives the floor the kernel would be at.
                if at < cycle.pass_start[cycle.pass] {
                    cycle.pass = 0;
                }
                while cycle.pass_start[cycle.pass + 1] <= at {
                    cycle.pass += 1;
                }
                self.cw = self.mw - cycle.pass as i64 * self.di;
                self.cursor = Some(pos);
                return Some(pos);
            }
        }
        self.fail();
        None
    }

    /// Nothing is schedulable: the state the kernel's loop gives up in. It gives up at the
    /// list head with the first floor, or on its cursor in the last pass once it has wrapped.
    fn fail(&mut self) {
        let last = self.cursor;
        let (mut last_pass, mut restarted, mut stop) = (false, false, false);
        loop {
            if stop {
                break;
            }
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cursor = None;
                    break;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            stop = last_pass && restarted && last.is_some();
        }
        self.seek();
    }

    /// The kernel's scan, for cycles too long to lay out.
    fn scan(&mut self, backends: &[Backend]) -> Option<usize> {
        let last = self.cursor;
        let mut stop = None;
        let (mut last_pass, mut restarted) = (false, false);
        let mut start = last.map_or(0, |c| c + 1);
        loop {
            for (i, b) in backends.iter().enumerate().skip(start) {
                if b.is_schedulable() && b.effective_weight as i64 >= self.cw {
                    self.cursor = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cursor = Some(i);
                    return None;
                }
            }
            start = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cursor = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }

    /// The current weight floor, for explanations.
    pub(crate) fn floor(&self) -> i64 {
        self.cw
    }
}

pub(crate) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Availability, BackendId};
    use proptest::prelude::*;

    fn backends(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(BackendId(i as u32), w))
            .collect()
    }

    proptest! {
        /// The laid-out cycle and the kernel's scan agree pick for pick, including failed
        /// picks and the state they leave, through weight and availability changes.
        #[test]
        fn cycle_matches_the_kernel_scan(
            weights in prop::collection::vec(0..9u32, 0..8),
            ops in prop::collection::vec((0..4u8, 0..8usize, 0..9u32), 0..300),
        ) {
            let mut list = backends(&weights);
            let mut fast = WeightedRoundRobin::new(&list);
            let mut slow = WeightedRoundRobin::scanning(&list);
            for (op, i, w) in ops {
                match op {
                    0 | 1 => prop_assert_eq!(fast.pick(&list), slow.pick(&list)),
                    2 if !list.is_empty() => {
                        let i = i % list.len();
                        list[i].effective_weight = w;
                        fast.changed(&list);
                        slow.changed(&list);
                        slow.cycle = None;
                    }
                    _ if !list.is_empty() => {
                        let n = list.len();
                        let b = &mut list[i % n];
                        b.availability = if b.availability == Availability::Up {
                            Availability::Down
                        } else {
                            Availability::Up
                        };
                    }
                    _ => {}
                }
                prop_assert_eq!((fast.cursor, fast.cw), (slow.cursor, slow.cw));
            }
        }
    }
}
