//! The IPv4 header in front of an advert, as an IPv4 raw socket hands it over.

use core::net::{IpAddr, Ipv4Addr};
use core::ops::Range;

use super::{IpMeta, PROTOCOL};
use crate::DropReason;

/// Reads the IPv4 header of `packet` (a whole IPv4 datagram carrying VRRP): the metadata the
/// advert parser needs and the range of the VRRP message. Rejects with
/// [`DropReason::BadIpHeader`] anything that is not a whole IPv4 header of protocol 112 whose
/// total length fits the buffer (bytes past the total length, Ethernet padding, are left out).
pub fn ipv4_advert(packet: &[u8]) -> Result<(IpMeta, Range<usize>), DropReason> {
    let header: &[u8; 20] = packet
        .get(..20)
        .and_then(|h| h.try_into().ok())
        .ok_or(DropReason::BadIpHeader)?;
    let ihl = usize::from(header[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let whole = header[0] >> 4 == 4 && ihl >= 20 && total >= ihl && total <= packet.len();
    if !whole || header[9] != PROTOCOL {
        return Err(DropReason::BadIpHeader);
    }
    let addr =
        |at: usize| Ipv4Addr::new(header[at], header[at + 1], header[at + 2], header[at + 3]);
    let meta = IpMeta {
        src: IpAddr::V4(addr(12)),
        dst: IpAddr::V4(addr(16)),
        hop_limit: header[8],
    };
    Ok((meta, ihl..total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 header of keepalived's advert captured in `tests.rs` (tcpdump -x).
    const KEEPALIVED: [u8; 20] = [
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x88, 0x0a, 0x09, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12,
    ];

    #[test]
    fn reads_keepalived_header() {
        let mut packet = KEEPALIVED.to_vec();
        packet.extend_from_slice(&[0; 20]);
        packet.extend_from_slice(&[0; 6]); // Ethernet padding past the total length
        let (meta, range) = ipv4_advert(&packet).unwrap();
        assert_eq!(meta.src, IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(meta.dst, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)));
        assert_eq!(meta.hop_limit, 255);
        assert_eq!(range, 20..40);
    }

    #[test]
    fn rejects_malformed_headers() {
        let whole = {
            let mut p = KEEPALIVED.to_vec();
            p.extend_from_slice(&[0; 20]);
            p
        };
        assert_eq!(ipv4_advert(&whole[..19]), Err(DropReason::BadIpHeader));
        assert_eq!(
            ipv4_advert(&whole[..39]),
            Err(DropReason::BadIpHeader),
            "total length past the end"
        );
        let edit = |at: usize, v: u8| {
            let mut p = whole.clone();
            p[at] = v;
            ipv4_advert(&p)
        };
        assert_eq!(edit(0, 0x65), Err(DropReason::BadIpHeader), "version 6");
        assert_eq!(
            edit(0, 0x44),
            Err(DropReason::BadIpHeader),
            "header shorter than 20"
        );
        assert_eq!(
            edit(0, 0x4f),
            Err(DropReason::BadIpHeader),
            "options past the total length"
        );
        assert_eq!(edit(9, 6), Err(DropReason::BadIpHeader), "TCP");
        assert!(edit(0, 0x46).is_ok(), "4 bytes of options");
    }
}
