//! The connection table's index: open addressing with linear probing over 8-byte slots, each
//! holding 32 bits of the key's hash and the 32-bit entry it names. A lookup touches one slot
//! (usually one cache line) and then the connection itself, where the caller compares the full
//! key: half the memory traffic of a map that stores keys in its buckets, which matters once
//! the table outgrows the caches.
//!
//! Removal shifts the following entries of the probe run back (no tombstones), so probes stay
//! short under the churn of a SYN flood and the index never needs rebuilding. That needs each
//! entry's home slot, which is why the home is taken from the same hash bits as the tag.

/// An empty slot.
const EMPTY: u64 = 0;

#[derive(Clone, Debug)]
pub(crate) struct FlowIndex {
    slots: Vec<u64>,
    mask: usize,
    live: usize,
}

/// The tag of a hash: its upper 32 bits with the lowest forced on, so that a used slot is
/// never [`EMPTY`].
#[inline]
fn tag(hash: u64) -> u64 {
    ((hash >> 32) | 1) << 32
}

impl FlowIndex {
    /// An index for up to `keys` keys, at most half full.
    pub(crate) fn new(keys: usize) -> Self {
        let n = (keys.max(8) * 2).next_power_of_two();
        FlowIndex {
            slots: vec![EMPTY; n],
            mask: n - 1,
            live: 0,
        }
    }

    /// The home slot of a slot value or tag: bits 33 and up of the hash.
    #[inline]
    fn home(&self, tagged: u64) -> usize {
        (tagged >> 33) as usize & self.mask
    }

    /// The entry whose key has this hash and passes `is` (which compares the full key).
    #[inline]
    pub(crate) fn find(&self, hash: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let t = tag(hash);
        let mut i = self.home(t);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if s & !0xffff_ffff == t && is(s as u32) {
                return Some(s as u32);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Prefetches the home slot of `hash`.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        crate::prefetch::prefetch(&self.slots[self.home(tag(hash))]);
    }

    /// The entry of the first slot of `hash`'s probe run whose tag matches, without comparing
    /// keys: a guess for prefetching the entry itself.
    #[inline]
    pub(crate) fn first_tagged(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Adds an entry (the caller made sure its key is absent). `false` when the index is full,
    /// which its sizing prevents.
    pub(crate) fn insert(&mut self, hash: u64, entry: u32) -> bool {
        if self.live + 1 > self.slots.len() / 2 {
            return false;
        }
        let t = tag(hash);
        let mut i = self.home(t);
        while self.slots[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = t | u64::from(entry);
        self.live += 1;
        true
    }

    /// Removes an entry; `true` if it was there.
    pub(crate) fn remove(&mut self, hash: u64, entry: u32) -> bool {
        let want = tag(hash) | u64::from(entry);
        let mut hole = self.home(want);
        loop {
            let s = self.slots[hole];
            if s == EMPTY {
                return false;
            }
            if s == want {
                break;
            }
            hole = (hole + 1) & self.mask;
        }
        // Backward shift: each later entry of the run that may live at the hole (its home is
        // not cyclically after the hole) moves there, and the hole follows it.
        let mut j = (hole + 1) & self.mask;
        loop {
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let home = self.home(s);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.slots[hole] = EMPTY;
        self.live -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// The index agrees with a HashMap under inserts and removes; hashes are drawn from a
        /// few values so that runs collide and wrap around the end of the table.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((any::<bool>(), 0u64..48, 0u64..6), 1..600)) {
            let mut idx = FlowIndex::new(32);
            let mut model: HashMap<u64, (u64, u32)> = HashMap::new();
            let mut next = 0u32;
            for (insert, key, bucket) in ops {
                // Homes near the end of the 64-slot table, so runs wrap.
                let h = ((60 + bucket) << 33) | (key << 40) | 7;
                if insert {
                    if model.len() < 32 {
                        if let std::collections::hash_map::Entry::Vacant(e) = model.entry(key) {
                            prop_assert!(idx.insert(h, next));
                            e.insert((h, next));
                            next += 1;
                        }
                    }
                } else if let Some((h, entry)) = model.remove(&key) {
                    prop_assert!(idx.remove(h, entry));
                    prop_assert!(!idx.remove(h, entry));
                }
                for (h, e) in model.values() {
                    prop_assert_eq!(idx.find(*h, |x| x == *e), Some(*e));
                }
                prop_assert_eq!(idx.live, model.len());
            }
        }
    }
}
