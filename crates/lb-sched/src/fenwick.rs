//! Prefix sums of the schedulable backends' weights (a Fenwick tree), so that weighted random
//! draws find their backend in O(log n) instead of walking the list.

use crate::Backend;
use alloc::vec::Vec;

#[derive(Clone, Debug, Default)]
pub(crate) struct WeightSums {
    /// 1-based Fenwick array.
    tree: Vec<u64>,
    /// Each position's current contribution.
    weights: Vec<u64>,
    total: u64,
    /// Each position's outstanding load while schedulable, and their sum (for bounded load).
    loads: Vec<u64>,
    total_load: u64,
}

fn load(b: &Backend) -> u64 {
    if b.is_schedulable() {
        b.load.outstanding()
    } else {
        0
    }
}

fn contribution(b: &Backend) -> u64 {
    if b.is_schedulable() {
        b.effective_weight as u64
    } else {
        0
    }
}

impl WeightSums {
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let mut sums = WeightSums::default();
        sums.rebuild(backends);
        sums
    }

    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        let n = backends.len();
        self.weights = backends.iter().map(contribution).collect();
        self.total = self.weights.iter().sum();
        self.loads = backends.iter().map(load).collect();
        self.total_load = self.loads.iter().sum();
        self.tree = alloc::vec![0; n + 1];
        for i in 1..=n {
            self.tree[i] += self.weights[i - 1];
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                self.tree[parent] += self.tree[i];
            }
        }
    }

    pub(crate) fn update(&mut self, backends: &[Backend], pos: usize) {
        let (Some(b), Some(old)) = (backends.get(pos), self.weights.get(pos).copied()) else {
            return;
        };
        let new_load = load(b);
        if let Some(old_load) = self.loads.get_mut(pos) {
            self.total_load = self.total_load - *old_load + new_load;
            *old_load = new_load;
        }
        let new = contribution(b);
        if new == old {
            return;
        }
        self.weights[pos] = new;
        self.total = self.total - old + new;
        let mut i = pos + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i] - old + new;
            i += i & i.wrapping_neg();
        }
    }

    /// The sum of the schedulable weights.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The sum of the schedulable backends' outstanding loads.
    pub(crate) fn total_load(&self) -> u64 {
        self.total_load
    }

    /// The first position whose inclusive prefix sum reaches `target` (1 ..= total), which is
    /// always a schedulable backend.
    pub(crate) fn find(&self, target: u64) -> Option<usize> {
        if target == 0 || target > self.total {
            return None;
        }
        let n = self.tree.len() - 1;
        let (mut pos, mut rest) = (0usize, target);
        let mut step = if n == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < rest {
                pos = next;
                rest -= self.tree[next];
            }
            step /= 2;
        }
        Some(pos)
    }
}
