//! The tokio driver against real servers on loopback: up/down after exactly rise/fall,
//! refused connections, HTTP, UDP, commands, timeouts, the bound on tasks, deduplication.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::{http_server, serve_listener, tcp_server, tracker, udp_server};
use lb_health::driver::tokio::TokioChecker;
use lb_health::probe::{ExecCheck, HttpCheck, ScriptCheck};
use lb_health::{Check, Event, InitialState, Reason, State, Target, Verdict};
use rand::{SeedableRng, rngs::StdRng};

const MS: Duration = Duration::from_millis(1);

async fn next(c: &mut TokioChecker<StdRng>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), c.next_event())
        .await
        .expect("an event within 5 s")
}

fn target(addr: SocketAddr, check: Check, initial: InitialState, timeout: Duration) -> Target {
    Target {
        addr,
        check,
        tracker: tracker(30 * MS, initial, 2, 3),
        timeout,
        source: None,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tcp_fall_and_rise_exactly() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_listener(listener, drop);
    let mut c = TokioChecker::new(64, StdRng::seed_from_u64(3));
    let id = c
        .add(target(addr, Check::Tcp, InitialState::Up, 500 * MS))
        .unwrap();
    assert_eq!(next(&mut c).await.transition.to, State::Up);
    // Identical targets share one tracker and one probe.
    assert_eq!(
        c.add(target(addr, Check::Tcp, InitialState::Up, 500 * MS))
            .unwrap(),
        id
    );
    drop(server);
    let e = next(&mut c).await;
    assert_eq!(
        (e.transition.to, e.transition.reason),
        (State::Down, Reason::Refused)
    );
    let trailing = |c: &TokioChecker<StdRng>, v: Verdict| {
        let t = c.checker().tracker(id).unwrap();
        t.history().rev().take_while(|o| o.verdict == v).count()
    };
    assert_eq!(trailing(&c, Verdict::Fail), 3);
    let _server = serve_listener(TcpListener::bind(addr).unwrap(), drop);
    assert_eq!(next(&mut c).await.transition.to, State::Up);
    assert_eq!(trailing(&c, Verdict::Pass), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn http_udp_exec_and_timeouts() {
    let ok = http_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let bad = http_server(b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n");
    let silent = tcp_server(|s| {
        std::thread::sleep(Duration::from_millis(800));
        drop(s);
    });
    let echo = udp_server(|d| Some(d.to_vec()));
    let mut c = TokioChecker::new(64, StdRng::seed_from_u64(3));
    let http = || Check::Http(HttpCheck::new("/").unwrap());
    let probes = [
        (ok.addr, http(), Reason::HttpStatus(200), State::Up),
        (bad.addr, http(), Reason::BadStatus(500), State::Down),
        (silent.addr, http(), Reason::Timeout, State::Down),
        (
            echo.addr,
            Check::Script(ScriptCheck::udp(vec![1, 2], Some(vec![(1, 0xff)]))),
            Reason::ScriptMatched,
            State::Up,
        ),
        (
            "127.0.0.1:0".parse().unwrap(),
            Check::Exec(ExecCheck {
                program: "/bin/sh".into(),
                args: vec!["-c".into(), "exit 1".into()],
                dynamic: false,
            }),
            Reason::ExitCode(1),
            State::Down,
        ),
    ];
    let mut expected = Vec::new();
    for (addr, check, reason, state) in probes {
        let id = c
            .add(target(addr, check, InitialState::Unknown, 200 * MS))
            .unwrap();
        expected.push((id, state, reason));
    }
    let mut seen = Vec::new();
    for _ in 0..expected.len() {
        let e = next(&mut c).await;
        seen.push((e.id, e.transition.to, e.transition.reason));
    }
    seen.sort_by_key(|s| s.0);
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "current_thread")]
async fn icmp_echo() {
    if !lb_lab::is_root() {
        eprintln!("skipping icmp_echo: ping sockets are not allowed and raw sockets need root");
        return;
    }
    let mut c = TokioChecker::new(4, StdRng::seed_from_u64(3));
    let check = Check::Icmp(lb_health::probe::IcmpCheck::default());
    c.add(target(
        "127.0.0.1:0".parse().unwrap(),
        check,
        InitialState::Unknown,
        500 * MS,
    ))
    .unwrap();
    let e = next(&mut c).await;
    assert_eq!(
        (e.transition.to, e.transition.reason),
        (State::Up, Reason::EchoReply)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn bound_on_tasks() {
    let silent = tcp_server(|s| {
        std::thread::sleep(Duration::from_millis(600));
        drop(s);
    });
    let mut c = TokioChecker::new(3, StdRng::seed_from_u64(3));
    for i in 0..9 {
        let check = Check::Http(HttpCheck::new(&format!("/{i}")).unwrap());
        c.add(target(silent.addr, check, InitialState::Unknown, 100 * MS))
            .unwrap();
    }
    let start = tokio::time::Instant::now();
    for _ in 0..9 {
        let e = next(&mut c).await;
        assert_eq!(e.transition.reason, Reason::Timeout);
        assert!(c.in_flight() <= 3);
    }
    // Nine 100 ms runs, three at a time: three rounds.
    assert!(start.elapsed() >= 290 * MS, "{:?}", start.elapsed());
}

#[test]
fn half_open_is_refused_with_a_clear_error() {
    let mut c = TokioChecker::new(4, StdRng::seed_from_u64(3));
    let err = c
        .add(target(
            "127.0.0.1:9".parse().unwrap(),
            Check::TcpHalfOpen,
            InitialState::Unknown,
            Duration::from_secs(1),
        ))
        .unwrap_err();
    assert!(matches!(err, lb_health::Error::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("reactor"), "{err}");
}
