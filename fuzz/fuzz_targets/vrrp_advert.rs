//! Parses arbitrary bytes as a VRRP advert under arbitrary IP metadata, or as a whole IPv4
//! datagram (`ipv4_advert`, then the advert inside), and round-trips what parses.
//!
//! Contract held here:
//! - `ipv4_advert`, `Packet::new_checked` and `AdvertRepr::parse` never panic; the range
//!   `ipv4_advert` returns lies within the datagram;
//! - an accepted advert re-emitted in the checksum form it verified in parses back to the same
//!   values and form, at the same length;
//! - it is byte-identical to the input where the input has no free bits (v3 reserved bits
//!   zero; v2 without authentication has a zero trailer), except that a checksum of 0xffff,
//!   the other one's-complement zero, comes back as the 0x0000 it verified as.
#![no_main]

use arbitrary::Arbitrary;
use core::net::IpAddr;
use lb_vrrp::wire::{AdvertRepr, Auth, Family, IpMeta, Packet, Version, ipv4_advert};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    whole_ipv4: bool,
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    hop_limit: u8,
    bytes: Vec<u8>,
}

fuzz_target!(|input: Input| {
    if input.whole_ipv4 {
        if let Ok((meta, range)) = ipv4_advert(&input.bytes) {
            assert!(range.start <= range.end && range.end <= input.bytes.len());
            round_trip(&input.bytes[range], meta);
        }
        return;
    }
    let (src, dst) = if input.v6 {
        (IpAddr::from(input.src), IpAddr::from(input.dst))
    } else {
        let four = |a: [u8; 16]| IpAddr::from([a[0], a[1], a[2], a[3]]);
        (four(input.src), four(input.dst))
    };
    round_trip(
        &input.bytes,
        IpMeta {
            src,
            dst,
            hop_limit: input.hop_limit,
        },
    );
});

fn round_trip(bytes: &[u8], meta: IpMeta) {
    let (src, dst) = (meta.src, meta.dst);
    let family = Family::of(src);
    let Ok(packet) = Packet::new_checked(bytes, family) else {
        return;
    };
    let Ok((repr, form)) = AdvertRepr::parse(&packet, &meta) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, form, src, dst);
    assert_eq!(out.len(), bytes.len());
    let again = Packet::new_checked(&out[..], family).expect("emitted length checks");
    let (back, back_form) = AdvertRepr::parse(&again, &meta).expect("emitted advert parses");
    assert_eq!(back, repr);
    assert_eq!(back_form, form);
    let free_bits = match repr.version {
        Version::V3 => bytes[4] & 0xf0 != 0,
        Version::V2 => repr.auth == Auth::None && bytes[bytes.len() - 8..] != [0; 8],
    };
    if !free_bits {
        let mut expected = bytes.to_vec();
        if expected[6..8] == [0xff, 0xff] {
            expected[6..8].copy_from_slice(&[0, 0]);
        }
        assert_eq!(out, expected);
    }
}
