//! Earliest deadline first weighted round robin (Envoy's `EdfScheduler`): each backend's next
//! deadline is the current time plus `1 / weight`; a pick takes the earliest deadline, the
//! earliest added on a tie. O(log n) per pick.

use crate::Backend;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline: f64,
    seq: u64,
    pos: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.deadline
            .total_cmp(&other.deadline)
            .then(self.seq.cmp(&other.seq))
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Edf {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Entries popped because their backend was overloaded, to put back after a pick.
    skipped: Vec<Entry>,
    seq: u64,
}

impl Edf {
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let mut edf = Edf::default();
        edf.rebuild(backends);
        edf
    }

    /// Restarts at time 0 over the backends that are up and weighted, in list order.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.heap.clear();
        self.seq = 0;
        for (pos, b) in backends.iter().enumerate() {
            if b.availability == crate::Availability::Up && b.effective_weight > 0 {
                let deadline = 1.0 / b.effective_weight as f64;
                self.heap.push(Reverse(Entry {
                    deadline,
                    seq: self.seq,
                    pos: pos as u32,
                }));
                self.seq += 1;
            }
        }
        self.skipped = Vec::with_capacity(self.heap.len());
    }

    pub(crate) fn pick(&mut self, backends: &[Backend]) -> Option<usize> {
        let mut chosen = None;
        while let Some(Reverse(entry)) = self.heap.pop() {
            let Some(b) = backends.get(entry.pos as usize) else {
                continue;
            };
            if !b.is_schedulable() {
                self.skipped.push(entry);
                continue;
            }
            let next = entry.deadline + 1.0 / b.effective_weight as f64;
            self.heap.push(Reverse(Entry {
                deadline: next,
                seq: self.seq,
                pos: entry.pos,
            }));
            self.seq += 1;
            chosen = Some(entry.pos as usize);
            break;
        }
        for entry in self.skipped.drain(..) {
            self.heap.push(Reverse(entry));
        }
        chosen
    }
}
