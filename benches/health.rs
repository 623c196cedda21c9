//! Criterion benchmarks of `lb::health`'s sans-IO cores.
//!
//! Run with `cargo bench --bench health`; filter with e.g. `-- health/http/`.
//!
//! - `health/http/parse/{content-length,chunked,head-only}`: [`ResponseParser`] over a whole
//!   response held in memory: 200 with a 1 KiB body framed by Content-Length; the same body in
//!   16 chunks of 64 bytes; a 204 head with eight headers. Throughput in response bytes.
//! - `health/http/probe/{status,regex+digest}`: a whole [`HttpProbe`] run (request built,
//!   response fed in 512-byte pieces, verdict), status only, and with a body regex and MD5.
//! - `health/tracker/observe/{consecutive,saturating}`: [`Tracker::observe`] on a steady
//!   stream of passes with 10 % spread jitter (the common case: no transition);
//!   `health/tracker/observe/flapping`: alternating pass/fail with rise = fall = 1 and flap
//!   damping on, so every call is a transition (queued, then drained).
//! - `health/checker/cycle/10000`: one probe's bookkeeping in a [`Checker`] of 10 000 TCP
//!   targets on a 1 s interval: `poll_due` at the slot's time, then `report` of a pass; the
//!   cost the reactor pays per probe besides the socket work.
//! - `health/dns/parse` (a reply with one answer), `health/agent/parse` (`75% drain maxconn:30`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lb::health::probe::{
    BodyRegex, DnsCheck, DnsType, HttpCheck, HttpProbe, ResponseParser, parse_dns_reply,
};
use lb::health::{
    Check, Checker, Counting, FlapDamping, InitialState, Jitter, Outcome, Probe, Reason, Step,
    Target, Tracker, TrackerConfig, Verdict, parse_agent_line,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn body() -> Vec<u8> {
    (0..1024).map(|i| b'a' + (i % 26) as u8).collect()
}

fn content_length_response() -> Vec<u8> {
    let mut r =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n".to_vec();
    r.extend_from_slice(&body());
    r
}

fn chunked_response() -> Vec<u8> {
    let mut r =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in body().chunks(64) {
        r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        r.extend_from_slice(chunk);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

fn http(c: &mut Criterion) {
    let mut g = c.benchmark_group("health");
    let head_only = b"HTTP/1.1 204 No Content\r\nServer: x\r\nDate: Sat, 21 Nov 2026 08:00:00 GMT\r\nCache-Control: no-store\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\nConnection: close\r\n\r\n".to_vec();
    for (name, response) in [
        ("content-length", content_length_response()),
        ("chunked", chunked_response()),
        ("head-only", head_only),
    ] {
        g.throughput(Throughput::Bytes(response.len() as u64));
        g.bench_function(format!("http/parse/{name}"), |b| {
            b.iter(|| {
                let mut p = ResponseParser::new(64 * 1024);
                let mut seen = 0usize;
                p.feed(black_box(&response), &mut |part| seen += part.len())
                    .unwrap();
                assert!(p.is_complete());
                black_box(seen)
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let response = content_length_response();
    let md5 = md5_of(&body());
    let checks = [
        ("status", HttpCheck::new("/health").unwrap()),
        (
            "regex+digest",
            HttpCheck::new("/health")
                .unwrap()
                .regex(BodyRegex::new("xyz", false).unwrap())
                .digest(md5),
        ),
    ];
    for (name, check) in checks {
        g.bench_function(format!("http/probe/{name}"), |b| {
            b.iter(|| {
                let mut p = HttpProbe::new(&check, addr);
                let Step::Send(req) = p.start() else {
                    unreachable!()
                };
                black_box(req);
                for piece in response.chunks(512) {
                    if let Step::Done(o) = p.on_bytes(piece) {
                        assert_eq!(o.verdict, Verdict::Pass);
                        return o;
                    }
                }
                unreachable!("response complete")
            })
        });
    }
    g.finish();
}

/// MD5 through the `md-5` crate the probe uses, for the expected digest.
fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

fn tracker(c: &mut Criterion) {
    let mut g = c.benchmark_group("health");
    let sec = Duration::from_secs(1);
    for (name, counting) in [
        ("consecutive", Counting::Consecutive),
        ("saturating", Counting::Saturating),
    ] {
        let mut cfg = TrackerConfig::new(sec);
        cfg.initial = InitialState::Up;
        cfg.counting = counting;
        cfg.jitter = Jitter {
            warmup: sec,
            spread_percent: 10,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut t = Tracker::new(cfg, Duration::ZERO, &mut rng).unwrap();
        let pass = Outcome::pass(Reason::Connected);
        g.bench_function(format!("tracker/observe/{name}"), |b| {
            b.iter(|| {
                let now = t.next_probe_at().unwrap();
                t.observe(now, black_box(&pass), &mut rng);
                black_box(t.poll_transition())
            })
        });
    }
    let mut cfg = TrackerConfig::new(sec);
    cfg.initial = InitialState::Up;
    cfg.rise = 1;
    cfg.fall = 1;
    cfg.damping = Some(FlapDamping {
        penalty: 1000,
        half_life: Duration::from_secs(15),
        suppress: 2000,
        reuse: 750,
        ceiling: 6000,
    });
    let mut rng = StdRng::seed_from_u64(1);
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut rng).unwrap();
    let outcomes = [
        Outcome::pass(Reason::Connected),
        Outcome::fail(Reason::Refused),
    ];
    let mut i = 0usize;
    g.bench_function("tracker/observe/flapping", |b| {
        b.iter(|| {
            i += 1;
            let now = t.next_probe_at().unwrap();
            t.observe(now, &outcomes[i & 1], &mut rng);
            t.handle_timeout(now);
            black_box(t.poll_transition())
        })
    });
    g.finish();
}

fn checker(c: &mut Criterion) {
    let mut g = c.benchmark_group("health");
    let mut rng = StdRng::seed_from_u64(1);
    let mut checker = Checker::new();
    let mut cfg = TrackerConfig::new(Duration::from_secs(1));
    cfg.initial = InitialState::Up;
    cfg.jitter = Jitter {
        warmup: Duration::from_secs(1),
        spread_percent: 0,
    };
    for i in 0..10_000u32 {
        let ip = [127, 1, (i >> 8) as u8, i as u8];
        checker
            .add(
                Target {
                    addr: SocketAddr::from((ip, 8080)),
                    check: Check::Tcp,
                    tracker: cfg,
                    timeout: Duration::from_millis(500),
                    source: None,
                },
                Duration::ZERO,
                &mut rng,
            )
            .unwrap();
    }
    while checker.poll_event().is_some() {}
    let pass = Outcome::pass(Reason::Connected);
    g.bench_function("checker/cycle/10000", |b| {
        b.iter(|| {
            let now = checker.poll_timeout().unwrap();
            let id = checker.poll_due(now).map(|d| d.id).unwrap();
            checker.report(id, now, &pass, &mut rng);
        })
    });
    g.finish();
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("health");
    let mut reply = DnsCheck::new("example.org", DnsType::A)
        .unwrap()
        .query(0x1234);
    reply[2] |= 0x80;
    reply[7] = 1;
    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    g.bench_function("dns/parse", |b| {
        b.iter(|| parse_dns_reply(black_box(&reply), 1).unwrap())
    });
    g.bench_function("agent/parse", |b| {
        b.iter(|| parse_agent_line(black_box(b"75% drain maxconn:30\n")).unwrap())
    });
    g.finish();
}

criterion_group!(benches, http, tracker, checker, parsers);
criterion_main!(benches);
