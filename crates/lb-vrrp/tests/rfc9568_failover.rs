//! Failover against real keepalived 2.2.7: priority-0 handover both ways, the hard-failure
//! takeover window, IPv6, and the announcements that move neighbours' caches.
//!
//! Each test builds its own LAN (lb-lab), runs keepalived and our driver on it, drives them only
//! over the wire and cleans up through guards; it skips, saying why, when not root or keepalived
//! is missing. Where 1 s timing is not the point, VRRPv3 runs at 100 ms.
#![cfg(feature = "linux")]

mod lab;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use lab::*;
use lb_lab::Lan;
use lb_vrrp::timers::{master_down_interval, skew_time};
use lb_vrrp::wire::Version;
use lb_vrrp::{Config, DropReason, State};

#[test]
fn rfc9568_6_4_2_priority_zero_handover_both_ways() {
    if lab::skip("rfc9568_6_4_2_priority_zero_handover_both_ways") {
        return;
    }
    let lan = Lan::new("vzero", 2).unwrap();
    // keepalived resigns: we take over after Skew_Time, well before Master_Down_Interval.
    let mut ka = Keepalived::start(&lan.hosts[0], &ka_v3(200, "")).unwrap();
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    let ours = Ours::start(&lan.hosts[1], ours_v3(100)).unwrap();
    std::thread::sleep(SEC);
    assert_eq!(ours.state(), State::Backup);
    let t = Instant::now();
    ka.term();
    let at = ours
        .wait_state(State::Master, t, SETTLE_V3)
        .expect("takeover");
    let (_, _, reason) = ours
        .changes()
        .into_iter()
        .rev()
        .find(|c| c.1 == State::Master)
        .unwrap();
    assert!(reason.contains("resigned"), "{reason}");
    let skew = skew_time(Version::V3, 100, I);
    assert!(at - t < skew + I, "took {:?}; skew {skew:?}", at - t);
    drop(ka);
    // We resign: keepalived (priority 100 < our 200 now) takes over after its skew.
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(50, "")).unwrap();
    drop(ours);
    let ours = Ours::start(&lan.hosts[1], ours_v3(200)).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    assert!(ka.wait_log("Entering BACKUP STATE", 1, SETTLE_V3));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_addr(&lan.hosts[0], VIP), "{}", ka.log());
    let t = Instant::now();
    ours.stop(true).unwrap();
    let at = wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).expect("keepalived takes over");
    assert!(
        at - t < master_down_interval(Version::V3, 50, I),
        "took {:?}",
        at - t
    );
}

/// SIGKILL of every keepalived process: no priority-0 advert; we take over within
/// [3 x I + skew - I, 3 x I + skew + 50 ms] of the kill (the last advert came up to I before),
/// for VRRPv3 at 100 ms and VRRPv2 at 1 s.
#[test]
fn rfc9568_6_4_2_hard_failure_takeover_window() {
    if lab::skip("rfc9568_6_4_2_hard_failure_takeover_window") {
        return;
    }
    for version in [Version::V3, Version::V2] {
        let (ka_conf, ours_conf, interval, settle) = match version {
            Version::V3 => (ka_v3(200, ""), ours_v3(100), I, SETTLE_V3),
            Version::V2 => (ka_v2(200, ""), ours_v2(100), SEC, SETTLE_V2),
        };
        let lan = Lan::new("vhard", 2).unwrap();
        let mut ka = Keepalived::start(&lan.hosts[0], &ka_conf).unwrap();
        assert!(
            wait_addr(&lan.hosts[0], VIP, true, settle).is_some(),
            "{}",
            ka.log()
        );
        let ours = Ours::start(&lan.hosts[1], ours_conf).unwrap();
        std::thread::sleep(interval * 3);
        assert_eq!(ours.state(), State::Backup, "{version:?}");
        let t = Instant::now();
        ka.kill_all();
        let at = ours.wait_state(State::Master, t, settle).expect("takeover");
        let mdi = master_down_interval(version, 100, interval);
        let took = at - t;
        let window = (mdi - interval, mdi + Duration::from_millis(50));
        assert!(
            took >= window.0 && took <= window.1,
            "{version:?} took {took:?}, window {window:?}"
        );
        let (_, _, reason) = ours
            .changes()
            .into_iter()
            .rev()
            .find(|c| c.1 == State::Master)
            .unwrap();
        assert!(
            reason.starts_with("no advert for master down interval"),
            "{reason}"
        );
        assert!(wait_addr(&lan.hosts[1], VIP, true, settle).is_some());
    }
}

#[test]
fn rfc9568_5_1_2_ipv6_election_and_handover() {
    if lab::skip("rfc9568_5_1_2_ipv6_election_and_handover") {
        return;
    }
    let lan = Lan::new("vsix", 2).unwrap();
    let ka = Keepalived::start(
        &lan.hosts[0],
        "state BACKUP\n version 3\n virtual_router_id 51\n priority 100\n advert_int 0.1\n virtual_ipaddress {\n  fe80::100/64\n  fd00::100/64\n }\n",
    )
    .unwrap();
    let mut c = Config::new(
        51,
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        vec!["fe80::100".parse().unwrap(), "fd00::100".parse().unwrap()],
    );
    c.priority = 200;
    c.interval = I;
    let ours = Ours::start(&lan.hosts[1], c).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some(),
        "{:?}",
        ours.changes()
    );
    assert!(wait_addr(&lan.hosts[1], "fd00::100", true, SETTLE_V3).is_some());
    std::thread::sleep(SEC);
    assert!(
        !has_addr(&lan.hosts[0], "fd00::100"),
        "keepalived is backup: {}",
        ka.log()
    );
    assert!(ka.log().contains("Entering BACKUP STATE"), "{}", ka.log());
    assert_eq!(steady(&ours, Duration::from_millis(300)), 0);
    let t = Instant::now();
    let counters = ours.stop(true).unwrap();
    assert_eq!(counters.dropped(DropReason::BadChecksum), 0, "{counters:?}");
    let at = wait_addr(&lan.hosts[0], "fd00::100", true, SETTLE_V3).expect("keepalived takes over");
    assert!(
        at - t < master_down_interval(Version::V3, 100, I),
        "{:?}",
        at - t
    );
}

/// After taking over from a killed keepalived, our gratuitous ARP (IPv4) and unsolicited
/// neighbour advertisement (IPv6, Override set) move a third host's cache entry for the VIP to
/// our MAC without it asking.
#[test]
fn rfc9568_6_4_2_takeover_is_announced_by_garp_and_unsolicited_na() {
    if lab::skip("rfc9568_6_4_2_takeover_is_announced_by_garp_and_unsolicited_na") {
        return;
    }
    for (v6, vip_text) in [(false, VIP), (true, "fd00::100")] {
        let lan = Lan::new("vgarp", 3).unwrap();
        let (ka_conf, mut ours_conf) = if v6 {
            let mut c = Config::new(
                51,
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                vec!["fe80::100".parse().unwrap(), vip_text.parse().unwrap()],
            );
            c.interval = I;
            (
                format!(
                    "state BACKUP\n version 3\n virtual_router_id 51\n priority 200\n advert_int 0.1\n virtual_ipaddress {{\n  fe80::100/64\n  {vip_text}/64\n }}\n"
                ),
                c,
            )
        } else {
            (ka_v3(200, ""), ours_v3(100))
        };
        ours_conf.priority = 100;
        let mut ka = Keepalived::start(&lan.hosts[0], &ka_conf).unwrap();
        assert!(
            wait_addr(&lan.hosts[0], vip_text, true, SETTLE_V3).is_some(),
            "{}",
            ka.log()
        );
        let ours = Ours::start(&lan.hosts[1], ours_conf).unwrap();
        std::thread::sleep(SEC);
        let observer = &lan.hosts[2];
        let ping = if v6 {
            "ping -6 -c1 -W1"
        } else {
            "ping -c1 -W1"
        };
        observer
            .ns
            .sh(&format!("{ping} {vip_text} >/dev/null"))
            .unwrap();
        let lladdr = |mac: [u8; 6]| mac.map(|b| format!("{b:02x}")).join(":");
        let neigh = || {
            observer
                .ns
                .run(&["ip", "neigh", "show", vip_text])
                .unwrap_or_default()
        };
        assert!(neigh().contains(&lladdr(lan.hosts[0].mac)), "{}", neigh());
        // Past the neighbour entry's locktime (1 s), so an announcement may override it.
        std::thread::sleep(Duration::from_millis(1100));
        ka.kill_all();
        assert!(
            ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
                .is_some()
        );
        let ours_mac = lladdr(lan.hosts[1].mac);
        let moved = lb_lab::wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
            neigh().contains(&ours_mac).then_some(())
        });
        assert!(moved.is_some(), "v6={v6}: {}", neigh());
    }
}

/// keepalived's `use_vmac`: our adverts, gratuitous ARPs and VIP live on a macvlan with the
/// virtual MAC 00-00-5e-00-01-VRID (RFC 9568 §7.3), so a neighbour resolves the VIP to it;
/// keepalived (no vmac) still hears us as master; the macvlan goes away with the driver.
#[test]
fn rfc9568_7_3_virtual_mac_through_a_macvlan() {
    if lab::skip("rfc9568_7_3_virtual_mac_through_a_macvlan") {
        return;
    }
    let lan = Lan::new("vvmac", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[1], &ka_v3(100, "")).unwrap();
    // Accept mode (keepalived's default without vrrp_strict), so the VIP answers the ping.
    let mut conf = ours_v3(200);
    conf.accept = true;
    let ours = Ours::start_with(&lan.hosts[0], vec![(conf, vec![24])], true).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    std::thread::sleep(SEC);
    assert!(
        !has_addr(&lan.hosts[1], VIP),
        "keepalived hears our adverts: {}",
        ka.log()
    );
    let on_vmac = lan.hosts[0]
        .ns
        .run(&["ip", "-o", "addr", "show", "dev", "vrrp.51"])
        .unwrap();
    assert!(on_vmac.contains(VIP), "{on_vmac}");
    let link = lan.hosts[0]
        .ns
        .run(&["ip", "-o", "link", "show", "dev", "vrrp.51"])
        .unwrap();
    assert!(link.contains("00:00:5e:00:01:33"), "{link}");
    lan.hosts[1]
        .ns
        .sh(&format!("ping -c1 -W1 {VIP} >/dev/null"))
        .unwrap();
    let neigh = lan.hosts[1].ns.run(&["ip", "neigh", "show", VIP]).unwrap();
    assert!(
        neigh.contains("00:00:5e:00:01:33"),
        "the VIP resolves to the virtual MAC: {neigh}"
    );
    ours.stop(true).unwrap();
    assert!(
        wait_addr(&lan.hosts[1], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    assert!(
        lan.hosts[0]
            .ns
            .run(&["ip", "link", "show", "dev", "vrrp.51"])
            .is_err(),
        "macvlan deleted"
    );
}

/// The IPv6 virtual MAC 00-00-5e-00-02-VRID (RFC 9568 §7.3), ours and keepalived's
/// `use_vmac`: our macvlan has no link-local address of its own, only the parent's (RFC 9568
/// §7.4), our adverts from it keep keepalived a backup, a neighbour resolves the VIP to the
/// virtual MAC, and after we resign keepalived's macvlan answers under the same MAC.
#[test]
fn rfc9568_7_3_ipv6_virtual_mac_survives_failover() {
    if lab::skip("rfc9568_7_3_ipv6_virtual_mac_survives_failover") {
        return;
    }
    let lan = Lan::new("vvmac6", 3).unwrap();
    let (h0, h1, observer) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    let vips = ["fe80::100", "fd00::100"];
    let mut conf = Config::new(
        51,
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        vips.iter().map(|v| v.parse().unwrap()).collect(),
    );
    conf.interval = I;
    conf.priority = 200;
    conf.accept = true;
    let ours = Ours::start_with(h0, vec![(conf, vec![64, 64])], true).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    let ka = Keepalived::start(
        h1,
        "state BACKUP\n version 3\n virtual_router_id 51\n priority 100\n advert_int 0.1\n use_vmac\n virtual_ipaddress {\n  fe80::100/64\n  fd00::100/64\n }\n",
    )
    .unwrap();
    let all_addrs = |host: &lb_lab::Host| host.ns.run(&["ip", "-o", "addr"]).unwrap_or_default();
    std::thread::sleep(SEC);
    assert!(
        !all_addrs(h1).contains("fd00::100"),
        "keepalived hears our adverts: {}",
        ka.log()
    );
    let link = h0
        .ns
        .run(&["ip", "-o", "link", "show", "dev", "vrrp6.51"])
        .unwrap();
    assert!(link.contains("00:00:5e:00:02:33"), "{link}");
    let parent_ll = h0
        .ns
        .run(&[
            "ip", "-o", "-6", "addr", "show", "dev", "eth0", "scope", "link",
        ])
        .unwrap();
    let parent_ll = parent_ll
        .split_whitespace()
        .find(|w| w.starts_with("fe80::") && *w != "fe80::100/64")
        .expect("the parent's link-local address")
        .to_owned();
    let vmac_ll = h0
        .ns
        .run(&[
            "ip", "-o", "-6", "addr", "show", "dev", "vrrp6.51", "scope", "link",
        ])
        .unwrap();
    let mut vmac_ll: Vec<&str> = vmac_ll
        .split_whitespace()
        .filter(|w| w.starts_with("fe80::"))
        .collect();
    vmac_ll.sort_unstable();
    let mut expected = [parent_ll.as_str(), "fe80::100/64"];
    expected.sort_unstable();
    assert_eq!(
        vmac_ll, expected,
        "no address generated from the virtual MAC"
    );
    let (mac, src) = ipv6_advert_frame(observer).expect("an advert on the wire");
    assert_eq!(
        (mac, format!("{src}/64")),
        ([0, 0, 0x5e, 0, 2, 51], parent_ll.clone()),
        "adverts leave with the virtual MAC from the parent's link-local address"
    );
    let ping = |host: &lb_lab::Host| host.ns.sh("ping -6 -c1 -W1 fd00::100 >/dev/null").is_ok();
    let neigh = || {
        observer
            .ns
            .run(&["ip", "neigh", "show", "fd00::100"])
            .unwrap_or_default()
    };
    assert!(ping(observer));
    assert!(neigh().contains("00:00:5e:00:02:33"), "{}", neigh());

    ours.stop(true).unwrap();
    let took = lb_lab::wait_until(SETTLE_V3, Duration::from_millis(5), || {
        all_addrs(h1).contains("fd00::100").then(Instant::now)
    });
    assert!(took.is_some(), "keepalived takes over: {}", ka.log());
    assert!(
        h0.ns
            .run(&["ip", "link", "show", "dev", "vrrp6.51"])
            .is_err(),
        "our macvlan deleted"
    );
    let answered = lb_lab::wait_until(SETTLE_V3, Duration::from_millis(50), || {
        ping(observer).then_some(())
    });
    assert!(answered.is_some(), "{}", ka.log());
    assert!(
        neigh().contains("00:00:5e:00:02:33"),
        "the neighbour keeps the virtual MAC: {}",
        neigh()
    );
}

/// The Ethernet and IPv6 source of the first VRRP advert `host` sees within a second.
fn ipv6_advert_frame(host: &lb_lab::Host) -> Option<([u8; 6], std::net::Ipv6Addr)> {
    let ns = host.ns.name().to_owned();
    std::thread::spawn(move || {
        lb_lab::enter_netns(&ns).ok()?;
        let eth_p_ipv6 = i32::from(0x86dd_u16.to_be());
        let s = socket2::Socket::new(
            socket2::Domain::PACKET,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(eth_p_ipv6)),
        )
        .ok()?;
        s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
        let deadline = Instant::now() + SEC;
        let mut buf = [0u8; 1514];
        while Instant::now() < deadline {
            let Ok(n) = std::io::Read::read(&mut &s, &mut buf) else {
                continue;
            };
            let frame = &buf[..n];
            // Ethernet (14) + IPv6 next header at 6: VRRP is protocol 112.
            if frame.len() >= 54 && frame[20] == 112 {
                let mac: [u8; 6] = frame[6..12].try_into().ok()?;
                let src: [u8; 16] = frame[22..38].try_into().ok()?;
                return Some((mac, src.into()));
            }
        }
        None
    })
    .join()
    .ok()
    .flatten()
}
