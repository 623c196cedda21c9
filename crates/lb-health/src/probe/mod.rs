//! Probes: byte-level state machines that never touch a socket.
//!
//! A [`Check`] describes what to verify; [`Check::session`] makes a fresh [`Session`] for one
//! run. The driver opens the [`Transport`] the check names, then moves bytes:
//!
//! 1. connected (TCP) or socket open (UDP, ICMP): [`Probe::start`];
//! 2. each chunk received (one datagram for UDP and ICMP): [`Probe::on_bytes`];
//! 3. the peer closed: [`Probe::on_eof`]; the deadline passed: [`Probe::on_timeout`].
//!
//! Each call returns a [`Step`]: bytes to send, a wish for more input, or the [`Outcome`].
//! Transport failures (refused, unreachable) are the driver's to report; [`transport_failure`]
//! maps them to outcomes. External commands are not byte streams: the driver runs them and
//! maps the exit with [`ExecCheck::outcome`].

mod dns;
mod half_open;
mod http;
mod icmp;
mod script;
mod smtp;
mod status;
#[cfg(feature = "tls")]
mod tls;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

use rand_core::Rng;

pub use dns::{DnsCheck, DnsError, DnsProbe, DnsReply, DnsType, parse_dns_reply};
pub use half_open::{
    HalfOpenProbe, SYN_LEN, SynReply, SynSegment, expected_ack, parse_syn_reply, syn_segment,
    write_syn,
};
pub use http::{
    BodyRegex, HEAD_CAP, HttpCheck, HttpError, HttpProbe, ResponseHead, ResponseParser,
    parse_digest,
};
pub use icmp::{IcmpCheck, IcmpProbe, echo_request, parse_echo_reply};
pub use script::{Expect, Pattern, ScriptCheck, ScriptProbe, ScriptStep, parse_masked_hex};
pub use smtp::{SmtpCheck, SmtpProbe};
pub use status::StatusSet;
#[cfg(feature = "tls")]
pub use tls::{TlsOptions, TlsProbe};

use crate::agent::{AgentHealth, parse_agent_line};
use crate::{Outcome, Reason, ReportedWeight, Verdict};

/// What a probe wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes (one datagram for UDP and ICMP), then wait for input.
    Send(Vec<u8>),
    /// Wait for more input.
    NeedMore,
    /// Send these bytes (a farewell such as SMTP `QUIT`), then close: the run is over.
    Finish(Vec<u8>, Outcome),
    /// The run is over.
    Done(Outcome),
}

/// The interface every probe session implements. None of these panics on any input.
pub trait Probe {
    /// The transport is ready: connected (TCP), or a socket is open (UDP, ICMP).
    fn start(&mut self) -> Step;
    /// Bytes arrived: a chunk of the stream, or one datagram.
    fn on_bytes(&mut self, data: &[u8]) -> Step;
    /// The peer closed its side of the stream.
    fn on_eof(&mut self) -> Step {
        Step::Done(Outcome::fail(Reason::Closed))
    }
    /// The run's deadline passed.
    fn on_timeout(&mut self) -> Outcome {
        Outcome::fail(Reason::Timeout)
    }
}

/// How the driver reaches the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A TCP connection to the target address (TLS, if any, runs inside the session).
    Tcp,
    /// A UDP socket connected to the target address.
    Udp,
    /// ICMP echo to the target's IP.
    Icmp,
    /// A SYN from a raw TCP socket the driver shares among half-open probes.
    RawTcp,
    /// An external command.
    Exec,
}

/// Maps a transport error (connect, send, receive) to an outcome.
pub fn transport_failure(err: &io::Error) -> Outcome {
    use io::ErrorKind as K;
    let reason = match err.kind() {
        K::ConnectionRefused => Reason::Refused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Reason::Reset,
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => Reason::Unreachable,
        K::TimedOut => Reason::Timeout,
        _ => Reason::LocalError,
    };
    Outcome::fail(reason)
}

/// HAProxy's agent check: connect, optionally send a line, read the agent's line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AgentCheck {
    /// Sent after connecting (HAProxy `agent-send`), if any.
    pub send: Option<Vec<u8>>,
}

/// keepalived's MISC_CHECK: run a command; exit 0 is up, 1 is down; with `dynamic`
/// (`misc_dynamic`), 2-255 is up with weight `code - 2`, otherwise any other code is down.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecCheck {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// keepalived `misc_dynamic`.
    pub dynamic: bool,
}

impl ExecCheck {
    /// A command with no arguments, not dynamic.
    pub fn new(program: impl Into<PathBuf>) -> ExecCheck {
        ExecCheck {
            program: program.into(),
            args: Vec::new(),
            dynamic: false,
        }
    }

    /// The outcome of an exit code (`None` when a signal killed the command).
    pub fn outcome_of_code(&self, code: Option<i32>) -> Outcome {
        match code {
            None => Outcome::fail(Reason::ExitSignal),
            Some(0) => Outcome::pass(Reason::ExitCode(0)),
            Some(c @ 2..=255) if self.dynamic => {
                let mut o = Outcome::pass(Reason::ExitCode(c as u8));
                o.weight = Some(ReportedWeight::Absolute((c - 2).unsigned_abs()));
                o
            }
            Some(c) => Outcome::fail(Reason::ExitCode(u8::try_from(c & 0xff).unwrap_or(u8::MAX))),
        }
    }

    /// The outcome of a finished command.
    pub fn outcome(&self, status: ExitStatus) -> Outcome {
        self.outcome_of_code(status.code())
    }
}

/// What to check. Two equal checks against the same address are the same probe: drivers run
/// it once per interval however many pools ask for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// TCP connect (keepalived TCP_CHECK, HAProxy L4).
    Tcp,
    /// TCP half-open (F5 `tcp_half_open`): a SYN, answered by SYN-ACK (up) or RST (refused).
    /// The same verdict as [`Check::Tcp`] without the target application seeing a
    /// connection. Needs a raw socket (root or CAP_NET_RAW).
    TcpHalfOpen,
    /// TCP connect and a TLS handshake.
    #[cfg(feature = "tls")]
    Tls(TlsOptions),
    /// HTTP/1.1 GET, over TLS when the check says so (HTTP_GET / SSL_GET).
    Http(HttpCheck),
    /// A send/expect script over TCP or UDP (HAProxy tcp-check, keepalived UDP_CHECK).
    Script(ScriptCheck),
    /// A DNS query over UDP (keepalived DNS_CHECK).
    Dns(DnsCheck),
    /// SMTP banner, HELO, QUIT (keepalived SMTP_CHECK).
    Smtp(SmtpCheck),
    /// HAProxy's agent check.
    Agent(AgentCheck),
    /// ICMP echo (keepalived PING_CHECK).
    Icmp(IcmpCheck),
    /// An external command (keepalived MISC_CHECK).
    Exec(ExecCheck),
}

impl Check {
    /// The transport the driver opens.
    pub fn transport(&self) -> Transport {
        match self {
            Check::Script(s) if s.udp => Transport::Udp,
            Check::Dns(_) => Transport::Udp,
            Check::Icmp(_) => Transport::Icmp,
            Check::TcpHalfOpen => Transport::RawTcp,
            Check::Exec(_) => Transport::Exec,
            _ => Transport::Tcp,
        }
    }

    /// A kind name for logs: `tcp`, `tcp-half-open`, `tls`, `http`, `https`, `script`, `dns`, `smtp`, `agent`,
    /// `icmp`, `exec`.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Tcp => "tcp",
            Check::TcpHalfOpen => "tcp-half-open",
            #[cfg(feature = "tls")]
            Check::Tls(_) => "tls",
            Check::Http(h) if h.is_tls() => "https",
            Check::Http(_) => "http",
            Check::Script(_) => "script",
            Check::Dns(_) => "dns",
            Check::Smtp(_) => "smtp",
            Check::Agent(_) => "agent",
            Check::Icmp(_) => "icmp",
            Check::Exec(_) => "exec",
        }
    }

    /// A fresh session for one run against `addr`; `None` for [`Check::Exec`], which the
    /// driver runs itself. Randomness picks DNS ids, ICMP and SYN sequence numbers.
    pub fn session(&self, addr: SocketAddr, rng: &mut impl Rng) -> Option<Session> {
        Some(match self {
            Check::Tcp => Session::Connect(ConnectProbe),
            Check::TcpHalfOpen => Session::HalfOpen(HalfOpenProbe::new(addr, rng)),
            #[cfg(feature = "tls")]
            Check::Tls(opts) => Session::Tls(Box::new(TlsProbe::new(
                opts,
                Session::Connect(ConnectProbe),
                Reason::TlsHandshake,
            ))),
            Check::Http(h) => {
                let plain = Session::Http(Box::new(HttpProbe::new(h, addr)));
                #[cfg(feature = "tls")]
                if let Some(opts) = h.tls_options() {
                    return Some(Session::Tls(Box::new(TlsProbe::new(
                        opts,
                        plain,
                        Reason::TlsHandshake,
                    ))));
                }
                plain
            }
            Check::Script(s) => Session::Script(ScriptProbe::new(s)),
            Check::Dns(d) => Session::Dns(DnsProbe::new(d, rng)),
            Check::Smtp(s) => Session::Smtp(SmtpProbe::new(s)),
            Check::Agent(a) => Session::Agent(AgentProbe::new(a)),
            Check::Icmp(i) => Session::Icmp(IcmpProbe::new(i, addr, rng)),
            Check::Exec(_) => return None,
        })
    }
}

/// One run of a [`Check`]: every probe kind behind one type, so drivers need no boxing.
#[derive(Debug)]
#[non_exhaustive]
pub enum Session {
    /// [`ConnectProbe`].
    Connect(ConnectProbe),
    /// [`HttpProbe`] (boxed: its parser and digest state dwarf the other sessions).
    Http(Box<HttpProbe>),
    /// [`ScriptProbe`].
    Script(ScriptProbe),
    /// [`DnsProbe`].
    Dns(DnsProbe),
    /// [`SmtpProbe`].
    Smtp(SmtpProbe),
    /// [`AgentProbe`].
    Agent(AgentProbe),
    /// [`IcmpProbe`].
    Icmp(IcmpProbe),
    /// [`HalfOpenProbe`].
    HalfOpen(HalfOpenProbe),
    /// Another session inside TLS.
    #[cfg(feature = "tls")]
    Tls(Box<TlsProbe>),
}

macro_rules! each_session {
    ($s:expr, $p:ident => $e:expr) => {
        match $s {
            Session::Connect($p) => $e,
            Session::Http($p) => $e,
            Session::Script($p) => $e,
            Session::Dns($p) => $e,
            Session::Smtp($p) => $e,
            Session::Agent($p) => $e,
            Session::Icmp($p) => $e,
            Session::HalfOpen($p) => $e,
            #[cfg(feature = "tls")]
            Session::Tls($p) => $e,
        }
    };
}

impl Probe for Session {
    fn start(&mut self) -> Step {
        each_session!(self, p => p.start())
    }
    fn on_bytes(&mut self, data: &[u8]) -> Step {
        each_session!(self, p => p.on_bytes(data))
    }
    fn on_eof(&mut self) -> Step {
        each_session!(self, p => p.on_eof())
    }
    fn on_timeout(&mut self) -> Outcome {
        each_session!(self, p => p.on_timeout())
    }
}

/// TCP connect only: passes as soon as the connection is up.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectProbe;

impl Probe for ConnectProbe {
    fn start(&mut self) -> Step {
        Step::Done(Outcome::pass(Reason::Connected))
    }
    fn on_bytes(&mut self, _data: &[u8]) -> Step {
        Step::Done(Outcome::pass(Reason::Connected))
    }
}

/// The agent-check session: one line, at most 1 KiB.
#[derive(Debug)]
pub struct AgentProbe {
    send: Option<Vec<u8>>,
    line: Vec<u8>,
}

impl AgentProbe {
    /// A session for `check`.
    pub fn new(check: &AgentCheck) -> AgentProbe {
        AgentProbe {
            send: check.send.clone(),
            line: Vec::new(),
        }
    }

    fn conclude(&self) -> Outcome {
        match parse_agent_line(&self.line) {
            Ok(report) => {
                let verdict = match report.health {
                    Some(AgentHealth::Down) => Verdict::HardFail,
                    _ => Verdict::Pass,
                };
                let reason = if verdict == Verdict::HardFail {
                    Reason::AgentDown
                } else {
                    Reason::AgentReport
                };
                let mut o = Outcome::new(verdict, reason);
                o.agent = Some(report);
                o
            }
            // A garbled agent says nothing about the server (HAProxy ignores it).
            Err(_) => Outcome::new(Verdict::Inconclusive, Reason::Malformed),
        }
    }
}

impl Probe for AgentProbe {
    fn start(&mut self) -> Step {
        match self.send.take() {
            Some(bytes) => Step::Send(bytes),
            None => Step::NeedMore,
        }
    }
    fn on_bytes(&mut self, data: &[u8]) -> Step {
        let room = 1024usize.saturating_sub(self.line.len());
        self.line.extend_from_slice(&data[..data.len().min(room)]);
        if self.line.contains(&b'\n') || self.line.len() >= 1024 {
            Step::Done(self.conclude())
        } else {
            Step::NeedMore
        }
    }
    fn on_eof(&mut self) -> Step {
        Step::Done(self.conclude())
    }
    fn on_timeout(&mut self) -> Outcome {
        // An unreachable or silent agent is not a server failure.
        Outcome::new(Verdict::Inconclusive, Reason::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misc_check_exit_codes() {
        let plain = ExecCheck::new("/bin/true");
        assert_eq!(plain.outcome_of_code(Some(0)).verdict, Verdict::Pass);
        assert_eq!(plain.outcome_of_code(Some(1)).verdict, Verdict::Fail);
        assert_eq!(plain.outcome_of_code(Some(7)).verdict, Verdict::Fail);
        assert_eq!(plain.outcome_of_code(None).reason, Reason::ExitSignal);
        let dynamic = ExecCheck {
            dynamic: true,
            ..plain
        };
        let o = dynamic.outcome_of_code(Some(12));
        assert_eq!(o.verdict, Verdict::Pass);
        assert_eq!(o.weight, Some(ReportedWeight::Absolute(10)));
        assert_eq!(
            dynamic.outcome_of_code(Some(255)).weight,
            Some(ReportedWeight::Absolute(253))
        );
        assert_eq!(dynamic.outcome_of_code(Some(1)).verdict, Verdict::Fail);
    }

    #[test]
    fn agent_session() {
        let mut p = AgentProbe::new(&AgentCheck {
            send: Some(b"hello\n".to_vec()),
        });
        assert_eq!(p.start(), Step::Send(b"hello\n".to_vec()));
        assert_eq!(p.on_bytes(b"50% dr"), Step::NeedMore);
        let Step::Done(o) = p.on_bytes(b"ain\n") else {
            panic!("agent line complete")
        };
        assert_eq!(o.verdict, Verdict::Pass);
        let report = o.agent.unwrap();
        assert_eq!(report.weight_percent, Some(50));
        assert_eq!(report.admin, Some(crate::Admin::Drain));
        let mut p = AgentProbe::new(&AgentCheck::default());
        assert_eq!(p.start(), Step::NeedMore);
        let Step::Done(o) = p.on_bytes(b"stopped#maintenance window\n") else {
            panic!("agent line complete")
        };
        assert_eq!(o.verdict, Verdict::HardFail);
        assert_eq!(p.on_timeout().verdict, Verdict::Inconclusive);
    }
}
