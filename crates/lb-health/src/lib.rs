//! Health checking as primitives: trackers, probes, outlier detection, pools and a driver,
//! with keepalived's, HAProxy's and Envoy's semantics, deterministic to test.
//!
//! # Pieces
//!
//! | piece | what it does | I/O |
//! |---|---|---|
//! | [`Tracker`] | one target's state: rise/fall ([`Counting`]), [`InitialState`], per-state [`Intervals`], [`Jitter`], [`Backoff`], [`Admin`] states, [`SlowStart`], [`FlapDamping`], a history of outcomes | none: `now` and an RNG are arguments |
//! | [`probe`] | what to check ([`Check`]) and byte-level sessions that judge replies ([`Probe`]) | none: they say what to send and judge what arrives |
//! | [`Checker`] | many trackers on one timeline; identical probes deduplicated | none |
//! | [`outlier`] | passive ejection from real traffic (Envoy outlier detection) | none |
//! | [`pool`] | several checks per target, quorum + hysteresis + sorry server, panic threshold | none |
//! | [`driver::Reactor`] | runs a `Checker`'s probes from one thread (mio), bounded and with deadlines; TCP half-open SYNs ([`Check::TcpHalfOpen`]) with no allocation per probe, sent 64 per `sendmmsg`, their replies read up to 128 per `recvmmsg` from one BPF-filtered raw socket per source address (out of epoll while the reactor is awake); due probes start in batches on a 10 ms grid | sockets, commands |
//! | `driver::tokio::TokioChecker` (feature `tokio`) | the same on tokio: a task per probe, a bound on tasks | sockets, commands |
//! | [`url`] | targets written as `tcp://`, `tcp+syn://`, `http://`, `https://`, `udp://`, `icmp://`, `exec:` | none |
//!
//! # Run loop
//!
//! The cores never read a clock or touch a socket. A probe session says what to send and
//! judges what comes back; the tracker turns outcomes into transitions and says when to probe
//! next. Here an HTTP check and a tracker are driven by hand, on a virtual clock:
//!
//! ```
//! use std::time::Duration;
//! use lb_health::probe::HttpCheck;
//! use lb_health::{Check, InitialState, Probe, Reason, State, Step, Tracker, TrackerConfig};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(1);
//! let check = Check::Http(HttpCheck::new("/health")?.expect("200-299 503".parse()?));
//! let mut config = TrackerConfig::new(Duration::from_secs(2));
//! config.initial = InitialState::Up;
//! config.fall = 2;
//! let mut tracker = Tracker::new(config, Duration::ZERO, &mut rng)?;
//! assert_eq!(tracker.poll_transition().map(|t| t.to), Some(State::Up)); // the initial one
//!
//! for reply in [&b"HTTP/1.1 500 Oops\r\n\r\n"[..], b"HTTP/1.1 500 Oops\r\n\r\n"] {
//!     let now = tracker.next_probe_at().unwrap();
//!     // What a driver does with a connected socket:
//!     let mut session = check.session("10.0.0.2:80".parse().unwrap(), &mut rng).unwrap();
//!     let Step::Send(request) = session.start() else { unreachable!() };
//!     assert!(request.starts_with(b"GET /health HTTP/1.1\r\n"));
//!     let Step::Done(outcome) = session.on_bytes(reply) else { unreachable!() };
//!     tracker.observe(now, &outcome, &mut rng);
//! }
//! let down = tracker.poll_transition().unwrap(); // after exactly `fall` failures
//! assert_eq!((down.to, down.reason, down.at), (State::Down, Reason::BadStatus(500), Duration::from_secs(2)));
//! assert_eq!(tracker.history().len(), 2);
//! # Ok::<(), lb_health::Error>(())
//! ```
//!
//! With the `reactor` feature (default), [`driver::Reactor`] does the I/O:
//!
//! ```no_run
//! use std::time::Duration;
//! use lb_health::driver::{Reactor, ReactorConfig};
//! use lb_health::{Check, Target, TrackerConfig};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut reactor = Reactor::new(ReactorConfig::default(), StdRng::seed_from_u64(1))?;
//! reactor.add(Target {
//!     addr: "10.0.0.2:80".parse().unwrap(),
//!     check: Check::Tcp,
//!     tracker: TrackerConfig::keepalived(Duration::from_secs(6), 1, Duration::from_secs(1), Duration::from_secs(6), false),
//!     timeout: Duration::from_secs(5),
//!     source: None,
//! }).expect("valid target");
//! loop {
//!     reactor.poll(None)?;
//!     while let Some(event) = reactor.poll_event() {
//!         println!("{} is {} ({})", event.addr, event.transition.to.as_str(), event.transition.reason);
//!     }
//! }
//! # #[allow(unreachable_code)] Ok::<(), std::io::Error>(())
//! ```
//!
//! # keepalived, HAProxy and Envoy in these terms
//!
//! - keepalived `TCP_CHECK` / `HTTP_GET` / `SSL_GET` / `SMTP_CHECK` / `DNS_CHECK` /
//!   `UDP_CHECK` / `PING_CHECK` / `MISC_CHECK`: [`Check::Tcp`], [`Check::Http`] (with
//!   [`probe::TlsOptions`] for SSL_GET), [`Check::Smtp`], [`Check::Dns`],
//!   [`probe::ScriptCheck::udp`], [`Check::Icmp`], [`Check::Exec`]. `connect_timeout` is
//!   [`Target::timeout`]; `retry`, `delay_before_retry`, `delay_loop`, `warmup` and `alpha`
//!   go into [`TrackerConfig::keepalived`]; `quorum`, `hysteresis`, `sorry_server` and
//!   `inhibit_on_failure` into [`pool::PoolConfig`].
//! - HAProxy `rise`/`fall`/`inter`/`fastinter`/`downinter`/`init-state`/`spread-checks`/
//!   `slowstart`, `tcp-check` and `agent-check`: [`TrackerConfig`], [`Intervals::haproxy`],
//!   [`probe::ScriptCheck`], [`probe::AgentCheck`].
//! - Envoy expected/retriable statuses ([`probe::HttpCheck::retriable`]), startup rule
//!   ([`InitialState::Unknown`]), slow start, outlier detection, panic threshold.
//!
//! Nothing here panics on any input: parsers return typed errors ([`probe::HttpError`],
//! [`probe::DnsError`], [`AgentError`]) and probes turn them into outcomes with a [`Reason`].
// `unsafe` stays denied (workspace lints); only the batched raw-socket calls of
// `driver::mmsg` allow it, each block with its SAFETY comment.
#![deny(unsafe_code)]

mod agent;
mod checker;
#[cfg(any(feature = "reactor", feature = "tokio"))]
pub mod driver;
mod error;
mod outcome;
pub mod outlier;
pub mod pool;
pub mod probe;
mod tracker;
pub mod url;
mod wheel;

pub use agent::{AgentError, AgentHealth, AgentReport, parse_agent_line};
pub use checker::{CheckId, Checker, Due, Event, Target};
pub use error::Error;
pub use outcome::{Outcome, Reason, ReportedWeight, Verdict};
pub use probe::{Check, Probe, Session, Step, Transport};
pub use rand_core::Rng;
pub use tracker::{
    Admin, Backoff, Counting, FlapDamping, Health, InitialState, Intervals, Jitter, Observation,
    SlowStart, State, Tracker, TrackerConfig, TrackerStats, Transition,
};
