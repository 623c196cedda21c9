//! ICMP echo checks (keepalived PING_CHECK). The probe builds the echo request and matches
//! the reply by sequence number and a random payload token, which works on ping sockets
//! (where the kernel rewrites the identifier) and on raw sockets (which see every echo reply
//! on the host, with the IPv4 header in front).

use std::net::SocketAddr;

use rand_core::Rng;

use crate::{Outcome, Reason};

use super::{Probe, Step};

/// An ICMP echo check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IcmpCheck {
    /// Payload bytes after the 8-byte header (ping's default is 56; at least 8 for the token).
    pub payload_len: u16,
}

impl Default for IcmpCheck {
    fn default() -> IcmpCheck {
        IcmpCheck { payload_len: 56 }
    }
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: ICMPv4 type 8 with its checksum, or ICMPv6 type 128 (whose checksum
/// the kernel fills in, as it needs the IPv6 pseudo-header).
pub fn echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + payload.len());
    m.extend_from_slice(&[if v6 { 128 } else { 8 }, 0, 0, 0]);
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    if !v6 {
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// An echo reply's `(identifier, sequence, payload)`, if `packet` is one. An IPv4 header in
/// front (raw sockets) is skipped.
pub fn parse_echo_reply(packet: &[u8], v6: bool) -> Option<(u16, u16, &[u8])> {
    let icmp = if !v6 && packet.first().is_some_and(|b| b >> 4 == 4) {
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        packet.get(ihl..)?
    } else {
        packet
    };
    let reply_type = if v6 { 129 } else { 0 };
    if icmp.len() < 8 || icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    let ident = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    Some((ident, seq, &icmp[8..]))
}

/// One run of an [`IcmpCheck`].
#[derive(Debug)]
pub struct IcmpProbe {
    v6: bool,
    seq: u16,
    payload: Vec<u8>,
    sent: bool,
}

impl IcmpProbe {
    /// A session toward `addr` (the port is ignored) with a random sequence and token.
    pub fn new(check: &IcmpCheck, addr: SocketAddr, rng: &mut impl Rng) -> IcmpProbe {
        let mut payload = vec![0u8; usize::from(check.payload_len.max(8))];
        rng.fill_bytes(&mut payload[..8]);
        IcmpProbe {
            v6: addr.is_ipv6(),
            seq: rng.next_u32() as u16,
            payload,
            sent: false,
        }
    }

    /// The sequence number its echo request carries (drivers route replies by it).
    pub fn sequence(&self) -> u16 {
        self.seq
    }

    /// The identifier this probe uses on raw sockets.
    fn ident(&self) -> u16 {
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

impl Probe for IcmpProbe {
    fn start(&mut self) -> Step {
        if self.sent {
            return Step::NeedMore;
        }
        self.sent = true;
        Step::Send(echo_request(self.v6, self.ident(), self.seq, &self.payload))
    }

    fn on_bytes(&mut self, data: &[u8]) -> Step {
        match parse_echo_reply(data, self.v6) {
            Some((_, seq, payload)) if seq == self.seq && payload == self.payload.as_slice() => {
                Step::Done(Outcome::pass(Reason::EchoReply))
            }
            // Someone else's reply (raw sockets see them all), or not a reply at all.
            _ => Step::NeedMore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn checksum_of_request() {
        let m = echo_request(false, 0x1234, 1, b"abcdefgh");
        assert_eq!(m[0], 8);
        // A message with its checksum in place sums to zero.
        assert_eq!(checksum(&m), 0);
        assert_eq!(echo_request(true, 1, 1, b"")[0], 128);
    }

    #[test]
    fn matches_own_reply_only() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut p = IcmpProbe::new(&IcmpCheck::default(), addr, &mut rng);
        let Step::Send(mut req) = p.start() else {
            panic!("sends")
        };
        assert_eq!(req.len(), 64);
        // The reply a ping socket delivers: type 0, identifier rewritten by the kernel.
        req[0] = 0;
        req[4] = 0xee;
        let mut other = req.clone();
        other[9] ^= 1;
        assert_eq!(p.on_bytes(&other), Step::NeedMore);
        assert_eq!(p.on_bytes(&req[..7]), Step::NeedMore);
        // The same reply behind an IPv4 header (raw socket).
        let mut raw = vec![0x45; 20];
        raw.extend_from_slice(&req);
        assert_eq!(
            p.on_bytes(&raw),
            Step::Done(Outcome::pass(Reason::EchoReply))
        );
    }
}
