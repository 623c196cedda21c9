//! The tokio driver: each probe run is a task; at most `max_in_flight` run at once.
//!
//! [`TokioChecker::next_event`] drives everything: it starts due probes, collects their
//! outcomes into the [`Checker`], and returns the next transition. It is cancel-safe (runs in
//! flight stay in the task set), so it can sit in a `select!`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand_core::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::sockets;
use crate::probe::{ExecCheck, transport_failure};
use crate::{
    Check, CheckId, Checker, Error, Event, Outcome, Probe, Reason, Session, Step, Target, Transport,
};

/// Runs a [`Checker`]'s probes on the current tokio runtime.
pub struct TokioChecker<R: Rng> {
    checker: Checker,
    rng: R,
    epoch: Instant,
    max_in_flight: usize,
    tasks: JoinSet<(CheckId, Outcome)>,
    task_ids: HashMap<tokio::task::Id, CheckId>,
}

impl<R: Rng> core::fmt::Debug for TokioChecker<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokioChecker")
            .field("targets", &self.checker.len())
            .field("in_flight", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<R: Rng> TokioChecker<R> {
    /// A driver whose clock starts now; at most `max_in_flight` probes run at once.
    pub fn new(max_in_flight: usize, rng: R) -> TokioChecker<R> {
        TokioChecker {
            checker: Checker::new(),
            rng,
            epoch: Instant::now(),
            max_in_flight: max_in_flight.max(1),
            tasks: JoinSet::new(),
            task_ids: HashMap::new(),
        }
    }

    /// Time since creation: the trackers' timeline.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Starts tracking a target (or adds a reference to an identical one).
    /// Half-open checks are the reactor's only ([`Error::Unsupported`]).
    pub fn add(&mut self, target: Target) -> Result<CheckId, Error> {
        if target.check.transport() == Transport::RawTcp {
            return Err(Error::Unsupported(
                "tcp half-open checks run in the reactor driver only",
            ));
        }
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

    /// Probe runs in flight.
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    fn start_due(&mut self) {
        let now = self.now();
        while self.tasks.len() < self.max_in_flight {
            let Some(due) = self.checker.poll_due(now) else {
                return;
            };
            let (id, addr, source) = (due.id, due.addr, due.source);
            let timeout = due.deadline.saturating_sub(now);
            let transport = due.check.transport();
            let exec = match due.check {
                Check::Exec(e) => Some(e.clone()),
                _ => None,
            };
            let session = due.check.session(addr, &mut self.rng);
            let task = self.tasks.spawn(async move {
                let started = Instant::now();
                let outcome = run(transport, addr, source, session, exec, timeout).await;
                (id, outcome.with_latency(started.elapsed()))
            });
            self.task_ids.insert(task.id(), id);
        }
    }

    /// Drives probes until a target changes state; returns that transition.
    pub async fn next_event(&mut self) -> Event {
        loop {
            if let Some(e) = self.checker.poll_event() {
                return e;
            }
            self.start_due();
            let wake = if self.tasks.len() < self.max_in_flight {
                self.checker.poll_timeout()
            } else {
                None
            };
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(self.epoch + at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = self.tasks.join_next_with_id() => {
                    let (task, id, outcome) = match joined {
                        Ok((task, (id, outcome))) => (task, Some(id), outcome),
                        // A task that panicked or was aborted still ends its run, or its
                        // target would never be probed again.
                        Err(e) => (e.id(), None, Outcome::fail(Reason::LocalError)),
                    };
                    if let Some(id) = self.task_ids.remove(&task).or(id) {
                        let now = self.epoch.elapsed();
                        self.checker.report(id, now, &outcome, &mut self.rng);
                    }
                }
                () = sleep => {}
            }
        }
    }
}

/// One run with its deadline: the session judges a timeout itself.
async fn run(
    transport: Transport,
    addr: SocketAddr,
    source: Option<IpAddr>,
    session: Option<Session>,
    exec: Option<ExecCheck>,
    timeout: Duration,
) -> Outcome {
    if let Some(check) = exec {
        return run_exec(&check, timeout).await;
    }
    let Some(mut session) = session else {
        return Outcome::fail(Reason::LocalError);
    };
    let attempt = async {
        match transport {
            Transport::Tcp => run_tcp(addr, source, &mut session).await,
            Transport::Udp => run_udp(addr, source, &mut session).await,
            Transport::Icmp => run_icmp(addr, &mut session).await,
            Transport::Exec | Transport::RawTcp => Ok(Outcome::fail(Reason::LocalError)),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => transport_failure(&e),
        Err(_) => session.on_timeout(),
    }
}

async fn run_tcp(
    addr: SocketAddr,
    source: Option<IpAddr>,
    session: &mut Session,
) -> io::Result<Outcome> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let mut stream = socket.connect(addr).await?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut step = session.start();
    let outcome = loop {
        step = match step {
            Step::Done(o) => break o,
            Step::Finish(bytes, o) => {
                stream.write_all(&bytes).await?;
                break o;
            }
            Step::Send(bytes) => {
                stream.write_all(&bytes).await?;
                Step::NeedMore
            }
            Step::NeedMore => match stream.read(&mut buf).await? {
                0 => match session.on_eof() {
                    Step::NeedMore => Step::Done(Outcome::fail(Reason::Closed)),
                    s => s,
                },
                n => session.on_bytes(&buf[..n]),
            },
        };
    };
    // A reset, not a FIN: no TIME_WAIT per check. Linger 0 never blocks the thread.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    Ok(outcome)
}

fn unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

async fn run_udp(
    addr: SocketAddr,
    source: Option<IpAddr>,
    session: &mut Session,
) -> io::Result<Outcome> {
    let local = source.map_or_else(|| unspecified(addr), |ip| SocketAddr::new(ip, 0));
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut step = session.start();
    loop {
        step = match step {
            Step::Done(o) => return Ok(o),
            Step::Finish(bytes, o) => {
                socket.send(&bytes).await?;
                return Ok(o);
            }
            Step::Send(bytes) => {
                socket.send(&bytes).await?;
                Step::NeedMore
            }
            Step::NeedMore => {
                let n = socket.recv(&mut buf).await?;
                session.on_bytes(&buf[..n])
            }
        };
    }
}

async fn run_icmp(addr: SocketAddr, session: &mut Session) -> io::Result<Outcome> {
    // An ICMP datagram or raw socket behaves like a UDP socket for sendto/recv, so tokio's
    // UdpSocket can carry it: safe registration without AsyncFd's raw-fd contract.
    let socket = UdpSocket::from_std(sockets::icmp_socket(addr.is_ipv6())?.into())?;
    let dst = SocketAddr::new(addr.ip(), 0);
    let mut buf = vec![0u8; 64 * 1024];
    let mut step = session.start();
    loop {
        step = match step {
            Step::Done(o) | Step::Finish(_, o) => return Ok(o),
            Step::Send(bytes) => {
                socket.send_to(&bytes, dst).await?;
                Step::NeedMore
            }
            Step::NeedMore => {
                let n = socket.recv(&mut buf).await?;
                session.on_bytes(&buf[..n])
            }
        };
    }
}

async fn run_exec(check: &ExecCheck, timeout: Duration) -> Outcome {
    let child = tokio::process::Command::new(&check.program)
        .args(&check.args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Dropped at the deadline: killed (our own child, by pid) and reaped by tokio.
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return transport_failure(&e),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => check.outcome(status),
        Ok(Err(e)) => transport_failure(&e),
        Err(_) => Outcome::fail(Reason::Timeout),
    }
}
