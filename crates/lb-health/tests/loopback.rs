//! Real servers on loopback, probed through the reactor: up/down after exactly rise/fall
//! probes, refused connections, slow and partial responses, wrong status or body, TLS with a
//! self-signed certificate, UDP, DNS, SMTP, agent, external commands, ICMP, and the bound on
//! runs in flight.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_health::driver::{Reactor, ReactorConfig};
use lb_health::probe::{
    AgentCheck, BodyRegex, DnsCheck, DnsType, ExecCheck, Expect, HttpCheck, IcmpCheck, Pattern,
    ScriptCheck, ScriptStep, SmtpCheck, TlsOptions, parse_digest,
};
use lb_health::{Check, InitialState, Reason, State, Target, Verdict};

const MS: Duration = Duration::from_millis(1);

#[test]
fn tcp_down_after_exactly_fall_and_up_after_exactly_rise() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_listener(listener, drop);
    let mut r = reactor();
    let id = r
        .add(Target {
            addr,
            check: Check::Tcp,
            tracker: tracker(30 * MS, InitialState::Up, 2, 3),
            timeout: 500 * MS,
            source: None,
        })
        .unwrap();
    let ev = events(&mut r, 1, Duration::from_secs(2));
    assert_eq!(ev[0].transition.to, State::Up);
    // Let a few passes happen, then take the server away: connections are refused.
    let _ = events(&mut r, 1, 200 * MS);
    drop(server);
    let ev = events(&mut r, 1, Duration::from_secs(5));
    assert_eq!(
        (ev[0].transition.to, ev[0].transition.reason),
        (State::Down, Reason::Refused)
    );
    let history: Vec<Verdict> = r
        .checker()
        .tracker(id)
        .unwrap()
        .history()
        .map(|o| o.verdict)
        .collect();
    let trailing_failures = history
        .iter()
        .rev()
        .take_while(|v| **v == Verdict::Fail)
        .count();
    assert_eq!(
        trailing_failures, 3,
        "down after exactly fall = 3 failures: {history:?}"
    );
    // Back on the same port: up after exactly rise = 2 passes.
    let listener = TcpListener::bind(addr).unwrap();
    let _server = serve_listener(listener, drop);
    let ev = events(&mut r, 1, Duration::from_secs(5));
    assert_eq!(ev[0].transition.to, State::Up);
    let history: Vec<Verdict> = r
        .checker()
        .tracker(id)
        .unwrap()
        .history()
        .map(|o| o.verdict)
        .collect();
    let trailing_passes = history
        .iter()
        .rev()
        .take_while(|v| **v == Verdict::Pass)
        .count();
    assert_eq!(trailing_passes, 2, "{history:?}");
}

#[test]
fn refused_connection() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = probe_once(Check::Tcp, port, Duration::from_secs(1));
    assert_eq!((o.verdict, o.reason), (Verdict::Fail, Reason::Refused));
}

#[test]
fn http_status_body_digest_and_chunked() {
    let ok = http_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let chunked = http_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
    );
    let unavailable = http_server(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    let t = Duration::from_secs(1);
    let plain = || HttpCheck::new("/health").unwrap();
    let o = probe_once(Check::Http(plain()), ok.addr, t);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Pass, Reason::HttpStatus(200))
    );
    let o = probe_once(Check::Http(plain()), unavailable.addr, t);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Fail, Reason::BadStatus(503))
    );
    let accept_503 = plain().expect("200-299 503".parse().unwrap());
    assert_eq!(
        probe_once(Check::Http(accept_503), unavailable.addr, t).verdict,
        Verdict::Pass
    );
    let digest = parse_digest("5d41402abc4b2a76b9719d911017c592").unwrap(); // md5("hello")
    let with_body = plain()
        .regex(BodyRegex::new("^hel+o$", false).unwrap())
        .digest(digest);
    assert_eq!(
        probe_once(Check::Http(with_body.clone()), ok.addr, t).verdict,
        Verdict::Pass
    );
    assert_eq!(
        probe_once(Check::Http(with_body), chunked.addr, t).verdict,
        Verdict::Pass
    );
    let wrong_body = plain().regex(BodyRegex::new("goodbye", false).unwrap());
    assert_eq!(
        probe_once(Check::Http(wrong_body), ok.addr, t).reason,
        Reason::BodyMismatch
    );
    let wrong_digest = plain().digest([0; 16]);
    assert_eq!(
        probe_once(Check::Http(wrong_digest), chunked.addr, t).reason,
        Reason::DigestMismatch
    );
}

#[test]
fn slow_and_partial_responses() {
    // Answers after 1.5 s: past the 300 ms timeout.
    let slow = tcp_server(|mut s| {
        read_head(&mut s);
        std::thread::sleep(Duration::from_millis(1500));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    // Promises 100 bytes, sends 5 and closes.
    let partial = http_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello");
    // Dribbles the head a few bytes at a time, then completes in time.
    let dribble = tcp_server(|mut s| {
        read_head(&mut s);
        for piece in [
            &b"HTTP/1."[..],
            b"1 200 O",
            b"K\r\nContent-",
            b"Length: 2\r\n\r\n",
            b"ok",
        ] {
            let _ = s.write_all(piece);
            let _ = s.flush();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let check = |re: bool| {
        let c = HttpCheck::new("/").unwrap();
        Check::Http(if re {
            c.regex(BodyRegex::new("o", false).unwrap())
        } else {
            c
        })
    };
    let o = probe_once(check(false), slow.addr, 300 * MS);
    assert_eq!((o.verdict, o.reason), (Verdict::Fail, Reason::Timeout));
    assert!(o.latency.unwrap() >= 300 * MS);
    let o = probe_once(check(true), partial.addr, Duration::from_secs(1));
    assert_eq!((o.verdict, o.reason), (Verdict::Fail, Reason::Closed));
    let o = probe_once(check(true), dribble.addr, Duration::from_secs(2));
    assert_eq!(o.verdict, Verdict::Pass);
}

fn tls_server(cert: &rcgen::CertifiedKey) -> Server {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let config = Arc::new(config);
    tcp_server(move |s| {
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, s);
        let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 2048];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match std::io::Read::read(&mut tls, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure");
        tls.conn.send_close_notify();
        let _ = tls.flush();
    })
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server = tls_server(&cert);
    let t = Duration::from_secs(2);
    let no_verify = TlsOptions::new("localhost", None).unwrap();
    let o = probe_once(Check::Tls(no_verify.clone()), server.addr, t);
    assert_eq!((o.verdict, o.reason), (Verdict::Pass, Reason::TlsHandshake));
    let https = HttpCheck::new("/")
        .unwrap()
        .regex(BodyRegex::new("secure", false).unwrap())
        .tls(no_verify);
    let o = probe_once(Check::Http(https), server.addr, t);
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Pass, Reason::HttpStatus(200))
    );
    // Verified against the certificate itself as the root: passes; against another: fails.
    let trusted = TlsOptions::new("localhost", Some(vec![cert.cert.der().to_vec()])).unwrap();
    assert_eq!(
        probe_once(Check::Tls(trusted), server.addr, t).verdict,
        Verdict::Pass
    );
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let untrusted = TlsOptions::new("localhost", Some(vec![other.cert.der().to_vec()])).unwrap();
    let o = probe_once(Check::Tls(untrusted), server.addr, t);
    assert_eq!((o.verdict, o.reason), (Verdict::Fail, Reason::TlsError));
    // TLS against a plain HTTP server fails as a TLS error, not a hang.
    let plain = http_server(b"HTTP/1.1 200 OK\r\n\r\n");
    let o = probe_once(
        Check::Tls(TlsOptions::new("localhost", None).unwrap()),
        plain.addr,
        t,
    );
    assert_eq!(o.verdict, Verdict::Fail);
}

#[test]
fn udp_send_expect_and_port_unreachable() {
    let echo = udp_server(|d| Some(d.to_vec()));
    let mask = lb_health::probe::parse_masked_hex("CAFEXX").unwrap();
    let check = ScriptCheck::udp(vec![0xca, 0xfe, 0x01], Some(mask));
    let o = probe_once(
        Check::Script(check.clone()),
        echo.addr,
        Duration::from_secs(1),
    );
    assert_eq!(
        (o.verdict, o.reason),
        (Verdict::Pass, Reason::ScriptMatched)
    );
    let closed: SocketAddr = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let o = probe_once(Check::Script(check), closed, Duration::from_secs(1));
    assert_eq!((o.verdict, o.reason), (Verdict::Fail, Reason::Refused));
}

#[test]
fn tcp_script_redis_style() {
    let redis = tcp_server(|mut s| {
        let mut b = [0u8; 64];
        let _ = std::io::Read::read(&mut s, &mut b);
        let _ = s.write_all(b"+PONG\r\n");
    });
    let check = ScriptCheck {
        udp: false,
        steps: vec![
            ScriptStep::Send(b"PING\r\n".to_vec()),
            ScriptStep::Expect(Expect::new(Pattern::Contains(b"+PONG".to_vec()))),
        ],
    };
    let o = probe_once(Check::Script(check), redis.addr, Duration::from_secs(1));
    assert_eq!(o.verdict, Verdict::Pass);
}

#[test]
fn dns_over_udp() {
    let ok = udp_server(|q| {
        let mut r = q.to_vec();
        *r.get_mut(2)? |= 0x80;
        Some(r)
    });
    let nxdomain = udp_server(|q| {
        let mut r = q.to_vec();
        *r.get_mut(2)? |= 0x80;
        *r.get_mut(3)? |= 3;
        Some(r)
    });
    let check = Check::Dns(DnsCheck::new("example.org", DnsType::A).unwrap());
    let t = Duration::from_secs(1);
    assert_eq!(
        probe_once(check.clone(), ok.addr, t).reason,
        Reason::DnsAnswer
    );
    assert_eq!(
        probe_once(check, nxdomain.addr, t).reason,
        Reason::DnsRcode(3)
    );
}

#[test]
fn smtp_and_agent() {
    let smtp = tcp_server(|mut s| {
        let _ = s.write_all(b"220 mail ESMTP\r\n");
        let mut b = [0u8; 128];
        let _ = std::io::Read::read(&mut s, &mut b);
        let _ = s.write_all(b"250 hello\r\n");
        let _ = std::io::Read::read(&mut s, &mut b);
        let _ = s.write_all(b"221 bye\r\n");
    });
    let o = probe_once(
        Check::Smtp(SmtpCheck::new("lb").unwrap()),
        smtp.addr,
        Duration::from_secs(1),
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Pass, Reason::SmtpOk));
    let agent = tcp_server(|mut s| {
        let _ = s.write_all(b"75% drain\n");
    });
    let mut r = reactor();
    let id = r
        .add(Target {
            addr: agent.addr,
            check: Check::Agent(AgentCheck::default()),
            tracker: tracker(Duration::from_secs(60), InitialState::Up, 1, 1),
            timeout: Duration::from_secs(1),
            source: None,
        })
        .unwrap();
    let ev = events(&mut r, 2, Duration::from_secs(3));
    assert_eq!(ev.last().unwrap().transition.to, State::Drain);
    assert_eq!(
        r.checker().tracker(id).unwrap().admin(),
        lb_health::Admin::Drain
    );
}

#[test]
fn external_commands_misc_check() {
    let sh = |script: &str, dynamic: bool| {
        Check::Exec(ExecCheck {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            dynamic,
        })
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let t = Duration::from_secs(2);
    assert_eq!(
        probe_once(sh("exit 0", false), any, t).verdict,
        Verdict::Pass
    );
    assert_eq!(
        probe_once(sh("exit 1", false), any, t).reason,
        Reason::ExitCode(1)
    );
    let mut r = reactor();
    let id = r
        .add(Target {
            addr: any,
            check: sh("exit 12", true),
            tracker: tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1),
            timeout: t,
            source: None,
        })
        .unwrap();
    let _ = events(&mut r, 1, t);
    let tr = r.checker().tracker(id).unwrap();
    assert_eq!(
        tr.effective_weight(r.now(), 1),
        10,
        "weight = exit code - 2"
    );
    // A command that outlives its timeout is killed and fails.
    let o = probe_once(sh("sleep 5", false), any, 200 * MS);
    assert_eq!((o.verdict, o.reason), (Verdict::Fail, Reason::Timeout));
    let o = probe_once(Check::Exec(ExecCheck::new("/nonexistent/check")), any, t);
    assert_eq!(o.reason, Reason::LocalError);
}

#[test]
fn icmp_echo_to_loopback() {
    if !lb_lab::is_root() {
        eprintln!(
            "skipping icmp_echo_to_loopback: ping sockets are not allowed and raw sockets need root"
        );
        return;
    }
    let o = probe_once(
        Check::Icmp(IcmpCheck::default()),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(1),
    );
    assert_eq!((o.verdict, o.reason), (Verdict::Pass, Reason::EchoReply));
    // Twenty at once through the one shared socket: each reply reaches its own probe.
    let mut r = reactor();
    for i in 1..=20u8 {
        r.add(Target::new(
            SocketAddr::from(([127, 0, 0, i], 0)),
            Check::Icmp(IcmpCheck::default()),
            tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1),
            Duration::from_secs(1),
        ))
        .unwrap();
    }
    let ev = events(&mut r, 20, Duration::from_secs(3));
    assert_eq!(ev.len(), 20);
    assert!(
        ev.iter().all(|e| e.transition.reason == Reason::EchoReply),
        "{ev:?}"
    );
}

/// The verdicts of `id`'s latest run of equal verdicts.
fn trailing_run(
    r: &lb_health::driver::Reactor<rand::rngs::StdRng>,
    id: lb_health::CheckId,
) -> (Verdict, usize) {
    let t = r.checker().tracker(id).unwrap();
    let last = t.history().next_back().map_or(Verdict::Pass, |o| o.verdict);
    (
        last,
        t.history().rev().take_while(|o| o.verdict == last).count(),
    )
}

#[test]
fn half_open_up_after_rise_refused_after_fall_never_accepted() {
    if lb_lab::skip_unless_root("half_open_up_after_rise_refused_after_fall_never_accepted") {
        return;
    }
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let listener = TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut r = reactor();
        let id = r
            .add(Target {
                addr,
                check: Check::TcpHalfOpen,
                tracker: tracker(30 * MS, InitialState::Down, 2, 3),
                timeout: 500 * MS,
                source: None,
            })
            .unwrap();
        let ev = events(&mut r, 2, Duration::from_secs(3));
        assert_eq!(ev[0].transition.to, State::Down, "{bind}: initial");
        assert_eq!(
            (ev[1].transition.to, ev[1].transition.reason),
            (State::Up, Reason::SynAck),
            "{bind}"
        );
        assert_eq!(
            trailing_run(&r, id),
            (Verdict::Pass, 2),
            "{bind}: exactly rise"
        );
        // More passes; the listener never had a connection to accept.
        let _ = events(&mut r, 1, 300 * MS);
        assert!(
            r.checker().tracker(id).unwrap().stats().passes >= 5,
            "{bind}"
        );
        assert_eq!(
            listener.accept().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "{bind}: the application saw a connection"
        );
        drop(listener);
        let ev = events(&mut r, 1, Duration::from_secs(3));
        assert_eq!(
            (ev[0].transition.to, ev[0].transition.reason),
            (State::Down, Reason::Refused),
            "{bind}"
        );
        assert_eq!(
            trailing_run(&r, id),
            (Verdict::Fail, 3),
            "{bind}: exactly fall"
        );
        assert_eq!(r.stats().timeouts, 0, "{bind}");
    }
}

#[test]
fn half_open_replies_reach_their_own_probes() {
    if lb_lab::skip_unless_root("half_open_replies_reach_their_own_probes") {
        return;
    }
    // Twenty listeners and twenty closed ports, probed at once through the one raw socket.
    let listeners: Vec<TcpListener> = (1..=20u8)
        .map(|i| TcpListener::bind(SocketAddr::from(([127, 0, 3, i], 0))).unwrap())
        .collect();
    let mut r = reactor();
    let mut expect = std::collections::HashMap::new();
    for l in &listeners {
        let open = l.local_addr().unwrap();
        let closed = SocketAddr::new(open.ip(), {
            // A port just released: nothing listens there.
            let t = TcpListener::bind(SocketAddr::new(open.ip(), 0)).unwrap();
            t.local_addr().unwrap().port()
        });
        for (addr, reason) in [(open, Reason::SynAck), (closed, Reason::Refused)] {
            let id = r
                .add(Target::new(
                    addr,
                    Check::TcpHalfOpen,
                    tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1),
                    Duration::from_secs(1),
                ))
                .unwrap();
            expect.insert(id, reason);
        }
    }
    let ev = events(&mut r, 40, Duration::from_secs(3));
    assert_eq!(ev.len(), 40);
    for e in ev {
        assert_eq!(e.transition.reason, expect[&e.id], "{}", e.addr);
    }
}

#[test]
fn half_open_from_two_source_addresses() {
    if lb_lab::skip_unless_root("half_open_from_two_source_addresses") {
        return;
    }
    // Each source has its own raw socket bound to it: a reply reaches only the socket of the
    // address it is sent to, and from there its own probe.
    let listeners: Vec<TcpListener> = (1..=6u8)
        .map(|i| TcpListener::bind(SocketAddr::from(([127, 0, 4, i], 0))).unwrap())
        .collect();
    let mut r = reactor();
    let mut ids = Vec::new();
    for (k, l) in listeners.iter().enumerate() {
        // Even listeners from both sources, odd ones from the kernel's choice (127.0.0.1).
        let sources = match k % 2 {
            0 => vec![
                Some("127.0.0.1".parse().unwrap()),
                Some("127.0.0.2".parse().unwrap()),
            ],
            _ => vec![None],
        };
        for source in sources {
            let mut target = Target::new(
                l.local_addr().unwrap(),
                Check::TcpHalfOpen,
                tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1),
                Duration::from_secs(1),
            );
            target.source = source;
            ids.push(r.add(target).unwrap());
        }
    }
    let ev = events(&mut r, ids.len(), Duration::from_secs(3));
    assert_eq!(ev.len(), ids.len());
    assert!(
        ev.iter().all(|e| e.transition.reason == Reason::SynAck),
        "{ev:?}"
    );
    assert_eq!(r.stats().timeouts, 0);
}

#[test]
fn starts_wait_for_the_grid_never_for_more() {
    // Twenty targets whose first slots are spread over 500 ms, started on a 100 ms grid:
    // every start within one step (and the thread's scheduling) of its slot, most of them
    // more than 10 ms after it (never before: the checker hands out only due probes).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = serve_listener(listener, drop);
    let config = ReactorConfig {
        coalesce: 100 * MS,
        ..ReactorConfig::default()
    };
    let mut r = Reactor::new(
        config,
        <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3),
    )
    .unwrap();
    for i in 0..20 {
        let mut t = tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1);
        t.jitter.warmup = 500 * MS;
        r.add(Target::new(
            addr,
            Check::Http(HttpCheck::new(&format!("/{i}")).unwrap()),
            t,
            Duration::from_secs(1),
        ))
        .unwrap();
    }
    // Polled with a long `max_wait`: only the reactor's own timers and the probes' I/O wake
    // it (any wake-up starts what is due then).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut seen = 0;
    while seen < 20 && std::time::Instant::now() < deadline {
        r.poll(Some(Duration::from_secs(1))).unwrap();
        while r.poll_event().is_some() {
            seen += 1;
        }
    }
    assert_eq!(seen, 20);
    let stats = r.stats();
    assert_eq!(stats.started, 20);
    // One step, and room for a loaded machine's scheduling.
    assert!(stats.max_lateness <= 300 * MS, "{stats:?}");
    let late = stats.lateness_histogram[3] + stats.lateness_histogram[4];
    assert!(late >= 10, "{stats:?}");
}

#[test]
fn concurrency_bound_and_timeouts() {
    // A server that accepts and never answers: every HTTP probe runs to its deadline.
    let silent = tcp_server(|s| {
        std::thread::sleep(Duration::from_millis(600));
        drop(s);
    });
    let config = ReactorConfig {
        max_in_flight: 4,
        ..ReactorConfig::default()
    };
    let mut r = Reactor::new(
        config,
        <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1),
    )
    .unwrap();
    for i in 0..12 {
        r.add(Target {
            addr: silent.addr,
            check: Check::Http(HttpCheck::new(&format!("/{i}")).unwrap()),
            tracker: tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1),
            timeout: 100 * MS,
            source: None,
        })
        .unwrap();
    }
    let ev = events(&mut r, 12, Duration::from_secs(5));
    assert_eq!(ev.len(), 12);
    assert!(ev.iter().all(|e| e.transition.reason == Reason::Timeout));
    let stats = r.stats();
    assert_eq!(stats.peak_in_flight, 4);
    assert_eq!(stats.timeouts, 12);
    // Twelve 100 ms runs four at a time: the last ones start about 200 ms late.
    assert!(stats.max_lateness >= 150 * MS, "{stats:?}");
}

#[test]
fn probes_leave_from_the_source_address() {
    // The peer address as accept() saw it (the probe resets the connection right after).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((_, peer)) = listener.accept() {
            let _ = tx.send(peer.ip());
        }
    });
    let mut r = reactor();
    let mut target = Target::new(
        addr,
        Check::Tcp,
        tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1),
        Duration::from_secs(1),
    );
    target.source = Some("127.0.0.2".parse().unwrap());
    r.add(target.clone()).unwrap();
    assert_eq!(
        events(&mut r, 1, Duration::from_secs(3))[0]
            .transition
            .reason,
        Reason::Connected
    );
    let peer = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(peer, "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
    // A source of the wrong family, or for a check that has no socket of its own: rejected.
    target.source = Some("::1".parse().unwrap());
    assert!(r.add(target.clone()).is_err());
    target.source = Some("127.0.0.2".parse().unwrap());
    target.check = Check::Icmp(IcmpCheck::default());
    assert!(r.add(target).is_err());
}
