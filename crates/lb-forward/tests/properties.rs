//! Properties of the core over generated traffic: no input panics it, every frame it emits
//! (for well-formed input) parses with correct checksums at every layer, and the per-packet
//! path does not allocate.

mod support;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lb_forward::testing::{self, check_frame};
use lb_forward::*;
use lb_sched::Algorithm;
use proptest::prelude::*;
use support::*;

fn method(i: u8) -> Method {
    match i % 4 {
        0 => Method::Dr,
        1 => Method::Nat,
        2 => Method::Tunnel(Encap::Ip),
        _ => Method::Tunnel(Encap::Gue { port: GUE_PORT }),
    }
}

/// A forwarder with TCP and UDP services on v4 and v6 VIPs, one real per method each.
fn lab() -> Forwarder {
    let mut fw = forwarder(Settings {
        max_connections: 512,
        ..Settings::default()
    });
    for (vip, base) in [("10.0.0.100", "10.0.0."), ("[fd00::100]", "[fd00::")] {
        for (proto, port) in [(Protocol::Tcp, 80), (Protocol::Udp, 53)] {
            let reals: Vec<(String, Method)> = (0..4u8)
                .map(|i| {
                    let m = method(i);
                    let rport = if m == Method::Nat {
                        8000 + u16::from(i)
                    } else {
                        0
                    };
                    let addr = if base.starts_with('[') {
                        format!("{base}{}]:{rport}", 3 + i)
                    } else {
                        format!("{base}{}:{rport}", 3 + i)
                    };
                    (addr, m)
                })
                .collect();
            let reals: Vec<(&str, Method)> = reals.iter().map(|(a, m)| (a.as_str(), *m)).collect();
            service(
                &mut fw,
                proto,
                &format!("{vip}:{port}"),
                pool(Algorithm::Rr),
                &reals,
            );
        }
    }
    fw
}

#[derive(Clone, Debug)]
struct Packet {
    v6: bool,
    udp: bool,
    client: u16,
    sport: u16,
    flags: u8,
    payload: usize,
    udp_checksum: bool,
    /// Send it from the real side (a NAT reply) instead.
    from_real: Option<u8>,
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<bool>(),
        0..8u16,
        1000..1010u16,
        any::<u8>(),
        0..1600usize,
        any::<bool>(),
        prop::option::of(0..4u8),
    )
        .prop_map(
            |(v6, udp, client, sport, flags, payload, udp_checksum, from_real)| Packet {
                v6,
                udp,
                client,
                sport,
                flags,
                payload,
                udp_checksum,
                from_real,
            },
        )
}

fn build(p: &Packet) -> Frame {
    let (client, vip, real): (IpAddr, IpAddr, IpAddr) = if p.v6 {
        (
            Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, p.client + 1).into(),
            "fd00::100".parse().unwrap(),
            Ipv6Addr::new(
                0xfd00,
                0,
                0,
                0,
                0,
                0,
                0,
                3 + u16::from(p.from_real.unwrap_or(0)),
            )
            .into(),
        )
    } else {
        (
            Ipv4Addr::new(10, 1, 0, p.client as u8 + 1).into(),
            "10.0.0.100".parse().unwrap(),
            Ipv4Addr::new(10, 0, 0, 3 + p.from_real.unwrap_or(0)).into(),
        )
    };
    let port = if p.udp { 53 } else { 80 };
    let payload = vec![0x5a; p.payload];
    let (smac, src, dst) = match p.from_real {
        None => (
            CLIENT_MAC,
            SocketAddr::new(client, p.sport),
            SocketAddr::new(vip, port),
        ),
        Some(i) => (
            real_mac(usize::from(i)),
            SocketAddr::new(real, 8000 + u16::from(i)),
            SocketAddr::new(client, p.sport),
        ),
    };
    let bytes = if p.udp {
        testing::udp(smac, DIRECTOR_MAC, src, dst, &payload, p.udp_checksum)
    } else {
        testing::tcp(smac, DIRECTOR_MAC, src, dst, p.flags, &payload)
    };
    Frame::from_bytes(&bytes, IF)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn emitted_frames_have_valid_checksums(packets in prop::collection::vec(packet(), 1..80)) {
        let mut fw = lab();
        for (i, p) in packets.iter().enumerate() {
            let mut f = build(p);
            let now = core::time::Duration::from_millis(i as u64 * 100);
            if fw.process(now, &mut f) == Verdict::Transmit {
                let checked = check_frame(f.bytes(), Some(GUE_PORT));
                prop_assert!(checked.is_ok(), "{:?} for {:?}", checked, p);
                smoltcp_verify(f.bytes());
            }
        }
        let st = fw.stats();
        prop_assert_eq!(st.received, packets.len() as u64);
        prop_assert_eq!(st.forwarded + st.ignored + st.total_drops(), st.received + st.icmp_sent);
    }

    #[test]
    fn arbitrary_bytes_never_panic(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..50)) {
        let mut fw = lab();
        for bytes in &frames {
            let _ = lb_forward::decap::decapsulate(bytes, Some(GUE_PORT));
            let mut f = Frame::from_bytes(bytes, IF);
            let _ = fw.process(core::time::Duration::ZERO, &mut f);
        }
    }

    #[test]
    fn corrupted_valid_frames_never_panic(p in packet(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut fw = lab();
        let mut f = build(&p);
        let len = f.len();
        for (at, v) in &flips {
            let i = at.index(len);
            f.bytes_mut()[i] ^= v;
        }
        let keep = cut.index(len + 1);
        let bytes = f.bytes()[..keep].to_vec();
        let mut f = Frame::from_bytes(&bytes, IF);
        let _ = fw.process(core::time::Duration::ZERO, &mut f);
    }
}

#[test]
fn established_flows_do_not_allocate() {
    let mut fw = lab();
    let mut frames: Vec<Frame> = Vec::new();
    for (i, (v6, udp)) in [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        for real in 0..4u16 {
            let p = Packet {
                v6,
                udp,
                client: i as u16,
                sport: 2000 + real,
                flags: testing::SYN,
                payload: 64,
                udp_checksum: true,
                from_real: None,
            };
            let mut f = build(&p);
            assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
            frames.push(build(&Packet {
                flags: testing::ACK,
                ..p
            }));
        }
    }
    let originals: Vec<Vec<u8>> = frames.iter().map(|f| f.bytes().to_vec()).collect();
    let mut work: Vec<Frame> = frames.clone();
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            for (f, orig) in work.iter_mut().zip(&originals) {
                assert!(f.fill(orig, IF));
                assert_eq!(fw.process(s(2), f), Verdict::Transmit);
            }
            fw.expire(s(2), 64);
        }
    });
    assert_eq!(info.count_total, 0);
}
