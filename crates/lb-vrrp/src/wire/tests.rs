//! Golden adverts captured from keepalived 2.2.7, round trips and mutation robustness.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::DropReason;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v4_meta() -> IpMeta {
    IpMeta {
        src: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)),
        dst: IpAddr::V4(MULTICAST_V4),
        hop_limit: 255,
    }
}

/// Parses `bytes`, re-emits the result in the form it verified in and checks it is identical.
fn parse_and_reemit(bytes: &[u8], meta: &IpMeta) -> (AdvertRepr<'static>, ChecksumForm) {
    let leaked: &'static [u8] = Vec::leak(bytes.to_vec());
    let family = Family::of(meta.src);
    let packet = Packet::new_checked(leaked, family).unwrap();
    let (repr, form) = AdvertRepr::parse(&packet, meta).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, form, meta.src, meta.dst);
    assert_eq!(out, bytes, "re-emitted advert differs from keepalived's");
    (repr, form)
}

// tcpdump -x of keepalived 2.2.7 adverts (VRID 51, priority 150, interval 1 s, one address).
#[test]
fn keepalived_v2_ipv4() {
    let (repr, form) = parse_and_reemit(
        &hex("2133 9601 0001 3e5d 0a09 0064 0000 0000 0000 0000"),
        &v4_meta(),
    );
    assert_eq!(
        (repr.version, repr.vrid, repr.priority),
        (Version::V2, 51, 150)
    );
    assert_eq!(repr.interval, Duration::from_secs(1));
    assert_eq!(repr.auth, Auth::None);
    assert_eq!(form, ChecksumForm::MessageOnly);
    assert_eq!(
        repr.addresses.iter().collect::<Vec<_>>(),
        [IpAddr::V4(Ipv4Addr::new(10, 9, 0, 100))]
    );
}

#[test]
fn keepalived_v2_pass_auth() {
    let (repr, _) = parse_and_reemit(
        &hex("2133 9601 0101 6c88 0a09 0064 3132 3334 3536 3738"),
        &v4_meta(),
    );
    assert_eq!(repr.auth, Auth::pass(b"12345678"));
    assert_eq!(
        Auth::pass(b"1234567890"),
        Auth::pass(b"12345678"),
        "keepalived keeps 8 bytes"
    );
}

#[test]
fn keepalived_v3_ipv4_uses_the_pseudo_header() {
    let bytes = hex("3133 9601 0064 4361 0a09 0064");
    let (repr, form) = parse_and_reemit(&bytes, &v4_meta());
    assert_eq!(form, ChecksumForm::PseudoHeader);
    assert_eq!(repr.interval, Duration::from_millis(1000));
    // The RFC 9568 form of the same advert verifies as message-only.
    let mut rfc = vec![0u8; bytes.len()];
    repr.emit(
        &mut rfc,
        ChecksumForm::MessageOnly,
        v4_meta().src,
        v4_meta().dst,
    );
    let packet = Packet::new_checked(&rfc[..], Family::Ipv4).unwrap();
    assert_eq!(
        AdvertRepr::parse(&packet, &v4_meta()).unwrap().1,
        ChecksumForm::MessageOnly
    );
    assert_ne!(rfc, bytes);
}

/// 0xffff is the other one's-complement zero: an advert carrying it where the computed
/// checksum is 0x0000 verifies (RFC 1071: the sum over the message, checksum included, is
/// 0xffff either way) and is re-emitted with 0x0000, as the kernel's and keepalived's
/// checksum functions write it. Found by the `vrrp_advert` fuzz target.
#[test]
fn the_other_zero_checksum_verifies_and_is_written_as_zero() {
    let mut bytes = hex("3133 9601 0064 4361 0a09 0064");
    // Add the checksum into the address (one's-complement): the data now sums to 0xffff, so
    // its computed checksum is 0x0000.
    let checksum = u32::from(u16::from_be_bytes([bytes[6], bytes[7]]));
    let word = u32::from(u16::from_be_bytes([bytes[8], bytes[9]])) + checksum;
    let word = ((word & 0xffff) + (word >> 16)) as u16;
    bytes[8..10].copy_from_slice(&word.to_be_bytes());
    let meta = v4_meta();
    let mut p = Packet::new_unchecked(&mut bytes[..], Family::Ipv4);
    p.fill_checksum(ChecksumForm::PseudoHeader, meta.src, meta.dst);
    assert_eq!(p.checksum(), 0);
    p.set_checksum(0xffff);
    let packet = Packet::new_checked(&bytes[..], Family::Ipv4).unwrap();
    let (repr, form) = AdvertRepr::parse(&packet, &meta).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, form, meta.src, meta.dst);
    assert_eq!(out[6..8], [0, 0]);
    assert_eq!(out[..6], bytes[..6]);
    assert_eq!(out[8..], bytes[8..]);
}

#[test]
fn keepalived_v3_ipv6() {
    let meta = IpMeta {
        src: IpAddr::V6("fe80::a0e2:13ff:fe86:5d16".parse().unwrap()),
        dst: IpAddr::V6(MULTICAST_V6),
        hop_limit: 255,
    };
    let (repr, form) = parse_and_reemit(
        &hex("3133 9601 0064 2a49 fe80 0000 0000 0000 0000 0000 0000 0100"),
        &meta,
    );
    assert_eq!(form, ChecksumForm::PseudoHeader);
    assert_eq!(
        repr.addresses.iter().collect::<Vec<_>>(),
        [IpAddr::V6("fe80::100".parse::<Ipv6Addr>().unwrap())]
    );
}

fn reject(bytes: &[u8], meta: &IpMeta) -> DropReason {
    match Packet::new_checked(bytes, Family::of(meta.src)) {
        Err(e) => e,
        Ok(p) => AdvertRepr::parse(&p, meta).expect_err("rejected"),
    }
}

#[test]
fn receive_checks() {
    let good = hex("3133 9601 0064 4361 0a09 0064");
    let meta = v4_meta();
    assert_eq!(
        reject(
            &good,
            &IpMeta {
                hop_limit: 254,
                ..meta
            }
        ),
        DropReason::BadTtl
    );
    assert_eq!(reject(&good[..7], &meta), DropReason::Truncated);
    assert_eq!(reject(&good[..11], &meta), DropReason::Truncated);
    let mut padded = good.clone();
    padded.push(0);
    assert_eq!(reject(&padded, &meta), DropReason::BadLength);
    let mut bad = good.clone();
    bad[7] ^= 1;
    assert_eq!(reject(&bad, &meta), DropReason::BadChecksum);
    let mut v4 = good.clone();
    v4[0] = 0x41;
    assert_eq!(reject(&v4, &meta), DropReason::BadVersion);

    // Fields re-checksummed, so each check is the one that fails.
    let fixed = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        edit(&mut b);
        let mut p = Packet::new_unchecked(&mut b[..], Family::Ipv4);
        p.fill_checksum(ChecksumForm::MessageOnly, meta.src, meta.dst);
        b
    };
    assert_eq!(reject(&fixed(&|b| b[0] = 0x32), &meta), DropReason::BadType);
    assert_eq!(reject(&fixed(&|b| b[1] = 0), &meta), DropReason::ZeroVrid);
    assert_eq!(
        reject(&fixed(&|b| b[5] = 0), &meta),
        DropReason::ZeroInterval
    );
    assert_eq!(
        reject(
            &fixed(&|b| {
                b[3] = 0;
                b.truncate(8)
            }),
            &meta
        ),
        DropReason::ZeroCount
    );
    let v2 = hex("2133 9601 0201 0000 0a09 0064 0000 0000 0000 0000");
    let mut v2 = v2;
    Packet::new_unchecked(&mut v2[..], Family::Ipv4).fill_checksum(
        ChecksumForm::MessageOnly,
        meta.src,
        meta.dst,
    );
    assert_eq!(reject(&v2, &meta), DropReason::UnknownAuthType);
}

#[test]
fn v2_over_ipv6_is_rejected() {
    let meta = IpMeta {
        src: IpAddr::V6("fe80::1".parse().unwrap()),
        dst: IpAddr::V6(MULTICAST_V6),
        hop_limit: 255,
    };
    let mut b = vec![0x21, 1, 100, 1, 0, 1, 0, 0];
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&[0; 8]);
    assert_eq!(reject(&b, &meta), DropReason::V2OverIpv6);
}

fn ip_pair(family: Family) -> impl Strategy<Value = (IpAddr, IpAddr)> {
    match family {
        Family::Ipv4 => (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b)))
            .boxed(),
        Family::Ipv6 => (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b)))
            .boxed(),
    }
}

prop_compose! {
    fn advert()(v3 in any::<bool>(), v6 in any::<bool>())
        (version in Just(if v3 || v6 { Version::V3 } else { Version::V2 }),
         family in Just(if v6 { Family::Ipv6 } else { Family::Ipv4 }),
         vrid in 1u8..=255, priority in any::<u8>(),
         secs in 1u64..=255, cs in 1u64..=4095,
         count in 1usize..=255, seed in any::<u8>(),
         pass in proptest::option::of(any::<[u8; 8]>()),
         rfc in any::<bool>(),
         ips in ip_pair(if v6 { Family::Ipv6 } else { Family::Ipv4 }))
        -> (Version, Family, u8, u8, Duration, Vec<u8>, Auth, ChecksumForm, (IpAddr, IpAddr))
    {
        let interval = match version {
            Version::V2 => Duration::from_secs(secs),
            Version::V3 => Duration::from_millis(cs * 10),
        };
        let bytes = (0..count * family.addr_len()).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let auth = match (version, pass) { (Version::V2, Some(p)) => Auth::Pass(p), _ => Auth::None };
        let form = ChecksumForm::for_version(version, family, if rfc { ChecksumForm::MessageOnly } else { ChecksumForm::PseudoHeader });
        (version, family, vrid, priority, interval, bytes, auth, form, ips)
    }
}

proptest! {
    #[test]
    fn emit_then_parse_is_identity(
        (version, family, vrid, priority, interval, bytes, auth, form, (src, dst)) in advert()
    ) {
        let repr = AdvertRepr {
            version, vrid, priority, interval,
            addresses: Addresses::from_bytes(family, &bytes).unwrap(),
            auth,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf, form, src, dst);
        let meta = IpMeta { src, dst, hop_limit: 255 };
        let packet = Packet::new_checked(&buf[..], family).unwrap();
        let (back, back_form) = AdvertRepr::parse(&packet, &meta).unwrap();
        prop_assert_eq!(back, repr);
        // A v3/IPv4 pseudo-header sum can also verify as message-only when the pseudo-header
        // words sum to zero; otherwise the form comes back as sent.
        prop_assert!(back_form == form || family == Family::Ipv4);
    }

    #[test]
    fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), v6 in any::<bool>(), ttl in any::<u8>()) {
        let meta = if v6 {
            IpMeta { src: IpAddr::V6(Ipv6Addr::LOCALHOST), dst: IpAddr::V6(MULTICAST_V6), hop_limit: ttl }
        } else {
            IpMeta { hop_limit: ttl, ..v4_meta() }
        };
        if let Ok(p) = Packet::new_checked(&bytes[..], Family::of(meta.src)) {
            let _ = AdvertRepr::parse(&p, &meta);
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum(
        (version, family, vrid, priority, interval, bytes, auth, form, (src, dst)) in advert(),
        at in any::<prop::sample::Index>(), bit in 0u8..8
    ) {
        let repr = AdvertRepr { version, vrid, priority, interval, addresses: Addresses::from_bytes(family, &bytes).unwrap(), auth };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf, form, src, dst);
        let i = at.index(buf.len());
        buf[i] ^= 1 << bit;
        // One flipped bit changes the one's complement sum by a power of two, never by 0xffff.
        let p = Packet::new_unchecked(&buf[..], family);
        prop_assert!(!p.verify_checksum(ChecksumForm::for_version(version, family, form), src, dst));
    }
}
