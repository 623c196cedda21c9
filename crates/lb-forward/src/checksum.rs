//! Internet checksums: full sums (RFC 1071) for headers the datapath builds, and incremental
//! updates (RFC 1624, equation 3: `HC' = ~(~HC + ~m + m')`) for fields it rewrites, so that a
//! rewrite costs a few additions whatever the payload size.

/// Adds `data` as big-endian 16-bit words to an accumulator (an odd last byte is padded with
/// zero, as RFC 1071 says). The result is at most 0x1fffe, so callers may add a few more
/// 16-bit values before [`fold`].
///
/// Four bytes at a time into 64 bits: since 2^16 = 1 in one's complement arithmetic, a 32-bit
/// word adds the same as its two halves, and the carries wait for the final fold instead of
/// serialising every step.
#[inline]
pub(crate) fn sum(data: &[u8], acc: u32) -> u32 {
    let mut total = u64::from(acc);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        total += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    if rest.len() >= 2 {
        total += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
    }
    if rest.len() % 2 == 1 {
        total += u64::from(rest[rest.len() - 1]) << 8;
    }
    let t = (total & 0xffff_ffff) + (total >> 32);
    let t = (t & 0xffff_ffff) + (t >> 32);
    let t = (t & 0xffff) + (t >> 16);
    let t = (t & 0xffff) + (t >> 16);
    t as u32
}

/// Folds a 32-bit accumulator into 16 bits of one's complement sum.
#[inline]
pub(crate) fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for data whose one's complement sum is `acc`.
#[inline]
pub(crate) fn finish(acc: u32) -> u16 {
    !fold(acc)
}

/// The sum of an IPv4 or IPv6 pseudo-header (RFC 793, RFC 8200 section 8.1).
#[inline]
pub(crate) fn pseudo_header(src: &[u8], dst: &[u8], proto: u8, len: u32) -> u32 {
    let acc = sum(src, 0);
    let acc = sum(dst, acc);
    acc.wrapping_add(u32::from(proto))
        .wrapping_add(len >> 16)
        .wrapping_add(len & 0xffff)
}

/// The difference between two equally long byte strings at an even offset of a checksummed
/// area, as an accumulator of `~old + new` (RFC 1624): apply it with [`apply`].
#[inline]
pub(crate) fn diff(acc: u32, old: &[u8], new: &[u8]) -> u32 {
    debug_assert_eq!(old.len(), new.len());
    let mut acc = acc;
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        let o = u16::from_be_bytes([o[0], o.get(1).copied().unwrap_or(0)]);
        let n = u16::from_be_bytes([n[0], n.get(1).copied().unwrap_or(0)]);
        acc = acc.wrapping_add(u32::from(!o)).wrapping_add(u32::from(n));
    }
    acc
}

/// The difference for one 16-bit word.
#[inline]
pub(crate) fn diff16(acc: u32, old: u16, new: u16) -> u32 {
    acc.wrapping_add(u32::from(!old))
        .wrapping_add(u32::from(new))
}

/// Applies a difference from [`diff`] to a checksum field: `~(~HC + diff)`.
#[inline]
pub(crate) fn apply(check: u16, diff: u32) -> u16 {
    !fold(u32::from(!check).wrapping_add(diff))
}

/// [`apply`] for a UDP checksum: 0 means "no checksum" and stays 0 (IPv4), and a computed 0 is
/// sent as 0xffff (RFC 768).
#[inline]
pub(crate) fn apply_udp(check: u16, diff: u32) -> u16 {
    if check == 0 {
        return 0;
    }
    match apply(check, diff) {
        0 => 0xffff,
        c => c,
    }
}

/// Completes a partial checksum (checksum offload of a local sender): the field at `at`
/// holds the pseudo-header's sum, so the one's complement of the sum of the transport header
/// and payload (`buf`, field included) is the checksum. A computed 0 is written as 0xffff,
/// which verifies the same and which UDP requires (RFC 768).
#[inline]
pub(crate) fn complete(buf: &mut [u8], at: usize) {
    match finish(sum(buf, 0)) {
        0 => put16(buf, at, 0xffff),
        c => put16(buf, at, c),
    }
}

/// Reads a big-endian u16 at `at` (the caller has checked the bounds).
#[inline]
pub(crate) fn get16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Writes a big-endian u16 at `at` (the caller has checked the bounds).
#[inline]
pub(crate) fn put16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
    }

    #[test]
    fn rfc1624_minus_zero_case() {
        // RFC 1624 section 4: the other words sum to 0xcd7a, m = 0x5555 becomes 0x3285; the
        // recomputed checksum is 0x0000 and equation 3 must give the same (RFC 1141's gave
        // 0xffff).
        let check = 0xdd2f;
        let updated = apply(check, diff16(0, 0x5555, 0x3285));
        assert_eq!(updated, 0x0000);
    }

    fn naive(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for w in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    proptest! {
        #[test]
        fn sum_is_rfc1071(data in proptest::collection::vec(any::<u8>(), 0..300), acc in 0u32..0x2_0000) {
            let mut with = acc.to_be_bytes().to_vec();
            with.extend_from_slice(&data);
            prop_assert_eq!(fold(sum(&data, acc)), naive(&with));
            prop_assert!(sum(&data, acc) <= 0x1fffe);
        }

        #[test]
        fn incremental_equals_full(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            at in any::<prop::sample::Index>(),
            new in any::<[u8; 4]>(),
        ) {
            let len = data.len() & !1;
            data.truncate(len);
            let at = at.index(len / 2 - 1) * 2;
            let end = (at + 4).min(len);
            let before = finish(sum(&data, 0));
            let old = data[at..end].to_vec();
            data[at..end].copy_from_slice(&new[..end - at]);
            let after = apply(before, diff(0, &old, &data[at..end]));
            let full = finish(sum(&data, 0));
            // 0x0000 and 0xffff are both valid encodings of one's complement zero only for
            // all-zero data; otherwise the incremental result must match exactly.
            if data.iter().any(|&b| b != 0) {
                prop_assert_eq!(after, full);
            }
        }
    }
}
