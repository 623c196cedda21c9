//! Criterion benchmarks of `lb::forward`'s per-packet cost (the sans-IO core only, no I/O).
//!
//! Run with `cargo bench --bench forward`; filter with criterion's arguments, e.g.
//! `cargo bench --bench forward -- forward/nat`.
//!
//! - `forward/<mode>/established`: one packet of an established flow through
//!   [`Forwarder::process`], cycling over 1024 flows (64-byte TCP ACK frames, IPv4) so that the
//!   table lookup is not always the same cache line. Modes: `dr` (MAC rewrite), `nat`
//!   (address and port rewrite with incremental checksums), `nat-reply` (the reverse
//!   direction), `tun-ipip` and `tun-gue` (encapsulation).
//! - `forward/<mode>/established-v6`: the same with IPv6.
//! - `forward/dr/new-flow`: a SYN of a new flow each time (scheduler pick with `wrr` over 3
//!   reals, which takes no load updates, and table insert); the table holds 2^16 entries, and once full each insert first
//!   evicts a half-open entry under the clock hand (the size policy), which the figure then
//!   includes.
//! - `forward/dr/big-table/batch-64[-prefetch]`: a batch of 64 packets of random flows among
//!   2^17 established connections (a table as large as the last-level cache), without and with
//!   [`Forwarder::prefetch`] before processing them, as `io::Driver` does (time per batch, the
//!   64 fills included).
//! - `forward/baseline/fill`: copying a 64-byte template into the frame buffer, which every
//!   figure above includes (a processed frame is rewritten in place, so each iteration
//!   restores it first).
//!
//! On a shared machine criterion's means carry other tenants' load. `FORWARD_BEST_OF=N cargo
//! bench --bench forward` instead runs each case above in N rounds of 200 000 packets and
//! prints the fastest round's time per packet (fill included), the cost with the least
//! interference; `FORWARD_ROUND=M` changes the packets per round (shorter rounds are less
//! often interrupted on a busy machine) and `FORWARD_ONLY=S` runs only the ids containing `S`
//! (ending in `S` when it ends in `$`: `FORWARD_ONLY='dr/established$'` is IPv4 DR only).
//! `FORWARD_SEED=HEX` sets the connection table's hash seed (where the flows land in its
//! index, which moves the established figures by a few nanoseconds; see BENCHMARKS.md).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lb::forward::testing::{self, ACK, SYN};
use lb::forward::{
    Encap, Forwarder, Frame, InterfaceConfig, Method, NextHop, PoolScheduler, Protocol, RealConfig,
    ServiceConfig, ServiceKey, Settings, Verdict,
};
use lb::sched::{Algorithm, PoolConfig};

#[path = "support/best_of.rs"]
mod support;
use support::best_of;

const IF: u32 = 2;
const DIRECTOR: [u8; 6] = [2, 0, 0, 0, 0, 0xd];
const CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
const FLOWS: usize = 1024;

fn forwarder(method: Method, v6: bool, max: usize) -> (Forwarder, SocketAddr, Vec<SocketAddr>) {
    let defaults = Settings::default();
    let mut fw = Forwarder::new(Settings {
        max_connections: max,
        hash_seed: std::env::var("FORWARD_SEED")
            .ok()
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(defaults.hash_seed),
        ..defaults
    });
    fw.set_interface(InterfaceConfig {
        index: IF,
        mac: DIRECTOR,
        mtu: 1500,
        ipv4: Some("10.0.0.2".parse().unwrap()),
        ipv6: Some("fd00::2".parse().unwrap()),
    });
    let (vip, reals): (SocketAddr, Vec<SocketAddr>) = if v6 {
        (
            "[fd00::100]:80".parse().unwrap(),
            (3..6)
                .map(|i| format!("[fd00::{i}]:8080").parse().unwrap())
                .collect(),
        )
    } else {
        (
            "10.0.0.100:80".parse().unwrap(),
            (3..6)
                .map(|i| format!("10.0.0.{i}:8080").parse().unwrap())
                .collect(),
        )
    };
    let key = ServiceKey::new(Protocol::Tcp, vip);
    let sched = PoolScheduler::new(PoolConfig::new(Algorithm::Wrr), 1).unwrap();
    fw.add_service(key, ServiceConfig::default(), sched)
        .unwrap();
    let reals: Vec<SocketAddr> = reals
        .into_iter()
        .map(|r| {
            if method == Method::Nat {
                r
            } else {
                SocketAddr::new(r.ip(), 0)
            }
        })
        .collect();
    for (i, r) in reals.iter().enumerate() {
        fw.add_real(&key, RealConfig::new(*r, 1, method), Duration::ZERO)
            .unwrap();
        let nh = NextHop {
            interface: IF,
            mac: [2, 0, 0, 0, 1, i as u8],
        };
        fw.set_next_hop(r.ip(), Some(nh));
    }
    (fw, vip, reals)
}

fn client(i: usize, v6: bool) -> SocketAddr {
    let port = 10_000 + (i % 50_000) as u16;
    if v6 {
        format!("[fd01::{:x}]:{port}", i / 50_000 + 1)
            .parse()
            .unwrap()
    } else {
        format!(
            "10.1.{}.{}:{port}",
            (i / 50_000) / 256,
            (i / 50_000) % 256 + 1
        )
        .parse()
        .unwrap()
    }
}

/// Opens FLOWS connections (SYN then ACK) and returns the ACK templates of each direction.
fn established(fw: &mut Forwarder, vip: SocketAddr, v6: bool) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    established_n(fw, vip, v6, FLOWS)
}

/// [`established`] with `flows` connections.
fn established_n(
    fw: &mut Forwarder,
    vip: SocketAddr,
    v6: bool,
    flows: usize,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut inbound = Vec::new();
    let mut replies = Vec::new();
    let mut frame = Frame::default();
    for i in 0..flows {
        let c = client(i, v6);
        let syn = testing::tcp(CLIENT, DIRECTOR, c, vip, SYN, b"");
        assert!(frame.fill(&syn, IF));
        assert_eq!(
            fw.process(Duration::from_secs(1), &mut frame),
            Verdict::Transmit
        );
        let ack = testing::tcp(CLIENT, DIRECTOR, c, vip, ACK, b"");
        assert!(frame.fill(&ack, IF));
        assert_eq!(
            fw.process(Duration::from_secs(1), &mut frame),
            Verdict::Transmit
        );
        inbound.push(ack);
    }
    for conn in fw.connections() {
        let mac = [2, 0, 0, 0, 1, 0];
        replies.push(testing::tcp(
            mac,
            DIRECTOR,
            conn.real,
            conn.client,
            ACK,
            b"",
        ));
    }
    (inbound, replies)
}

fn run(c: &mut Criterion, id: &str, fw: &mut Forwarder, templates: &[Vec<u8>]) {
    let mut frame = Frame::default();
    let mut i = 0;
    let now = Duration::from_secs(2);
    c.bench_function(id, |b| {
        b.iter(|| {
            i = (i + 1) % templates.len();
            frame.fill(&templates[i], IF);
            black_box(fw.process(now, &mut frame))
        })
    });
}

fn established_benches(c: &mut Criterion) {
    let modes = [
        ("dr", Method::Dr),
        ("nat", Method::Nat),
        ("tun-ipip", Method::Tunnel(Encap::Ip)),
        ("tun-gue", Method::Tunnel(Encap::Gue { port: 6080 })),
    ];
    for v6 in [false, true] {
        for (name, method) in modes {
            let (mut fw, vip, _) = forwarder(method, v6, 4 * FLOWS);
            let (inbound, replies) = established(&mut fw, vip, v6);
            let suffix = if v6 { "established-v6" } else { "established" };
            run(c, &format!("forward/{name}/{suffix}"), &mut fw, &inbound);
            if method == Method::Nat {
                run(c, &format!("forward/nat-reply/{suffix}"), &mut fw, &replies);
            }
        }
    }
}

/// Batches of 64 packets of flows drawn at random from 2^17 established DR connections (a
/// table of 32 MiB, as large as the last-level cache, so that most lookups miss it), each
/// batch processed as `io::Driver` does: with [`Forwarder::prefetch`] first, or without.
fn big_table_batches(c: &mut Criterion) {
    const BIG: usize = 1 << 17;
    let (mut fw, vip, _) = forwarder(Method::Dr, false, 2 * BIG);
    let (inbound, _) = established_n(&mut fw, vip, false, BIG);
    let mut frames: Vec<Frame> = (0..64).map(|_| Frame::default()).collect();
    let now = Duration::from_secs(2);
    let mut x: u64 = 1;
    for prefetch in [false, true] {
        let id = if prefetch {
            "forward/dr/big-table/batch-64-prefetch"
        } else {
            "forward/dr/big-table/batch-64"
        };
        c.bench_function(id, |b| {
            b.iter(|| {
                for frame in &mut frames {
                    // xorshift: a fresh random flow for each frame.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    frame.fill(&inbound[x as usize % BIG], IF);
                }
                if prefetch {
                    fw.prefetch(&frames);
                }
                for frame in &mut frames {
                    let _ = black_box(fw.process(now, frame));
                }
            })
        });
    }
}

fn new_flow(c: &mut Criterion) {
    let (mut fw, vip, _) = forwarder(Method::Dr, false, 1 << 16);
    let templates: Vec<Vec<u8>> = (0..4096)
        .map(|i| testing::tcp(CLIENT, DIRECTOR, client(i * 7, false), vip, SYN, b""))
        .collect();
    let mut frame = Frame::default();
    let mut n: u32 = 0;
    c.bench_function("forward/dr/new-flow", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            frame.fill(&templates[n as usize % templates.len()], IF);
            // A fresh source port and address each time (the checksum is not verified on
            // the way in; the datapath only rewrites MACs in DR mode).
            let bytes = frame.bytes_mut();
            bytes[34..36].copy_from_slice(&(n as u16).to_be_bytes());
            bytes[28..30].copy_from_slice(&((n >> 16) as u16).to_be_bytes());
            // Keep the IPv4 header checksum right after changing the source address.
            bytes[24] = 0;
            bytes[25] = 0;
            let sum = ipv4_checksum(&bytes[14..34]);
            bytes[24..26].copy_from_slice(&sum.to_be_bytes());
            black_box(fw.process(Duration::from_secs(1), &mut frame))
        })
    });
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for w in h.chunks(2) {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn baseline(c: &mut Criterion) {
    let template = testing::tcp(
        CLIENT,
        DIRECTOR,
        client(1, false),
        "10.0.0.100:80".parse().unwrap(),
        ACK,
        b"",
    );
    let mut frame = Frame::default();
    c.bench_function("forward/baseline/fill", |b| {
        b.iter(|| {
            frame.fill(black_box(&template), IF);
            black_box(frame.len())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(1));
    targets = established_benches, big_table_batches, new_flow, baseline
}

fn best_of_report(rounds: usize, per_round: usize, only: &str) {
    let now = Duration::from_secs(2);
    let mut frame = Frame::default();
    let modes = [
        ("dr", Method::Dr),
        ("nat", Method::Nat),
        ("tun-ipip", Method::Tunnel(Encap::Ip)),
        ("tun-gue", Method::Tunnel(Encap::Gue { port: 6080 })),
    ];
    println!("best of {rounds} rounds of {per_round} packets, ns per packet (fill included)");
    // A macro, not a closure taking `&mut dyn FnMut`: the step must stay inlined in the loop.
    macro_rules! report {
        ($id:expr, $step:expr) => {
            let id: &str = &$id;
            let selected = match only.strip_suffix('$') {
                Some(tail) => id.ends_with(tail),
                None => id.contains(only),
            };
            if selected {
                let ns = best_of(rounds, per_round, $step);
                println!("{id} {ns:.1}");
            }
        };
    }
    for (v6, suffix) in [(false, "established"), (true, "established-v6")] {
        for (name, method) in modes {
            let (mut fw, vip, _) = forwarder(method, v6, 4 * FLOWS);
            let (inbound, replies) = established(&mut fw, vip, v6);
            report!(format!("forward/{name}/{suffix}"), |k| {
                frame.fill(&inbound[k % FLOWS], IF);
                let _ = black_box(fw.process(now, &mut frame));
            });
            if method == Method::Nat {
                report!(format!("forward/nat-reply/{suffix}"), |k| {
                    frame.fill(&replies[k % FLOWS], IF);
                    let _ = black_box(fw.process(now, &mut frame));
                });
            }
        }
    }
    let (mut fw, vip, _) = forwarder(Method::Dr, false, 1 << 16);
    let templates: Vec<Vec<u8>> = (0..4096)
        .map(|i| testing::tcp(CLIENT, DIRECTOR, client(i * 7, false), vip, SYN, b""))
        .collect();
    report!("forward/dr/new-flow", |k: usize| {
        let n = k as u32;
        frame.fill(&templates[k % templates.len()], IF);
        let bytes = frame.bytes_mut();
        bytes[34..36].copy_from_slice(&(n as u16).to_be_bytes());
        bytes[28..30].copy_from_slice(&((n >> 16) as u16).to_be_bytes());
        bytes[24] = 0;
        bytes[25] = 0;
        let sum = ipv4_checksum(&bytes[14..34]);
        bytes[24..26].copy_from_slice(&sum.to_be_bytes());
        let _ = black_box(fw.process(Duration::from_secs(1), &mut frame));
    });
    let template = &templates[0];
    report!("forward/baseline/fill", |_| {
        frame.fill(black_box(template), IF);
        black_box(frame.len());
    });
}

fn main() {
    if let Some(rounds) = std::env::var("FORWARD_BEST_OF")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let per_round = std::env::var("FORWARD_ROUND")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let only = std::env::var("FORWARD_ONLY").unwrap_or_default();
        best_of_report(rounds, per_round, &only);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
