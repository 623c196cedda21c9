//! The single-threaded mio driver: scheduling, deadlines and transports here; the bytes of
//! runs in flight in `transfer`.

mod isn;
mod transfer;

use foldhash::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rand_core::Rng;
use slab::Slab;
use socket2::Socket;

use self::isn::IsnKeys;
use super::mmsg::{Datagram, RECV_BATCH, REPLY_LEN, Reply};
use super::sockets;
use crate::probe::{ExecCheck, SYN_LEN, expected_ack, transport_failure, write_syn};
use crate::wheel::Wheel;
use crate::{
    Check, CheckId, Checker, Error, Event, Outcome, Probe, Reason, Session, Step, Target,
    Transport, Verdict,
};

/// Readiness events taken per epoll_wait.
const EVENTS: usize = 1024;
const ICMP4: Token = Token(usize::MAX - 1);
const ICMP6: Token = Token(usize::MAX - 2);
/// The token of the first half-open raw socket; the next ones count down from it.
const RAW_FIRST: usize = usize::MAX - 3;
/// Distinct source addresses half-open probes may leave from (one raw socket each).
const RAW_SOURCES: usize = 256;
/// Half-open SYNs sent together (one `sendmmsg` per raw socket) before their raw socket is
/// read: on loopback each SYN-ACK is queued before the send returns, and a burst of due
/// probes would otherwise overflow the socket's receive buffer (lost replies, false
/// timeouts).
const SYN_BATCH: usize = super::mmsg::BATCH;
/// How long a route's source address (for half-open SYN checksums) is reused.
const ROUTE_TTL: Duration = Duration::from_secs(30);
/// Upper bounds (ms) of the lateness histogram's first buckets; the last is everything above.
const LATENESS_BOUNDS_MS: [u64; 4] = [1, 5, 10, 50];

/// Limits of a [`Reactor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReactorConfig {
    /// The most probe runs in flight at once; due probes wait beyond it (HAProxy's
    /// `tune.max-checks-per-thread` lesson: unbounded bursts starve everything).
    pub max_in_flight: usize,
    /// How often running external commands are polled for their exit.
    pub exec_poll: Duration,
    /// Due probes are started in batches on a grid of this step (10 ms by default): the
    /// reactor sleeps until the first grid point at or after the earliest due probe, so a
    /// probe may start up to this much after its slot (never before), and ten thousand
    /// probes a second cost a hundred wake-ups, not one per millisecond (each wake-up
    /// costs far more than its syscalls: caches refilled after other work ran). A wake-up
    /// for another reason (I/O, the caller's `max_wait`) starts what is due then. Zero: no
    /// grid. Deadlines are exact.
    pub coalesce: Duration,
}

impl Default for ReactorConfig {
    fn default() -> ReactorConfig {
        ReactorConfig {
            max_in_flight: 4096,
            exec_poll: Duration::from_millis(10),
            coalesce: Duration::from_millis(10),
        }
    }
}

/// Counters of a [`Reactor`] since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Probe runs started.
    pub started: u64,
    /// Probe runs finished (any verdict).
    pub completed: u64,
    /// Finished runs that passed.
    pub passed: u64,
    /// Finished runs that ended at their deadline.
    pub timeouts: u64,
    /// Runs that could not open their transport (no fd, spawn failure ...).
    pub local_errors: u64,
    /// The most runs in flight at once.
    pub peak_in_flight: usize,
    /// The largest delay between a probe's slot and its start.
    pub max_lateness: Duration,
    /// Starts by lateness: under 1, 5, 10, 50 ms, and 50 ms or more.
    pub lateness_histogram: [u64; 5],
}

/// The first multiple of `step` at or after `at` (`at` itself if `step` is zero).
fn grid_point(at: Duration, step: Duration) -> Duration {
    let step_ns = step.as_nanos();
    if step_ns == 0 {
        return at;
    }
    let ns = at.as_nanos().div_ceil(step_ns) * step_ns;
    u64::try_from(ns).map_or(at, Duration::from_nanos)
}

/// A cached route's source address for one target.
#[derive(Clone, Copy)]
struct RouteSource {
    dst: IpAddr,
    src: IpAddr,
    until: Duration,
}

/// What starting one due probe takes, copied out of the checker's borrow.
struct Start {
    id: CheckId,
    addr: SocketAddr,
    source: Option<IpAddr>,
    slot: Duration,
    deadline: Duration,
    transport: Transport,
    session: Option<Session>,
    exec: Option<ExecCheck>,
    nodelay: bool,
}

enum Io {
    Tcp {
        stream: TcpStream,
        connected: bool,
    },
    Udp(UdpSocket),
    /// Replies come through the shared socket, routed by sequence number.
    Icmp {
        v6: bool,
        dst: SocketAddr,
        seq: u16,
    },
    Exec {
        child: Child,
        check: ExecCheck,
    },
    /// A half-open SYN, sent by `open` through the raw socket of its source address (`raw`,
    /// an index into the reactor's); the reply names the run by its acknowledgment number
    /// ([`IsnKeys`]), counts if it comes from `dst` with `ack`, and decides the run (no
    /// session: the SYN is written on the stack, the reply parsed once).
    RawTcp {
        raw: usize,
        dst: SocketAddr,
        ack: u32,
    },
}

impl Io {
    /// Whether this run waits for a half-open reply on raw socket `raw` from `from` with
    /// acknowledgment number `ack`.
    fn awaits_syn_reply(&self, raw: usize, from: SocketAddr, ack: u32) -> bool {
        matches!(self, Io::RawTcp { raw: r, dst, ack: a } if *r == raw && *dst == from && *a == ack)
    }
}

struct Run {
    id: CheckId,
    serial: u64,
    started: Duration,
    deadline: Duration,
    session: Option<Session>,
    io: Io,
    out: Vec<u8>,
    finish: Option<Outcome>,
}

/// Runs a [`Checker`]'s probes: TCP (connect and half-open), UDP, ICMP and external
/// commands, from one thread.
///
/// Call [`Reactor::poll`] in a loop and drain [`Reactor::poll_event`] after each call.
pub struct Reactor<R: Rng> {
    poll: Poll,
    events: Events,
    /// (token, readable, writable, error) of the last batch.
    ready: Vec<(Token, bool, bool, bool)>,
    checker: Checker,
    rng: R,
    config: ReactorConfig,
    epoch: Instant,
    runs: Slab<Run>,
    deadlines: Wheel<(usize, u64)>,
    serial: u64,
    icmp: [Option<Socket>; 2],
    /// ICMP runs in flight by (IPv6, sequence number).
    icmp_waiting: HashMap<(bool, u16), Vec<usize>>,
    /// Half-open raw sockets, one per source address (each bound to it, so the kernel hands
    /// it only segments to that address: not the SYNs and RSTs toward the targets).
    raw_tcp: Vec<sockets::SynSocket>,
    /// Half-open runs in flight.
    syn_in_flight: usize,
    /// Half-open SYN sequence numbers from run keys, and back.
    isn_keys: IsnKeys,
    /// Source address routing picked for each target (by [`CheckId::index`]): its
    /// destination, the source and until when it is reused. A dense table, not a map: one
    /// cache line per probe instead of a hash probe's two.
    routes: Vec<Option<RouteSource>>,
    /// SYNs sent since the raw sockets were last read.
    syn_unread: usize,
    /// SYNs built but not sent yet (the batch `flush_syns` sends), and for each its raw
    /// socket and run (key, serial).
    syn_out: Vec<Datagram>,
    syn_out_runs: Vec<(usize, usize, u64)>,

    /// Whether each of `raw_tcp` is in the epoll set. A socket leaves it when the reactor
    /// sends through it and is back before the reactor sleeps: awake, the reactor reads the
    /// replies to its SYNs itself, and a socket out of the set costs no epoll callback per
    /// reply queued.
    raw_armed: Vec<bool>,
    /// External commands running (they are polled, not evented).
    exec_runs: usize,
    buf: Vec<u8>,
    /// Half-open replies read by one `recvmmsg`, and each one's length and sender.
    replies: Vec<Reply>,
    reply_from: Vec<(usize, IpAddr)>,
    stats: ReactorStats,
}

impl<R: Rng> core::fmt::Debug for Reactor<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reactor")
            .field("targets", &self.checker.len())
            .field("in_flight", &self.runs.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<R: Rng> Reactor<R> {
    /// A reactor with its own clock epoch (now) and randomness.
    pub fn new(config: ReactorConfig, mut rng: R) -> io::Result<Reactor<R>> {
        let max_in_flight = config.max_in_flight.max(1);
        Ok(Reactor {
            isn_keys: IsnKeys::new(max_in_flight, rng.next_u32()),
            poll: Poll::new()?,
            events: Events::with_capacity(EVENTS),
            ready: Vec::with_capacity(EVENTS),
            checker: Checker::new(),
            rng,
            config: ReactorConfig {
                max_in_flight,
                ..config
            },
            epoch: Instant::now(),
            runs: Slab::new(),
            deadlines: Wheel::default(),
            serial: 0,
            icmp: [None, None],
            icmp_waiting: HashMap::default(),
            raw_tcp: Vec::new(),
            syn_in_flight: 0,
            routes: Vec::new(),
            syn_unread: 0,
            syn_out: Vec::with_capacity(SYN_BATCH),
            syn_out_runs: Vec::with_capacity(SYN_BATCH),
            raw_armed: Vec::new(),
            exec_runs: 0,
            buf: vec![0; 64 * 1024],
            replies: vec![[0; REPLY_LEN]; RECV_BATCH],
            reply_from: vec![(0, IpAddr::V4(Ipv4Addr::UNSPECIFIED)); RECV_BATCH],
            stats: ReactorStats::default(),
        })
    }

    /// Time since the reactor was created: the timeline its trackers live on.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Starts tracking a target (or adds a reference to an identical one).
    pub fn add(&mut self, target: Target) -> Result<CheckId, Error> {
        let now = self.now();
        self.checker.add(target, now, &mut self.rng)
    }

    /// The checker: trackers, targets, admin states.
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// The checker, to remove targets or set admin states.
    pub fn checker_mut(&mut self) -> &mut Checker {
        &mut self.checker
    }

    /// Counters.
    pub fn stats(&self) -> ReactorStats {
        self.stats
    }

    /// Zeroes the counters (to measure a window after a warm-up).
    pub fn reset_stats(&mut self) {
        self.stats = ReactorStats::default();
    }

    /// Runs in flight.
    pub fn in_flight(&self) -> usize {
        self.runs.len()
    }

    /// The next transition of any target.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.checker.poll_event()
    }

    /// Starts due probes, waits for I/O (at most `max_wait`, or until the next timer), moves
    /// bytes, expires deadlines and reaps commands.
    pub fn poll(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let now = self.now();
        self.start_due(now);
        let mut wait = max_wait;
        let mut cap = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
        if self.runs.len() < self.config.max_in_flight {
            if let Some(at) = self.checker.poll_timeout() {
                cap(grid_point(at, self.config.coalesce).saturating_sub(now));
            }
        }
        if let Some(at) = self.deadlines.next_at() {
            cap(at.saturating_sub(now));
        }
        if self.exec_runs > 0 {
            cap(self.config.exec_poll);
        }
        self.arm_raw()?;
        // A full batch may leave readiness behind: take it all before judging deadlines, so
        // that a run which completed is never expired for want of being looked at.
        loop {
            match self.poll.poll(&mut self.events, wait) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.ready.clear();
            self.ready.extend(self.events.iter().map(|e| {
                let bad = e.is_error() || e.is_read_closed() || e.is_write_closed();
                (
                    e.token(),
                    e.is_readable() || bad,
                    e.is_writable() || bad,
                    e.is_error(),
                )
            }));
            let now = self.now();
            for i in 0..self.ready.len() {
                let (token, readable, writable, error) = self.ready[i];
                match token {
                    ICMP4 => self.icmp_readable(false, now),
                    ICMP6 => self.icmp_readable(true, now),
                    Token(t) if t <= RAW_FIRST && RAW_FIRST - t < self.raw_tcp.len() => {
                        self.raw_tcp_readable(RAW_FIRST - t, now);
                    }
                    Token(key) => self.ready_run(key, readable, writable, error, now),
                }
            }
            if self.ready.len() < EVENTS {
                break;
            }
            wait = Some(Duration::ZERO);
        }
        let now = self.now();
        // Replies that came while the raw sockets were out of the epoll set.
        self.read_raw_all(now);
        self.expire(now);
        self.reap_exec(now);
        self.start_due(now);
        Ok(())
    }

    /// Puts the raw sockets out of the epoll set back into it (before sleeping).
    fn arm_raw(&mut self) -> io::Result<()> {
        let registry = self.poll.registry();
        let sockets = self.raw_tcp.iter_mut().zip(&mut self.raw_armed);
        for (i, (raw, armed)) in sockets.enumerate().filter(|(_, (_, a))| !**a) {
            registry.register(&mut raw.socket, Token(RAW_FIRST - i), Interest::READABLE)?;
            *armed = true;
        }
        Ok(())
    }

    /// Takes raw socket `raw` out of the epoll set (before sending through it).
    fn disarm_raw(&mut self, raw: usize) -> io::Result<()> {
        if let (Some(socket), Some(armed)) =
            (self.raw_tcp.get_mut(raw), self.raw_armed.get_mut(raw))
        {
            if *armed {
                self.poll.registry().deregister(&mut socket.socket)?;
                *armed = false;
            }
        }
        Ok(())
    }

    /// Reads every raw socket while half-open runs are waiting.
    fn read_raw_all(&mut self, now: Duration) {
        if self.syn_in_flight == 0 {
            return;
        }
        for raw in 0..self.raw_tcp.len() {
            self.raw_tcp_readable(raw, now);
        }
    }

    /// Starts what is due, then reads the replies its last SYNs have (on loopback they are
    /// queued before the send returns): the reactor then sleeps with nothing unread.
    fn start_due(&mut self, now: Duration) {
        let now = self.start_due_runs(now);
        self.flush_syns(now);
        if self.syn_unread > 0 {
            self.read_raw_all(now);
        }
    }

    /// Starts due runs; the clock is read again after each batch of SYNs, so that a long
    /// burst's later starts count their real lateness and get their full timeout. Returns
    /// the time last read.
    fn start_due_runs(&mut self, mut now: Duration) -> Duration {
        while self.runs.len() < self.config.max_in_flight {
            let Some(due) = self.checker.poll_due(now) else {
                return now;
            };
            let transport = due.check.transport();
            let start = Start {
                id: due.id,
                addr: due.addr,
                source: due.source,
                slot: due.slot,
                deadline: due.deadline,
                transport,
                // Half-open runs need no session: `open` sends the SYN, the raw socket's
                // reader decides the reply.
                session: match transport {
                    Transport::RawTcp => None,
                    _ => due.check.session(due.addr, &mut self.rng),
                },
                exec: match due.check {
                    Check::Exec(e) => Some(e.clone()),
                    _ => None,
                },
                // Connect-only probes send nothing: Nagle's algorithm cannot delay them.
                nodelay: !matches!(due.check, Check::Tcp),
            };
            let Start {
                id,
                addr,
                source,
                slot,
                deadline,
                transport,
                mut session,
                exec,
                nodelay,
            } = start;
            self.note_lateness(now.saturating_sub(slot));
            self.stats.started += 1;
            let io = match self.open(
                id,
                transport,
                addr,
                source,
                exec,
                nodelay,
                &mut session,
                now,
            ) {
                Ok(io) => io,
                Err(e) => {
                    self.stats.local_errors += 1;
                    let o = transport_failure(&e).with_latency(Duration::ZERO);
                    self.stats.completed += 1;
                    self.checker.report(id, now, &o, &mut self.rng);
                    continue;
                }
            };
            self.serial += 1;
            let is_stream = matches!(io, Io::Tcp { .. } | Io::Exec { .. });
            let key = self.runs.insert(Run {
                id,
                serial: self.serial,
                started: now,
                deadline,
                session,
                io,
                out: Vec::new(),
                finish: None,
            });
            self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.runs.len());
            match self.runs[key].io {
                Io::Icmp { v6, seq, .. } => {
                    self.icmp_waiting.entry((v6, seq)).or_default().push(key);
                }
                Io::Exec { .. } => self.exec_runs += 1,
                Io::RawTcp { .. } => self.syn_in_flight += 1,
                Io::Tcp { .. } | Io::Udp(_) => {}
            }
            self.deadlines.insert(deadline, (key, self.serial));
            if let Err(e) = self.register(key) {
                self.complete(key, transport_failure(&e), now);
                continue;
            }
            // Datagram probes speak first; TCP ones once connected.
            if !is_stream {
                let step = self
                    .runs
                    .get_mut(key)
                    .and_then(|r| r.session.as_mut())
                    .map(Probe::start);
                self.process(key, step.unwrap_or(Step::NeedMore), now);
            }
            if self.syn_out.len() >= SYN_BATCH {
                self.flush_syns(now);
                self.read_raw_all(now);
                now = self.now();
            }
        }
        now
    }

    /// Sends the SYNs built since the last call, one `sendmmsg` per run of the same raw
    /// socket. A message the kernel refuses fails its own run (a local error); the rest are
    /// sent again from the one after it.
    fn flush_syns(&mut self, now: Duration) {
        let mut next = 0;
        while let Some(&(raw, key, serial)) = self.syn_out_runs.get(next) {
            let same = self.syn_out_runs[next..]
                .iter()
                .take_while(|&&(r, ..)| r == raw)
                .count();
            let result = match self.raw_tcp.get(raw) {
                Some(socket) => socket.send_batch(&self.syn_out[next..next + same]),
                None => Err(io::Error::other("no raw socket")),
            };
            match result {
                Ok(sent) => {
                    next += sent;
                    self.syn_unread += sent;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    next += 1;
                    if self.alive(key, serial) {
                        self.stats.local_errors += 1;
                        self.complete(key, transport_failure(&e), now);
                    }
                }
            }
        }
        self.syn_out.clear();
        self.syn_out_runs.clear();
    }

    fn note_lateness(&mut self, late: Duration) {
        self.stats.max_lateness = self.stats.max_lateness.max(late);
        let ms = u64::try_from(late.as_millis()).unwrap_or(u64::MAX);
        let bucket = LATENESS_BOUNDS_MS
            .iter()
            .position(|&b| ms < b)
            .unwrap_or(LATENESS_BOUNDS_MS.len());
        self.stats.lateness_histogram[bucket] += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        id: CheckId,
        transport: Transport,
        addr: SocketAddr,
        source: Option<IpAddr>,
        exec: Option<ExecCheck>,
        nodelay: bool,
        session: &mut Option<Session>,
        now: Duration,
    ) -> io::Result<Io> {
        Ok(match transport {
            Transport::Tcp => Io::Tcp {
                stream: sockets::tcp_connect(addr, source, nodelay)?,
                connected: false,
            },
            Transport::Udp => Io::Udp(sockets::udp_connect(addr, source)?),
            Transport::Icmp => {
                let v6 = addr.is_ipv6();
                self.icmp_socket(v6)?;
                let seq = match session {
                    Some(Session::Icmp(p)) => p.sequence(),
                    _ => 0,
                };
                Io::Icmp { v6, dst: addr, seq }
            }
            Transport::RawTcp => {
                let ip = match source {
                    Some(ip) => ip,
                    None => self.route_source(id.index(), addr.ip(), now)?,
                };
                let raw = self.raw_tcp_socket(ip)?;
                self.disarm_raw(raw)?;
                let isn = self
                    .isn_keys
                    .isn(self.runs.vacant_key(), self.rng.next_u32())
                    .ok_or_else(|| io::Error::other("run key beyond the SYN sequence space"))?;
                let mut syn = [0; SYN_LEN];
                write_syn(
                    SocketAddr::new(ip, self.raw_tcp[raw].port()),
                    addr,
                    isn,
                    &mut syn,
                )
                .ok_or_else(|| io::Error::other("source of another family"))?;
                // Sent with the rest of the batch (`flush_syns`), by the run about to be
                // inserted into the slab.
                self.syn_out
                    .push(self.raw_tcp[raw].datagram(&syn, addr.ip())?);
                self.syn_out_runs
                    .push((raw, self.runs.vacant_key(), self.serial + 1));
                Io::RawTcp {
                    raw,
                    dst: addr,
                    ack: expected_ack(isn),
                }
            }
            Transport::Exec => {
                let check = exec.ok_or_else(|| io::Error::other("exec check without command"))?;
                let child = Command::new(&check.program)
                    .args(&check.args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?;
                Io::Exec { child, check }
            }
        })
    }

    fn icmp_socket(&mut self, v6: bool) -> io::Result<&Socket> {
        let slot = usize::from(v6);
        if self.icmp[slot].is_none() {
            let socket = sockets::icmp_socket(v6)?;
            let token = if v6 { ICMP6 } else { ICMP4 };
            self.poll.registry().register(
                &mut SourceFd(&socket.as_raw_fd()),
                token,
                Interest::READABLE,
            )?;
            self.icmp[slot] = Some(socket);
        }
        self.icmp[slot]
            .as_ref()
            .ok_or_else(|| io::Error::other("no icmp socket"))
    }

    /// The index of the raw socket bound to `source`, opened on first use.
    fn raw_tcp_socket(&mut self, source: IpAddr) -> io::Result<usize> {
        if let Some(i) = self.raw_tcp.iter().position(|r| r.source() == source) {
            return Ok(i);
        }
        if self.raw_tcp.len() == RAW_SOURCES {
            return Err(io::Error::other(
                "more source addresses for half-open checks than raw sockets allowed",
            ));
        }
        // Into the epoll set before the reactor sleeps (`arm_raw`).
        self.raw_tcp.push(sockets::SynSocket::open(source)?);
        self.raw_armed.push(false);
        Ok(self.raw_tcp.len() - 1)
    }

    /// The source address routing picks toward `dst` for the target in checker slot `slot`,
    /// looked up once per [`ROUTE_TTL`] (and again if the slot's target changed address).
    fn route_source(&mut self, slot: usize, dst: IpAddr, now: Duration) -> io::Result<IpAddr> {
        if let Some(Some(r)) = self.routes.get(slot) {
            if r.dst == dst && now < r.until {
                return Ok(r.src);
            }
        }
        let src = sockets::route_source(dst)?;
        if self.routes.len() <= slot {
            self.routes.resize(slot + 1, None);
        }
        self.routes[slot] = Some(RouteSource {
            dst,
            src,
            until: now + ROUTE_TTL,
        });
        Ok(src)
    }

    fn register(&mut self, key: usize) -> io::Result<()> {
        let registry = self.poll.registry();
        match &mut self.runs[key].io {
            Io::Tcp { stream, .. } => {
                registry.register(stream, Token(key), Interest::READABLE | Interest::WRITABLE)
            }
            Io::Udp(socket) => registry.register(socket, Token(key), Interest::READABLE),
            Io::Icmp { .. } | Io::Exec { .. } | Io::RawTcp { .. } => Ok(()),
        }
    }

    fn expire(&mut self, now: Duration) {
        while let Some((_, (key, serial))) = self.deadlines.pop_due(now) {
            if !self.alive(key, serial) {
                continue;
            }
            let Some(run) = self.runs.get_mut(key) else {
                continue;
            };
            let outcome = match (&mut run.io, run.session.as_mut()) {
                (Io::Exec { .. }, _) | (_, None) => Outcome::fail(Reason::Timeout),
                (_, Some(session)) => session.on_timeout(),
            };
            if outcome.reason == Reason::Timeout {
                self.stats.timeouts += 1;
            }
            self.complete(key, outcome, now);
        }
    }

    fn reap_exec(&mut self, now: Duration) {
        if self.exec_runs == 0 {
            return;
        }
        let mut exited = Vec::new();
        for (key, run) in self.runs.iter_mut() {
            if let Io::Exec { child, check } = &mut run.io {
                match child.try_wait() {
                    Ok(Some(status)) => exited.push((key, check.outcome(status))),
                    Ok(None) => {}
                    Err(e) => exited.push((key, transport_failure(&e))),
                }
            }
        }
        for (key, outcome) in exited {
            self.complete(key, outcome, now);
        }
    }

    fn complete(&mut self, key: usize, outcome: Outcome, now: Duration) {
        let Some(mut run) = self.runs.try_remove(key) else {
            return;
        };
        match &mut run.io {
            // Closing the socket (dropping `run`) takes it out of epoll: no deregister call.
            Io::Tcp { stream, .. } => sockets::close_with_reset(stream),
            Io::Udp(_) => {}
            Io::Icmp { v6, seq, .. } => {
                if let Some(keys) = self.icmp_waiting.get_mut(&(*v6, *seq)) {
                    keys.retain(|&k| k != key);
                    if keys.is_empty() {
                        self.icmp_waiting.remove(&(*v6, *seq));
                    }
                }
            }
            Io::RawTcp { .. } => self.syn_in_flight -= 1,
            Io::Exec { child, .. } => {
                self.exec_runs -= 1;
                // Only our own child, by its pid; reaped so it leaves no zombie.
                if let Ok(None) = child.try_wait() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        // Out of the wheel, so that it wakes nobody (one left in the overflow pops stale).
        self.deadlines.remove(run.deadline, &(key, run.serial));
        self.stats.completed += 1;
        if outcome.verdict == Verdict::Pass {
            self.stats.passed += 1;
        }
        let outcome = outcome.with_latency(now.saturating_sub(run.started));
        self.checker.report(run.id, now, &outcome, &mut self.rng);
    }
}

#[cfg(test)]
mod tests {
    use super::{Io, IsnKeys, grid_point};
    use crate::probe::expected_ack;
    use std::net::SocketAddr;
    use std::time::Duration;

    #[test]
    fn a_half_open_reply_counts_only_from_its_target_with_its_ack() {
        let keys = IsnKeys::new(4096, 0x5bd1_e995);
        let target = SocketAddr::from(([127, 1, 0, 7], 80));
        let isn = keys.isn(5, 0x1234_5678).unwrap();
        let ack = expected_ack(isn);
        let run = Io::RawTcp {
            raw: 0,
            dst: target,
            ack,
        };
        assert_eq!(keys.key(ack), 5);
        assert!(run.awaits_syn_reply(0, target, ack));
        // Another sender, with the right ack.
        let other = SocketAddr::from(([127, 1, 0, 8], 80));
        assert!(!run.awaits_syn_reply(0, other, ack));
        assert!(!run.awaits_syn_reply(0, SocketAddr::from(([127, 1, 0, 7], 81)), ack));
        // The right key, other random bits: a stale or forged ack.
        let forged = ack ^ (1 << 20);
        assert_eq!(keys.key(forged), 5);
        assert!(!run.awaits_syn_reply(0, target, forged));
        // Another raw socket.
        assert!(!run.awaits_syn_reply(1, target, ack));
    }

    #[test]
    fn grid_points_are_never_early() {
        let ms = Duration::from_millis;
        assert_eq!(grid_point(ms(8), ms(4)), ms(8));
        assert_eq!(grid_point(ms(8) + Duration::from_nanos(1), ms(4)), ms(12));
        assert_eq!(grid_point(Duration::from_micros(1_500), ms(4)), ms(4));
        assert_eq!(grid_point(ms(7), Duration::ZERO), ms(7));
        assert_eq!(grid_point(Duration::MAX, ms(4)), Duration::MAX);
    }
}
