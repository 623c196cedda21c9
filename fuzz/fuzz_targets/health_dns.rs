//! Feeds arbitrary datagrams to lb-health's DNS reply parser and DNS probe.
//!
//! Contract held here: nothing panics; a parsed reply never claims more matching answers
//! than answers; the probe either waits for more or concludes.
//!
//! Input layout: bytes 0-1 are the queried type; the rest is one reply datagram.
#![no_main]

use lb_health::probe::{DnsCheck, DnsProbe, DnsType, parse_dns_reply};
use lb_health::{Probe, Step};
use libfuzzer_sys::fuzz_target;

/// The probe wants an RNG for its query id: a constant one, so the input can match it.
struct Fixed(u64);

impl rand_core::TryRng for Fixed {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0 as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(self.0 as u8);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let [t0, t1, msg @ ..] = data else {
        return;
    };
    let qtype = u16::from_be_bytes([*t0, *t1]);
    if let Ok(reply) = parse_dns_reply(msg, qtype) {
        assert!(reply.matching_answers <= reply.answers);
    }
    // The probe's id is the reply's own first two bytes, so the reply is judged, not skipped.
    let id = msg.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let check = DnsCheck::new("example.org", DnsType::A)
        .unwrap()
        .require_answer();
    let mut probe = DnsProbe::new(&check, &mut Fixed(u64::from(id)));
    assert!(matches!(probe.start(), Step::Send(_)));
    let _ = probe.on_bytes(msg);
});
