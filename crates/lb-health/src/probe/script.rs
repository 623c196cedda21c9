//! Send/expect scripts over TCP or UDP: HAProxy's `tcp-check send`/`expect`, keepalived's
//! UDP_CHECK `payload`/`require_reply`, Envoy's TCP health checker.
//!
//! A script is a list of steps. Consecutive sends go out together; an expect waits for input
//! that matches its [`Pattern`]. Over TCP, input accumulates: without `min_recv` a pattern
//! that does not match yet waits for more (until the timeout, as HAProxy does); with
//! `min_recv` it is judged once that many bytes are in. Over UDP each datagram is judged on
//! its own. A UDP script that ends with a send passes unless an error (an ICMP port
//! unreachable, seen as a refused send or receive) comes back before the timeout, as
//! keepalived's UDP_CHECK without `require_reply` does.

use crate::{Error, Outcome, Reason};

use super::http::BodyRegex;
use super::{Probe, Step};

const BUFFER_CAP: usize = 64 * 1024;

/// Parses hex such as `0a0b ff` into (value, mask) pairs; `X` or `x` is a wildcard nibble
/// (keepalived `require_reply`). Whitespace is ignored.
pub fn parse_masked_hex(text: &str) -> Result<Vec<(u8, u8)>, Error> {
    let bad = || Error::InvalidHex(text.to_owned());
    let nibbles: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if nibbles.is_empty() || nibbles.len() % 2 != 0 {
        return Err(bad());
    }
    let nibble = |c: u8| -> Option<(u8, u8)> {
        match c {
            b'x' | b'X' => Some((0, 0)),
            _ => (c as char).to_digit(16).map(|v| (v as u8, 0xf)),
        }
    };
    nibbles
        .chunks(2)
        .map(|pair| {
            let (hv, hm) = nibble(pair[0]).ok_or_else(bad)?;
            let (lv, lm) = nibble(pair[1]).ok_or_else(bad)?;
            Ok((hv << 4 | lv, hm << 4 | lm))
        })
        .collect()
}

/// What an expect step looks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// The input starts with these bytes, where mask bits that are 0 match anything. On a
    /// datagram the comparison stops at the shorter of the two (keepalived).
    Masked(Vec<(u8, u8)>),
    /// The input contains these bytes (HAProxy `expect string` / `binary`).
    Contains(Vec<u8>),
    /// The input matches this regex (HAProxy `expect rstring`).
    Regex(BodyRegex),
}

impl Pattern {
    /// Exact bytes at the start.
    pub fn exact(bytes: &[u8]) -> Pattern {
        Pattern::Masked(bytes.iter().map(|&b| (b, 0xff)).collect())
    }

    /// Where the match ends in `input`, if it matches. `datagram`: compare masked bytes up to
    /// the shorter length.
    pub fn find(&self, input: &[u8], datagram: bool) -> Option<usize> {
        match self {
            Pattern::Masked(want) => {
                let n = if datagram {
                    want.len().min(input.len())
                } else {
                    want.len()
                };
                if input.len() < n {
                    return None;
                }
                want.iter()
                    .zip(input)
                    .take(n)
                    .all(|(&(v, m), &b)| b & m == v & m)
                    .then_some(n)
            }
            Pattern::Contains(needle) => {
                if needle.is_empty() {
                    return Some(0);
                }
                input
                    .windows(needle.len())
                    .position(|w| w == needle.as_slice())
                    .map(|i| i + needle.len())
            }
            Pattern::Regex(re) => re.find_end(input),
        }
    }
}

/// One expect step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expect {
    /// What to look for.
    pub pattern: Pattern,
    /// Judge once this many bytes are in (HAProxy `min-recv`); 0 waits for a match.
    pub min_recv: usize,
    /// Pass when the pattern does *not* match (HAProxy `expect !`): judged at `min_recv`,
    /// at the end of the stream, or on each datagram.
    pub negate: bool,
    /// For datagrams: accepted reply lengths (keepalived `min_reply_length`,
    /// `max_reply_length`).
    pub reply_len: (usize, usize),
}

impl Expect {
    /// Expect `pattern`, no `min_recv`, not negated, any length.
    pub fn new(pattern: Pattern) -> Expect {
        Expect {
            pattern,
            min_recv: 0,
            negate: false,
            reply_len: (0, usize::MAX),
        }
    }
}

/// A step of a script.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScriptStep {
    /// Send bytes.
    Send(Vec<u8>),
    /// Wait for matching input.
    Expect(Expect),
}

/// A send/expect script.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScriptCheck {
    /// Run over UDP (one datagram per send, one per expect) instead of TCP.
    pub udp: bool,
    /// The steps.
    pub steps: Vec<ScriptStep>,
}

impl ScriptCheck {
    /// keepalived's UDP_CHECK: send `payload`, and with `require_reply` expect a datagram
    /// matching it (X nibbles are wildcards).
    pub fn udp(payload: Vec<u8>, require_reply: Option<Vec<(u8, u8)>>) -> ScriptCheck {
        let mut steps = vec![ScriptStep::Send(payload)];
        if let Some(mask) = require_reply {
            steps.push(ScriptStep::Expect(Expect::new(Pattern::Masked(mask))));
        }
        ScriptCheck { udp: true, steps }
    }
}

/// One run of a [`ScriptCheck`].
#[derive(Debug)]
pub struct ScriptProbe {
    udp: bool,
    steps: Vec<ScriptStep>,
    next: usize,
    buf: Vec<u8>,
}

impl ScriptProbe {
    /// A session for `check`.
    pub fn new(check: &ScriptCheck) -> ScriptProbe {
        ScriptProbe {
            udp: check.udp,
            steps: check.steps.clone(),
            next: 0,
            buf: Vec::new(),
        }
    }

    fn expect_index(&self) -> u16 {
        u16::try_from(self.next).unwrap_or(u16::MAX)
    }

    /// Sends what the script says until the next expect, or finishes.
    fn advance(&mut self) -> Step {
        let mut out = Vec::new();
        while let Some(ScriptStep::Send(bytes)) = self.steps.get(self.next) {
            out.extend_from_slice(bytes);
            self.next += 1;
        }
        let done = self.next >= self.steps.len();
        match (done, out.is_empty()) {
            (true, true) => Step::Done(Outcome::pass(Reason::ScriptMatched)),
            // keepalived UDP_CHECK without require_reply: wait for an error until the timeout.
            (true, false) if self.udp => Step::Send(out),
            (true, false) => Step::Finish(out, Outcome::pass(Reason::ScriptMatched)),
            (false, true) => Step::NeedMore,
            (false, false) => Step::Send(out),
        }
    }

    /// Judges the input against the current expect; `last`: no more input will come.
    fn judge(&mut self, last: bool) -> Step {
        loop {
            let Some(ScriptStep::Expect(e)) = self.steps.get(self.next) else {
                return self.advance();
            };
            let found = e.pattern.find(&self.buf, self.udp);
            let enough = last || self.udp || (e.min_recv > 0 && self.buf.len() >= e.min_recv);
            let length_ok = !self.udp || (e.reply_len.0..=e.reply_len.1).contains(&self.buf.len());
            let pass = match (found, e.negate) {
                (Some(_), false) => length_ok,
                (None, _) if !enough => return Step::NeedMore,
                (None, false) => false,
                (None, true) => length_ok,
                // A forbidden match fails at once.
                (Some(_), true) => false,
            };
            if !pass {
                return Step::Done(Outcome::fail(Reason::ScriptMismatch(self.expect_index())));
            }
            let consumed = if e.negate {
                self.buf.len()
            } else {
                found.unwrap_or(0)
            };
            self.buf.drain(..consumed.min(self.buf.len()));
            self.next += 1;
            if self.udp {
                self.buf.clear();
            }
            if !matches!(self.steps.get(self.next), Some(ScriptStep::Expect(_))) {
                return self.advance();
            }
            if self.udp {
                // The next expect needs the next datagram.
                return Step::NeedMore;
            }
        }
    }
}

impl Probe for ScriptProbe {
    fn start(&mut self) -> Step {
        self.advance()
    }

    fn on_bytes(&mut self, data: &[u8]) -> Step {
        if self.next >= self.steps.len() {
            // A UDP script with nothing left to expect ignores stray datagrams.
            return Step::NeedMore;
        }
        if self.udp {
            self.buf.clear();
        }
        if self.buf.len() + data.len() > BUFFER_CAP {
            return Step::Done(Outcome::fail(Reason::TooLarge));
        }
        self.buf.extend_from_slice(data);
        // A datagram that is not the reply (wrong bytes) fails the run, as keepalived does.
        self.judge(false)
    }

    fn on_eof(&mut self) -> Step {
        if self.next >= self.steps.len() {
            return Step::Done(Outcome::pass(Reason::ScriptMatched));
        }
        match self.judge(true) {
            Step::NeedMore => Step::Done(Outcome::fail(Reason::Closed)),
            s => s,
        }
    }

    fn on_timeout(&mut self) -> Outcome {
        if self.udp && self.next >= self.steps.len() {
            return Outcome::pass(Reason::ScriptMatched);
        }
        // A negated expect with nothing matching by the deadline passes (HAProxy `expect !`).
        if let Some(ScriptStep::Expect(e)) = self.steps.get(self.next) {
            if e.negate
                && e.pattern.find(&self.buf, self.udp).is_none()
                && self.next + 1 == self.steps.len()
            {
                return Outcome::pass(Reason::ScriptMatched);
            }
        }
        Outcome::fail(Reason::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    fn tcp(steps: Vec<ScriptStep>) -> ScriptProbe {
        ScriptProbe::new(&ScriptCheck { udp: false, steps })
    }

    #[test]
    fn masked_hex() {
        assert_eq!(
            parse_masked_hex("0a Xf").unwrap(),
            vec![(0x0a, 0xff), (0x0f, 0x0f)]
        );
        assert!(parse_masked_hex("0").is_err());
        assert!(parse_masked_hex("zz").is_err());
        assert!(parse_masked_hex("").is_err());
    }

    #[test]
    fn redis_ping_over_tcp() {
        let mut p = tcp(vec![
            ScriptStep::Send(b"PING\r\n".to_vec()),
            ScriptStep::Expect(Expect::new(Pattern::Contains(b"+PONG".to_vec()))),
            ScriptStep::Send(b"QUIT\r\n".to_vec()),
        ]);
        assert_eq!(p.start(), Step::Send(b"PING\r\n".to_vec()));
        assert_eq!(p.on_bytes(b"+PO"), Step::NeedMore);
        assert_eq!(
            p.on_bytes(b"NG\r\n"),
            Step::Finish(b"QUIT\r\n".to_vec(), Outcome::pass(Reason::ScriptMatched))
        );
    }

    #[test]
    fn min_recv_judges_once() {
        let mut e = Expect::new(Pattern::Contains(b"OK".to_vec()));
        e.min_recv = 4;
        let mut p = tcp(vec![ScriptStep::Expect(e)]);
        assert_eq!(p.start(), Step::NeedMore);
        assert_eq!(p.on_bytes(b"ab"), Step::NeedMore);
        assert_eq!(
            p.on_bytes(b"cd"),
            Step::Done(Outcome::fail(Reason::ScriptMismatch(0)))
        );
    }

    #[test]
    fn regex_and_negation() {
        let re = BodyRegex::new(r"^\+OK v\d+", false).unwrap();
        let mut p = tcp(vec![ScriptStep::Expect(Expect::new(Pattern::Regex(re)))]);
        p.start();
        assert_eq!(
            p.on_bytes(b"+OK v12\r\n"),
            Step::Done(Outcome::pass(Reason::ScriptMatched))
        );
        let mut e = Expect::new(Pattern::Contains(b"ERR".to_vec()));
        e.negate = true;
        let mut p = tcp(vec![ScriptStep::Expect(e)]);
        p.start();
        assert_eq!(p.on_bytes(b"fine"), Step::NeedMore);
        assert_eq!(p.on_eof(), Step::Done(Outcome::pass(Reason::ScriptMatched)));
    }

    #[test]
    fn keepalived_udp_check() {
        let check = ScriptCheck::udp(vec![1, 2], Some(parse_masked_hex("AAXb").unwrap()));
        let mut p = ScriptProbe::new(&check);
        assert_eq!(p.start(), Step::Send(vec![1, 2]));
        assert_eq!(
            p.on_bytes(&[0xaa, 0x5b, 9]),
            Step::Done(Outcome::pass(Reason::ScriptMatched))
        );
        let mut p = ScriptProbe::new(&check);
        p.start();
        assert_eq!(
            p.on_bytes(&[0xab]),
            Step::Done(Outcome::fail(Reason::ScriptMismatch(1)))
        );
        // No require_reply: silence until the timeout passes.
        let mut p = ScriptProbe::new(&ScriptCheck::udp(vec![7], None));
        assert_eq!(p.start(), Step::Send(vec![7]));
        assert_eq!(p.on_timeout().verdict, Verdict::Pass);
    }
}
