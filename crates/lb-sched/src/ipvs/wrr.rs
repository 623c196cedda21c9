//! IPVS `wrr` (ip_vs_wrr.c): passes with a decreasing weight floor `cw`, from the largest
//! weight down to 1 in steps of the weights' gcd; each pass takes, in list order, every backend
//! whose weight reaches the floor.
//!
//! The kernel scans the list and skips the backends below the floor. Here the passes are laid
//! out once per weight change as one cycle of positions, so a pick reads the next entry and
//! skips only entries whose backend refuses connections. The kernel's cursor and floor are
//! kept alongside, so weight changes and failed picks leave exactly the kernel's state. Cycles
//! longer than [`MAX_CYCLE`] fall back to the kernel's scan.

use super::tournament::{Rule, Tournament};
use crate::Backend;
use crate::roster::Roster;
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
    /// The schedulable backend with the highest weight: passes above its weight hold nothing
    /// schedulable and are skipped whole, and none at all means the pick fails at once.
    heaviest: Tournament,
    /// The first pass and floor at most the heaviest schedulable weight ([`Self::pass_at_most`]),
    /// kept up to date with `heaviest`; `None` when nothing is schedulable.
    top: Option<(usize, i64)>,
}

/// Every pass's backends in list order, one pass after the other.
#[derive(Clone, Debug, Default)]
struct Cycle {
    /// A position and the pass it belongs to.
    entries: Vec<(u32, u32)>,
    /// Where each pass starts in `entries`, plus the end.
    pass_start: Vec<usize>,
    /// The next entry to examine: just after the cursor in the current pass.
    next: usize,
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
            heaviest: Tournament::new(Rule::Fo, backends),
            top: None,
        };
        wrr.lay_out(backends);
        wrr.find_top(backends);
        wrr
    }

    fn find_top(&mut self, backends: &[Backend]) {
        self.top = self
            .heaviest
            .pick()
            .map(|h| self.pass_at_most(backends[h].effective_weight as i64));
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
        self.heaviest.rebuild(backends);
        self.lay_out(backends);
        self.find_top(backends);
    }

    /// A backend's availability or overload flag may have changed.
    #[inline]
    pub(crate) fn refresh(&mut self, backends: &[Backend], pos: usize) {
        self.heaviest.update(backends, pos);
        self.find_top(backends);
    }

    /// The first pass (from the top) whose floor is at most `weight`, and that floor. No
    /// division in the common case, the heaviest backend being schedulable.
    #[inline]
    fn pass_at_most(&self, weight: i64) -> (usize, i64) {
        if weight >= self.mw {
            return (0, self.mw);
        }
        let steps = (self.mw - weight + self.di - 1) / self.di;
        (steps as usize, self.mw - steps * self.di)
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
        // The number of passes is at most the cycle's length.
        let mut pass = 0u32;
        while floor > 0 {
            cycle.pass_start.push(cycle.entries.len());
            let members = backends
                .iter()
                .enumerate()
                .filter(|(_, b)| b.effective_weight as i64 >= floor);
            cycle.entries.extend(members.map(|(i, _)| (i as u32, pass)));
            floor -= self.di;
            pass += 1;
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
            Some(c) => cycle.entries[start..end].partition_point(|&(p, _)| p as usize <= c),
        };
        cycle.next = start + after;
    }

    /// `ip_vs_wrr_schedule`.
    #[inline]
    pub(crate) fn pick(&mut self, backends: &[Backend], roster: &Roster) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let Some((top_pass, top)) = self.top else {
            self.fail();
            return None;
        };
        let Some(cycle) = &mut self.cycle else {
            return Some(self.scan(backends, roster, top));
        };
        // A pass above `top` has nothing schedulable; from `top` down every pass holds the
        // heaviest backend, so the walk ends within one pass after the current one.
        loop {
            let (pos, pass) = match cycle.entries.get(cycle.next) {
                Some(&(_, pass)) if (pass as usize) < top_pass => {
                    cycle.next = cycle.pass_start[top_pass];
                    continue;
                }
                Some(&(pos, pass)) => (pos as usize, pass),
                None => {
                    cycle.next = 0;
                    continue;
                }
            };
            cycle.next += 1;
            if roster.schedulable(pos) {
                self.cw = self.mw - pass as i64 * self.di;
                self.cursor = Some(pos);
                return Some(pos);
            }
        }
    }

    /// Nothing is schedulable: the state the kernel's loop gives up in, in closed form. From
    /// the list head it gives up at the head with the first floor. From a backend, it gives up
    /// on that backend in the last pass if it started in the last pass (it wraps once and
    /// stops there), else at the head with the first floor (the last pass ran before the wrap).
    fn fail(&mut self) {
        let last_floor = self.mw - ((self.mw - 1) / self.di) * self.di;
        if self.cursor.is_some() && self.cw <= self.di {
            self.cw = last_floor;
        } else {
            self.cursor = None;
            self.cw = self.mw;
        }
        self.seek();
    }

    /// The kernel's scan, for cycles too long to lay out, skipping the passes above `top`
    /// (the floor of the heaviest schedulable backend), where the kernel finds nothing.
    fn scan(&mut self, backends: &[Backend], roster: &Roster, top: i64) -> usize {
        let mut start = self.cursor.map_or(0, |c| c + 1);
        loop {
            if self.cw > top {
                (self.cw, start) = (top, 0);
            }
            for (i, b) in backends.iter().enumerate().skip(start) {
                if roster.schedulable(i) && b.effective_weight as i64 >= self.cw {
                    self.cursor = Some(i);
                    return i;
                }
            }
            start = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
            }
        }
    }

    /// The kernel's loop as written, the reference the tests hold the others to.
    #[cfg(test)]
    fn kernel(&mut self, backends: &[Backend]) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
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
        /// The laid-out cycle, the skipping scan and the kernel's loop agree pick for pick,
        /// including failed picks and the state they leave, through weight and availability
        /// changes.
        #[test]
        fn cycle_and_scan_match_the_kernel_loop(
            weights in prop::collection::vec(0..9u32, 0..8),
            ops in prop::collection::vec((0..4u8, 0..8usize, 0..9u32), 0..300),
        ) {
            let mut list = backends(&weights);
            let mut fast = WeightedRoundRobin::new(&list);
            let mut scan = WeightedRoundRobin::scanning(&list);
            let mut kernel = WeightedRoundRobin::new(&list);
            for (op, i, w) in ops {
                match op {
                    0 | 1 => {
                        let expected = kernel.kernel(&list);
                        let roster = Roster::new(&list);
                        prop_assert_eq!(fast.pick(&list, &roster), expected);
                        prop_assert_eq!(scan.pick(&list, &roster), expected);
                    }
                    2 if !list.is_empty() => {
                        let i = i % list.len();
                        list[i].effective_weight = w;
                        for wrr in [&mut fast, &mut scan, &mut kernel] {
                            wrr.changed(&list);
                        }
                        scan.cycle = None;
                    }
                    _ if !list.is_empty() => {
                        let n = list.len();
                        let b = &mut list[i % n];
                        b.availability = if b.availability == Availability::Up {
                            Availability::Down
                        } else {
                            Availability::Up
                        };
                        for wrr in [&mut fast, &mut scan] {
                            wrr.refresh(&list, i % n);
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!((fast.cursor, fast.cw), (kernel.cursor, kernel.cw));
                prop_assert_eq!((scan.cursor, scan.cw), (kernel.cursor, kernel.cw));
            }
        }
    }

    #[test]
    fn huge_weights_pick_in_bounded_time() {
        // Found by the sched_ops fuzz target: the kernel's loop walks every pass between the
        // largest weight and the first schedulable backend.
        let mut list = backends(&[u32::MAX, 1, u32::MAX - 1]);
        let mut wrr = WeightedRoundRobin::new(&list);
        list[0].availability = Availability::Down;
        wrr.refresh(&list, 0);
        for _ in 0..10 {
            assert!(wrr.pick(&list, &Roster::new(&list)).is_some());
        }
        list[1].availability = Availability::Down;
        list[2].availability = Availability::Down;
        wrr.refresh(&list, 1);
        wrr.refresh(&list, 2);
        assert_eq!(wrr.pick(&list, &Roster::new(&list)), None);
    }
}
