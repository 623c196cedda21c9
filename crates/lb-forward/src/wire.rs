//! Validated offsets into a frame: Ethernet, IPv4 (with options), IPv6 (with the common
//! extension headers), TCP, UDP, and the packet an ICMP or ICMPv6 error quotes.
//!
//! Every length is checked against the frame before a field is read: a parser returns a
//! [`DropReason`] for anything short or inconsistent and never panics, whatever the bytes.
//! These are written here rather than taken from pnet or smoltcp because the datapath needs
//! offsets it can rewrite in place, over one buffer, with no view objects per packet; the tests
//! check them against smoltcp's parsers.

use crate::DropReason;
use crate::checksum::{fold, get16, sum};

pub(crate) const ETH_LEN: usize = 14;
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_IPIP: u8 = 4;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_IPV6: u8 = 41;
pub(crate) const PROTO_ICMPV6: u8 = 58;

pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_RST: u8 = 0x04;
pub(crate) const TCP_ACK: u8 = 0x10;

/// IPv4 (addresses in the first 4 bytes of the 16) or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

/// A validated IP header at `off`. `repr(C)` with the addresses first keeps them 8-byte
/// aligned in a spilled copy: the 5-tuple key reads them back as words, and words stored at
/// an odd offset (as byte plus word) cannot be forwarded to those loads.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Ip {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub off: usize,
    /// Up to the transport header (IPv4 options and IPv6 extension headers included).
    pub hdr_len: usize,
    /// One past the packet's last byte (Ethernet padding excluded).
    pub end: usize,
    pub family: Family,
    pub proto: u8,
    pub fragment: bool,
}

impl Ip {
    pub(crate) fn l4(&self) -> usize {
        self.off + self.hdr_len
    }
    pub(crate) fn total_len(&self) -> usize {
        self.end - self.off
    }
    /// Offset of the source address.
    pub(crate) fn src_at(&self) -> usize {
        match self.family {
            Family::V4 => self.off + 12,
            Family::V6 => self.off + 8,
        }
    }
    /// Offset of the destination address.
    pub(crate) fn dst_at(&self) -> usize {
        match self.family {
            Family::V4 => self.off + 16,
            Family::V6 => self.off + 24,
        }
    }
}

/// The transport header of a TCP or UDP packet, or the quoted packet of an ICMP error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        hdr_len: usize,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// An ICMP or ICMPv6 error; [`quoted`] reads the packet it quotes.
    IcmpError,
    Other,
}

/// The packet quoted by an ICMP error: its IP header and first 8 transport bytes (enough for
/// the ports).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quoted {
    pub ip: Ip,
    pub sport: u16,
    pub dport: u16,
}

/// A frame's IP packet and transport header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Packet {
    pub ip: Ip,
    pub l4: L4,
}

/// The ethertype of a frame of at least [`ETH_LEN`] bytes.
#[inline]
pub(crate) fn ethertype(frame: &[u8]) -> Result<u16, DropReason> {
    if frame.len() < ETH_LEN {
        return Err(DropReason::Truncated);
    }
    Ok(get16(frame, 12))
}

/// Parses an IP header at `off`. `verify` checks the IPv4 header checksum (not for quoted
/// headers, which ICMP senders may have altered). `quoted` accepts a packet cut short (its
/// total length may run past the end of `buf`).
#[inline]
pub(crate) fn parse_ip(
    buf: &[u8],
    off: usize,
    family: Family,
    verify: bool,
    quoted: bool,
) -> Result<Ip, DropReason> {
    match family {
        Family::V4 => parse_v4(buf, off, verify, quoted),
        Family::V6 => parse_v6(buf, off, quoted),
    }
}

#[inline]
fn parse_v4(buf: &[u8], off: usize, verify: bool, quoted: bool) -> Result<Ip, DropReason> {
    let h = buf.get(off..off + 20).ok_or(DropReason::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(DropReason::BadIpHeader);
    }
    let hdr_len = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(get16(h, 2));
    if hdr_len < 20 || total < hdr_len {
        return Err(DropReason::BadIpHeader);
    }
    let header = buf.get(off..off + hdr_len).ok_or(DropReason::Truncated)?;
    let end = if quoted {
        (off + total).min(buf.len())
    } else {
        if off + total > buf.len() {
            return Err(DropReason::Truncated);
        }
        off + total
    };
    if verify && fold(header_sum(header)) != 0xffff {
        return Err(DropReason::BadIpChecksum);
    }
    let frag = get16(h, 6);
    let src = v4_in_16(&h[12..16]);
    let dst = v4_in_16(&h[16..20]);
    Ok(Ip {
        family: Family::V4,
        off,
        hdr_len,
        end,
        proto: h[9],
        src,
        dst,
        // MF set or a non-zero offset.
        fragment: frag & 0x3fff != 0,
    })
}

/// The sum of an IPv4 header, as [`sum`] gives it: without options five words added without
/// a loop.
#[inline(always)]
fn header_sum(header: &[u8]) -> u32 {
    match <&[u8; 20]>::try_from(header) {
        Ok(h) => {
            let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
            let t = w(0) + w(4) + w(8) + w(12) + w(16);
            let t = (t & 0xffff_ffff) + (t >> 32);
            let t = (t & 0xffff) + (t >> 16);
            t as u32
        }
        Err(_) => sum(header, 0),
    }
}

/// An IPv4 address in the first 4 bytes of 16, built in a register: filling a zeroed array
/// byte-wise and reading it back in words stalls store-to-load forwarding on the hot path.
#[inline]
fn v4_in_16(b: &[u8]) -> [u8; 16] {
    let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    u128::from(w).to_le_bytes()
}

/// Extension headers walked before the transport header: hop-by-hop, routing, destination
/// options (fragment is reported, not walked past).
const MAX_EXT_HEADERS: usize = 8;

#[inline]
fn parse_v6(buf: &[u8], off: usize, quoted: bool) -> Result<Ip, DropReason> {
    let h = buf.get(off..off + 40).ok_or(DropReason::Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(DropReason::BadIpHeader);
    }
    let payload = usize::from(get16(h, 4));
    let end = if quoted {
        (off + 40 + payload).min(buf.len())
    } else {
        // A zero payload length announces a jumbogram, which no Ethernet frame carries.
        if payload == 0 && buf.len() > off + 40 {
            return Err(DropReason::BadIpHeader);
        }
        if off + 40 + payload > buf.len() {
            return Err(DropReason::Truncated);
        }
        off + 40 + payload
    };
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    let mut proto = h[6];
    let mut at = off + 40;
    let mut fragment = false;
    for _ in 0..MAX_EXT_HEADERS {
        match proto {
            0 | 43 | 60 => {
                let ext = buf.get(at..at + 8).ok_or(DropReason::Truncated)?;
                let len = (usize::from(ext[1]) + 1) * 8;
                if at + len > end {
                    return Err(DropReason::Truncated);
                }
                proto = ext[0];
                at += len;
            }
            44 => {
                fragment = true;
                break;
            }
            _ => break,
        }
    }
    Ok(Ip {
        family: Family::V6,
        off,
        hdr_len: at - off,
        end,
        proto,
        src,
        dst,
        fragment,
    })
}

/// Parses the IP packet of an Ethernet frame and its transport header. `Ok(None)` for frames
/// that carry no IP.
#[inline]
pub(crate) fn parse(frame: &[u8]) -> Result<Option<Packet>, DropReason> {
    let family = match ethertype(frame)? {
        ETHERTYPE_IPV4 => Family::V4,
        ETHERTYPE_IPV6 => Family::V6,
        _ => return Ok(None),
    };
    let ip = parse_ip(frame, ETH_LEN, family, true, false)?;
    if ip.fragment {
        return Ok(Some(Packet { ip, l4: L4::Other }));
    }
    let l4 = parse_l4(frame, &ip)?;
    Ok(Some(Packet { ip, l4 }))
}

#[inline]
fn parse_l4(buf: &[u8], ip: &Ip) -> Result<L4, DropReason> {
    let at = ip.l4();
    let seg = buf.get(at..ip.end).ok_or(DropReason::Truncated)?;
    match (ip.proto, ip.family) {
        (PROTO_TCP, _) => {
            if seg.len() < 20 {
                return Err(DropReason::Truncated);
            }
            let hdr_len = usize::from(seg[12] >> 4) * 4;
            if hdr_len < 20 || hdr_len > seg.len() {
                return Err(DropReason::BadL4Header);
            }
            Ok(L4::Tcp {
                sport: get16(seg, 0),
                dport: get16(seg, 2),
                flags: seg[13],
                hdr_len,
            })
        }
        (PROTO_UDP, _) => {
            if seg.len() < 8 {
                return Err(DropReason::Truncated);
            }
            let len = usize::from(get16(seg, 4));
            if len < 8 || len > seg.len() {
                return Err(DropReason::BadL4Header);
            }
            Ok(L4::Udp {
                sport: get16(seg, 0),
                dport: get16(seg, 2),
            })
        }
        (PROTO_ICMP, Family::V4) | (PROTO_ICMPV6, Family::V6) => {
            if seg.len() < 8 {
                return Err(DropReason::Truncated);
            }
            let error = match ip.family {
                // Destination unreachable, source quench, time exceeded, parameter problem.
                Family::V4 => matches!(seg[0], 3 | 4 | 11 | 12),
                // Destination unreachable, packet too big, time exceeded, parameter problem.
                Family::V6 => matches!(seg[0], 1..=4),
            };
            Ok(if error { L4::IcmpError } else { L4::Other })
        }
        _ => Ok(L4::Other),
    }
}

/// The TCP or UDP packet quoted by the ICMP error `ip` carries (`Ok(None)` for other
/// protocols and fragments). Its lengths are checked against what was really quoted.
pub(crate) fn quoted(buf: &[u8], ip: &Ip) -> Result<Option<Quoted>, DropReason> {
    let quote = buf.get(..ip.end).ok_or(DropReason::Truncated)?;
    let inner = parse_ip(quote, ip.l4() + 8, ip.family, false, true)?;
    if !matches!(inner.proto, PROTO_TCP | PROTO_UDP) || inner.fragment {
        return Ok(None);
    }
    let ports = quote
        .get(inner.l4()..inner.l4() + 8)
        .ok_or(DropReason::Truncated)?;
    Ok(Some(Quoted {
        ip: inner,
        sport: get16(ports, 0),
        dport: get16(ports, 2),
    }))
}
