//! HTTP/1.1 GET checks (keepalived HTTP_GET / SSL_GET, HAProxy `option httpchk`, Envoy's HTTP
//! health checker): a status set, a body regex, an MD5 body digest, a body cap.

mod response;

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use md5::{Digest, Md5};

pub use response::{HEAD_CAP, HttpError, ResponseHead, ResponseParser};

use super::{Probe, StatusSet, Step};
use crate::{Error, Outcome, Reason, Verdict};

/// A regex the body must match (or, negated, must not: keepalived `regex_no_match`).
#[derive(Clone, Debug)]
pub struct BodyRegex {
    regex: regex::bytes::Regex,
    /// Pass when the body does *not* match.
    pub negate: bool,
}

impl BodyRegex {
    /// Compiles `pattern` (the `regex` crate's syntax, on bytes).
    pub fn new(pattern: &str, negate: bool) -> Result<BodyRegex, Error> {
        let regex = regex::bytes::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| Error::InvalidRegex(e.to_string()))?;
        Ok(BodyRegex { regex, negate })
    }

    /// Whether `body` passes.
    pub fn passes(&self, body: &[u8]) -> bool {
        self.regex.is_match(body) != self.negate
    }

    /// Where the first match ends; negated, the input's length when nothing matches.
    pub fn find_end(&self, input: &[u8]) -> Option<usize> {
        match (self.regex.find(input), self.negate) {
            (Some(m), false) => Some(m.end()),
            (None, true) => Some(input.len()),
            _ => None,
        }
    }

    /// The pattern.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }
}

impl PartialEq for BodyRegex {
    fn eq(&self, other: &BodyRegex) -> bool {
        self.as_str() == other.as_str() && self.negate == other.negate
    }
}
impl Eq for BodyRegex {}
impl Hash for BodyRegex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
        self.negate.hash(state);
    }
}

/// Parses a keepalived `digest`: 32 hex digits, the MD5 of the body.
pub fn parse_digest(hex: &str) -> Result<[u8; 16], Error> {
    let bad = || Error::InvalidDigest(hex.to_owned());
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// An HTTP GET check. Build with [`HttpCheck::new`] and the setters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    path: String,
    host: Option<String>,
    expect: StatusSet,
    retriable: Option<StatusSet>,
    regex: Option<BodyRegex>,
    digest: Option<[u8; 16]>,
    body_cap: usize,
    #[cfg(feature = "tls")]
    tls: Option<super::TlsOptions>,
}

fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

impl HttpCheck {
    /// `GET path`, expecting `200-299`, with a 64 KiB body cap. The path must start with `/`
    /// and hold no spaces or control characters.
    pub fn new(path: &str) -> Result<HttpCheck, Error> {
        if !path.starts_with('/') || !valid_token(path) {
            return Err(Error::InvalidHttp {
                what: "path",
                value: path.to_owned(),
            });
        }
        Ok(HttpCheck {
            path: path.to_owned(),
            host: None,
            expect: StatusSet::default(),
            retriable: None,
            regex: None,
            digest: None,
            body_cap: 64 * 1024,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// The `Host` header (keepalived `virtualhost`); the target address by default.
    pub fn host(mut self, host: &str) -> Result<HttpCheck, Error> {
        if !valid_token(host) {
            return Err(Error::InvalidHttp {
                what: "host",
                value: host.to_owned(),
            });
        }
        self.host = Some(host.to_owned());
        Ok(self)
    }

    /// The statuses that pass (keepalived `status_code`).
    #[must_use]
    pub fn expect(mut self, statuses: StatusSet) -> HttpCheck {
        self.expect = statuses;
        self
    }

    /// Envoy's rule: statuses in `retriable` count as ordinary failures; any status in
    /// neither set is a hard failure that marks the target down at once.
    #[must_use]
    pub fn retriable(mut self, statuses: StatusSet) -> HttpCheck {
        self.retriable = Some(statuses);
        self
    }

    /// A regex the body must match (or not).
    #[must_use]
    pub fn regex(mut self, regex: BodyRegex) -> HttpCheck {
        self.regex = Some(regex);
        self
    }

    /// The MD5 digest the body must have (keepalived `digest`).
    #[must_use]
    pub fn digest(mut self, md5: [u8; 16]) -> HttpCheck {
        self.digest = Some(md5);
        self
    }

    /// The largest body read, in bytes; larger bodies fail the check.
    #[must_use]
    pub fn body_cap(mut self, bytes: usize) -> HttpCheck {
        self.body_cap = bytes;
        self
    }

    /// Runs the check over TLS (SSL_GET, HTTPS).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, options: super::TlsOptions) -> HttpCheck {
        self.tls = Some(options);
        self
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_options(&self) -> Option<&super::TlsOptions> {
        self.tls.as_ref()
    }

    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The request bytes for a target at `addr`.
    pub fn request(&self, addr: SocketAddr) -> Vec<u8> {
        let host = match &self.host {
            Some(h) => h.clone(),
            None => addr.to_string(),
        };
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lb-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path
        )
        .into_bytes()
    }

    fn needs_body(&self) -> bool {
        self.regex.is_some() || self.digest.is_some()
    }

    fn status_outcome(&self, status: u16) -> Option<Outcome> {
        if self.expect.contains(status) {
            return None;
        }
        let verdict = match &self.retriable {
            Some(r) if !r.contains(status) => Verdict::HardFail,
            _ => Verdict::Fail,
        };
        Some(Outcome::new(verdict, Reason::BadStatus(status)))
    }
}

/// One run of an [`HttpCheck`].
#[derive(Debug)]
pub struct HttpProbe {
    check: HttpCheck,
    request: Option<Vec<u8>>,
    parser: ResponseParser,
    body: Vec<u8>,
    md5: Md5,
}

impl HttpProbe {
    /// A session against `addr`.
    pub fn new(check: &HttpCheck, addr: SocketAddr) -> HttpProbe {
        HttpProbe {
            request: Some(check.request(addr)),
            parser: ResponseParser::new(check.body_cap),
            check: check.clone(),
            body: Vec::new(),
            md5: Md5::new(),
        }
    }

    fn after_input(&mut self, result: Result<(), HttpError>) -> Step {
        if let Err(e) = result {
            return Step::Done(Outcome::fail(http_error_reason(e)));
        }
        let Some(head) = self.parser.head() else {
            return Step::NeedMore;
        };
        let status = head.status;
        if let Some(fail) = self.check.status_outcome(status) {
            return Step::Done(fail);
        }
        // A status-only check is settled by the head: no need to wait for the body.
        if !self.check.needs_body() {
            return Step::Done(Outcome::pass(Reason::HttpStatus(status)));
        }
        if !self.parser.is_complete() {
            return Step::NeedMore;
        }
        if let Some(re) = &self.check.regex {
            if !re.passes(&self.body) {
                return Step::Done(Outcome::fail(Reason::BodyMismatch));
            }
        }
        if let Some(want) = self.check.digest {
            let got: [u8; 16] = self.md5.clone().finalize().into();
            if got != want {
                return Step::Done(Outcome::fail(Reason::DigestMismatch));
            }
        }
        Step::Done(Outcome::pass(Reason::HttpStatus(status)))
    }
}

fn http_error_reason(e: HttpError) -> Reason {
    match e {
        HttpError::HeadTooLarge | HttpError::BodyTooLarge => Reason::TooLarge,
        HttpError::Truncated => Reason::Closed,
        _ => Reason::Malformed,
    }
}

impl Probe for HttpProbe {
    fn start(&mut self) -> Step {
        match self.request.take() {
            Some(r) => Step::Send(r),
            None => Step::NeedMore,
        }
    }

    fn on_bytes(&mut self, data: &[u8]) -> Step {
        let keep = self.check.regex.is_some();
        let digest = self.check.digest.is_some();
        let (body, md5) = (&mut self.body, &mut self.md5);
        let r = self.parser.feed(data, &mut |b| {
            if keep {
                body.extend_from_slice(b);
            }
            if digest {
                md5.update(b);
            }
        });
        self.after_input(r)
    }

    fn on_eof(&mut self) -> Step {
        let r = self.parser.finish();
        match self.after_input(r) {
            Step::NeedMore => Step::Done(Outcome::fail(Reason::Closed)),
            s => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    fn run(check: &HttpCheck, reply: &[u8]) -> Outcome {
        let mut p = HttpProbe::new(check, addr());
        let Step::Send(req) = p.start() else {
            panic!("sends a request")
        };
        assert!(req.starts_with(b"GET "));
        let mut step = Step::NeedMore;
        for chunk in reply.chunks(3) {
            step = p.on_bytes(chunk);
            if let Step::Done(_) = step {
                break;
            }
        }
        if step == Step::NeedMore {
            step = p.on_eof();
        }
        match step {
            Step::Done(o) => o,
            other => panic!("no conclusion: {other:?}"),
        }
    }

    #[test]
    fn request_bytes() {
        let c = HttpCheck::new("/health?x=1")
            .unwrap()
            .host("example.org")
            .unwrap();
        let req = String::from_utf8(c.request(addr())).unwrap();
        assert!(req.starts_with("GET /health?x=1 HTTP/1.1\r\nHost: example.org\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
        assert!(HttpCheck::new("no-slash").is_err());
        assert!(HttpCheck::new("/a b").is_err());
        assert!(HttpCheck::new("/").unwrap().host("a\r\nb").is_err());
    }

    #[test]
    fn status_sets() {
        let c = HttpCheck::new("/")
            .unwrap()
            .expect("200-299 503".parse().unwrap());
        assert_eq!(run(&c, b"HTTP/1.1 503 x\r\n\r\n").verdict, Verdict::Pass);
        let o = run(&c, b"HTTP/1.1 500 x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(o, Outcome::fail(Reason::BadStatus(500)));
        let envoy = c.retriable("500".parse().unwrap());
        assert_eq!(
            run(&envoy, b"HTTP/1.1 500 x\r\n\r\n").verdict,
            Verdict::Fail
        );
        assert_eq!(
            run(&envoy, b"HTTP/1.1 404 x\r\n\r\n").verdict,
            Verdict::HardFail
        );
    }

    #[test]
    fn regex_and_digest() {
        let md5_hello = parse_digest("5d41402abc4b2a76b9719d911017c592").unwrap();
        let c = HttpCheck::new("/")
            .unwrap()
            .regex(BodyRegex::new("^hel+o$", false).unwrap())
            .digest(md5_hello);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(run(&c, chunked).verdict, Verdict::Pass);
        let wrong = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhellO";
        assert_eq!(run(&c, wrong).reason, Reason::BodyMismatch);
        let only_digest = HttpCheck::new("/").unwrap().digest(md5_hello);
        assert_eq!(run(&only_digest, wrong).reason, Reason::DigestMismatch);
        let negated = HttpCheck::new("/")
            .unwrap()
            .regex(BodyRegex::new("error", true).unwrap());
        assert_eq!(
            run(&negated, b"HTTP/1.0 200 OK\r\n\r\nall fine").verdict,
            Verdict::Pass
        );
        assert_eq!(
            run(&negated, b"HTTP/1.0 200 OK\r\n\r\nan error").reason,
            Reason::BodyMismatch
        );
        assert!(parse_digest("5d41").is_err());
    }

    #[test]
    fn cap_truncation_and_garbage() {
        let c = HttpCheck::new("/")
            .unwrap()
            .regex(BodyRegex::new("x", false).unwrap())
            .body_cap(4);
        assert_eq!(
            run(
                &c,
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nxxxxxxxxxx"
            )
            .reason,
            Reason::TooLarge
        );
        assert_eq!(
            run(&c, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nx").reason,
            Reason::Closed
        );
        assert_eq!(run(&c, b"garbage\r\n\r\n").reason, Reason::Malformed);
        assert_eq!(run(&c, b"HTTP/1.1 2").reason, Reason::Closed);
    }
}
