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
    let _http = lan.hosts[1]
        .ns
        .spawn(&[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            &server_ip.to_string(),
        ])
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
