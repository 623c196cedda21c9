//! The real server's side of TUN mode: find the inner packet of an IPIP, IP6IP6 or GUE frame,
//! for a userspace tunnel endpoint that hands it to a TUN device (for reals whose kernel has no
//! ipip / ip6tnl / fou, as in many containers).

use core::net::IpAddr;
use core::ops::Range;

use crate::DropReason;
use crate::checksum::get16;
use crate::forwarder::ip_addr;
use crate::wire::{
    ETH_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Family, PROTO_IPIP, PROTO_IPV6, PROTO_UDP, ethertype,
    parse_ip,
};

/// An encapsulated packet found in a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    /// Where the inner IP packet lies in the frame.
    pub inner: Range<usize>,
    /// The inner packet's destination (a VIP, for packets a director sent).
    pub inner_dst: IpAddr,
    /// The outer source (the director).
    pub outer_src: IpAddr,
}

/// Finds the inner packet of a tunnelled Ethernet frame: IPIP, IP6IP6, or GUE (version 0, no
/// options) to `gue_port`. `Ok(None)` for frames that are not tunnelled; an error for tunnels
/// whose headers are inconsistent. The inner header is validated (lengths and, for IPv4, its
/// checksum) before it is trusted.
pub fn decapsulate(
    frame: &[u8],
    gue_port: Option<u16>,
) -> Result<Option<Decapsulated>, DropReason> {
    let family = match ethertype(frame)? {
        ETHERTYPE_IPV4 => Family::V4,
        ETHERTYPE_IPV6 => Family::V6,
        _ => return Ok(None),
    };
    let outer = parse_ip(frame, ETH_LEN, family, true, false)?;
    if outer.fragment {
        return Ok(None);
    }
    let frame = &frame[..outer.end];
    let (inner_at, inner_family) = match (outer.proto, family) {
        (PROTO_IPIP, Family::V4) => (outer.l4(), Family::V4),
        (PROTO_IPV6, Family::V6) => (outer.l4(), Family::V6),
        (PROTO_UDP, _) if gue_port.is_some() => {
            let u = outer.l4();
            let udp = frame.get(u..u + 12).ok_or(DropReason::Truncated)?;
            if Some(get16(udp, 2)) != gue_port {
                return Ok(None);
            }
            // GUE version 0 without flags or extension fields.
            if udp[8] != 0 || udp[10] != 0 || udp[11] != 0 {
                return Err(DropReason::BadL4Header);
            }
            match udp[9] {
                PROTO_IPIP => (u + 12, Family::V4),
                PROTO_IPV6 => (u + 12, Family::V6),
                _ => return Err(DropReason::BadL4Header),
            }
        }
        _ => return Ok(None),
    };
    let inner = parse_ip(frame, inner_at, inner_family, true, false)?;
    Ok(Some(Decapsulated {
        inner: inner_at..inner.end,
        inner_dst: ip_addr(&inner.dst, inner_family),
        outer_src: ip_addr(&outer.src, family),
    }))
}
