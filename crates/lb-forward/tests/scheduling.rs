//! New connections follow the service's scheduler: distribution, persistence, quiescing and
//! one-packet scheduling.

mod support;

use std::collections::HashMap;

use lb_forward::testing::{ACK, SYN};
use lb_forward::*;
use lb_sched::{Algorithm, Persistence, PoolConfig};
use support::*;

fn reals3() -> [(&'static str, Method); 3] {
    [
        ("10.0.0.3:0", Method::Dr),
        ("10.0.0.4:0", Method::Dr),
        ("10.0.0.5:0", Method::Dr),
    ]
}

fn dst_mac(f: &Frame) -> u8 {
    f.bytes()[5]
}

#[test]
fn weighted_round_robin_distribution() {
    let mut fw = forwarder(Settings::default());
    let key = service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Wrr),
        &reals3(),
    );
    fw.edit_real(&key, sa("10.0.0.3:0"), 3, false, s(0))
        .unwrap();
    let mut count: HashMap<u8, u32> = HashMap::new();
    for i in 0..500u16 {
        let mut f = tcp_in(&format!("10.0.1.1:{}", 1000 + i), "10.0.0.100:80", SYN, b"");
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        *count.entry(dst_mac(&f)).or_default() += 1;
    }
    assert_eq!(count[&0], 300);
    assert_eq!(count[&1], 100);
    assert_eq!(count[&2], 100);
    let st = &fw.status()[0];
    assert_eq!(st.reals.iter().map(|r| r.counters.conns).sum::<u64>(), 500);
    assert_eq!(st.reals[0].inactive, 300);
}

#[test]
fn least_connection_sees_the_table() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Lc),
        &reals3(),
    );
    // Establish one connection to each real, then close the one on real 1 with a RST: the
    // next new connection goes where the load is lowest.
    let mut placed = Vec::new();
    for i in 0..3u16 {
        let c = format!("10.0.1.1:{}", 2000 + i);
        let mut f = tcp_in(&c, "10.0.0.100:80", SYN, b"");
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        placed.push((c.clone(), dst_mac(&f)));
        let mut f = tcp_in(&c, "10.0.0.100:80", ACK, b"");
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    }
    let (victim, mac) = placed.iter().find(|(_, m)| *m == 1).unwrap().clone();
    let mut f = tcp_in(&victim, "10.0.0.100:80", lb_forward::testing::RST, b"");
    assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
    let mut f = tcp_in("10.0.1.1:3000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
    assert_eq!(dst_mac(&f), mac);
}

#[test]
fn persistence_keeps_a_client_network_on_one_real() {
    let mut fw = forwarder(Settings::default());
    let sticky = Persistence::new(s(300))
        .unwrap()
        .with_v4_netmask("255.255.255.0".parse().unwrap())
        .unwrap();
    let sched =
        PoolScheduler::new(PoolConfig::new(Algorithm::Rr).with_persistence(sticky), 1).unwrap();
    service(&mut fw, Protocol::Tcp, "10.0.0.100:80", sched, &reals3());
    let mut macs = Vec::new();
    for i in 0..30u16 {
        let c = format!("10.0.7.{}:{}", 1 + i % 5, 1000 + i);
        let mut f = tcp_in(&c, "10.0.0.100:80", SYN, b"");
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        macs.push(dst_mac(&f));
    }
    assert!(macs.iter().all(|m| *m == macs[0]), "{macs:?}");
    // Another /24 goes round robin to the next real.
    let mut f = tcp_in("10.0.8.1:1000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    assert_ne!(dst_mac(&f), macs[0]);
}

#[test]
fn quiesced_real_keeps_its_connections_and_gets_no_new_ones() {
    let mut fw = forwarder(Settings::default());
    let key = service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &reals3(),
    );
    let mut on_first = None;
    for i in 0..3u16 {
        let c = format!("10.0.1.1:{}", 1000 + i);
        let mut f = tcp_in(&c, "10.0.0.100:80", SYN, b"");
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        if dst_mac(&f) == 0 {
            on_first = Some(c);
        }
    }
    let on_first = on_first.unwrap();
    fw.edit_real(&key, sa("10.0.0.3:0"), 0, false, s(2))
        .unwrap();
    let mut f = tcp_in(&on_first, "10.0.0.100:80", ACK, b"more");
    assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
    assert_eq!(dst_mac(&f), 0, "existing connection continues");
    for i in 0..30u16 {
        let mut f = tcp_in(&format!("10.0.2.1:{}", 1000 + i), "10.0.0.100:80", SYN, b"");
        assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
        assert_ne!(dst_mac(&f), 0, "no new connection on the quiesced real");
    }
    // All quiesced: nothing to pick.
    for r in ["10.0.0.4:0", "10.0.0.5:0"] {
        fw.edit_real(&key, sa(r), 0, false, s(3)).unwrap();
    }
    let mut f = tcp_in("10.0.3.1:1000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(3), &mut f), Verdict::Drop(DropReason::NoReal));
}

#[test]
fn one_packet_scheduling_spreads_datagrams_and_keeps_no_entry() {
    let mut fw = forwarder(Settings::default());
    let key = service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:514",
        pool(Algorithm::Rr),
        &reals3(),
    );
    fw.edit_service(&key, ServiceConfig { one_packet: true })
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:514", b"log line", true);
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        seen.push(dst_mac(&f));
    }
    assert_eq!(seen, [0, 1, 2, 0, 1, 2]);
    assert_eq!(fw.connection_count(), 0);
    assert_eq!(fw.status()[0].counters.conns, 6);
}

/// A one-packet service keeps no connection entry, which is what translates a NAT real's
/// replies: the two are refused together, whichever comes first.
#[test]
fn one_packet_services_refuse_nat_reals() {
    let mut fw = forwarder(Settings::default());
    let ops = service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:514",
        pool(Algorithm::Rr),
        &reals3(),
    );
    fw.edit_service(&ops, ServiceConfig { one_packet: true })
        .unwrap();
    let nat = RealConfig::new(sa("10.0.0.6:514"), 1, Method::Nat);
    assert!(matches!(
        fw.add_real(&ops, nat, s(0)),
        Err(Error::Invalid {
            what: "NAT real server",
            ..
        })
    ));
    let key = service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.101:514",
        pool(Algorithm::Rr),
        &[("10.0.0.6:514", Method::Nat)],
    );
    assert!(
        fw.edit_service(&key, ServiceConfig { one_packet: true })
            .is_err()
    );
    assert!(!fw.status()[1].config.one_packet);
}

#[test]
fn the_stats_table_reads_like_ipvsadm() {
    let mut fw = forwarder(Settings::default());
    let key = service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &reals3(),
    );
    fw.edit_real(&key, sa("10.0.0.4:0"), 0, false, s(0))
        .unwrap();
    let before = fw.status();
    for i in 0..4u16 {
        let mut f = tcp_in(&format!("10.0.1.1:{}", 1000 + i), "10.0.0.100:80", SYN, b"");
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    }
    let mut bad = Frame::from_bytes(&[0u8; 10], IF);
    let _ = fw.process(s(1), &mut bad);
    let table = lb_forward::report::stats_table(
        &fw.status(),
        Some((&before, core::time::Duration::from_secs(2))),
        fw.stats(),
        fw.connection_count(),
    );
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Prot LocalAddress:Port"), "{table}");
    assert!(
        lines[1].contains("Conns") && lines[1].contains("OutBPS"),
        "{table}"
    );
    let svc = lines[2];
    assert!(svc.starts_with("tcp:10.0.0.100:80"), "{table}");
    // 4 connections, 4 packets in, over 2 s: CPS 2, InPPS 2.
    let cols: Vec<&str> = svc.split_whitespace().collect();
    assert_eq!(&cols[1..3], &["4", "4"], "{table}");
    assert_eq!(&cols[6..8], &["2", "2"], "{table}");
    assert!(lines[3].contains("-> 10.0.0.3:0 Route 1 0 2"), "{table}");
    assert!(lines[4].contains("-> 10.0.0.4:0 Route 0 0 0"), "{table}");
    assert!(table.contains("connections 4"), "{table}");
    assert!(table.contains("drops: truncated=1"), "{table}");
}
