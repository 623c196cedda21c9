//! SMTP checks (keepalived SMTP_CHECK): expect a 220 banner, send `HELO name`, expect 250,
//! then say `QUIT`. Multi-line replies (`250-...` lines up to `250 ...`) are read whole.

use crate::{Error, Outcome, Reason};

use super::{Probe, Step};

const REPLY_CAP: usize = 8 * 1024;

/// An SMTP check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SmtpCheck {
    helo_name: String,
}

impl SmtpCheck {
    /// Greets with `HELO helo_name` (keepalived `helo_name`).
    pub fn new(helo_name: &str) -> Result<SmtpCheck, Error> {
        if helo_name.is_empty() || !helo_name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidParameter {
                what: "helo_name",
                why: "printable ascii without spaces",
            });
        }
        Ok(SmtpCheck {
            helo_name: helo_name.to_owned(),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Await {
    Banner,
    Helo,
}

/// One run of an [`SmtpCheck`].
#[derive(Debug)]
pub struct SmtpProbe {
    helo: Vec<u8>,
    state: Await,
    buf: Vec<u8>,
}

impl SmtpProbe {
    /// A session for `check`.
    pub fn new(check: &SmtpCheck) -> SmtpProbe {
        SmtpProbe {
            helo: format!("HELO {}\r\n", check.helo_name).into_bytes(),
            state: Await::Banner,
            buf: Vec::new(),
        }
    }
}

/// The code of the complete reply at the start of `buf` and its length, or `None` if the
/// final line has not arrived. `Err` if a line does not start with three digits.
fn complete_reply(buf: &[u8]) -> Result<Option<(u16, usize)>, ()> {
    let mut at = 0;
    while let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') {
        let line = &buf[at..at + nl];
        at += nl + 1;
        let code = match line.get(..3) {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                d.iter().fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'))
            }
            _ => return Err(()),
        };
        match line.get(3) {
            Some(b'-') => continue,
            Some(b' ' | b'\r') | None => return Ok(Some((code, at))),
            Some(_) => return Err(()),
        }
    }
    Ok(None)
}

impl Probe for SmtpProbe {
    fn start(&mut self) -> Step {
        Step::NeedMore
    }

    fn on_bytes(&mut self, data: &[u8]) -> Step {
        if self.buf.len() + data.len() > REPLY_CAP {
            return Step::Done(Outcome::fail(Reason::TooLarge));
        }
        self.buf.extend_from_slice(data);
        let (code, used) = match complete_reply(&self.buf) {
            Ok(Some(r)) => r,
            Ok(None) => return Step::NeedMore,
            Err(()) => return Step::Done(Outcome::fail(Reason::Malformed)),
        };
        self.buf.drain(..used);
        match (self.state, code) {
            (Await::Banner, 220) => {
                self.state = Await::Helo;
                Step::Send(self.helo.clone())
            }
            (Await::Helo, 250) => Step::Finish(b"QUIT\r\n".to_vec(), Outcome::pass(Reason::SmtpOk)),
            (_, code) => Step::Done(Outcome::fail(Reason::SmtpCode(code))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation() {
        let mut p = SmtpProbe::new(&SmtpCheck::new("lb.example").unwrap());
        assert_eq!(p.start(), Step::NeedMore);
        assert_eq!(
            p.on_bytes(b"220-mail.example ESMTP\r\n220 r"),
            Step::NeedMore
        );
        assert_eq!(
            p.on_bytes(b"eady\r\n"),
            Step::Send(b"HELO lb.example\r\n".to_vec())
        );
        assert_eq!(
            p.on_bytes(b"250 hello\r\n"),
            Step::Finish(b"QUIT\r\n".to_vec(), Outcome::pass(Reason::SmtpOk))
        );
    }

    #[test]
    fn failures() {
        let check = SmtpCheck::new("x").unwrap();
        let mut p = SmtpProbe::new(&check);
        assert_eq!(
            p.on_bytes(b"554 no service\r\n"),
            Step::Done(Outcome::fail(Reason::SmtpCode(554)))
        );
        let mut p = SmtpProbe::new(&check);
        assert_eq!(
            p.on_bytes(b"HTTP/1.1 400\r\n"),
            Step::Done(Outcome::fail(Reason::Malformed))
        );
        let mut p = SmtpProbe::new(&check);
        assert_eq!(
            p.on_bytes(&[b'2'; REPLY_CAP + 1]),
            Step::Done(Outcome::fail(Reason::TooLarge))
        );
        assert!(SmtpCheck::new("a b").is_err());
    }
}
