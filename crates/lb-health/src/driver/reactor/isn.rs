//! Half-open SYN sequence numbers that name their run: a reply's acknowledgment number leads
//! to the run's slab key without a map.

use crate::probe::expected_ack;

/// Puts a run's slab key (always below the reactor's `max_in_flight`) in the low bits of its
/// SYN's sequence number and random bits above them, all XORed with a per-reactor random salt.
/// A reply names a key; it counts only if that run waits for exactly its sender and its
/// acknowledgment number (the random bits included), so a forged or stale reply matches
/// nothing unless it guesses the salted number.
#[derive(Clone, Copy, Debug)]
pub(super) struct IsnKeys {
    salt: u32,
    /// The low bits that hold a key.
    bits: u32,
}

impl IsnKeys {
    /// Keys below `max_in_flight`, salted with `salt`.
    pub(super) fn new(max_in_flight: usize, salt: u32) -> IsnKeys {
        let bits = usize::BITS - max_in_flight.saturating_sub(1).leading_zeros();
        IsnKeys {
            salt,
            bits: bits.min(u32::BITS),
        }
    }

    fn mask(self) -> u32 {
        u32::MAX.checked_shr(u32::BITS - self.bits).unwrap_or(0)
    }

    /// The sequence number of a SYN sent by run `key`; `None` if the key does not fit.
    pub(super) fn isn(self, key: usize, random: u32) -> Option<u32> {
        let key = u32::try_from(key).ok().filter(|k| k & !self.mask() == 0)?;
        Some(((random & !self.mask()) | key) ^ self.salt)
    }

    /// The run key an acknowledgment number names (the caller checks that run's sender and
    /// acknowledgment number).
    pub(super) fn key(self, ack: u32) -> usize {
        // `expected_ack` adds one: undone by subtracting it.
        let isn = ack.wrapping_sub(expected_ack(0));
        // A u32 always fits a usize on the targets mio supports.
        usize::try_from((isn ^ self.salt) & self.mask()).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::IsnKeys;
    use crate::probe::expected_ack;

    #[test]
    fn every_key_comes_back_from_its_ack_whatever_the_random_bits() {
        for (max, bits) in [(1, 0), (2, 1), (64, 6), (4096, 12), (4097, 13)] {
            let k = IsnKeys::new(max, 0x9e37_79b9);
            assert_eq!(k.bits, bits);
            for key in [0, max / 2, max - 1] {
                for random in [0, 0xdead_beef, u32::MAX] {
                    let isn = k.isn(key, random).unwrap();
                    assert_eq!(k.key(expected_ack(isn)), key);
                }
            }
            assert_eq!(k.isn(1 << bits, 7), None);
        }
    }

    #[test]
    fn the_random_bits_and_the_salt_vary_the_number() {
        let a = IsnKeys::new(4096, 1);
        let b = IsnKeys::new(4096, 2);
        assert_ne!(a.isn(5, 0), a.isn(5, 1 << 20));
        assert_ne!(a.isn(5, 0), b.isn(5, 0));
        // All 32 bits are key when keys need them: nothing random is left.
        let full = IsnKeys::new(usize::MAX, 0);
        assert_eq!(full.isn(7, u32::MAX), Some(7));
    }
}
