//! A hashed timer wheel: the schedule of the checker and the reactor's run deadlines.
//!
//! Items live in 1 ms slots over a span of [`SLOTS`] ms ahead of the cursor; later ones wait
//! in an overflow heap and move in as the cursor nears them. Insert and pop are O(1) for items
//! within the span (a probe interval or a timeout, in practice). Exact: [`Wheel::pop_due`]
//! never returns an item before its time, and [`Wheel::next_at`] is the earliest time held.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Slots (1 ms each): the span covered without the overflow heap.
const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;
const TICK_NS: u128 = 1_000_000;

fn tick(at: Duration) -> u64 {
    u64::try_from(at.as_nanos() / TICK_NS).unwrap_or(u64::MAX)
}

/// Items of type `T` ordered by due time.
#[derive(Debug)]
pub(crate) struct Wheel<T> {
    slots: Vec<Vec<(Duration, T)>>,
    /// One bit per non-empty slot.
    occupied: [u64; WORDS],
    /// The tick of the slot at the cursor: slots hold ticks `cursor..cursor + SLOTS`.
    cursor: u64,
    /// Items past the span (and only those: they move in as the cursor advances).
    overflow: BinaryHeap<Reverse<(Duration, T)>>,
}

impl<T: Ord> Default for Wheel<T> {
    fn default() -> Wheel<T> {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            cursor: 0,
            overflow: BinaryHeap::new(),
        }
    }
}

impl<T: Ord> Wheel<T> {
    /// Adds `item`, due at `at` (a time already past is due at once).
    pub(crate) fn insert(&mut self, at: Duration, item: T) {
        let t = tick(at).max(self.cursor);
        if t - self.cursor >= SLOTS as u64 {
            self.overflow.push(Reverse((at, item)));
        } else {
            self.put(t, at, item);
        }
    }

    fn put(&mut self, t: u64, at: Duration, item: T) {
        // The low bits of a tick name its slot; truncation is the intent.
        #[allow(clippy::cast_possible_truncation)]
        let s = (t as usize) % SLOTS;
        self.slots[s].push((at, item));
        self.occupied[s / 64] |= 1 << (s % 64);
    }

    /// Takes out `item`, inserted as due at `at`, if it is still within the span (an item
    /// in the overflow heap stays: the caller must recognise it as stale when it pops).
    /// Whether it was found. O(items in its slot).
    pub(crate) fn remove(&mut self, at: Duration, item: &T) -> bool {
        // The cursor never passes a non-empty slot, so the item sits where `insert` (or
        // `advance`) put it: its own tick's slot, or the cursor's if that tick was past.
        let t = tick(at).max(self.cursor);
        if t - self.cursor >= SLOTS as u64 {
            return false;
        }
        #[allow(clippy::cast_possible_truncation)]
        let s = (t as usize) % SLOTS;
        let slot = &mut self.slots[s];
        let Some(i) = slot.iter().position(|(a, x)| *a == at && x == item) else {
            return false;
        };
        slot.swap_remove(i);
        if slot.is_empty() {
            self.occupied[s / 64] &= !(1 << (s % 64));
        }
        true
    }

    /// The first non-empty slot at or after the cursor, as its tick.
    fn first_tick(&self) -> Option<u64> {
        #[allow(clippy::cast_possible_truncation)]
        let start = (self.cursor as usize) % SLOTS;
        for k in 0..=WORDS {
            let w = (start / 64 + k) % WORDS;
            let mut bits = self.occupied[w];
            if k == 0 {
                bits &= u64::MAX << (start % 64);
            } else if k == WORDS {
                bits &= !(u64::MAX << (start % 64));
            }
            if bits != 0 {
                let s = w * 64 + bits.trailing_zeros() as usize;
                let ahead = (s + SLOTS - start) % SLOTS;
                return Some(self.cursor + ahead as u64);
            }
        }
        None
    }

    /// The earliest due time held.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        match self.first_tick() {
            #[allow(clippy::cast_possible_truncation)]
            Some(t) => self.slots[(t as usize) % SLOTS]
                .iter()
                .map(|(at, _)| *at)
                .min(),
            None => self.overflow.peek().map(|Reverse((at, _))| *at),
        }
    }

    /// One item due at `now` (its due time and the item), if any.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<(Duration, T)> {
        let now_tick = tick(now);
        loop {
            let Some(t) = self.first_tick() else {
                // Nothing within the span: jump, and take in what the overflow now reaches.
                if self.overflow.is_empty() {
                    self.cursor = self.cursor.max(now_tick);
                    return None;
                }
                let next = self
                    .overflow
                    .peek()
                    .map_or(now_tick, |Reverse((at, _))| tick(*at));
                self.advance(next.min(now_tick));
                if next > now_tick {
                    return None;
                }
                continue;
            };
            if t > now_tick {
                self.advance(now_tick);
                return None;
            }
            self.advance(t);
            #[allow(clippy::cast_possible_truncation)]
            let s = (t as usize) % SLOTS;
            let slot = &mut self.slots[s];
            // Every item of a past slot is due; in the current one, only those at or before now.
            let i = if t < now_tick {
                slot.len() - 1
            } else {
                slot.iter().rposition(|(at, _)| *at <= now)?
            };
            let item = slot.swap_remove(i);
            if slot.is_empty() {
                self.occupied[s / 64] &= !(1 << (s % 64));
            }
            return Some(item);
        }
    }

    /// Moves the cursor to `t` (never back) and takes in overflow items now within the span.
    fn advance(&mut self, t: u64) {
        if t <= self.cursor {
            return;
        }
        self.cursor = t;
        while let Some(Reverse((at, _))) = self.overflow.peek() {
            let ot = tick(*at).max(self.cursor);
            if ot - self.cursor >= SLOTS as u64 {
                break;
            }
            if let Some(Reverse((at, item))) = self.overflow.pop() {
                self.put(ot, at, item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pops_in_time_never_early() {
        let mut w = Wheel::default();
        let ms = Duration::from_millis;
        w.insert(ms(5) + Duration::from_micros(500), 1);
        w.insert(ms(3), 2);
        w.insert(ms(10_000), 3);
        assert_eq!(w.next_at(), Some(ms(3)));
        assert_eq!(w.pop_due(ms(2)), None);
        assert_eq!(w.pop_due(ms(5)), Some((ms(3), 2)));
        assert_eq!(w.pop_due(ms(5)), None, "the other is due half a ms later");
        assert_eq!(w.next_at(), Some(ms(5) + Duration::from_micros(500)));
        assert_eq!(w.pop_due(ms(6)).map(|x| x.1), Some(1));
        assert_eq!(w.next_at(), Some(ms(10_000)), "from the overflow");
        assert_eq!(w.pop_due(ms(9_999)), None);
        assert_eq!(w.next_at(), Some(ms(10_000)), "moved into the wheel");
        assert_eq!(w.pop_due(ms(20_000)).map(|x| x.1), Some(3));
        assert_eq!(w.next_at(), None);
        // Past times are due at once, after a long idle jump.
        w.insert(ms(1), 4);
        assert_eq!(w.pop_due(ms(20_000)).map(|x| x.1), Some(4));
        // Removed items never pop, nor count for the next wake-up (nothing is held: the
        // cursor jumps to now, and these two fall within the span).
        assert_eq!(w.pop_due(ms(20_000)), None);
        w.insert(ms(20_010), 5);
        w.insert(ms(20_020), 6);
        assert!(w.remove(ms(20_010), &5));
        assert!(!w.remove(ms(20_010), &5));
        assert_eq!(w.next_at(), Some(ms(20_020)));
        assert_eq!(w.pop_due(ms(30_000)).map(|x| x.1), Some(6));
        assert_eq!(w.pop_due(ms(30_000)), None);
    }

    proptest! {
        /// Against a sorted list: the same items, none early, none left when due.
        #[test]
        fn matches_a_sorted_list(ops in proptest::collection::vec((0u64..12_000, 0u64..3_000), 1..200)) {
            let mut w = Wheel::default();
            let mut all = Vec::new();
            let mut now = Duration::ZERO;
            for (k, (ahead_ms, step_us)) in ops.into_iter().enumerate() {
                let at = now + Duration::from_micros(ahead_ms * 1000 + step_us % 1000);
                w.insert(at, k);
                all.push((at, k));
                // Every third step, take out an earlier item (gone for good unless it waits
                // in the overflow heap, where it stays).
                if k % 3 == 2 {
                    let (at, j) = all[(k * 7) % all.len()];
                    if w.remove(at, &j) {
                        all.retain(|x| *x != (at, j));
                        prop_assert!(!w.remove(at, &j), "removed twice");
                    } else {
                        prop_assert!(tick(at) >= w.cursor + SLOTS as u64, "not found, yet within the span");
                    }
                }
                now += Duration::from_micros(step_us);
                let mut popped = Vec::new();
                while let Some((at, k)) = w.pop_due(now) {
                    prop_assert!(at <= now);
                    popped.push((at, k));
                }
                for p in &popped {
                    let i = all.iter().position(|x| x == p).expect("popped once");
                    all.swap_remove(i);
                }
                prop_assert!(all.iter().all(|(at, _)| *at > now), "a due item stayed");
                prop_assert_eq!(w.next_at(), all.iter().map(|(at, _)| *at).min());
            }
        }
    }
}
