//! Deadlines of runs in flight without a heap: one FIFO per distinct timeout. Runs start in
//! time order, so the deadlines (start + timeout) of one timeout arrive sorted and push and
//! pop cost O(1); the earliest is the least of the lanes' fronts. Targets with more than
//! [`LANES`] distinct timeouts share a heap beyond them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// Distinct timeouts with a FIFO of their own.
const LANES: usize = 8;

/// (deadline, run key, run serial).
type Item = (Duration, usize, u64);

#[derive(Debug, Default)]
pub(super) struct Deadlines {
    lanes: Vec<(Duration, VecDeque<Item>)>,
    overflow: BinaryHeap<Reverse<Item>>,
}

impl Deadlines {
    /// Records that run `key` (as of `serial`), started with `timeout`, ends at `deadline`.
    pub(super) fn push(&mut self, timeout: Duration, deadline: Duration, key: usize, serial: u64) {
        let item = (deadline, key, serial);
        let lane = match self.lanes.iter().position(|(t, _)| *t == timeout) {
            Some(i) => i,
            None if self.lanes.len() < LANES => {
                self.lanes.push((timeout, VecDeque::new()));
                self.lanes.len() - 1
            }
            None => return self.overflow.push(Reverse(item)),
        };
        let queue = &mut self.lanes[lane].1;
        // In order unless the caller's clock went backwards: then sorted in, never early.
        if queue.back().is_none_or(|b| b.0 <= deadline) {
            queue.push_back(item);
        } else {
            let at = queue.partition_point(|b| b.0 <= deadline);
            queue.insert(at, item);
        }
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Duration> {
        let lanes = self
            .lanes
            .iter()
            .filter_map(|(_, q)| q.front().map(|i| i.0));
        let overflow = self.overflow.peek().map(|Reverse(i)| i.0);
        lanes.chain(overflow).min()
    }

    /// A run whose deadline is at or before `now` (key, serial), earliest first.
    pub(super) fn pop_due(&mut self, now: Duration) -> Option<(usize, u64)> {
        let lane = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, (_, q))| q.front().map(|item| (item.0, i)))
            .min();
        let overflow = self.overflow.peek().map(|Reverse(i)| i.0);
        match (lane, overflow) {
            (Some((at, i)), o) if at <= now && o.is_none_or(|o| at <= o) => {
                let (_, key, serial) = self.lanes[i].1.pop_front()?;
                if self.lanes[i].1.is_empty() {
                    self.lanes.swap_remove(i);
                }
                Some((key, serial))
            }
            (_, Some(o)) if o <= now => self.overflow.pop().map(|Reverse((_, k, s))| (k, s)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(d: &mut Deadlines, now: Duration) -> Vec<usize> {
        std::iter::from_fn(|| d.pop_due(now).map(|(k, _)| k)).collect()
    }

    #[test]
    fn earliest_first_across_lanes_and_never_early() {
        let mut d = Deadlines::default();
        // Starts at 0, 10, 20 ms with timeouts 500 and 100 ms.
        d.push(ms(500), ms(500), 1, 1);
        d.push(ms(100), ms(110), 2, 2);
        d.push(ms(500), ms(520), 3, 3);
        d.push(ms(100), ms(120), 4, 4);
        assert_eq!(d.next(), Some(ms(110)));
        assert!(drain(&mut d, ms(109)).is_empty());
        assert_eq!(drain(&mut d, ms(500)), [2, 4, 1]);
        assert_eq!(d.next(), Some(ms(520)));
        assert_eq!(drain(&mut d, ms(600)), [3]);
        assert_eq!(d.next(), None);
    }

    #[test]
    fn out_of_order_push_and_many_timeouts_stay_sorted() {
        let mut d = Deadlines::default();
        d.push(ms(100), ms(300), 1, 1);
        d.push(ms(100), ms(200), 2, 2);
        // More distinct timeouts than lanes: the rest go to the heap.
        for t in 0..20u64 {
            d.push(ms(1000 + t), ms(1000 + 2 * t), 10 + t as usize, 0);
        }
        assert_eq!(drain(&mut d, ms(300)), [2, 1]);
        let rest = drain(&mut d, ms(5000));
        assert_eq!(rest, (10..30).collect::<Vec<_>>());
        assert_eq!(d.next(), None);
    }
}
