//! DNS checks (keepalived DNS_CHECK): one query over UDP; the reply passes when its ID
//! matches, QR is set and RCODE is 0 (and, if asked, it holds an answer of the queried type).
//! A reply with another ID, or a query, is ignored and the read goes on, as keepalived does.
//!
//! The reply parser checks every length before reading: it walks the question and answer
//! sections, skipping names (compression pointers end a name; they are never followed, so
//! loops are impossible).

use rand_core::Rng;

use crate::{Error, Outcome, Reason};

use super::{Probe, Step};

/// The record types keepalived's DNS_CHECK offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsType {
    /// 1.
    A,
    /// 2.
    Ns,
    /// 5.
    Cname,
    /// 6 (keepalived's default).
    Soa,
    /// 15.
    Mx,
    /// 16.
    Txt,
    /// 28.
    Aaaa,
}

impl DnsType {
    /// The type's number.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }

    /// From keepalived's names (`A`, `NS`, `CNAME`, `SOA`, `MX`, `TXT`, `AAAA`), any case.
    pub fn from_name(name: &str) -> Option<DnsType> {
        Some(match name.to_ascii_uppercase().as_str() {
            "A" => DnsType::A,
            "NS" => DnsType::Ns,
            "CNAME" => DnsType::Cname,
            "SOA" => DnsType::Soa,
            "MX" => DnsType::Mx,
            "TXT" => DnsType::Txt,
            "AAAA" => DnsType::Aaaa,
            _ => return None,
        })
    }
}

/// A DNS check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsCheck {
    wire_name: Vec<u8>,
    qtype: DnsType,
    require_answer: bool,
}

impl DnsCheck {
    /// Query `name` (`.` is the root, keepalived's default) for `qtype`.
    pub fn new(name: &str, qtype: DnsType) -> Result<DnsCheck, Error> {
        let bad = || Error::InvalidDnsName(name.to_owned());
        let mut wire = Vec::new();
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if !trimmed.is_empty() {
            for label in trimmed.split('.') {
                let len = u8::try_from(label.len()).map_err(|_| bad())?;
                if len == 0 || len > 63 || !label.is_ascii() {
                    return Err(bad());
                }
                wire.push(len);
                wire.extend_from_slice(label.as_bytes());
            }
        }
        wire.push(0);
        if wire.len() > 255 {
            return Err(bad());
        }
        Ok(DnsCheck {
            wire_name: wire,
            qtype,
            require_answer: false,
        })
    }

    /// Also require at least one answer record of the queried type.
    #[must_use]
    pub fn require_answer(mut self) -> DnsCheck {
        self.require_answer = true;
        self
    }

    /// The query with this ID (recursion desired, class IN).
    pub fn query(&self, id: u16) -> Vec<u8> {
        let mut q = Vec::with_capacity(12 + self.wire_name.len() + 4);
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(&self.wire_name);
        q.extend_from_slice(&self.qtype.code().to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }
}

/// Why a DNS message was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// Shorter than its header or than a section it announces.
    #[error("truncated dns message")]
    Truncated,
    /// A label with the reserved high bits 01 or 10.
    #[error("bad dns label")]
    BadLabel,
}

/// The parts of a reply a check looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsReply {
    /// The ID.
    pub id: u16,
    /// Whether QR (a response) is set.
    pub is_response: bool,
    /// The RCODE.
    pub rcode: u8,
    /// Answer records of the type asked for (`qtype`).
    pub matching_answers: u16,
    /// All answer records.
    pub answers: u16,
}

fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, DnsError> {
    // At most 128 labels fit in 255 bytes; more means garbage.
    for _ in 0..128 {
        let len = *msg.get(at).ok_or(DnsError::Truncated)?;
        match len >> 6 {
            0 if len == 0 => return Ok(at + 1),
            0 => at += 1 + usize::from(len),
            3 => {
                msg.get(at + 1).ok_or(DnsError::Truncated)?;
                return Ok(at + 2);
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
    Err(DnsError::BadLabel)
}

fn be16(msg: &[u8], at: usize) -> Result<u16, DnsError> {
    match msg.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(DnsError::Truncated),
    }
}

/// Parses a DNS message's header, question and answer sections, counting answers of `qtype`.
pub fn parse_dns_reply(msg: &[u8], qtype: u16) -> Result<DnsReply, DnsError> {
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    let qdcount = be16(msg, 4)?;
    let ancount = be16(msg, 6)?;
    let mut at = 12;
    if msg.len() < at {
        return Err(DnsError::Truncated);
    }
    for _ in 0..qdcount {
        at = skip_name(msg, at)? + 4;
        if at > msg.len() {
            return Err(DnsError::Truncated);
        }
    }
    let mut matching = 0u16;
    for _ in 0..ancount {
        at = skip_name(msg, at)?;
        let rtype = be16(msg, at)?;
        let rdlen = usize::from(be16(msg, at + 8)?);
        at += 10 + rdlen;
        if at > msg.len() {
            return Err(DnsError::Truncated);
        }
        if rtype == qtype {
            matching += 1;
        }
    }
    Ok(DnsReply {
        id,
        is_response: flags & 0x8000 != 0,
        rcode: (flags & 0x000f) as u8,
        matching_answers: matching,
        answers: ancount,
    })
}

/// One run of a [`DnsCheck`].
#[derive(Debug)]
pub struct DnsProbe {
    id: u16,
    query: Option<Vec<u8>>,
    qtype: u16,
    require_answer: bool,
}

impl DnsProbe {
    /// A session with a random ID.
    pub fn new(check: &DnsCheck, rng: &mut impl Rng) -> DnsProbe {
        let id = rng.next_u32() as u16;
        DnsProbe {
            id,
            query: Some(check.query(id)),
            qtype: check.qtype.code(),
            require_answer: check.require_answer,
        }
    }
}

impl Probe for DnsProbe {
    fn start(&mut self) -> Step {
        match self.query.take() {
            Some(q) => Step::Send(q),
            None => Step::NeedMore,
        }
    }

    fn on_bytes(&mut self, data: &[u8]) -> Step {
        let reply = match parse_dns_reply(data, self.qtype) {
            Ok(r) => r,
            // Not ours if the ID differs; ours and broken otherwise.
            Err(_) if be16(data, 0) != Ok(self.id) => return Step::NeedMore,
            Err(_) => return Step::Done(Outcome::fail(Reason::Malformed)),
        };
        if reply.id != self.id || !reply.is_response {
            return Step::NeedMore;
        }
        Step::Done(if reply.rcode != 0 {
            Outcome::fail(Reason::DnsRcode(reply.rcode))
        } else if self.require_answer && reply.matching_answers == 0 {
            Outcome::fail(Reason::DnsNoAnswer)
        } else {
            Outcome::pass(Reason::DnsAnswer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(query: &[u8], rcode: u8, answer: Option<u16>) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] |= 0x80;
        r[3] = (r[3] & 0xf0) | rcode;
        if let Some(t) = answer {
            r[7] = 1;
            // A compression pointer to the question's name, then type, class, ttl, rdata.
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        }
        r
    }

    #[test]
    fn query_bytes() {
        let c = DnsCheck::new("example.org", DnsType::A).unwrap();
        let q = c.query(0x1234);
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x01\x00\x01");
        assert_eq!(
            DnsCheck::new(".", DnsType::Soa).unwrap().query(1).len(),
            12 + 1 + 4
        );
        assert!(DnsCheck::new("a..b", DnsType::A).is_err());
        assert!(DnsCheck::new(&"x".repeat(64), DnsType::A).is_err());
    }

    #[test]
    fn replies() {
        let check = DnsCheck::new("example.org", DnsType::A)
            .unwrap()
            .require_answer();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut p = DnsProbe::new(&check, &mut rng);
        let Step::Send(q) = p.start() else {
            panic!("sends a query")
        };
        // The query echoed back (QR clear) and a reply with another id are ignored.
        assert_eq!(p.on_bytes(&q), Step::NeedMore);
        let mut other = reply_to(&q, 0, Some(1));
        other[0] ^= 0xff;
        assert_eq!(p.on_bytes(&other), Step::NeedMore);
        assert_eq!(
            p.on_bytes(&reply_to(&q, 0, Some(1))),
            Step::Done(Outcome::pass(Reason::DnsAnswer))
        );
        assert_eq!(
            p.on_bytes(&reply_to(&q, 3, None)),
            Step::Done(Outcome::fail(Reason::DnsRcode(3)))
        );
        assert_eq!(
            p.on_bytes(&reply_to(&q, 0, Some(28))),
            Step::Done(Outcome::fail(Reason::DnsNoAnswer))
        );
        let mut cut = reply_to(&q, 0, Some(1));
        cut.truncate(cut.len() - 2);
        assert_eq!(
            p.on_bytes(&cut),
            Step::Done(Outcome::fail(Reason::Malformed))
        );
    }

    #[test]
    fn parser_bounds() {
        assert_eq!(parse_dns_reply(&[0; 5], 1), Err(DnsError::Truncated));
        let mut loopy = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        loopy.extend_from_slice(&[0x40, 0]);
        assert_eq!(parse_dns_reply(&loopy, 1), Err(DnsError::BadLabel));
    }

    use rand::SeedableRng;
}
