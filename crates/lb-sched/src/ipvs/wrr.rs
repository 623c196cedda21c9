//! IPVS `wrr` (ip_vs_wrr.c): passes with a decreasing weight floor `cw`, from the largest
//! weight down to 1 in steps of the weights' gcd; each pass takes, in list order, every backend
//! whose weight reaches the floor.

use crate::Backend;

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
}

impl WeightedRoundRobin {
    /// `ip_vs_wrr_init_svc`: the first pass starts at the largest weight.
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let (di, mw) = Self::steps(backends);
        WeightedRoundRobin {
            cursor: None,
            cw: mw,
            mw,
            di,
        }
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
    }

    /// `ip_vs_wrr_schedule`, including its termination rules when nothing is schedulable.
    pub(crate) fn pick(&mut self, backends: &[Backend]) -> Option<usize> {
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
