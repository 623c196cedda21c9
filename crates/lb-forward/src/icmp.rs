//! ICMP: errors the datapath generates (IPv4 fragmentation needed, ICMPv6 Packet Too Big,
//! when a tunnel would exceed the MTU) and the translation of errors that belong to a NAT
//! connection (the outer address and the quoted packet both change).

use crate::checksum::{apply, apply_udp, diff, diff16, finish, get16, pseudo_header, put16, sum};
use crate::frame::Frame;
use crate::rewrite::Side;
use crate::wire::{ETH_LEN, Family, Ip, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, Quoted};

/// RFC 1812 4.3.2.3: an ICMPv4 error quotes as much as fits in 576 bytes.
const V4_ERROR_MAX: usize = 576;
/// RFC 4443 2.4(c): an ICMPv6 error fits in the minimum MTU.
const V6_ERROR_MAX: usize = 1280;

/// Replaces the frame's packet (`ip`) by an ICMP fragmentation-needed (IPv4) or Packet Too Big
/// (IPv6) error back to its sender, from the address it was sent to (the VIP), advertising
/// `mtu`; the frame goes back where it came from with `our_mac` as source. `false` when the
/// frame buffer cannot hold the error.
pub(crate) fn too_big(frame: &mut Frame, ip: &Ip, mtu: u32, our_mac: &[u8; 6], ip_id: u16) -> bool {
    let (hdr, max) = match ip.family {
        Family::V4 => (20 + 8, V4_ERROR_MAX),
        Family::V6 => (40 + 8, V6_ERROR_MAX),
    };
    let quote = ip.total_len().min(max - hdr);
    let new_len = ETH_LEN + hdr + quote;
    let old_len = frame.len();
    if !frame.resize(new_len.max(old_len)) {
        return false;
    }
    let b = frame.bytes_mut();
    let mut sender_mac = [0; 6];
    sender_mac.copy_from_slice(&b[6..12]);
    b[0..6].copy_from_slice(&sender_mac);
    b[6..12].copy_from_slice(our_mac);
    b.copy_within(ip.off..ip.off + quote, ETH_LEN + hdr);
    let o = ETH_LEN;
    let alen = ip.family.addr_len();
    let (src, dst) = (ip.dst, ip.src);
    match ip.family {
        Family::V4 => {
            b[o] = 0x45;
            b[o + 1] = 0;
            put16(b, o + 2, (hdr + quote) as u16);
            put16(b, o + 4, ip_id);
            put16(b, o + 6, 0);
            b[o + 8] = 64;
            b[o + 9] = PROTO_ICMP;
            put16(b, o + 10, 0);
            b[o + 12..o + 16].copy_from_slice(&src[..4]);
            b[o + 16..o + 20].copy_from_slice(&dst[..4]);
            let c = finish(sum(&b[o..o + 20], 0));
            put16(b, o + 10, c);
            let i = o + 20;
            // Type 3 (destination unreachable), code 4 (fragmentation needed), RFC 1191.
            b[i..i + 8].copy_from_slice(&[3, 4, 0, 0, 0, 0, 0, 0]);
            put16(b, i + 6, mtu.min(0xffff) as u16);
            let c = finish(sum(&b[i..i + 8 + quote], 0));
            put16(b, i + 2, c);
        }
        Family::V6 => {
            b[o..o + 4].copy_from_slice(&[0x60, 0, 0, 0]);
            put16(b, o + 4, (8 + quote) as u16);
            b[o + 6] = PROTO_ICMPV6;
            b[o + 7] = 64;
            b[o + 8..o + 24].copy_from_slice(&src[..alen]);
            b[o + 24..o + 40].copy_from_slice(&dst[..alen]);
            let i = o + 40;
            b[i..i + 4].copy_from_slice(&[2, 0, 0, 0]);
            b[i + 4..i + 8].copy_from_slice(&mtu.to_be_bytes());
            let acc = pseudo_header(&src, &dst, PROTO_ICMPV6, (8 + quote) as u32);
            let c = finish(sum(&b[i..i + 8 + quote], acc));
            put16(b, i + 2, c);
        }
    }
    frame.resize(new_len)
}

/// Translates an ICMP error of a NAT connection in place. `Side::Dst`: the error travels to
/// the real (outer destination VIP becomes `addr`, and the quoted packet, which went from
/// the VIP, gets `addr`:`port` as source). `Side::Src`: the error travels to the client
/// (outer source becomes the VIP `addr`, the quoted packet's destination `addr`:`port`).
/// The ICMP checksum is recomputed over the message, which is short.
pub(crate) fn translate(
    buf: &mut [u8],
    outer: &Ip,
    q: &Quoted,
    side: Side,
    addr: &[u8; 16],
    port: u16,
) {
    let alen = outer.family.addr_len();
    // Outer header.
    let at = match side {
        Side::Dst => outer.dst_at(),
        Side::Src => outer.src_at(),
    };
    let d = diff(0, &buf[at..at + alen], &addr[..alen]);
    buf[at..at + alen].copy_from_slice(&addr[..alen]);
    if outer.family == Family::V4 {
        let c = get16(buf, outer.off + 10);
        put16(buf, outer.off + 10, apply(c, d));
    }
    // The quoted packet travelled the other way: its source is what the outer destination
    // now names, and the other way round.
    let qi = &q.ip;
    let (qat, port_at) = match side {
        Side::Dst => (qi.src_at(), qi.l4()),
        Side::Src => (qi.dst_at(), qi.l4() + 2),
    };
    let qd = diff(0, &buf[qat..qat + alen], &addr[..alen]);
    buf[qat..qat + alen].copy_from_slice(&addr[..alen]);
    if qi.family == Family::V4 {
        let c = get16(buf, qi.off + 10);
        put16(buf, qi.off + 10, apply(c, qd));
    }
    let old_port = get16(buf, port_at);
    put16(buf, port_at, port);
    // The quoted transport checksum, when the quote reaches it.
    let check_at = qi.l4() + if qi.proto == PROTO_TCP { 16 } else { 6 };
    if check_at + 2 <= qi.end {
        let qd = diff16(qd, old_port, port);
        let c = get16(buf, check_at);
        let c = if qi.proto == PROTO_TCP {
            apply(c, qd)
        } else {
            apply_udp(c, qd)
        };
        put16(buf, check_at, c);
    }
    // The ICMP checksum over the whole message (with the pseudo-header for ICMPv6).
    let i = outer.l4();
    put16(buf, i + 2, 0);
    let acc = match outer.family {
        Family::V4 => 0,
        Family::V6 => {
            let mut s = [0; 16];
            let mut t = [0; 16];
            s.copy_from_slice(&buf[outer.src_at()..outer.src_at() + 16]);
            t.copy_from_slice(&buf[outer.dst_at()..outer.dst_at() + 16]);
            pseudo_header(&s, &t, PROTO_ICMPV6, (outer.end - i) as u32)
        }
    };
    let c = finish(sum(&buf[i..outer.end], acc));
    put16(buf, i + 2, c);
}
