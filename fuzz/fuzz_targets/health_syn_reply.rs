//! Feeds arbitrary packets to lb-health's half-open reply classifier and probe.
//!
//! Contract held here: nothing panics; a classified reply is a SYN-ACK or RST; the probe
//! concludes only on a reply from its target to its port acknowledging its SYN, and then
//! with SYN-ACK = pass, RST = refused.
//!
//! Input layout: byte 0 picks the family (even: IPv4 packet with its header; odd: an IPv6
//! raw socket's TCP segment); bytes 1-4 are the probe's sequence number; the rest is the packet.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use lb_health::probe::{HalfOpenProbe, SynReply, parse_syn_reply};
use lb_health::{Probe, Reason, Step, Verdict};
use libfuzzer_sys::fuzz_target;

/// The probe draws its sequence number from an RNG: a constant one, so inputs can match it.
struct Fixed(u32);

impl rand_core::TryRng for Fixed {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(u64::from(self.0))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(self.0 as u8);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let [family, s0, s1, s2, s3, packet @ ..] = data else {
        return;
    };
    let (src, dst): (SocketAddr, SocketAddr) = if family % 2 == 0 {
        (
            "127.0.0.1:40000".parse().unwrap(),
            "127.1.0.1:9000".parse().unwrap(),
        )
    } else {
        (
            "[::1]:40000".parse().unwrap(),
            "[::1]:9000".parse().unwrap(),
        )
    };
    let isn = u32::from_be_bytes([*s0, *s1, *s2, *s3]);
    let parsed = parse_syn_reply(packet, dst.ip());
    let mut probe = HalfOpenProbe::new(dst, &mut Fixed(isn));
    probe.set_source(src);
    assert!(matches!(probe.start(), Step::Send(_)));
    match probe.on_bytes(packet) {
        Step::NeedMore => {}
        Step::Done(o) => {
            let s = parsed.expect("concluded on a classified reply");
            assert_eq!(
                (s.from, s.to_port, s.ack),
                (dst, 40000, isn.wrapping_add(1))
            );
            let want = match s.reply {
                SynReply::SynAck => (Verdict::Pass, Reason::SynAck),
                SynReply::Rst => (Verdict::Fail, Reason::Refused),
            };
            assert_eq!((o.verdict, o.reason), want);
        }
        other => panic!("unexpected step {other:?}"),
    }
    if let (Some(s), IpAddr::V6(_)) = (parsed, dst.ip()) {
        assert_eq!(
            s.from.ip(),
            dst.ip(),
            "an IPv6 reply's sender is the address read from"
        );
    }
});
