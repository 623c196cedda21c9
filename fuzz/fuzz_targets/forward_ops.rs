//! Drives the lb-forward datapath with arbitrary frames and arbitrary service changes.
//!
//! Contract held here:
//! - nothing panics, whatever the bytes, the configuration changes or the clock (the tunnel
//!   endpoint's decapsulator gets the raw bytes too);
//! - every frame the forwarder emits for a well-formed input frame (built with valid
//!   checksums) parses, with a valid checksum at every layer (IPv4 header, TCP, UDP, ICMP,
//!   ICMPv6, through IPIP / IP6IP6 / GUE);
//! - the datapath's counters add up: every received frame is forwarded, ignored or dropped
//!   (a too-big packet is counted as dropped and its ICMP error as forwarded).
#![no_main]

use arbitrary::Arbitrary;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use lb_forward::testing::{self, check_frame};
use lb_forward::{
    Encap, Forwarder, Frame, InterfaceConfig, MatchKey, Method, NextHop, PoolScheduler, Protocol,
    RealConfig, ServiceConfig, ServiceKey, Settings, Timeouts, Verdict,
};
use lb_sched::{Algorithm, PoolConfig};
use libfuzzer_sys::fuzz_target;

const MAX_OPS: usize = 300;
const IF: u32 = 3;
const OTHER_IF: u32 = 4;
const DIRECTOR: [u8; 6] = [2, 0, 0, 0, 0, 0xd];
const GUE: u16 = 6080;

#[derive(Arbitrary, Debug)]
struct Input {
    max_connections: u8,
    expire_nodest: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A well-formed frame: its output must check.
    Packet(PacketSpec),
    /// Arbitrary bytes: on the other interface?, flagged as a partial checksum?, the frame.
    Raw(bool, bool, Vec<u8>),
    AddService {
        svc: u8,
        one_packet: bool,
        algorithm: u8,
    },
    RemoveService {
        svc: u8,
    },
    /// A firewall-mark service's match keys: (UDP, prefix length, first port, last port).
    SetMatches {
        svc: u8,
        keys: Vec<(bool, u8, u16, u16)>,
    },
    AddReal {
        svc: u8,
        real: u8,
        method: u8,
        weight: u8,
        nat_port: u16,
        clamp: bool,
    },
    EditReal {
        svc: u8,
        real: u8,
        weight: u8,
        clamp: bool,
    },
    RemoveReal {
        svc: u8,
        real: u8,
    },
    NextHop {
        real: u8,
        known: bool,
        other_if: bool,
    },
    Mtu(u16),
    Advance {
        millis: u32,
        budget: u16,
    },
    Timeouts {
        tcp: u16,
        fin: u16,
        udp: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct PacketSpec {
    svc: u8,
    client: u8,
    sport: u16,
    flags: u8,
    payload: u16,
    udp_checksum: bool,
    /// From real n (a NAT reply) instead of from the client.
    from_real: Option<(u8, u16)>,
}

/// Services: (protocol, v6, port); port 0 is every port; then two firewall-mark services.
fn service(i: u8) -> ServiceKey {
    match i % 8 {
        6 => return ServiceKey::fwmark(1, false),
        7 => return ServiceKey::fwmark(2, true),
        _ => {}
    }
    let (protocol, v6, port) = match i % 6 {
        0 => (Protocol::Tcp, false, 80),
        1 => (Protocol::Udp, false, 53),
        2 => (Protocol::Tcp, true, 80),
        3 => (Protocol::Udp, true, 53),
        4 => (Protocol::Tcp, false, 0),
        _ => (Protocol::Udp, true, 0),
    };
    ServiceKey {
        protocol,
        vip: vip(v6),
        port,
        fwmark: 0,
    }
}

fn vip(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))
    }
}

fn real_ip(i: u8, v6: bool) -> IpAddr {
    let n = 3 + (i % 4);
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }
}

fn method(m: u8) -> Method {
    match m % 4 {
        0 => Method::Dr,
        1 => Method::Nat,
        2 => Method::Tunnel(Encap::Ip),
        _ => Method::Tunnel(Encap::Gue { port: GUE }),
    }
}

fn interface(index: u32, mtu: u16) -> InterfaceConfig {
    InterfaceConfig {
        index,
        mac: if index == IF {
            DIRECTOR
        } else {
            [2, 0, 0, 0, 0, 0xe]
        },
        mtu,
        ipv4: Some(Ipv4Addr::new(10, 0, 0, 2)),
        ipv6: Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
    }
}

fn build(spec: &PacketSpec) -> Vec<u8> {
    let key = service(spec.svc);
    let v6 = key.vip.is_ipv6();
    let key = if key.is_fwmark() {
        ServiceKey {
            vip: vip(v6),
            protocol: if spec.flags & 0x80 != 0 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            ..key
        }
    } else {
        key
    };
    let client: IpAddr = if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0xfd01,
            0,
            0,
            0,
            0,
            0,
            0,
            u16::from(spec.client % 8),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 1, 0, spec.client % 8))
    };
    let sport = 1000 + spec.sport % 8;
    let dport = if key.port == 0 {
        1 + spec.sport % 3
    } else {
        key.port
    };
    let payload = vec![0x33; usize::from(spec.payload % 1500)];
    let (smac, src, dst) = match spec.from_real {
        None => (
            [2, 0, 0, 0, 0, 0xc],
            SocketAddr::new(client, sport),
            SocketAddr::new(key.vip, dport),
        ),
        Some((r, port)) => (
            [2, 0, 0, 0, 1, r % 4],
            SocketAddr::new(
                real_ip(r, v6),
                if port % 2 == 0 {
                    dport
                } else {
                    8000 + port % 3
                },
            ),
            SocketAddr::new(client, sport),
        ),
    };
    match key.protocol {
        Protocol::Tcp => testing::tcp(smac, DIRECTOR, src, dst, spec.flags, &payload),
        Protocol::Udp => testing::udp(smac, DIRECTOR, src, dst, &payload, spec.udp_checksum),
    }
}

fuzz_target!(|input: Input| {
    let settings = Settings {
        max_connections: usize::from(input.max_connections) + 1,
        expire_nodest_conn: input.expire_nodest,
        ..Settings::default()
    };
    let mut fw = Forwarder::new(settings);
    fw.set_interface(interface(IF, 1500));
    fw.set_interface(interface(OTHER_IF, 1500));
    let mut now = Duration::ZERO;
    let mut frame = Frame::default();
    for op in input.ops.iter().take(MAX_OPS) {
        match op {
            Op::Packet(spec) => {
                let bytes = build(spec);
                assert!(frame.fill(&bytes, IF));
                fw.prefetch(core::slice::from_ref(&frame));
                if fw.process(now, &mut frame) == Verdict::Transmit {
                    if let Err(e) = check_frame(frame.bytes(), Some(GUE)) {
                        panic!("emitted frame does not check: {e} ({spec:?})");
                    }
                }
            }
            Op::Raw(other, partial, bytes) => {
                if let Ok(Some(d)) = lb_forward::decap::decapsulate(bytes, Some(GUE)) {
                    assert!(d.inner.end <= bytes.len());
                }
                let mut f = Frame::from_bytes(bytes, if *other { OTHER_IF } else { IF });
                f.partial_checksum = *partial;
                fw.prefetch(core::slice::from_ref(&f));
                let _ = fw.process(now, &mut f);
            }
            Op::AddService {
                svc,
                one_packet,
                algorithm,
            } => {
                let names = Algorithm::NAMES;
                let alg =
                    Algorithm::from_name(names[usize::from(*algorithm) % names.len()]).unwrap();
                if let Ok(sched) = PoolScheduler::new(PoolConfig::new(alg), 1) {
                    let config = ServiceConfig {
                        one_packet: *one_packet,
                    };
                    let _ = fw.add_service(service(*svc), config, sched);
                }
            }
            Op::RemoveService { svc } => {
                let _ = fw.remove_service(&service(*svc));
            }
            Op::SetMatches { svc, keys } => {
                let key = service(*svc);
                let keys: Vec<MatchKey> = keys
                    .iter()
                    .take(4)
                    .map(|&(udp, prefix, first, last)| {
                        let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
                        MatchKey::host(protocol, vip(key.vip.is_ipv6()))
                            .prefix(vip(key.vip.is_ipv6()), prefix % 140)
                            .ports(first % 4, last % 4)
                    })
                    .collect();
                let before = fw.matches(&key).ok();
                let set = fw.set_matches(&key, &keys).is_ok();
                let after = fw.matches(&key).ok();
                // Set whole, or not at all.
                assert_eq!(after, if set { Some(keys) } else { before });
            }
            Op::AddReal {
                svc,
                real,
                method: m,
                weight,
                nat_port,
                clamp,
            } => {
                let key = service(*svc);
                let method = method(*m);
                let port = if method == Method::Nat && key.port != 0 {
                    *nat_port % 4 + 7999
                } else {
                    0
                };
                let addr = SocketAddr::new(real_ip(*real, key.vip.is_ipv6()), port);
                let config = RealConfig {
                    addr,
                    weight: u32::from(*weight % 4),
                    method,
                    clamp_mss: *clamp,
                };
                let _ = fw.add_real(&key, config, now);
            }
            Op::EditReal {
                svc,
                real,
                weight,
                clamp,
            } => {
                let key = service(*svc);
                for port in [0, 7999, 8000, 8001, 8002] {
                    let addr = SocketAddr::new(real_ip(*real, key.vip.is_ipv6()), port);
                    let _ = fw.edit_real(&key, addr, u32::from(*weight % 4), *clamp, now);
                }
            }
            Op::RemoveReal { svc, real } => {
                let key = service(*svc);
                for port in [0, 7999, 8000, 8001, 8002] {
                    let _ = fw.remove_real(
                        &key,
                        SocketAddr::new(real_ip(*real, key.vip.is_ipv6()), port),
                    );
                }
            }
            Op::NextHop {
                real,
                known,
                other_if,
            } => {
                let nh = known.then_some(NextHop {
                    interface: if *other_if { OTHER_IF } else { IF },
                    mac: [2, 0, 0, 0, 1, real % 4],
                });
                for v6 in [false, true] {
                    fw.set_next_hop(real_ip(*real, v6), nh);
                }
            }
            Op::Mtu(mtu) => fw.set_interface(interface(OTHER_IF, (*mtu).max(68))),
            Op::Advance { millis, budget } => {
                now += Duration::from_millis(u64::from(*millis % 1_000_000));
                fw.expire(now, usize::from(*budget));
            }
            Op::Timeouts { tcp, fin, udp } => {
                let mut t = Timeouts::default();
                let s = |v: &u16| Duration::from_secs(u64::from(*v % 1000));
                t.set(s(tcp), s(fin), s(udp));
                fw.set_timeouts(t);
            }
        }
    }
    let st = fw.stats();
    assert_eq!(
        st.forwarded + st.ignored + st.total_drops(),
        st.received + st.icmp_sent
    );
});
