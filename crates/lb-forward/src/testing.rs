//! Frame builders and a checksum verifier, for tests, benchmarks, fuzzing and examples: build
//! a TCP or UDP frame with correct checksums, and check that every header of a frame the
//! datapath emitted (tunnels and ICMP quotes included) has a valid checksum.

use core::net::{IpAddr, SocketAddr};

use crate::checksum::{finish, fold, get16, pseudo_header, put16, sum};
use crate::wire::{
    ETH_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Family, PROTO_ICMP, PROTO_ICMPV6, PROTO_IPIP,
    PROTO_IPV6, PROTO_TCP, PROTO_UDP, parse_ip,
};

/// TCP FIN.
pub const FIN: u8 = crate::wire::TCP_FIN;
/// TCP SYN.
pub const SYN: u8 = crate::wire::TCP_SYN;
/// TCP RST.
pub const RST: u8 = crate::wire::TCP_RST;
/// TCP ACK.
pub const ACK: u8 = crate::wire::TCP_ACK;

fn ip_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_LEN + 40 + l4.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let mut h = [0u8; 20];
            h[0] = 0x45;
            put16(&mut h, 2, (20 + l4.len()) as u16);
            h[6] = 0x40; // DF, as Linux sends TCP
            h[8] = 64;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = finish(sum(&h, 0));
            put16(&mut h, 10, c);
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let mut h = [0u8; 40];
            h[0] = 0x60;
            put16(&mut h, 4, l4.len() as u16);
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            f.extend_from_slice(&h);
        }
        _ => panic!("testing: source and destination of different families"),
    }
    f.extend_from_slice(l4);
    f
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// An Ethernet frame holding a TCP segment (with an MSS option on SYNs) with valid checksums.
pub fn tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let opts: &[u8] = if flags & SYN != 0 {
        &[2, 4, 0x05, 0xb4]
    } else {
        &[]
    };
    let hdr = 20 + opts.len();
    let mut seg = vec![0u8; hdr + payload.len()];
    put16(&mut seg, 0, src.port());
    put16(&mut seg, 2, dst.port());
    seg[4..8].copy_from_slice(&1000u32.to_be_bytes());
    seg[12] = ((hdr / 4) as u8) << 4;
    seg[13] = flags;
    put16(&mut seg, 14, 65535);
    seg[20..hdr].copy_from_slice(opts);
    seg[hdr..].copy_from_slice(payload);
    let acc = pseudo_header(
        &addr_bytes(src.ip()),
        &addr_bytes(dst.ip()),
        PROTO_TCP,
        seg.len() as u32,
    );
    let c = finish(sum(&seg, acc));
    put16(&mut seg, 16, c);
    ip_frame(src_mac, dst_mac, src.ip(), dst.ip(), PROTO_TCP, &seg)
}

/// An Ethernet frame holding a UDP datagram with a valid checksum (or none, with
/// `checksum: false`, IPv4 only).
pub fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let mut seg = vec![0u8; 8 + payload.len()];
    put16(&mut seg, 0, src.port());
    put16(&mut seg, 2, dst.port());
    let len = seg.len() as u16;
    put16(&mut seg, 4, len);
    seg[8..].copy_from_slice(payload);
    if checksum || src.is_ipv6() {
        let acc = pseudo_header(
            &addr_bytes(src.ip()),
            &addr_bytes(dst.ip()),
            PROTO_UDP,
            seg.len() as u32,
        );
        let c = match finish(sum(&seg, acc)) {
            0 => 0xffff,
            c => c,
        };
        put16(&mut seg, 6, c);
    }
    ip_frame(src_mac, dst_mac, src.ip(), dst.ip(), PROTO_UDP, &seg)
}

/// What [`check_frame`] found in a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Addresses of each IP header from the outside in (one pair, or two for a tunnel).
    pub ips: Vec<(IpAddr, IpAddr)>,
    /// The innermost transport protocol number.
    pub proto: u8,
    /// The innermost TCP or UDP ports, if any.
    pub ports: Option<(u16, u16)>,
}

/// Checks an Ethernet frame: lengths, the IPv4 header checksum, and the TCP, UDP, ICMP or
/// ICMPv6 checksum of every layer, through IPIP / IP6IP6 / GUE tunnels (GUE on any UDP
/// port whose payload starts with a version 0 header announcing IPv4 or IPv6 is assumed when
/// the UDP port is `gue_port`).
pub fn check_frame(frame: &[u8], gue_port: Option<u16>) -> Result<Checked, String> {
    if frame.len() < ETH_LEN {
        return Err("shorter than Ethernet".into());
    }
    let family = match get16(frame, 12) {
        ETHERTYPE_IPV4 => Family::V4,
        ETHERTYPE_IPV6 => Family::V6,
        t => return Err(format!("ethertype {t:#06x}")),
    };
    let mut out = Checked {
        ips: Vec::new(),
        proto: 0,
        ports: None,
    };
    check_ip(frame, ETH_LEN, family, gue_port, &mut out, 0)?;
    Ok(out)
}

fn check_ip(
    buf: &[u8],
    off: usize,
    family: Family,
    gue_port: Option<u16>,
    out: &mut Checked,
    depth: usize,
) -> Result<(), String> {
    if depth > 2 {
        return Err("tunnels nested too deep".into());
    }
    let ip = parse_ip(buf, off, family, true, false).map_err(|r| format!("ip: {r}"))?;
    let buf = &buf[..ip.end];
    let alen = family.addr_len();
    out.ips.push((
        crate::forwarder::ip_addr(&ip.src, family),
        crate::forwarder::ip_addr(&ip.dst, family),
    ));
    let l4 = ip.l4();
    let seg = &buf[l4..];
    let pseudo = pseudo_header(&ip.src[..alen], &ip.dst[..alen], ip.proto, seg.len() as u32);
    out.proto = ip.proto;
    match ip.proto {
        PROTO_TCP => {
            if seg.len() < 20 {
                return Err("tcp: short".into());
            }
            if fold(sum(seg, pseudo)) != 0xffff {
                return Err("tcp: bad checksum".into());
            }
            out.ports = Some((get16(seg, 0), get16(seg, 2)));
        }
        PROTO_UDP => {
            if seg.len() < 8 || usize::from(get16(seg, 4)) != seg.len() {
                return Err("udp: bad length".into());
            }
            let c = get16(seg, 6);
            if c == 0 && family == Family::V6 {
                return Err("udp: zero checksum over IPv6".into());
            }
            if c != 0 && fold(sum(seg, pseudo)) != 0xffff {
                return Err("udp: bad checksum".into());
            }
            let ports = (get16(seg, 0), get16(seg, 2));
            out.ports = Some(ports);
            if gue_port == Some(ports.1) {
                if seg.len() < 12 || seg[8] != 0 {
                    return Err("gue: bad header".into());
                }
                let inner = match seg[9] {
                    PROTO_IPIP => Family::V4,
                    PROTO_IPV6 => Family::V6,
                    p => return Err(format!("gue: inner protocol {p}")),
                };
                return check_ip(buf, l4 + 12, inner, gue_port, out, depth + 1);
            }
        }
        PROTO_ICMP if family == Family::V4 && (seg.len() < 8 || fold(sum(seg, 0)) != 0xffff) => {
            return Err("icmp: bad checksum".into());
        }
        PROTO_ICMPV6
            if family == Family::V6 && (seg.len() < 8 || fold(sum(seg, pseudo)) != 0xffff) =>
        {
            return Err("icmpv6: bad checksum".into());
        }
        PROTO_IPIP if family == Family::V4 => {
            return check_ip(buf, l4, Family::V4, gue_port, out, depth + 1);
        }
        PROTO_IPV6 if family == Family::V6 => {
            return check_ip(buf, l4, Family::V6, gue_port, out, depth + 1);
        }
        _ => {}
    }
    Ok(())
}
