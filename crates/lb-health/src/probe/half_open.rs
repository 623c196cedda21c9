//! TCP half-open checks (F5 BIG-IP's `tcp_half_open` monitor): one SYN from a raw socket. A
//! SYN-ACK acknowledging it means a listener accepts connections, a RST means refused: the
//! verdict of a connect check. No socket owns the connection on our side, so our kernel
//! answers the SYN-ACK with a RST and the target application never sees a connection; on
//! loopback it costs about a third of the kernel work of a connect and a reset close.
//!
//! The probe builds the SYN (its sequence number drawn from the caller's randomness; source
//! address and port are the driver's, which must own the port so that no other application
//! gets the replies) and classifies reply segments as a raw socket of the target's family
//! reads them: the IPv4 header in front for IPv4, the TCP header alone for IPv6.

use std::net::{IpAddr, SocketAddr};

use rand_core::Rng;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};

use crate::{Outcome, Reason};

use super::{Probe, Step};

/// What a reply to a SYN says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SynReply {
    /// SYN-ACK: a listener accepts connections.
    SynAck,
    /// RST (with ACK): nothing listens, refused.
    Rst,
}

/// A reply segment's fields that route it to its probe and decide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SynSegment {
    /// Who sent it: the IPv4 header's source, or the address the driver read it from (IPv6).
    pub from: SocketAddr,
    /// The port it is addressed to (the probe's source port).
    pub to_port: u16,
    /// Its acknowledgment number (the probe's sequence number + 1).
    pub ack: u32,
    /// SYN-ACK or RST.
    pub reply: SynReply,
}

/// The length of the SYN [`write_syn`] writes: a TCP header with an MSS option.
pub const SYN_LEN: usize = 24;

/// A SYN from `src` to `dst` with sequence number `isn` and an MSS option, its checksum
/// computed over the pseudo-header; `None` when the families differ.
pub fn syn_segment(src: SocketAddr, dst: SocketAddr, isn: u32) -> Option<Vec<u8>> {
    let mut buf = [0u8; SYN_LEN];
    write_syn(src, dst, isn, &mut buf)?;
    Some(buf.to_vec())
}

/// [`syn_segment`] written into `buf` (no allocation: drivers send thousands a second).
/// `None` when the families differ.
pub fn write_syn(
    src: SocketAddr,
    dst: SocketAddr,
    isn: u32,
    buf: &mut [u8; SYN_LEN],
) -> Option<()> {
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(isn as i32),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    debug_assert_eq!(repr.buffer_len(), SYN_LEN);
    let mut packet = TcpPacket::new_unchecked(&mut buf[..]);
    repr.emit(
        &mut packet,
        &IpAddress::from(src.ip()),
        &IpAddress::from(dst.ip()),
        &ChecksumCapabilities::default(),
    );
    Some(())
}

/// The acknowledgment number a SYN-ACK or RST answering a SYN with sequence number `isn`
/// carries: drivers that write the SYN themselves ([`write_syn`]) route replies by it.
pub fn expected_ack(isn: u32) -> u32 {
    isn.wrapping_add(1)
}

impl SynReply {
    /// The verdict: SYN-ACK passes ([`Reason::SynAck`]), RST is refused.
    pub fn outcome(self) -> Outcome {
        match self {
            SynReply::SynAck => Outcome::pass(Reason::SynAck),
            SynReply::Rst => Outcome::fail(Reason::Refused),
        }
    }
}

/// The SYN-ACK or RST (ACK set, so an answer to a SYN) in `packet`, as a raw socket of `from`'s
/// family reads it: IPv4 header and TCP segment, or the TCP segment alone for IPv6 (whose
/// sender is `from`; an IPv4 sender is read from the header). `None` for anything else, a
/// truncated packet included. Checksums are not verified: loopback leaves them unfilled, and
/// the 32-bit acknowledgment of a random sequence number is what ties a reply to its probe.
pub fn parse_syn_reply(packet: &[u8], from: IpAddr) -> Option<SynSegment> {
    let ip;
    let (src, tcp) = match from {
        IpAddr::V4(_) => {
            ip = Ipv4Packet::new_checked(packet).ok()?;
            if ip.next_header() != smoltcp::wire::IpProtocol::Tcp
                || ip.frag_offset() != 0
                || ip.more_frags()
            {
                return None;
            }
            (IpAddr::V4(ip.src_addr()), ip.payload())
        }
        IpAddr::V6(_) => (from, packet),
    };
    let tcp = TcpPacket::new_checked(tcp).ok()?;
    if !tcp.ack() {
        return None;
    }
    let reply = match (tcp.syn(), tcp.rst(), tcp.fin()) {
        (true, false, false) => SynReply::SynAck,
        (false, true, _) => SynReply::Rst,
        _ => return None,
    };
    Some(SynSegment {
        from: SocketAddr::new(src, tcp.src_port()),
        to_port: tcp.dst_port(),
        ack: tcp.ack_number().0 as u32,
        reply,
    })
}

/// One run of a half-open check (`Check::TcpHalfOpen`).
#[derive(Debug)]
pub struct HalfOpenProbe {
    src: Option<SocketAddr>,
    dst: SocketAddr,
    isn: u32,
    sent: bool,
}

impl HalfOpenProbe {
    /// A session toward `dst` with a random initial sequence number. The driver names the
    /// source with [`HalfOpenProbe::set_source`] before [`Probe::start`].
    pub fn new(dst: SocketAddr, rng: &mut impl Rng) -> HalfOpenProbe {
        HalfOpenProbe {
            src: None,
            dst,
            isn: rng.next_u32(),
            sent: false,
        }
    }

    /// The address and port the SYN leaves from (a port the driver owns).
    pub fn set_source(&mut self, src: SocketAddr) {
        self.src = Some(src);
    }

    /// The acknowledgment number a reply carries (drivers route replies by it).
    pub fn expected_ack(&self) -> u32 {
        expected_ack(self.isn)
    }
}

impl Probe for HalfOpenProbe {
    fn start(&mut self) -> Step {
        if self.sent {
            return Step::NeedMore;
        }
        self.sent = true;
        match self
            .src
            .and_then(|src| syn_segment(src, self.dst, self.isn))
        {
            Some(syn) => Step::Send(syn),
            None => Step::Done(Outcome::fail(Reason::LocalError)),
        }
    }

    fn on_bytes(&mut self, data: &[u8]) -> Step {
        let Some(src) = self.src.filter(|_| self.sent) else {
            return Step::NeedMore;
        };
        match parse_syn_reply(data, self.dst.ip()) {
            Some(s)
                if s.from == self.dst
                    && s.to_port == src.port()
                    && s.ack == self.expected_ack() =>
            {
                Step::Done(s.reply.outcome())
            }
            // Another probe's reply, a stale one, or not an answer to a SYN.
            _ => Step::NeedMore,
        }
    }

    fn on_eof(&mut self) -> Step {
        Step::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SRC: &str = "127.0.0.1:40000";
    const DST: &str = "127.1.0.7:9000";

    /// A reply from `dst` to `src` with `flags`, acking `ack`, behind an IPv4 header.
    fn reply4(src: SocketAddr, dst: SocketAddr, flags: u8, ack: u32) -> Vec<u8> {
        let mut tcp = syn_segment(dst, src, 77).unwrap();
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[13] = flags;
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
        let (IpAddr::V4(s), IpAddr::V4(d)) = (dst.ip(), src.ip()) else {
            panic!("v4")
        };
        p.extend_from_slice(&s.octets());
        p.extend_from_slice(&d.octets());
        p.extend_from_slice(&tcp);
        let len = (p.len() as u16).to_be_bytes();
        p[2..4].copy_from_slice(&len);
        p
    }

    fn probe() -> (HalfOpenProbe, Vec<u8>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut p = HalfOpenProbe::new(DST.parse().unwrap(), &mut rng);
        p.set_source(SRC.parse().unwrap());
        let Step::Send(syn) = p.start() else {
            panic!("sends a SYN")
        };
        (p, syn)
    }

    #[test]
    fn syn_is_well_formed() {
        let (p, syn) = probe();
        let tcp = TcpPacket::new_checked(&syn[..]).unwrap();
        assert!(tcp.syn() && !tcp.ack() && !tcp.rst());
        assert_eq!((tcp.src_port(), tcp.dst_port()), (40000, 9000));
        assert_eq!(tcp.seq_number().0 as u32, p.expected_ack().wrapping_sub(1));
        let (src, dst): (SocketAddr, SocketAddr) = (SRC.parse().unwrap(), DST.parse().unwrap());
        assert!(tcp.verify_checksum(&src.ip().into(), &dst.ip().into()));
        let v6 = syn_segment("[::1]:1".parse().unwrap(), "[::2]:2".parse().unwrap(), 1).unwrap();
        let tcp = TcpPacket::new_checked(&v6[..]).unwrap();
        assert!(tcp.verify_checksum(
            &"::1".parse::<IpAddr>().unwrap().into(),
            &"::2".parse::<IpAddr>().unwrap().into()
        ));
        assert!(syn_segment(SRC.parse().unwrap(), "[::2]:2".parse().unwrap(), 1).is_none());
    }

    #[test]
    fn syn_ack_passes_rst_refuses_rest_ignored() {
        let (src, dst): (SocketAddr, SocketAddr) = (SRC.parse().unwrap(), DST.parse().unwrap());
        let (mut p, _) = probe();
        let ack = p.expected_ack();
        // Not ours: wrong ack, wrong port, wrong sender, a bare ACK, our own SYN, truncated.
        for other in [
            reply4(src, dst, 0x12, ack.wrapping_add(1)),
            reply4(SocketAddr::new(src.ip(), 40001), dst, 0x12, ack),
            reply4(src, "127.1.0.8:9000".parse().unwrap(), 0x12, ack),
            reply4(src, dst, 0x10, ack),
            reply4(src, dst, 0x02, ack),
        ] {
            assert_eq!(p.on_bytes(&other), Step::NeedMore);
        }
        let good = reply4(src, dst, 0x12, ack);
        for n in 0..good.len() {
            assert_eq!(p.on_bytes(&good[..n]), Step::NeedMore, "truncated to {n}");
        }
        assert_eq!(p.on_bytes(&good), Step::Done(Outcome::pass(Reason::SynAck)));
        let (mut p, _) = probe();
        assert_eq!(
            p.on_bytes(&reply4(src, dst, 0x14, ack)),
            Step::Done(Outcome::fail(Reason::Refused))
        );
        assert_eq!(p.on_timeout(), Outcome::fail(Reason::Timeout));
    }

    #[test]
    fn ipv6_reply_is_the_segment_alone() {
        let src: SocketAddr = "[::1]:40000".parse().unwrap();
        let dst: SocketAddr = "[::1]:9000".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let mut p = HalfOpenProbe::new(dst, &mut rng);
        assert_eq!(p.on_bytes(&[]), Step::NeedMore, "nothing sent yet");
        p.set_source(src);
        assert!(matches!(p.start(), Step::Send(_)));
        let mut tcp = syn_segment(dst, src, 1).unwrap();
        tcp[8..12].copy_from_slice(&p.expected_ack().to_be_bytes());
        tcp[13] = 0x12;
        assert_eq!(p.on_bytes(&tcp), Step::Done(Outcome::pass(Reason::SynAck)));
    }

    #[test]
    fn no_source_is_a_local_error() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut p = HalfOpenProbe::new(DST.parse().unwrap(), &mut rng);
        assert_eq!(p.start(), Step::Done(Outcome::fail(Reason::LocalError)));
    }
}
