//! Lookup tables of backend positions (Maglev, IPVS `mh`), two bytes a slot while every
//! position fits in 16 bits. A 65537-slot table is then 128 KiB instead of 256 KiB, and a
//! pick's one random read of it more often hits the cache.

use alloc::vec::Vec;

/// A slot's content: a backend position, or none.
pub(crate) trait Position: Copy + Eq {
    const NONE: Self;
    /// `pos`, which must be below [`Position::LIMIT`].
    fn new(pos: usize) -> Self;
    /// One past the largest position this type holds.
    const LIMIT: usize;
    fn get(self) -> Option<usize>;
}

impl Position for u16 {
    const NONE: u16 = u16::MAX;
    const LIMIT: usize = u16::MAX as usize;
    #[inline]
    fn new(pos: usize) -> u16 {
        pos as u16
    }
    #[inline]
    fn get(self) -> Option<usize> {
        (self != Self::NONE).then_some(self as usize)
    }
}

impl Position for u32 {
    const NONE: u32 = u32::MAX;
    const LIMIT: usize = u32::MAX as usize;
    #[inline]
    fn new(pos: usize) -> u32 {
        pos as u32
    }
    #[inline]
    fn get(self) -> Option<usize> {
        (self != Self::NONE).then_some(self as usize)
    }
}

/// A table whose entries are positions below some bound `n`: 16-bit entries when
/// `n <= u16::LIMIT`, else 32-bit ones.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Slots {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl Default for Slots {
    fn default() -> Self {
        Slots::Narrow(Vec::new())
    }
}

impl Slots {
    /// `len` empty slots for positions below `n`.
    pub(crate) fn new(len: usize, n: usize) -> Slots {
        if n <= u16::LIMIT {
            Slots::Narrow(alloc::vec![u16::NONE; len])
        } else {
            Slots::Wide(alloc::vec![u32::NONE; len])
        }
    }

    /// A table for positions below `n` with each slot `f` of this table's slot.
    pub(crate) fn map(&self, n: usize, mut f: impl FnMut(Option<usize>) -> Option<usize>) -> Slots {
        match self {
            Slots::Narrow(t) => Self::collect(n, t.iter().map(|p| f(p.get()))),
            Slots::Wide(t) => Self::collect(n, t.iter().map(|p| f(p.get()))),
        }
    }

    fn collect(n: usize, slots: impl Iterator<Item = Option<usize>>) -> Slots {
        fn entries<T: Position>(slots: impl Iterator<Item = Option<usize>>) -> Vec<T> {
            slots.map(|p| p.map_or(T::NONE, T::new)).collect()
        }
        if n <= u16::LIMIT {
            Slots::Narrow(entries(slots))
        } else {
            Slots::Wide(entries(slots))
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Slots::Narrow(t) => t.len(),
            Slots::Wide(t) => t.len(),
        }
    }

    /// The position in `slot`; `None` when it is empty or past the end.
    #[inline]
    pub(crate) fn get(&self, slot: usize) -> Option<usize> {
        match self {
            Slots::Narrow(t) => t.get(slot).and_then(|p| p.get()),
            Slots::Wide(t) => t.get(slot).and_then(|p| p.get()),
        }
    }

    /// The entry in `slot`, an empty one as a number above every position it can hold;
    /// `None` past the end.
    #[inline]
    pub(crate) fn entry(&self, slot: usize) -> Option<usize> {
        match self {
            Slots::Narrow(t) => t.get(slot).map(|&p| p as usize),
            Slots::Wide(t) => t.get(slot).map(|&p| p as usize),
        }
    }

    /// How many slots each position below `n` holds.
    pub(crate) fn counts(&self, n: usize) -> Vec<u64> {
        let mut counts = alloc::vec![0u64; n];
        for slot in 0..self.len() {
            if let Some(c) = self.get(slot).and_then(|p| counts.get_mut(p)) {
                *c += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_follows_the_bound_and_entries_survive() {
        let narrow = Slots::new(5, 65_535);
        assert!(matches!(narrow, Slots::Narrow(_)));
        assert!(matches!(Slots::new(5, 65_536), Slots::Wide(_)));
        let filled = narrow.map(65_535, |_| Some(65_534));
        assert_eq!(filled.get(4), Some(65_534));
        let wide = filled.map(70_000, |p| p.map(|p| p + 1000));
        assert_eq!((wide.get(0), wide.get(5)), (Some(66_534), None));
        assert_eq!(wide.map(10, |_| None).counts(10), [0; 10]);
        assert_eq!(filled.counts(65_535)[65_534], 5);
    }
}
