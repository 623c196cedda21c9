//! The connection table: timeouts, the size policy under a SYN flood, removed and re-added
//! reals, and live service changes.

mod support;

use lb_forward::testing::{ACK, RST, SYN};
use lb_forward::*;
use lb_sched::Algorithm;
use support::*;

fn client(i: u32) -> String {
    format!(
        "10.1.{}.{}:{}",
        (i >> 8) & 0xff,
        i & 0xff,
        1024 + (i % 60000)
    )
}

#[test]
fn connections_expire_after_their_state_timeout() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(0), &mut f), Verdict::Transmit);
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(0), &mut f), Verdict::Transmit);
    assert_eq!(fw.connection_count(), 2);
    // SYN_RECV lives 60 s, UDP 300 s.
    assert_eq!(fw.expire(s(59), 1000), 0);
    assert_eq!(fw.expire(s(60), 1000), 1);
    assert_eq!(fw.expire(s(300), 1000), 1);
    assert_eq!(fw.connection_count(), 0);
    assert_eq!(fw.stats().expired, 2);
    let st = &fw.status()[1];
    assert_eq!((st.reals[0].active, st.reals[0].inactive), (0, 0));

    // ipvsadm --set: a shorter UDP timeout applies to new packets.
    let mut t = Timeouts::default();
    t.set(s(0), s(0), s(5));
    fw.set_timeouts(t);
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(400), &mut f), Verdict::Transmit);
    assert_eq!(fw.connections().next().unwrap().expires, s(405));
}

#[test]
fn a_packet_after_expiry_starts_a_new_connection() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr), ("10.0.0.4:0", Method::Dr)],
    );
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(0), &mut f), Verdict::Transmit);
    let first = f.bytes()[0..6].to_vec();
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(301), &mut f), Verdict::Transmit);
    assert_ne!(f.bytes()[0..6], first[..], "rescheduled by rr");
    assert_eq!(fw.connection_count(), 1);
}

#[test]
fn non_syn_without_connection_is_dropped() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    for flags in [ACK, RST, SYN | RST] {
        let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", flags, b"");
        assert_eq!(
            fw.process(s(1), &mut f),
            Verdict::Drop(DropReason::NoConnection)
        );
    }
    // Not a service: left to the host.
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:81", SYN, b"");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Ignore);
    assert_eq!(fw.stats().drops(DropReason::NoConnection), 3);
}

#[test]
fn syn_flood_does_not_evict_established_connections() {
    let settings = Settings {
        max_connections: 64,
        ..Settings::default()
    };
    let mut fw = forwarder(settings);
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    // 32 established connections.
    for i in 0..32 {
        for flags in [SYN, ACK] {
            let mut f = tcp_in(&client(i), "10.0.0.100:80", flags, b"");
            assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        }
    }
    // A flood of 10 000 SYNs from other clients.
    for i in 1000..11_000 {
        let mut f = tcp_in(&client(i), "10.0.0.100:80", SYN, b"");
        let _ = fw.process(s(2), &mut f);
    }
    assert_eq!(fw.connection_count(), 64);
    // Each SYN replaced a half-open one, or was refused when the probes under the clock hand
    // met only established connections.
    let stats = fw.stats();
    assert_eq!(
        stats.evicted + stats.drops(DropReason::TableFull),
        10_000 - 32
    );
    assert!(stats.evicted > 9_000, "{stats:?}");
    let established = fw
        .connections()
        .filter(|c| c.state == ConnState::Established)
        .count();
    assert_eq!(established, 32);
    // Each established connection still forwards.
    for i in 0..32 {
        let mut f = tcp_in(&client(i), "10.0.0.100:80", ACK, b"data");
        assert_eq!(fw.process(s(3), &mut f), Verdict::Transmit);
    }
    // Full of established connections: a new one is refused, not forced in.
    for i in 32..64 {
        for flags in [SYN, ACK] {
            let mut f = tcp_in(&client(i), "10.0.0.100:80", flags, b"");
            let _ = fw.process(s(4), &mut f);
        }
    }
    let mut f = tcp_in(&client(99_999), "10.0.0.100:80", SYN, b"");
    assert_eq!(
        fw.process(s(5), &mut f),
        Verdict::Drop(DropReason::TableFull)
    );
}

#[test]
fn removed_real_drops_then_resumes_when_added_back() {
    let mut fw = forwarder(Settings::default());
    let key = service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    for flags in [SYN, ACK] {
        let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", flags, b"");
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    }
    fw.remove_real(&key, sa("10.0.0.3:0")).unwrap();
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", ACK, b"x");
    assert_eq!(
        fw.process(s(2), &mut f),
        Verdict::Drop(DropReason::RealRemoved)
    );
    assert_eq!(fw.connection_count(), 1, "kept: expire_nodest_conn is off");
    let mut f = tcp_in("10.0.0.1:40001", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(2), &mut f), Verdict::Drop(DropReason::NoReal));

    fw.add_real(&key, RealConfig::new(sa("10.0.0.3:0"), 1, Method::Dr), s(3))
        .unwrap();
    fw.set_next_hop(
        ip_of("10.0.0.3:0"),
        Some(NextHop {
            interface: IF,
            mac: real_mac(0),
        }),
    );
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", ACK, b"x");
    assert_eq!(fw.process(s(3), &mut f), Verdict::Transmit);
    let st = &fw.status()[0];
    assert_eq!(
        st.reals[0].active, 1,
        "the connection counts on the re-added real"
    );
}

#[test]
fn expire_nodest_conn_removes_the_connection() {
    let mut fw = forwarder(Settings {
        expire_nodest_conn: true,
        ..Settings::default()
    });
    let key = service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr), ("10.0.0.4:0", Method::Dr)],
    );
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let real = fw.connections().next().unwrap().real;
    fw.remove_real(&key, sa(&format!("{}:0", real.ip())))
        .unwrap();
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(
        fw.process(s(2), &mut f),
        Verdict::Drop(DropReason::RealRemoved)
    );
    assert_eq!(fw.connection_count(), 0);
    // The next datagram is scheduled to the remaining real.
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
    assert_ne!(fw.connections().next().unwrap().real.ip(), real.ip());
}

#[test]
fn services_change_while_running() {
    let mut fw = forwarder(Settings::default());
    let key = service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    assert!(matches!(
        fw.add_service(key, ServiceConfig::default(), pool(Algorithm::Rr)),
        Err(Error::DuplicateService(_))
    ));
    assert!(matches!(
        fw.add_real(&key, RealConfig::new(sa("10.0.0.3:0"), 1, Method::Dr), s(0)),
        Err(Error::DuplicateReal(_))
    ));
    assert!(
        fw.add_real(
            &key,
            RealConfig::new(sa("[fd00::3]:0"), 1, Method::Dr),
            s(0)
        )
        .is_err()
    );
    assert!(
        fw.add_real(
            &key,
            RealConfig::new(sa("10.0.0.5:99"), 1, Method::Dr),
            s(0)
        )
        .is_err()
    );
    let tcp = ServiceKey::new(Protocol::Tcp, sa("10.0.0.100:80"));
    assert!(
        fw.add_service(tcp, ServiceConfig { one_packet: true }, pool(Algorithm::Rr))
            .is_err()
    );

    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    fw.remove_service(&key).unwrap();
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(
        fw.process(s(1), &mut f),
        Verdict::Drop(DropReason::RealRemoved)
    );
    let mut f = udp_in("10.0.0.1:5001", "10.0.0.100:53", b"q", true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Ignore);
    assert!(fw.status().is_empty());

    // A service on every port of the VIP, and one on an exact port that wins over it.
    let any = ServiceKey {
        protocol: Protocol::Tcp,
        vip: ip_of("10.0.0.100:0"),
        port: 0,
        fwmark: 0,
    };
    fw.add_service(any, ServiceConfig::default(), pool(Algorithm::Rr))
        .unwrap();
    fw.add_real(&any, RealConfig::new(sa("10.0.0.3:0"), 1, Method::Dr), s(0))
        .unwrap();
    fw.set_next_hop(
        ip_of("10.0.0.3:0"),
        Some(NextHop {
            interface: IF,
            mac: real_mac(0),
        }),
    );
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:443",
        pool(Algorithm::Rr),
        &[("10.0.0.4:0", Method::Dr)],
    );
    fw.set_next_hop(
        ip_of("10.0.0.4:0"),
        Some(NextHop {
            interface: IF,
            mac: real_mac(4),
        }),
    );
    for (port, mac) in [(22, real_mac(0)), (8080, real_mac(0)), (443, real_mac(4))] {
        let mut f = tcp_in("10.0.0.1:40000", &format!("10.0.0.100:{port}"), SYN, b"");
        assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
        assert_eq!(&f.bytes()[0..6], &mac, "port {port}");
    }
}

#[test]
fn a_real_without_next_hop_is_counted() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    fw.set_next_hop(ip_of("10.0.0.3:0"), None);
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", true);
    assert_eq!(
        fw.process(s(1), &mut f),
        Verdict::Drop(DropReason::NoNextHop)
    );
}

#[test]
fn established_flows_follow_next_hop_and_interface_changes() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    let real = ip_of("10.0.0.3:0");
    let hop = |interface, mac| Some(NextHop { interface, mac });
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let ack = || tcp_in("10.0.0.1:40000", "10.0.0.100:80", ACK, b"");
    let mut f = ack();
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    assert_eq!(&f.bytes()[0..6], &real_mac(0));

    // The real's neighbour moves: the next packet of the flow goes to the new MAC.
    fw.set_next_hop(real, hop(IF, real_mac(7)));
    let mut f = ack();
    assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
    assert_eq!(&f.bytes()[0..6], &real_mac(7));

    // A second interface, and the real's route moves to it.
    let mut other = fw.interfaces()[0];
    other.index = IF + 1;
    other.mac = [2, 0, 0, 0, 0, 0xee];
    fw.set_interface(other);
    fw.set_next_hop(real, hop(IF + 1, real_mac(8)));
    let mut f = ack();
    assert_eq!(fw.process(s(3), &mut f), Verdict::Transmit);
    assert_eq!(f.interface, IF + 1);
    assert_eq!(&f.bytes()[0..12], &[real_mac(8), other.mac].concat()[..]);

    // That interface's MAC changes.
    other.mac = [2, 0, 0, 0, 0, 0xef];
    fw.set_interface(other);
    let mut f = ack();
    assert_eq!(fw.process(s(4), &mut f), Verdict::Transmit);
    assert_eq!(&f.bytes()[6..12], &other.mac);

    // The next hop becomes unknown: dropped and counted, then known again.
    fw.set_next_hop(real, None);
    let mut f = ack();
    assert_eq!(
        fw.process(s(5), &mut f),
        Verdict::Drop(DropReason::NoNextHop)
    );
    fw.set_next_hop(real, hop(IF, real_mac(0)));
    let mut f = ack();
    assert_eq!(fw.process(s(6), &mut f), Verdict::Transmit);
    assert_eq!(&f.bytes()[0..6], &real_mac(0));
    let st = &fw.status()[0];
    // Every packet was counted in, the dropped one too (as before the next hop check).
    assert_eq!(st.reals[0].counters.packets_in, 7);
    assert_eq!(st.counters.packets_in, 7);
    assert_eq!((st.reals[0].active, st.reals[0].inactive), (1, 0));
}

/// One client port reaching one NAT real through two services would give both connections
/// the same reply tuple: the second is refused under its own reason, and counted nowhere else.
#[test]
fn a_taken_reply_tuple_refuses_the_newer_nat_connection() {
    let mut fw = forwarder(Settings::default());
    for vip in ["10.0.0.100:80", "10.0.0.101:80"] {
        service(
            &mut fw,
            Protocol::Tcp,
            vip,
            pool(Algorithm::Rr),
            &[("10.0.0.3:8080", Method::Nat)],
        );
    }
    let mut first = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(1), &mut first), Verdict::Transmit);
    let mut second = tcp_in("10.0.0.1:40000", "10.0.0.101:80", SYN, b"");
    assert_eq!(
        fw.process(s(1), &mut second),
        Verdict::Drop(DropReason::ReplyTupleTaken)
    );
    assert_eq!(fw.stats().drops(DropReason::TableFull), 0);
    let st = fw.status();
    assert_eq!((st[0].counters.conns, st[1].counters.conns), (1, 0));
    assert_eq!((st[1].reals[0].active, st[1].reals[0].inactive), (0, 0));
    assert_eq!(fw.connection_count(), 1);
}
