//! What one probe run concludes, and why.

use core::fmt;
use core::time::Duration;

use crate::agent::AgentReport;

/// The verdict of one probe run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The target passed: counts toward `rise`.
    Pass,
    /// The target failed: counts toward `fall`.
    Fail,
    /// The target failed in a way that marks it down at once, whatever `fall` says (Envoy's
    /// non-retriable HTTP status, an agent saying `down`).
    HardFail,
    /// Says nothing about the target (HAProxy: an unreachable agent is not a server failure).
    /// Kept in the history, not counted.
    Inconclusive,
}

impl Verdict {
    /// `Pass`.
    pub fn is_pass(self) -> bool {
        self == Verdict::Pass
    }
}

/// Why a probe run (or a state change) came out the way it did. `Copy`, so the history ring
/// and transitions carry it without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The TCP connection was established (L4 pass).
    Connected,
    /// A SYN was answered with a SYN-ACK (half-open L4 pass).
    SynAck,
    /// The TLS handshake completed (L6 pass).
    TlsHandshake,
    /// An HTTP status inside the expected set.
    HttpStatus(u16),
    /// An HTTP status outside the expected set.
    BadStatus(u16),
    /// The HTTP body did not match the regex.
    BodyMismatch,
    /// The HTTP body's MD5 differs from the expected digest.
    DigestMismatch,
    /// The body (or response head) grew past the configured cap.
    TooLarge,
    /// The reply could not be parsed (HTTP, DNS, SMTP, agent or ICMP syntax).
    Malformed,
    /// Every expect step of a send/expect script matched.
    ScriptMatched,
    /// An expect step of a send/expect script did not match (its index).
    ScriptMismatch(u16),
    /// A DNS reply with RCODE 0 (and an answer when one is required).
    DnsAnswer,
    /// A DNS reply with this non-zero RCODE.
    DnsRcode(u8),
    /// A DNS reply with no answer of the asked type when one was required.
    DnsNoAnswer,
    /// SMTP answered 220 to the connection and 250 to HELO.
    SmtpOk,
    /// SMTP answered with an unexpected code.
    SmtpCode(u16),
    /// An ICMP echo reply came back.
    EchoReply,
    /// The agent reported (weight, state).
    AgentReport,
    /// The agent said `down`, `fail` or `stopped`.
    AgentDown,
    /// The external command exited with this code.
    ExitCode(u8),
    /// The external command was killed by a signal.
    ExitSignal,
    /// The connection was refused (TCP RST, or ICMP port unreachable for UDP).
    Refused,
    /// The host or network is unreachable.
    Unreachable,
    /// No conclusion before the probe's timeout.
    Timeout,
    /// The peer closed the connection before the probe could conclude.
    Closed,
    /// The connection was reset mid-probe.
    Reset,
    /// The TLS handshake or record layer failed.
    TlsError,
    /// A local I/O error (no socket, no file descriptors, command not found ...).
    LocalError,
    /// The tracker's initial state (no probe has run).
    Initial,
    /// An operator or agent changed the administrative state.
    Admin,
    /// Flap damping holds the target down although its probes pass.
    Damped,
    /// Flap damping released the target.
    Undamped,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::Connected => f.write_str("connected"),
            Reason::SynAck => f.write_str("syn-ack"),
            Reason::TlsHandshake => f.write_str("tls handshake completed"),
            Reason::HttpStatus(s) => write!(f, "http status {s}"),
            Reason::BadStatus(s) => write!(f, "unexpected http status {s}"),
            Reason::BodyMismatch => f.write_str("body does not match"),
            Reason::DigestMismatch => f.write_str("body digest differs"),
            Reason::TooLarge => f.write_str("response too large"),
            Reason::Malformed => f.write_str("malformed reply"),
            Reason::ScriptMatched => f.write_str("expected reply"),
            Reason::ScriptMismatch(i) => write!(f, "reply does not match expect step {i}"),
            Reason::DnsAnswer => f.write_str("dns answer"),
            Reason::DnsRcode(r) => write!(f, "dns rcode {r}"),
            Reason::DnsNoAnswer => f.write_str("dns reply without answer"),
            Reason::SmtpOk => f.write_str("smtp banner and helo accepted"),
            Reason::SmtpCode(c) => write!(f, "unexpected smtp code {c}"),
            Reason::EchoReply => f.write_str("icmp echo reply"),
            Reason::AgentReport => f.write_str("agent report"),
            Reason::AgentDown => f.write_str("agent reports down"),
            Reason::ExitCode(c) => write!(f, "exit code {c}"),
            Reason::ExitSignal => f.write_str("killed by a signal"),
            Reason::Refused => f.write_str("connection refused"),
            Reason::Unreachable => f.write_str("unreachable"),
            Reason::Timeout => f.write_str("timeout"),
            Reason::Closed => f.write_str("closed by peer"),
            Reason::Reset => f.write_str("connection reset"),
            Reason::TlsError => f.write_str("tls error"),
            Reason::LocalError => f.write_str("local error"),
            Reason::Initial => f.write_str("initial state"),
            Reason::Admin => f.write_str("administrative state"),
            Reason::Damped => f.write_str("flap damping"),
            Reason::Undamped => f.write_str("flap damping released"),
        }
    }
}

/// A weight the target reported about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportedWeight {
    /// An absolute weight (keepalived MISC_CHECK with `misc_dynamic`: exit code - 2).
    Absolute(u32),
    /// A percentage of the configured weight (HAProxy agent: `75%`).
    Percent(u32),
}

/// The result of one probe run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Pass, fail, hard fail or inconclusive.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// How long the run took, when the driver measured it.
    pub latency: Option<Duration>,
    /// A weight the target reported (agent, dynamic MISC_CHECK).
    pub weight: Option<ReportedWeight>,
    /// What an agent said, for the tracker to apply.
    pub agent: Option<AgentReport>,
}

impl Outcome {
    /// A passing outcome.
    pub fn pass(reason: Reason) -> Outcome {
        Outcome::new(Verdict::Pass, reason)
    }

    /// A failing outcome.
    pub fn fail(reason: Reason) -> Outcome {
        Outcome::new(Verdict::Fail, reason)
    }

    /// An outcome with this verdict and reason and nothing else.
    pub fn new(verdict: Verdict, reason: Reason) -> Outcome {
        Outcome {
            verdict,
            reason,
            latency: None,
            weight: None,
            agent: None,
        }
    }

    /// The same outcome with its latency set.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Outcome {
        self.latency = Some(latency);
        self
    }
}
