//! What the pick path reads of each backend, packed: its id, and whether it takes new
//! connections. A backend's record is about 100 bytes, so 1000 of them overflow L1; a pick
//! reads one 8-byte entry instead, which answers both questions with one load.

use crate::{Backend, BackendId};
use alloc::vec::Vec;

#[derive(Clone, Debug, Default)]
pub(crate) struct Roster {
    /// The id of the backend at `pos` in the low 32 bits, and [`SCHEDULABLE`] when it is
    /// schedulable.
    entries: Vec<u64>,
    /// Bit `pos` is [`Backend::is_schedulable`] of the backend at `pos`, for scans.
    schedulable: Vec<u64>,
}

/// An entry's flag for [`Backend::is_schedulable`]: the sign bit, so that the test is a
/// sign test (no 64-bit mask constant on the pick path).
const SCHEDULABLE: u64 = 1 << 63;

impl Roster {
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let mut roster = Roster::default();
        roster.rebuild(backends);
        roster
    }

    /// After a membership change.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.entries.clear();
        self.entries
            .extend(backends.iter().map(|b| b.id().0 as u64));
        self.schedulable.clear();
        self.schedulable.resize(backends.len().div_ceil(64), 0);
        for pos in 0..backends.len() {
            self.refresh(backends, pos);
        }
    }

    /// After the availability, weight or overload flag of the backend at `pos` changed.
    #[inline]
    pub(crate) fn refresh(&mut self, backends: &[Backend], pos: usize) {
        let on = backends.get(pos).is_some_and(Backend::is_schedulable);
        if let Some(entry) = self.entries.get_mut(pos) {
            *entry = *entry & !SCHEDULABLE | if on { SCHEDULABLE } else { 0 };
        }
        if let Some(word) = self.schedulable.get_mut(pos / 64) {
            let bit = 1u64 << (pos % 64);
            *word = if on { *word | bit } else { *word & !bit };
        }
    }

    /// Whether the backend at `pos` takes new connections (false past the end).
    #[inline]
    pub(crate) fn schedulable(&self, pos: usize) -> bool {
        self.entries.get(pos).is_some_and(|&e| (e as i64) < 0)
    }

    /// The first schedulable position at or after `from`, wrapping around the list once.
    #[inline]
    pub(crate) fn next_schedulable(&self, from: usize) -> Option<usize> {
        if self.schedulable(from) {
            return Some(from);
        }
        // A scan of the bitset, 64 backends a word.
        let words = self.schedulable.len();
        let start = from / 64;
        // The first word without the bits below `from`, then the others in order, then the
        // first word's low bits.
        let head = self.schedulable.get(start)? & (!0u64 << (from % 64));
        let wrapped = self.schedulable[start] & !(!0u64 << (from % 64));
        let rest = (start + 1..words).chain(0..start);
        core::iter::once((start, head))
            .chain(rest.map(|i| (i, self.schedulable[i])))
            .chain(core::iter::once((start, wrapped)))
            .find(|&(_, w)| w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    /// The id of the backend at `pos` when it is schedulable (`None` past the end): the
    /// check and the answer of a pick from one load.
    #[inline]
    pub(crate) fn take(&self, pos: usize) -> Option<BackendId> {
        let &entry = self.entries.get(pos)?;
        ((entry as i64) < 0).then_some(BackendId(entry as u32))
    }

    /// The id of the backend at `pos`.
    #[inline]
    pub(crate) fn id(&self, pos: usize) -> BackendId {
        BackendId(self.entries[pos] as u32)
    }

    /// Whether the roster describes these backends.
    #[cfg(test)]
    pub(crate) fn describes(&self, backends: &[Backend]) -> bool {
        let bit = |pos: usize| self.schedulable[pos / 64] & 1 << (pos % 64) != 0;
        self.entries.len() == backends.len()
            && backends.iter().enumerate().all(|(pos, b)| {
                self.id(pos) == b.id()
                    && self.schedulable(pos) == b.is_schedulable()
                    && bit(pos) == b.is_schedulable()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Availability;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn next_schedulable_is_the_first_at_or_after_wrapping(
            up in prop::collection::vec(any::<bool>(), 0..200), from in 0usize..200,
        ) {
            let backends: Vec<Backend> = up
                .iter()
                .enumerate()
                .map(|(i, &u)| {
                    let a = if u { Availability::Up } else { Availability::Down };
                    Backend::new(BackendId(i as u32), 1).with_availability(a)
                })
                .collect();
            let roster = Roster::new(&backends);
            prop_assert!(roster.describes(&backends));
            let n = backends.len();
            let expected = if n == 0 {
                None
            } else {
                let from = from % n;
                (from..n).chain(0..from).find(|&i| up[i])
            };
            prop_assert_eq!(roster.next_schedulable(from % n.max(1)), expected);
        }
    }
}
