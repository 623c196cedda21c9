//! In-place rewrites of a validated frame: NAT address and port translation with RFC 1624
//! checksum updates, IPIP / IP6IP6 / GUE encapsulation, and MSS clamping (the MAC addresses,
//! which every mode sets, are [`Frame::set_macs`]'s). The caller has parsed the frame, so the
//! offsets given here are in bounds.

use crate::DropReason;
use crate::checksum::{apply, apply_udp, diff, diff16, finish, get16, pseudo_header, put16, sum};
use crate::frame::Frame;
use crate::service::Encap;
use crate::wire::{ETH_LEN, Family, Ip, PROTO_IPIP, PROTO_IPV6, PROTO_TCP, PROTO_UDP};

/// Which address and port a NAT rewrite changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Destination address and port (client to real).
    Dst,
    /// Source address and port (real to client).
    Src,
}

/// Offset of the TCP or UDP checksum from the transport header.
fn l4_check_at(proto: u8) -> usize {
    if proto == PROTO_TCP { 16 } else { 6 }
}

/// Rewrites one address and port of a TCP or UDP packet and updates the IPv4 header
/// checksum and the transport checksum incrementally. `buf` must hold the transport header's
/// checksum (the caller checked the header length).
#[inline]
pub(crate) fn nat(buf: &mut [u8], ip: &Ip, side: Side, addr: &[u8; 16], port: u16) {
    let alen = ip.family.addr_len();
    let at = match side {
        Side::Dst => ip.dst_at(),
        Side::Src => ip.src_at(),
    };
    let d_addr = diff(0, &buf[at..at + alen], &addr[..alen]);
    buf[at..at + alen].copy_from_slice(&addr[..alen]);
    if ip.family == Family::V4 {
        let c = get16(buf, ip.off + 10);
        put16(buf, ip.off + 10, apply(c, d_addr));
    }
    let l4 = ip.l4();
    let port_at = l4 + if side == Side::Dst { 2 } else { 0 };
    let old_port = get16(buf, port_at);
    put16(buf, port_at, port);
    let d = diff16(d_addr, old_port, port);
    let check_at = l4 + l4_check_at(ip.proto);
    let c = get16(buf, check_at);
    let c = if ip.proto == PROTO_UDP {
        apply_udp(c, d)
    } else {
        apply(c, d)
    };
    put16(buf, check_at, c);
}

/// Lowers the MSS option of a TCP SYN to `max` if it is larger, updating the checksum; the
/// options are walked with every length checked.
pub(crate) fn clamp_mss(buf: &mut [u8], ip: &Ip, hdr_len: usize, max: u16) {
    let l4 = ip.l4();
    let mut at = 20;
    while at < hdr_len {
        let kind = buf[l4 + at];
        match kind {
            0 => return,
            1 => at += 1,
            _ => {
                let Some(&len) = buf.get(l4 + at + 1) else {
                    return;
                };
                let len = usize::from(len);
                if len < 2 || at + len > hdr_len {
                    return;
                }
                if kind == 2 && len == 4 {
                    let value_at = at + 2;
                    let old = get16(buf, l4 + value_at);
                    if old > max {
                        // Checksum words are aligned on the TCP header: an option at an odd
                        // offset straddles two words, so diff the aligned span around it.
                        let span = value_at & !1;
                        let end = (span + 4).min(hdr_len);
                        let mut before = [0u8; 4];
                        before[..end - span].copy_from_slice(&buf[l4 + span..l4 + end]);
                        put16(buf, l4 + value_at, max);
                        let mut after = [0u8; 4];
                        after[..end - span].copy_from_slice(&buf[l4 + span..l4 + end]);
                        let d = diff(0, &before, &after);
                        let c = get16(buf, l4 + 16);
                        put16(buf, l4 + 16, apply(c, d));
                    }
                    return;
                }
                at += len;
            }
        }
    }
}

/// What an encapsulation needs besides the frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tunnel<'a> {
    pub encap: Encap,
    pub src: &'a [u8; 16],
    pub dst: &'a [u8; 16],
    /// IPv4 identification of the outer header.
    pub ip_id: u16,
    /// Flow entropy: the GUE source port and the IPv6 flow label.
    pub flow_hash: u32,
}

/// Wraps the frame's IP packet (`ip`, same family as the tunnel) in an outer IP header (and
/// UDP + GUE), keeping the Ethernet header in front. The outer header copies the inner TTL,
/// DSCP, DF (IPv4) and ECN (CE becomes ECT(0), RFC 6040 normal mode), as IPVS does.
pub(crate) fn encapsulate(frame: &mut Frame, ip: &Ip, t: Tunnel<'_>) -> Result<(), DropReason> {
    let v6 = ip.family == Family::V6;
    let overhead = t.encap.overhead(v6);
    let inner_len = ip.total_len();
    // Drop Ethernet padding: the outer lengths cover the inner packet only.
    if !frame.resize(ETH_LEN + inner_len) {
        return Err(DropReason::NoHeadroom);
    }
    let (tos, ttl, df) = {
        let b = frame.bytes();
        match ip.family {
            Family::V4 => (b[ip.off + 1], b[ip.off + 8], b[ip.off + 6] & 0x40),
            Family::V6 => (
                ((b[ip.off] & 0x0f) << 4) | (b[ip.off + 1] >> 4),
                b[ip.off + 7],
                0,
            ),
        }
    };
    let tos = if tos & 0x03 == 0x03 {
        (tos & !0x03) | 0x02
    } else {
        tos
    };
    if !frame.push_front(overhead) {
        return Err(DropReason::NoHeadroom);
    }
    let b = frame.bytes_mut();
    b.copy_within(overhead..overhead + ETH_LEN, 0);
    let inner_proto = if v6 { PROTO_IPV6 } else { PROTO_IPIP };
    let (outer_proto, ip_len) = match t.encap {
        Encap::Ip => (inner_proto, if v6 { 40 } else { 20 }),
        Encap::Gue { .. } => (PROTO_UDP, if v6 { 40 } else { 20 }),
    };
    let o = ETH_LEN;
    let outer_total = overhead + inner_len;
    if v6 {
        let flow = t.flow_hash & 0x000f_ffff;
        b[o] = 0x60 | (tos >> 4);
        b[o + 1] = ((tos & 0x0f) << 4) | ((flow >> 16) as u8 & 0x0f);
        put16(b, o + 2, flow as u16);
        put16(b, o + 4, (outer_total - 40) as u16);
        b[o + 6] = outer_proto;
        b[o + 7] = ttl;
        b[o + 8..o + 24].copy_from_slice(t.src);
        b[o + 24..o + 40].copy_from_slice(t.dst);
    } else {
        b[o] = 0x45;
        b[o + 1] = tos;
        put16(b, o + 2, outer_total as u16);
        put16(b, o + 4, t.ip_id);
        b[o + 6] = df;
        b[o + 7] = 0;
        b[o + 8] = ttl;
        b[o + 9] = outer_proto;
        put16(b, o + 10, 0);
        b[o + 12..o + 16].copy_from_slice(&t.src[..4]);
        b[o + 16..o + 20].copy_from_slice(&t.dst[..4]);
        // The header's words added as values, not read back from the byte stores just made
        // (a word load over several smaller stores waits for them to reach the cache).
        let word = |a: &[u8; 16], i: usize| u32::from(u16::from_be_bytes([a[i], a[i + 1]]));
        let acc = word(t.src, 0)
            + word(t.src, 2)
            + word(t.dst, 0)
            + word(t.dst, 2)
            + (0x4500 | u32::from(tos))
            + (outer_total as u32 & 0xffff)
            + u32::from(t.ip_id)
            + (u32::from(df) << 8)
            + ((u32::from(ttl) << 8) | u32::from(outer_proto));
        put16(b, o + 10, finish(acc));
    }
    if let Encap::Gue { port } = t.encap {
        let u = o + ip_len;
        let udp_len = 8 + 4 + inner_len;
        // An ephemeral-range source port from the flow hash, as udp_flow_src_port does.
        let sport = 0xc000 | (t.flow_hash as u16 & 0x3fff);
        put16(b, u, sport);
        put16(b, u + 2, port);
        put16(b, u + 4, udp_len as u16);
        put16(b, u + 6, 0);
        // GUE version 0, no flags, no extension fields; the inner protocol.
        b[u + 8..u + 12].copy_from_slice(&[0, inner_proto, 0, 0]);
        if v6 {
            // IPv6 forbids a zero UDP checksum here (RFC 8200 section 8.1): compute it.
            // The UDP and GUE headers' words added as values, not read back from the stores
            // just made: the sum reads the inner packet only.
            let acc = pseudo_header(t.src, t.dst, PROTO_UDP, udp_len as u32)
                + u32::from(sport)
                + u32::from(port)
                + udp_len as u32
                + u32::from(inner_proto);
            let c = match finish(sum(&b[u + 12..u + udp_len], acc)) {
                0 => 0xffff,
                c => c,
            };
            put16(b, u + 6, c);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_mss_odd_offset_keeps_checksum_valid() {
        // IPv4 + TCP SYN whose options are NOP, MSS 1460, padding: the MSS value sits at an odd
        // offset of the TCP header.
        let mut pkt = vec![0u8; 20 + 28];
        pkt[0] = 0x45;
        put16(&mut pkt, 2, 48);
        pkt[9] = PROTO_TCP;
        pkt[12..16].copy_from_slice(&[192, 0, 2, 1]);
        pkt[16..20].copy_from_slice(&[192, 0, 2, 2]);
        let t = 20;
        put16(&mut pkt, t, 1234);
        put16(&mut pkt, t + 2, 80);
        pkt[t + 12] = 7 << 4;
        pkt[t + 13] = crate::wire::TCP_SYN;
        pkt[t + 20..t + 28].copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 0, 0, 0]);
        let check = |p: &[u8]| {
            let acc = pseudo_header(&p[12..16], &p[16..20], PROTO_TCP, 28);
            finish(sum(&p[20..], acc))
        };
        let c = check(&pkt);
        put16(&mut pkt, t + 16, c);
        assert_eq!(check(&pkt), 0);
        let ip = crate::wire::parse_ip(&pkt, 0, Family::V4, false, false).unwrap();
        clamp_mss(&mut pkt, &ip, 28, 1400);
        assert_eq!(get16(&pkt, t + 23), 1400);
        assert_eq!(check(&pkt), 0);
        // Below the clamp: untouched.
        clamp_mss(&mut pkt, &ip, 28, 1452);
        assert_eq!(get16(&pkt, t + 23), 1400);
    }
}
