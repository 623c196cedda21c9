//! Firewall-mark services: one service (one scheduler, one persistence table) over every
//! packet of its match keys, looked up before the address services, kept consistent when its
//! keys, options or reals change and when it is removed.

mod support;

use lb_forward::testing::SYN;
use lb_forward::*;
use lb_sched::{Algorithm, Persistence, PoolConfig};
use support::*;

fn dst_mac(f: &Frame) -> u8 {
    f.bytes()[5]
}

/// The TCP destination port of an IPv4 frame without options.
fn dport(f: &Frame) -> u16 {
    u16::from_be_bytes([f.bytes()[36], f.bytes()[37]])
}

fn web(vip: &str) -> [MatchKey; 2] {
    let host = MatchKey::host(Protocol::Tcp, ip_of(&format!("{vip}:0")));
    [host.ports(80, 80), host.ports(8080, 8080)]
}

/// FWM 1 over ports 80 and 8080 of 10.0.0.100, persistent, three DR reals (given with their
/// check's port, as keepalived gives them).
fn fwmark_service(fw: &mut Forwarder, persistent: bool) -> ServiceKey {
    let mut config = PoolConfig::new(Algorithm::Rr);
    if persistent {
        config = config.with_persistence(Persistence::new(s(300)).unwrap());
    }
    let key = ServiceKey::fwmark(1, false);
    fw.add_service(
        key,
        ServiceConfig::default(),
        PoolScheduler::new(config, 1).unwrap(),
    )
    .unwrap();
    fw.set_matches(&key, &web("10.0.0.100")).unwrap();
    for i in 0..3 {
        let addr = sa(&format!("10.0.0.{}:80", 3 + i));
        fw.add_real(&key, RealConfig::new(addr, 1, Method::Dr), s(0))
            .unwrap();
        fw.set_next_hop(
            addr.ip(),
            Some(NextHop {
                interface: IF,
                mac: real_mac(i),
            }),
        );
    }
    key
}

fn syn(fw: &mut Forwarder, client: &str, vip: &str) -> Option<Frame> {
    let mut f = tcp_in(client, vip, SYN, b"");
    (fw.process(s(1), &mut f) == Verdict::Transmit).then_some(f)
}

#[test]
fn one_persistence_table_across_the_ports_of_the_mark() {
    let mut fw = forwarder(Settings::default());
    fwmark_service(&mut fw, true);
    for c in 1..=6 {
        let a = syn(&mut fw, &format!("10.0.9.{c}:1000"), "10.0.0.100:80").unwrap();
        let b = syn(&mut fw, &format!("10.0.9.{c}:1001"), "10.0.0.100:8080").unwrap();
        assert_eq!(
            dst_mac(&a),
            dst_mac(&b),
            "client {c}: both ports on one real"
        );
        assert_eq!((dport(&a), dport(&b)), (80, 8080), "DR keeps each port");
    }
    // Round robin between clients: six clients reach all three reals.
    let status = fw.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].key.to_string(), "FWM 1");
    assert_eq!(status[0].matches, web("10.0.0.100"));
    assert_eq!(status[0].counters.conns, 12);
    assert!(status[0].reals.iter().all(|r| r.counters.conns == 4));
    // A port the rules do not mark is not the service's.
    assert!(syn(&mut fw, "10.0.9.1:1002", "10.0.0.100:443").is_none());
    assert_eq!(fw.stats().ignored, 1);
}

#[test]
fn without_persistence_each_connection_is_scheduled_alone() {
    let mut fw = forwarder(Settings::default());
    fwmark_service(&mut fw, false);
    let macs: Vec<u8> = ["10.0.0.100:80", "10.0.0.100:8080", "10.0.0.100:80"]
        .iter()
        .enumerate()
        .map(|(i, vip)| dst_mac(&syn(&mut fw, &format!("10.0.9.1:{}", 1000 + i), vip).unwrap()))
        .collect();
    assert_eq!(macs, [0, 1, 2], "one round robin over both ports");
}

#[test]
fn the_mark_wins_over_an_address_service_and_prefixes_and_ranges_match() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.9:0", Method::Dr)],
    );
    fw.set_next_hop(
        ip_of("10.0.0.9:0"),
        Some(NextHop {
            interface: IF,
            mac: real_mac(9),
        }),
    );
    let key = fwmark_service(&mut fw, false);
    let f = syn(&mut fw, "10.0.9.1:1000", "10.0.0.100:80").unwrap();
    assert_ne!(dst_mac(&f), 9, "FWM 1, not the address service's real");

    let net = MatchKey::host(Protocol::Udp, ip_of("10.0.5.0:0"))
        .prefix(ip_of("10.0.5.77:0"), 24)
        .ports(5000, 5009);
    fw.set_matches(&key, &[net]).unwrap();
    assert_eq!(fw.matches(&key).unwrap(), [net]);
    let mut f = udp_in("10.0.9.1:1000", "10.0.5.200:5009", b"x", true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    for (dst, why) in [
        ("10.0.6.1:5000", "outside the prefix"),
        ("10.0.5.1:5010", "outside the port range"),
    ] {
        let mut f = udp_in("10.0.9.1:1000", dst, b"x", true);
        assert_eq!(fw.process(s(1), &mut f), Verdict::Ignore, "{why}");
    }
    let mut f = tcp_in("10.0.9.1:1000", "10.0.5.1:5000", SYN, b"");
    assert_eq!(
        fw.process(s(1), &mut f),
        Verdict::Ignore,
        "another protocol"
    );
    // The replaced keys no longer match: port 8080 is nobody's, port 80 the address service's.
    assert!(syn(&mut fw, "10.0.9.2:1000", "10.0.0.100:8080").is_none());
    assert_eq!(
        dst_mac(&syn(&mut fw, "10.0.9.2:1001", "10.0.0.100:80").unwrap()),
        9
    );
}

#[test]
fn nat_reals_keep_or_rewrite_the_port() {
    let mut fw = forwarder(Settings::default());
    let key = ServiceKey::fwmark(2, false);
    fw.add_service(key, ServiceConfig::default(), pool(Algorithm::Rr))
        .unwrap();
    fw.set_matches(&key, &web("10.0.0.100")).unwrap();
    for (i, real) in ["10.0.0.3:0", "10.0.0.4:80"].iter().enumerate() {
        fw.add_real(&key, RealConfig::new(sa(real), 1, Method::Nat), s(0))
            .unwrap();
        fw.set_next_hop(
            ip_of(real),
            Some(NextHop {
                interface: IF,
                mac: real_mac(i),
            }),
        );
    }
    let keep = syn(&mut fw, "10.0.9.1:1000", "10.0.0.100:8080").unwrap();
    assert_eq!((dst_mac(&keep), dport(&keep)), (0, 8080));
    let to80 = syn(&mut fw, "10.0.9.1:1001", "10.0.0.100:8080").unwrap();
    assert_eq!((dst_mac(&to80), dport(&to80)), (1, 80));
    smoltcp_verify(to80.bytes());
    let conns: Vec<_> = fw.connections().map(|c| c.real.port()).collect();
    assert!(conns.contains(&8080) && conns.contains(&80), "{conns:?}");
}

#[test]
fn removal_and_edits_stay_consistent() {
    let mut fw = forwarder(Settings::default());
    let key = fwmark_service(&mut fw, false);
    let f = syn(&mut fw, "10.0.9.1:1000", "10.0.0.100:8080");
    assert!(f.is_some());

    // Checked: keys of the other family, keys on an address service, TCP keys under
    // one-packet scheduling.
    let v6 = MatchKey::host(Protocol::Tcp, ip_of("[fd00::100]:0"));
    assert!(fw.set_matches(&key, &[v6]).is_err());
    let addr = service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.101:80",
        pool(Algorithm::Rr),
        &[],
    );
    assert!(fw.set_matches(&addr, &web("10.0.0.101")).is_err());
    assert!(
        fw.edit_service(&key, ServiceConfig { one_packet: true })
            .is_err()
    );
    let bad_range = web("10.0.0.100")[0].ports(90, 80);
    assert!(fw.set_matches(&key, &[bad_range]).is_err());
    assert_eq!(fw.matches(&key).unwrap(), web("10.0.0.100"), "unchanged");

    // Removed: its keys go with it, its connections follow expire_nodest_conn.
    fw.remove_service(&key).unwrap();
    assert!(fw.matches(&key).is_err());
    let mut f = tcp_in("10.0.9.1:1000", "10.0.0.100:8080", SYN, b"");
    assert_eq!(
        fw.process(s(1), &mut f),
        Verdict::Drop(DropReason::RealRemoved)
    );
    assert!(syn(&mut fw, "10.0.9.3:1000", "10.0.0.100:8080").is_none());
    assert_eq!(fw.status().len(), 1, "the address service stays");

    // Added back under the same mark: a new scheduler, the same keys work again.
    let key = fwmark_service(&mut fw, false);
    assert!(syn(&mut fw, "10.0.9.4:1000", "10.0.0.100:80").is_some());
    fw.set_matches(&key, &[]).unwrap();
    assert!(syn(&mut fw, "10.0.9.5:1000", "10.0.0.100:80").is_none());
}

#[test]
fn one_packet_udp_marks() {
    let mut fw = forwarder(Settings::default());
    let key = ServiceKey::fwmark(3, false);
    fw.add_service(key, ServiceConfig { one_packet: true }, pool(Algorithm::Rr))
        .unwrap();
    let dns = MatchKey::host(Protocol::Udp, ip_of("10.0.0.100:0")).ports(53, 53);
    fw.set_matches(&key, &[dns]).unwrap();
    assert!(
        fw.set_matches(&key, &web("10.0.0.100")).is_err(),
        "TCP keys"
    );
    for (i, real) in ["10.0.0.3:53", "10.0.0.4:53"].iter().enumerate() {
        fw.add_real(&key, RealConfig::new(sa(real), 1, Method::Dr), s(0))
            .unwrap();
        fw.set_next_hop(
            ip_of(real),
            Some(NextHop {
                interface: IF,
                mac: real_mac(i),
            }),
        );
    }
    let macs: Vec<u8> = (0..4)
        .map(|_| {
            let mut f = udp_in("10.0.9.1:1000", "10.0.0.100:53", b"q", true);
            assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
            dst_mac(&f)
        })
        .collect();
    assert_eq!(macs, [0, 1, 0, 1]);
    assert_eq!(fw.connection_count(), 0);
}

#[test]
fn overlapping_keys() {
    let a = MatchKey::host(Protocol::Tcp, ip_of("10.0.0.100:0")).ports(80, 90);
    let net = a.prefix(ip_of("10.0.0.0:0"), 24);
    assert!(a.overlaps(&net) && net.overlaps(&a));
    assert!(!a.overlaps(&a.ports(91, 100)));
    assert!(!a.overlaps(&MatchKey {
        protocol: Protocol::Udp,
        ..a
    }));
    assert!(!a.overlaps(&a.prefix(ip_of("10.0.1.0:0"), 24)));
    assert_eq!(net.to_string(), "tcp 10.0.0.0/24 dport 80-90");
    assert_eq!(
        MatchKey::host(Protocol::Udp, ip_of("[fd00::1]:0")).to_string(),
        "udp fd00::1"
    );
    assert_eq!(ServiceKey::fwmark(7, true).to_string(), "FWM 7 IPv6");
}

#[cfg(all(feature = "io", target_os = "linux"))]
#[test]
fn kernel_rules_cover_the_match_keys() {
    let mut fw = forwarder(Settings::default());
    let key = ServiceKey::fwmark(4, false);
    fw.add_service(key, ServiceConfig::default(), pool(Algorithm::Rr))
        .unwrap();
    let net = MatchKey::host(Protocol::Tcp, ip_of("10.0.5.9:0"))
        .prefix(ip_of("10.0.5.9:0"), 24)
        .ports(1000, 2000);
    let host = MatchKey::host(Protocol::Udp, ip_of("10.0.0.100:0"));
    fw.set_matches(&key, &[net, host]).unwrap();
    fw.add_real(
        &key,
        RealConfig::new(sa("10.0.0.3:0"), 1, Method::Nat),
        s(0),
    )
    .unwrap();
    let rules = lb_forward::io::KernelRules::forwarder_rules(&fw);
    assert_eq!(
        rules,
        "    ip daddr 10.0.5.0/24 tcp dport 1000-2000 drop\n    \
         ip daddr 10.0.0.100 meta l4proto udp drop\n    \
         ip saddr 10.0.0.3 tcp sport 1000-2000 fib daddr type != local drop\n    \
         ip saddr 10.0.0.3 meta l4proto udp fib daddr type != local drop\n"
    );
}
