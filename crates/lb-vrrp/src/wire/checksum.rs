//! The Internet checksum (RFC 1071) over a VRRP message, with or without a pseudo-header.

use core::net::IpAddr;

use super::{ChecksumForm, PROTOCOL};

/// Adds `data` as big-endian 16-bit words (an odd last byte padded with zero) to `acc`. The
/// words are taken two at a time as 32-bit words: since 2^16 = 1 modulo 0xffff, their sum folds
/// to the same one's complement sum. The accumulator is 64 bits wide so no carry is lost
/// before [`fold`].
pub(crate) fn add(mut acc: u64, data: &[u8]) -> u64 {
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        acc += u64::from(u32::from_be_bytes([q[0], q[1], q[2], q[3]]));
    }
    let mut words = quads.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds the carries back in: the one's complement sum.
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header's contribution: RFC 768 style for IPv4 (source, destination, zero,
/// protocol, length), RFC 8200 §8.1 for IPv6 (source, destination, 32-bit length, next header).
/// The families of `src` and `dst` are the same for any advert we parse or emit; a mixed pair
/// sums both as they are.
pub(crate) fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> u64 {
    let mut acc = 0;
    for addr in [src, dst] {
        acc = match addr {
            IpAddr::V4(a) => add(acc, &a.octets()),
            IpAddr::V6(a) => add(acc, &a.octets()),
        };
    }
    // The length is at most MAX_LEN; both encodings sum to the same words.
    acc + u64::from(PROTOCOL) + len as u64
}

/// The sum of `msg` (checksum field included) in `form`: `0xffff` when the checksum is right.
pub(crate) fn verify_sum(msg: &[u8], form: ChecksumForm, src: IpAddr, dst: IpAddr) -> u16 {
    with_form(add(0, msg), msg.len(), form, src, dst)
}

/// The folded sum in `form` from the message's own accumulated sum, so a receiver trying both
/// forms sums the message once.
pub(crate) fn with_form(
    msg_sum: u64,
    len: usize,
    form: ChecksumForm,
    src: IpAddr,
    dst: IpAddr,
) -> u16 {
    match form {
        ChecksumForm::MessageOnly => fold(msg_sum),
        ChecksumForm::PseudoHeader => fold(msg_sum + pseudo_header(src, dst, len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            fold(add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
    }

    #[test]
    fn matches_the_16_bit_definition() {
        for len in 0..64usize {
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(151).wrapping_add(7))
                .collect();
            let mut plain = 0u64;
            for w in data.chunks(2) {
                plain += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
            assert_eq!(fold(add(0, &data)), fold(plain), "len {len}");
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(add(0, &[0x12])), 0x1200);
    }
}
