//! Probes across network namespaces (root only): timeouts made by nftables dropping packets
//! inside a test namespace, and a checker host probing a server host over a bridged LAN.
//!
//! The checker runs on a thread that has entered the test namespace (setns affects only the
//! calling thread), so every socket the reactor opens lives there.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::*;
use lb_health::probe::{HttpCheck, IcmpCheck};
use lb_health::{Check, InitialState, Reason, State, Target, Verdict};
use lb_lab::{Lan, Netns};

const MS: Duration = Duration::from_millis(1);

/// Runs `f` on a thread inside `ns` and returns its result.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name().to_owned();
    std::thread::spawn(move || {
        lb_lab::enter_netns(&name).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

fn trailing(
    r: &lb_health::driver::Reactor<rand::rngs::StdRng>,
    id: lb_health::CheckId,
    v: Verdict,
) -> usize {
    let t = r.checker().tracker(id).unwrap();
    t.history().rev().take_while(|o| o.verdict == v).count()
}

#[test]
fn nftables_drop_times_out_then_recovers() {
    if lb_lab::skip_unless_root("nftables_drop_times_out_then_recovers") {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["nft"]) {
        eprintln!("skipping nftables_drop_times_out_then_recovers: {e}");
        return;
    }
    let ns = Netns::new("hcdrop").unwrap();
    let ns_name = ns.name().to_owned();
    let (interval, timeout, fall, rise) = (100 * MS, 200 * MS, 2, 2);
    let report = in_netns(&ns, move || {
        let ns_run = |script: &str| {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns_name, "sh", "-c", script])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = serve_listener(listener, drop);
        let mut r = reactor();
        let id = r
            .add(Target {
                addr,
                check: Check::Tcp,
                tracker: tracker(interval, InitialState::Up, rise, fall),
                timeout,
                source: None,
            })
            .unwrap();
        assert_eq!(
            events(&mut r, 1, Duration::from_secs(2))[0].transition.to,
            State::Up
        );
        let _ = events(&mut r, 1, 300 * MS);
        let rule = format!(
            "nft add table inet lbtest && nft add chain inet lbtest input '{{ type filter hook input priority 0; }}' && nft add rule inet lbtest input tcp dport {} drop",
            addr.port()
        );
        assert!(ns_run(&rule), "nft rule");
        let dropped_at = Instant::now();
        let ev = events(&mut r, 1, Duration::from_secs(5));
        let detection = dropped_at.elapsed();
        assert_eq!(
            (ev[0].transition.to, ev[0].transition.reason),
            (State::Down, Reason::Timeout)
        );
        let failures = trailing(&r, id, Verdict::Fail);
        assert!(ns_run("nft delete table inet lbtest"), "nft delete");
        let ev = events(&mut r, 1, Duration::from_secs(5));
        assert_eq!(ev[0].transition.to, State::Up);
        (failures, trailing(&r, id, Verdict::Pass), detection)
    });
    let (failures, passes, detection) = report;
    assert_eq!(failures, fall as usize, "down after exactly fall timeouts");
    assert_eq!(passes, rise as usize, "up after exactly rise passes");
    // Reported, not asserted: timing belongs to benchmarks. The formula's worst case is
    // fall x interval + timeout (a probe may start just before the drop).
    eprintln!(
        "nftables drop: detected in {detection:?}; formula fall x interval + timeout = {:?}",
        interval * fall + timeout
    );
}

#[test]
fn half_open_syns_dropped_time_out() {
    if lb_lab::skip_unless_root("half_open_syns_dropped_time_out") {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["nft"]) {
        eprintln!("skipping half_open_syns_dropped_time_out: {e}");
        return;
    }
    let ns = Netns::new("hcsyn").unwrap();
    let ns_name = ns.name().to_owned();
    let (interval, timeout, fall) = (100 * MS, 200 * MS, 2);
    let failures = in_netns(&ns, move || {
        let ns_run = |script: &str| {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns_name, "sh", "-c", script])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut r = reactor();
        let id = r
            .add(Target {
                addr,
                check: Check::TcpHalfOpen,
                tracker: tracker(interval, InitialState::Up, 1, fall),
                timeout,
                source: None,
            })
            .unwrap();
        assert_eq!(
            events(&mut r, 1, Duration::from_secs(2))[0].transition.to,
            State::Up
        );
        let _ = events(&mut r, 1, 300 * MS);
        assert_eq!(r.stats().timeouts, 0, "no timeouts before the drop");
        let rule = format!(
            "nft add table inet lbsyn && nft add chain inet lbsyn input '{{ type filter hook input priority 0; }}' && nft add rule inet lbsyn input tcp dport {} tcp flags syn drop",
            addr.port()
        );
        assert!(ns_run(&rule), "nft rule");
        let ev = events(&mut r, 1, Duration::from_secs(5));
        assert_eq!(
            (ev[0].transition.to, ev[0].transition.reason),
            (State::Down, Reason::Timeout)
        );
        assert!(r.stats().timeouts >= u64::from(fall));
        trailing(&r, id, Verdict::Fail)
    });
    assert_eq!(failures, fall as usize, "down after exactly fall timeouts");
}

#[test]
fn lan_checker_probes_a_remote_host() {
    if lb_lab::skip_unless_root("lan_checker_probes_a_remote_host") {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["nft", "python3"]) {
        eprintln!("skipping lan_checker_probes_a_remote_host: {e}");
        return;
    }
    let lan = Lan::new("hclan", 2).unwrap();
    let server_ip = lan.hosts[1].ipv4;
    // Quiet: python prints a traceback for every client that hangs up before the body
    // (the checks do, once they have the status line), which only misleads a log reader.
    let _http = lb_lab::Proc::spawn(
        lan.hosts[1]
            .ns
            .command("python3")
            .args([
                "-m",
                "http.server",
                "8080",
                "--bind",
                &server_ip.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let addr = SocketAddr::from((server_ip, 8080));
    let results = in_netns(&lan.hosts[0].ns, move || {
        // Wait for the server to listen before judging anything.
        lb_lab::wait_until(Duration::from_secs(10), 50 * MS, || {
            std::net::TcpStream::connect_timeout(&addr, 200 * MS).ok()
        })
        .expect("http.server listening");
        let mut r = reactor();
        let checks = [
            Check::Tcp,
            Check::Http(HttpCheck::new("/").unwrap()),
            Check::Icmp(IcmpCheck::default()),
        ];
        for check in checks {
            r.add(Target {
                addr,
                check,
                tracker: tracker(100 * MS, InitialState::Unknown, 1, 2),
                timeout: 300 * MS,
                source: None,
            })
            .unwrap();
        }
        events(&mut r, 3, Duration::from_secs(5))
            .into_iter()
            .map(|e| (e.transition.to, e.transition.reason))
            .collect::<Vec<_>>()
    });
    let mut ups: Vec<Reason> = results
        .iter()
        .filter(|(s, _)| *s == State::Up)
        .map(|(_, r)| *r)
        .collect();
    ups.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        ups,
        [
            Reason::Connected,
            Reason::EchoReply,
            Reason::HttpStatus(200)
        ],
        "{results:?}"
    );
    // Now the server host drops everything from the checker: all three time out.
    lan.hosts[1]
        .ns
        .sh("nft add table inet lbtest && nft add chain inet lbtest input '{ type filter hook input priority 0; }' && nft add rule inet lbtest input ip saddr 10.0.0.1 drop")
        .unwrap();
    let results = in_netns(&lan.hosts[0].ns, move || {
        let mut r = reactor();
        for check in [
            Check::Tcp,
            Check::Http(HttpCheck::new("/").unwrap()),
            Check::Icmp(IcmpCheck::default()),
        ] {
            r.add(Target {
                addr,
                check,
                tracker: tracker(100 * MS, InitialState::Up, 1, 2),
                timeout: 200 * MS,
                source: None,
            })
            .unwrap();
        }
        events(&mut r, 6, Duration::from_secs(5))
            .into_iter()
            .map(|e| (e.transition.to, e.transition.reason))
            .collect::<Vec<_>>()
    });
    let downs: Vec<Reason> = results
        .iter()
        .filter(|(s, _)| *s == State::Down)
        .map(|(_, r)| *r)
        .collect();
    assert_eq!(downs, [Reason::Timeout; 3], "{results:?}");
}

#[test]
fn half_open_syn_refused_by_the_kernel_fails_alone_in_its_batch() {
    const TEST: &str = "half_open_syn_refused_by_the_kernel_fails_alone_in_its_batch";
    if lb_lab::skip_unless_root(TEST) {
        return;
    }
    let ns = Netns::new("hcbatch").unwrap();
    // Routing refuses this destination: the raw socket's send of its SYN fails at once
    // (EACCES), while the SYNs before and after it in the same `sendmmsg` go out.
    ns.sh("ip route add prohibit 10.66.0.9/32").unwrap();
    let results = in_netns(&ns, move || {
        let bind = || TcpListener::bind("127.0.0.1:0").unwrap();
        let open = [bind(), bind()];
        // Bound together (distinct ports), then closed: their SYNs get RSTs.
        let closed = [bind(), bind()].map(|l| l.local_addr().unwrap());
        let prohibited: SocketAddr = "10.66.0.9:80".parse().unwrap();
        // Due together, in this order: the refused SYN in the middle of the batch.
        let targets = [
            open[0].local_addr().unwrap(),
            closed[0],
            prohibited,
            open[1].local_addr().unwrap(),
            closed[1],
        ];
        let mut r = reactor();
        let mut config = tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1);
        config.jitter.warmup = Duration::ZERO;
        let ids: Vec<_> = targets
            .iter()
            .map(|&addr| {
                r.add(Target {
                    addr,
                    check: Check::TcpHalfOpen,
                    tracker: config,
                    timeout: Duration::from_secs(2),
                    // Given, so that no route lookup refuses the prohibited one first.
                    source: Some("127.0.0.1".parse().unwrap()),
                })
                .unwrap()
            })
            .collect();
        let got = events(&mut r, targets.len(), Duration::from_secs(3));
        let stats = r.stats();
        let outcomes: Vec<_> = ids
            .iter()
            .map(|&id| {
                let o = r.checker().tracker(id).unwrap().history().next().copied();
                o.map(|o| (o.verdict, o.reason))
            })
            .collect();
        (got.len(), stats, outcomes)
    });
    let (events, stats, outcomes) = results;
    let pass = Some((Verdict::Pass, Reason::SynAck));
    let refused = Some((Verdict::Fail, Reason::Refused));
    assert_eq!(
        outcomes,
        [
            pass,
            refused,
            Some((Verdict::Fail, Reason::LocalError)),
            pass,
            refused
        ],
        "{stats:?}"
    );
    assert_eq!(events, 5, "each target's first transition");
    assert_eq!((stats.started, stats.completed), (5, 5), "{stats:?}");
    assert_eq!((stats.local_errors, stats.timeouts), (1, 0), "{stats:?}");
}

/// A SYN-ACK with acknowledgment number `ack` from `from` to `to`, as a raw IPv4 TCP socket
/// sends it (the kernel adds the IP header; the checksum is left zero: the reactor does not
/// check it, loopback does not either).
fn syn_ack(from: u16, to: u16, ack: u32) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&from.to_be_bytes());
    t[2..4].copy_from_slice(&to.to_be_bytes());
    t[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x12; // SYN | ACK
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t
}

/// A raw IPv4 TCP socket bound to `ip`: what it sends leaves from `ip`.
fn raw_tcp_from(ip: &str) -> socket2::Socket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).unwrap();
    let addr: SocketAddr = format!("{ip}:0").parse().unwrap();
    s.bind(&addr.into()).unwrap();
    s
}

#[test]
fn half_open_replies_from_another_sender_or_with_another_ack_are_ignored() {
    const TEST: &str = "half_open_replies_from_another_sender_or_with_another_ack_are_ignored";
    if lb_lab::skip_unless_root(TEST) {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["nft"]) {
        eprintln!("skipping {TEST}: {e}");
        return;
    }
    let ns = Netns::new("hcforge").unwrap();
    // Nothing listens on 127.0.0.2:9: the kernel's own answer (RST) is dropped, so only the
    // replies this test forges reach the checker.
    ns.sh("nft add table inet lbforge && nft add chain inet lbforge out '{ type filter hook output priority 0; }' && nft add rule inet lbforge out ip saddr 127.0.0.2 tcp sport 9 tcp flags rst drop")
        .unwrap();
    let (before, after, event) = in_netns(&ns, move || {
        use std::io::Read;
        // Sees a copy of every TCP segment delivered here: the checker's SYN included.
        let sniffer = raw_tcp_from("0.0.0.0");
        sniffer
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let target: SocketAddr = "127.0.0.2:9".parse().unwrap();
        let mut r = reactor();
        let mut config = tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1);
        config.jitter.warmup = Duration::ZERO;
        r.add(Target {
            addr: target,
            check: Check::TcpHalfOpen,
            tracker: config,
            timeout: Duration::from_secs(3),
            source: None,
        })
        .unwrap();
        // The SYN: its source address and port, and its sequence number.
        let end = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 1500];
        let syn = loop {
            assert!(Instant::now() < end, "no SYN seen");
            r.poll(Some(10 * MS)).unwrap();
            let Ok(n) = (&sniffer).read(&mut buf) else {
                continue;
            };
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            let (ip, tcp) = (&buf[..ihl], &buf[ihl..n]);
            if ip[16..20] == [127, 0, 0, 2] && tcp[2..4] == 9u16.to_be_bytes() && tcp[13] == 0x02 {
                let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                let port = u16::from_be_bytes([tcp[0], tcp[1]]);
                let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
                break (src, port, seq);
            }
        };
        let (src, port, seq) = syn;
        let to: SocketAddr = SocketAddr::new(src.into(), 0);
        let ack = seq.wrapping_add(1);
        let from_target = raw_tcp_from("127.0.0.2");
        let from_other = raw_tcp_from("127.0.0.3");
        // The right ack from another address; from the target, the ack with other high
        // (random) bits, and the ack of the next sequence number.
        from_other
            .send_to(&syn_ack(9, port, ack), &to.into())
            .unwrap();
        from_target
            .send_to(&syn_ack(9, port, ack ^ 0x8000_0000), &to.into())
            .unwrap();
        from_target
            .send_to(&syn_ack(9, port, ack.wrapping_add(1)), &to.into())
            .unwrap();
        // From the target, the right ack, but another port.
        from_target
            .send_to(&syn_ack(10, port, ack), &to.into())
            .unwrap();
        let quiet = events(&mut r, 1, 300 * MS);
        assert!(quiet.is_empty(), "{quiet:?}");
        let before = r.stats();
        // The genuine reply: it decides the run.
        from_target
            .send_to(&syn_ack(9, port, ack), &to.into())
            .unwrap();
        let got = events(&mut r, 1, Duration::from_secs(1));
        (before, r.stats(), got.first().map(|e| e.transition))
    });
    assert_eq!((before.started, before.completed), (1, 0), "{before:?}");
    assert_eq!((after.completed, after.passed), (1, 1), "{after:?}");
    let t = event.expect("a transition after the genuine reply");
    assert_eq!((t.to, t.reason), (State::Up, Reason::SynAck));
}
