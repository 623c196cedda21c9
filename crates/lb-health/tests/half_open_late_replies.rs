//! Half-open replies that arrive while the reactor sleeps (root only).
//!
//! On loopback and plain veth the SYN-ACK or RST is queued before the reactor's `sendto`
//! returns, so the reactor always finds it awake. Here the target host's kernel never
//! answers: nftables drops its RSTs, and a responder thread reads the SYNs from a raw socket
//! and answers each one 100-250 ms later with a hand-built SYN-ACK or RST. The reactor is
//! asleep in `epoll_wait` by then, so only the raw socket's epoll registration can wake it;
//! if that were missing it would wake at the probe's deadline, seconds later.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lb_health::driver::{Reactor, ReactorConfig};
use lb_health::probe::SynReply;
use lb_health::{Check, InitialState, Reason, State, Target, TrackerConfig, Verdict};
use lb_lab::Netns;
use rand::SeedableRng;
use rand::rngs::StdRng;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};
use socket2::{Domain, Protocol, Socket, Type};

const MS: Duration = Duration::from_millis(1);
/// The probes' timeout: a reply read only at the deadline would show this latency.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The firewall mark of the responder's segments, which nftables lets out.
const MARK: u32 = 1;
const CHECKER4: &str = "10.77.0.1";
const TARGET4: &str = "10.77.0.2";
const CHECKER6: &str = "fd77::1";
const TARGET6: &str = "fd77::2";

/// What the responder answers a SYN to `target` with, and after how long.
#[derive(Clone, Copy, Debug)]
struct Answer {
    target: SocketAddr,
    reply: SynReply,
    delay: Duration,
}

/// A responder thread in the target's namespace, stopped and joined on drop.
struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<Vec<usize>>>>,
}

impl Responder {
    /// Starts answering in namespace `ns` once its raw sockets are open.
    fn start(ns: &Netns, answers: Vec<Answer>) -> io::Result<Responder> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = ns.name().to_owned();
        let thread = std::thread::spawn(move || {
            let sockets = lb_lab::enter_netns(&name).and_then(|()| {
                [TARGET4, TARGET6]
                    .into_iter()
                    .map(|ip| raw_tcp(ip.parse().expect("address")))
                    .collect::<io::Result<Vec<_>>>()
            });
            let sockets = match sockets {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(Vec::new());
                }
            };
            respond(&sockets, &answers, &flag)
        });
        let responder = Responder {
            stop,
            thread: Some(thread),
        };
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| io::Error::other("responder did not start"))??;
        Ok(responder)
    }

    /// Stops the thread; how many replies it sent to each answer's target.
    fn finish(mut self) -> io::Result<Vec<usize>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("responder thread panicked")),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw TCP socket bound to `ip` (it gets a copy of every segment to `ip`), whose
/// segments carry [`MARK`]; driven through `UdpSocket`'s plain `recvfrom` / `sendto`.
fn raw_tcp(ip: IpAddr) -> io::Result<UdpSocket> {
    let domain = if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.set_mark(MARK)?;
    let socket = UdpSocket::from(socket);
    socket.set_read_timeout(Some(5 * MS))?;
    Ok(socket)
}

/// Reads SYNs and sends each answer when its delay has passed, until `stop`.
fn respond(sockets: &[UdpSocket], answers: &[Answer], stop: &AtomicBool) -> io::Result<Vec<usize>> {
    let mut sent = vec![0; answers.len()];
    // (when, which answer, segment, to whom)
    let mut pending: Vec<(Instant, usize, Vec<u8>, IpAddr)> = Vec::new();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        for socket in sockets {
            let local = socket.local_addr()?.ip();
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(syn) = read_syn(&buf[..n], from.ip(), local) else {
                continue;
            };
            let Some(i) = answers.iter().position(|a| a.target == syn.target) else {
                continue;
            };
            let a = answers[i];
            let segment = answer(a.reply, a.target, syn.peer, syn.seq);
            pending.push((Instant::now() + a.delay, i, segment, syn.peer.ip()));
        }
        let now = Instant::now();
        let mut k = 0;
        while k < pending.len() {
            if pending[k].0 <= now {
                let (_, i, segment, peer) = pending.swap_remove(k);
                let socket = &sockets[usize::from(peer.is_ipv6())];
                socket.send_to(&segment, SocketAddr::new(peer, 0))?;
                sent[i] += 1;
            } else {
                k += 1;
            }
        }
    }
    Ok(sent)
}

/// A SYN seen by the responder.
struct Syn {
    /// The checker's address and port.
    peer: SocketAddr,
    /// The address and port it is sent to.
    target: SocketAddr,
    /// Its sequence number.
    seq: u32,
}

/// The SYN (no ACK) in `packet`, read from a raw socket bound to `local` from `from`: IPv4
/// reads carry the IP header, IPv6 reads do not.
fn read_syn(packet: &[u8], from: IpAddr, local: IpAddr) -> Option<Syn> {
    let ip4;
    let (src, dst, tcp) = match from {
        IpAddr::V4(_) => {
            ip4 = Ipv4Packet::new_checked(packet).ok()?;
            let (src, dst) = (ip4.src_addr().into(), ip4.dst_addr().into());
            (src, dst, TcpPacket::new_checked(ip4.payload()).ok()?)
        }
        IpAddr::V6(_) => (from, local, TcpPacket::new_checked(packet).ok()?),
    };
    (tcp.syn() && !tcp.ack()).then(|| Syn {
        peer: SocketAddr::new(src, tcp.src_port()),
        target: SocketAddr::new(dst, tcp.dst_port()),
        seq: tcp.seq_number().0 as u32,
    })
}

/// A SYN-ACK or RST-ACK from `target` to `peer` acknowledging sequence number `seq`.
fn answer(reply: SynReply, target: SocketAddr, peer: SocketAddr, seq: u32) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: target.port(),
        dst_port: peer.port(),
        control: match reply {
            SynReply::SynAck => TcpControl::Syn,
            SynReply::Rst => TcpControl::Rst,
        },
        seq_number: TcpSeqNumber(0x1234_5678),
        ack_number: Some(TcpSeqNumber(seq.wrapping_add(1) as i32)),
        window_len: 64240,
        window_scale: None,
        max_seg_size: (reply == SynReply::SynAck).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    let mut segment = vec![0; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut segment[..]),
        &IpAddress::from(target.ip()),
        &IpAddress::from(peer.ip()),
        &ChecksumCapabilities::default(),
    );
    segment
}

/// The checker's namespace and the target's, joined by a veth pair with IPv4 and IPv6
/// addresses; the target's kernel sends no RST to the test ports (only marked ones leave).
fn network(ports: &str) -> io::Result<(Netns, Netns)> {
    let checker = Netns::new("hclate")?;
    let target = Netns::new("hclatet")?;
    lb_lab::veth(&checker, "ck0", &target, "tg0")?;
    checker.sh(&format!(
        "ip addr add {CHECKER4}/24 dev ck0 && ip addr add {CHECKER6}/64 dev ck0 nodad"
    ))?;
    target.sh(&format!(
        "ip addr add {TARGET4}/24 dev tg0 && ip addr add {TARGET6}/64 dev tg0 nodad"
    ))?;
    target.sh(&format!(
        "nft add table inet lblate && nft add chain inet lblate out '{{ type filter hook output priority 0; }}' && nft add rule inet lblate out tcp sport '{{ {ports} }}' 'tcp flags & rst == rst' meta mark != {MARK} drop"
    ))?;
    Ok((checker, target))
}

#[test]
fn syn_ack_and_rst_arriving_while_the_reactor_sleeps_decide_their_probes() {
    const TEST: &str = "syn_ack_and_rst_arriving_while_the_reactor_sleeps_decide_their_probes";
    if lb_lab::skip_unless_root(TEST) {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["nft"]) {
        eprintln!("skipping {TEST}: {e}");
        return;
    }
    let (open, closed) = (7001, 7002);
    let (checker, target) = network(&format!("{open}, {closed}")).unwrap();
    let at = |ip: &str, port| SocketAddr::new(ip.parse().unwrap(), port);
    let answers = vec![
        Answer {
            target: at(TARGET4, open),
            reply: SynReply::SynAck,
            delay: 100 * MS,
        },
        Answer {
            target: at(TARGET4, closed),
            reply: SynReply::Rst,
            delay: 150 * MS,
        },
        Answer {
            target: at(TARGET6, open),
            reply: SynReply::SynAck,
            delay: 200 * MS,
        },
        Answer {
            target: at(TARGET6, closed),
            reply: SynReply::Rst,
            delay: 250 * MS,
        },
    ];
    let responder = Responder::start(&target, answers.clone()).unwrap();
    let name = checker.name().to_owned();
    let targets: Vec<SocketAddr> = answers.iter().map(|a| a.target).collect();
    let (results, wakeups) = std::thread::spawn(move || run_checker(&name, &targets))
        .join()
        .expect("checker thread");
    let sent = responder.finish().unwrap();
    assert_eq!(
        sent,
        [1, 1, 1, 1],
        "one late reply to each target's one SYN"
    );
    for (answer, (observation, event)) in answers.iter().zip(&results) {
        let (verdict, reason, to) = match answer.reply {
            SynReply::SynAck => (Verdict::Pass, Reason::SynAck, State::Up),
            SynReply::Rst => (Verdict::Fail, Reason::Refused, State::Down),
        };
        let what = format!("{answer:?}: {observation:?}");
        assert_eq!((observation.0, observation.1), (verdict, reason), "{what}");
        assert_eq!(*event, Some((to, reason)), "{what}");
        // Decided by the late reply itself (nothing else answers), and when it came: a
        // reactor that missed the wake-up would only read it at the deadline.
        let latency = observation.2;
        assert!(latency >= answer.delay, "{what}");
        assert!(
            latency < TIMEOUT / 2,
            "woken by the reply, not the deadline: {what}"
        );
    }
    eprintln!("{TEST}: {wakeups} reactor wake-ups; {results:?}");
}

type Observed = ((Verdict, Reason, Duration), Option<(State, Reason)>);

/// Probes each target once from namespace `ns`, sleeping as long as the reactor lets it;
/// each target's outcome and transition, and how many times `poll` returned.
fn run_checker(ns: &str, targets: &[SocketAddr]) -> (Vec<Observed>, usize) {
    lb_lab::enter_netns(ns).expect("setns");
    let mut r = Reactor::new(ReactorConfig::default(), StdRng::seed_from_u64(5)).unwrap();
    let mut tracker = TrackerConfig::new(Duration::from_secs(60));
    tracker.initial = InitialState::Unknown;
    tracker.rise = 1;
    tracker.fall = 1;
    let ids: Vec<_> = targets
        .iter()
        .map(|&addr| {
            r.add(Target {
                addr,
                check: Check::TcpHalfOpen,
                tracker,
                timeout: TIMEOUT,
                source: None,
            })
            .unwrap()
        })
        .collect();
    let mut events = Vec::new();
    let mut wakeups = 0;
    let limit = Instant::now() + TIMEOUT + Duration::from_secs(2);
    while r.stats().completed < targets.len() as u64 && Instant::now() < limit {
        // No cap of our own: the reactor sleeps until I/O or its next deadline.
        r.poll(None).unwrap();
        wakeups += 1;
        while let Some(e) = r.poll_event() {
            events.push(e);
        }
    }
    let results = ids
        .iter()
        .map(|&id| {
            let o = r.checker().tracker(id).unwrap().history().next().copied();
            let o = o.expect("an outcome");
            let e = events.iter().find(|e| e.id == id);
            (
                (o.verdict, o.reason, o.latency.unwrap_or(Duration::MAX)),
                e.map(|e| (e.transition.to, e.transition.reason)),
            )
        })
        .collect();
    (results, wakeups)
}
