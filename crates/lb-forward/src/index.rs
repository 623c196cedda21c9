//! The connection table's index: open addressing with linear probing over 8-byte slots, each
//! holding 32 bits of the key's hash and the 32-bit entry it names. A lookup touches one slot
//! (usually one cache line) and then the connection itself, where the caller compares the full
//! key: half the memory traffic of a map that stores keys in its buckets, which matters once
//! the table outgrows the caches.

/// An empty slot.
const EMPTY: u64 = 0;
/// A removed entry: probing goes on past it.
const TOMBSTONE: u64 = 1;

#[derive(Clone, Debug)]
pub(crate) struct FlowIndex {
    slots: Vec<u64>,
    mask: usize,
    live: usize,
    tombstones: usize,
}

/// The tag of a hash: its upper 32 bits with the lowest forced on, so that a used slot is
/// never [`EMPTY`] or [`TOMBSTONE`].
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
            tombstones: 0,
        }
    }

    /// The entry whose key has this hash and passes `is` (which compares the full key).
    #[inline]
    pub(crate) fn find(&self, hash: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let t = tag(hash);
        let mut i = hash as usize & self.mask;
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

    /// Adds an entry (the caller made sure its key is absent). `false` when the index is full,
    /// which its sizing prevents.
    pub(crate) fn insert(&mut self, hash: u64, entry: u32) -> bool {
        if self.live + 1 > self.slots.len() / 2 {
            return false;
        }
        let mut i = hash as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY || s == TOMBSTONE {
                if s == TOMBSTONE {
                    self.tombstones -= 1;
                }
                self.slots[i] = tag(hash) | u64::from(entry);
                self.live += 1;
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes an entry; `true` if it was there.
    pub(crate) fn remove(&mut self, hash: u64, entry: u32) -> bool {
        let want = tag(hash) | u64::from(entry);
        let mut i = hash as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return false;
            }
            if s == want {
                self.slots[i] = TOMBSTONE;
                self.live -= 1;
                self.tombstones += 1;
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Whether tombstones make probes long enough that a rebuild pays.
    pub(crate) fn needs_rebuild(&self) -> bool {
        self.tombstones > self.slots.len() / 4
    }

    /// Empties the index, keeping its memory, before the entries are inserted again.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(EMPTY);
        self.live = 0;
        self.tombstones = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// The index agrees with a HashMap under inserts and removes, through rebuilds.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((any::<bool>(), 0u64..64, any::<u64>()), 1..400)) {
            let mut idx = FlowIndex::new(64);
            let mut model: HashMap<u64, (u64, u32)> = HashMap::new();
            let mut next = 0u32;
            // Keys are small integers; hashes are arbitrary (collisions included).
            let hash_of = |k: u64, salt: u64| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (salt & 0xff);
            for (insert, key, salt) in ops {
                let h = hash_of(key, salt);
                if insert {
                    if let std::collections::hash_map::Entry::Vacant(e) = model.entry(key) {
                        prop_assert!(idx.insert(h, next));
                        e.insert((h, next));
                        next += 1;
                    }
                } else if let Some((h, entry)) = model.remove(&key) {
                    prop_assert!(idx.remove(h, entry));
                }
                if idx.needs_rebuild() {
                    idx.clear();
                    for (h, e) in model.values() {
                        prop_assert!(idx.insert(*h, *e));
                    }
                }
                for (h, e) in model.values() {
                    prop_assert_eq!(idx.find(*h, |x| x == *e), Some(*e));
                }
            }
        }
    }
}
