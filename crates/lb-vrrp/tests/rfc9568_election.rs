//! Elections against real keepalived 2.2.7: priorities both ways (v2 and v3), the equal-priority
//! tie-break, preemption, nopreempt on either side, preempt delay.
//!
//! Each test builds its own LAN (lb-lab), runs keepalived and our driver on it, drives them only
//! over the wire and cleans up through guards; it skips, saying why, when not root or keepalived
//! is missing. Where 1 s timing is not the point, VRRPv3 runs at 100 ms.
#![cfg(feature = "linux")]

mod lab;

use std::time::{Duration, Instant};

use lab::*;
use lb_lab::Lan;
use lb_vrrp::State;
use lb_vrrp::timers::master_down_interval;
use lb_vrrp::wire::Version;

#[test]
fn rfc9568_6_4_3_we_win_against_a_lower_priority_keepalived() {
    if lab::skip("rfc9568_6_4_3_we_win_against_a_lower_priority_keepalived") {
        return;
    }
    let lan = Lan::new("vwin", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(100, "")).unwrap();
    let ours = Ours::start(&lan.hosts[1], ours_v3(200)).unwrap();
    let start = Instant::now();
    assert!(
        ours.wait_state(State::Master, start, SETTLE_V3).is_some(),
        "{:?}",
        ours.changes()
    );
    assert!(
        wait_addr(&lan.hosts[1], VIP, true, SETTLE_V3).is_some(),
        "our VIP installed"
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, false, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    assert_eq!(steady(&ours, SEC), 0, "{:?}", ours.changes());
    assert!(
        !has_addr(&lan.hosts[0], VIP),
        "keepalived stays backup: {}",
        ka.log()
    );
    let counters = ours.stop(true).unwrap();
    assert!(counters.sent > 0);
    assert!(
        !has_addr(&lan.hosts[1], VIP),
        "a graceful stop removes the VIP"
    );
}

#[test]
fn rfc9568_6_4_2_we_back_up_a_higher_priority_keepalived() {
    if lab::skip("rfc9568_6_4_2_we_back_up_a_higher_priority_keepalived") {
        return;
    }
    let lan = Lan::new("vbak", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(200, "")).unwrap();
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    let ours = Ours::start(&lan.hosts[1], ours_v3(100)).unwrap();
    std::thread::sleep(SEC);
    assert_eq!(ours.state(), State::Backup, "{:?}", ours.changes());
    assert!(!has_addr(&lan.hosts[1], VIP));
    assert!(has_addr(&lan.hosts[0], VIP), "{}", ka.log());
    let counters = ours.stop(false).unwrap();
    assert!(
        counters.accepted >= 5,
        "keepalived's adverts accepted: {counters:?}"
    );
    assert_eq!(counters.dropped_total(), 0, "{counters:?}");
}

#[test]
fn rfc3768_6_4_v2_election_both_ways() {
    if lab::skip("rfc3768_6_4_v2_election_both_ways") {
        return;
    }
    let lan = Lan::new("vv2", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v2(100, "")).unwrap();
    let ours = Ours::start(&lan.hosts[1], ours_v2(200)).unwrap();
    let t = Instant::now();
    assert!(
        ours.wait_state(State::Master, t, SETTLE_V2).is_some(),
        "{:?}",
        ours.changes()
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, false, SETTLE_V2).is_some(),
        "{}",
        ka.log()
    );
    ours.stop(true).unwrap();
    // keepalived takes over after our priority-0 advert.
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V2).is_some(),
        "{}",
        ka.log()
    );
    let ours = Ours::start(&lan.hosts[1], ours_v2(50)).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ours.state(), State::Backup, "{:?}", ours.changes());
    assert!(has_addr(&lan.hosts[0], VIP), "{}", ka.log());
}

/// Two masters of equal priority meet: the higher primary address stays. (A backup never
/// preempts an equal priority, so both are made master first: the switch drops VRRP until both
/// are, then lets it through.)
#[test]
fn rfc9568_6_4_3_equal_priority_higher_address_wins() {
    if lab::skip("rfc9568_6_4_3_equal_priority_higher_address_wins") {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["nft"]) {
        eprintln!("skipping rfc9568_6_4_3_equal_priority_higher_address_wins: {e}");
        return;
    }
    for ours_host in [1, 0] {
        let lan = Lan::new("veq", 2).unwrap();
        lan.switch
            .sh("nft add table bridge lab && nft add chain bridge lab gate '{ type filter hook forward priority 0; }' && nft add rule bridge lab gate ip protocol 112 drop")
            .unwrap();
        let ka_host = 1 - ours_host;
        let ka = Keepalived::start(&lan.hosts[ka_host], &ka_v3(100, "")).unwrap();
        let ours = Ours::start(&lan.hosts[ours_host], ours_v3(100)).unwrap();
        assert!(
            ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
                .is_some()
        );
        assert!(
            wait_addr(&lan.hosts[ka_host], VIP, true, SETTLE_V3).is_some(),
            "{}",
            ka.log()
        );
        lan.switch.sh("nft delete table bridge lab").unwrap();
        let we_are_higher = ours_host == 1;
        std::thread::sleep(SEC);
        let expected = if we_are_higher {
            State::Master
        } else {
            State::Backup
        };
        assert_eq!(ours.state(), expected, "{:?}\n{}", ours.changes(), ka.log());
        assert_eq!(
            has_addr(&lan.hosts[ka_host], VIP),
            !we_are_higher,
            "{}",
            ka.log()
        );
        if !we_are_higher {
            let (_, _, reason) = ours.changes().pop().unwrap();
            assert_eq!(
                reason,
                format!(
                    "equal priority 100 from higher address {}",
                    lan.hosts[ka_host].ipv4
                )
            );
        }
        assert_eq!(steady(&ours, Duration::from_millis(500)), 0);
    }
}

#[test]
fn rfc9568_6_4_2_nopreempt_and_preempt() {
    if lab::skip("rfc9568_6_4_2_nopreempt_and_preempt") {
        return;
    }
    let lan = Lan::new("vpre", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(100, "")).unwrap();
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    let mut c = ours_v3(200);
    c.preempt = false;
    let ours = Ours::start(&lan.hosts[1], c).unwrap();
    std::thread::sleep(SEC);
    assert_eq!(
        ours.state(),
        State::Backup,
        "nopreempt: {:?}",
        ours.changes()
    );
    assert!(has_addr(&lan.hosts[0], VIP));
    ours.stop(false).unwrap();
    let ours = Ours::start(&lan.hosts[1], ours_v3(200)).unwrap();
    let t = Instant::now();
    let at = ours
        .wait_state(State::Master, t, SETTLE_V3)
        .expect("preempts");
    let (_, _, reason) = ours
        .changes()
        .into_iter()
        .find(|c| c.1 == State::Master)
        .unwrap();
    assert_eq!(
        reason,
        format!("preempting lower priority 100 from {}", lan.hosts[0].ipv4)
    );
    // Lower adverts do not reset the down timer: preemption one Master_Down_Interval in.
    assert!(at - t <= master_down_interval(Version::V3, 200, I) + Duration::from_millis(100));
    assert!(
        wait_addr(&lan.hosts[0], VIP, false, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
}

#[test]
fn rfc9568_6_4_2_keepalived_nopreempt_leaves_us_master() {
    if lab::skip("rfc9568_6_4_2_keepalived_nopreempt_leaves_us_master") {
        return;
    }
    let lan = Lan::new("vkanp", 2).unwrap();
    let ours = Ours::start(&lan.hosts[1], ours_v3(100)).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(200, " nopreempt\n")).unwrap();
    assert!(
        ka.wait_log("Entering BACKUP STATE", 1, SETTLE_V3),
        "{}",
        ka.log()
    );
    assert_eq!(steady(&ours, SEC), 0, "{:?}", ours.changes());
    assert_eq!(ours.state(), State::Master);
    assert!(!has_addr(&lan.hosts[0], VIP), "{}", ka.log());
}

#[test]
fn keepalived_preempt_delay_holds_our_preemption() {
    if lab::skip("keepalived_preempt_delay_holds_our_preemption") {
        return;
    }
    let lan = Lan::new("vpdl", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(100, "")).unwrap();
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    let mut c = ours_v3(200);
    c.preempt_delay = SEC;
    let t = Instant::now();
    let ours = Ours::start(&lan.hosts[1], c).unwrap();
    let at = ours
        .wait_state(State::Master, t, SETTLE_V3)
        .expect("preempts after the delay");
    let mdi = master_down_interval(Version::V3, 200, I);
    assert!(at - t >= SEC, "held for the delay: {:?}", at - t);
    assert!(
        at - t <= SEC + mdi + I * 2,
        "then one down interval: {:?}",
        at - t
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, false, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
}

/// Three routers, two of them keepalived: the highest priority (ours) is the one master; when
/// it fails the better keepalived takes over, and it preempts back when it returns.
#[test]
fn rfc9568_6_4_three_routers_two_keepalived() {
    if lab::skip("rfc9568_6_4_three_routers_two_keepalived") {
        return;
    }
    let lan = Lan::new("vtri", 3).unwrap();
    let ka_low = Keepalived::start(&lan.hosts[0], &ka_v3(100, "")).unwrap();
    let ka_mid = Keepalived::start(&lan.hosts[1], &ka_v3(150, "")).unwrap();
    let ours = Ours::start(&lan.hosts[2], ours_v3(200)).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    std::thread::sleep(SEC);
    for (ka, host) in [(&ka_low, &lan.hosts[0]), (&ka_mid, &lan.hosts[1])] {
        assert!(!has_addr(host, VIP), "{}", ka.log());
    }
    assert_eq!(steady(&ours, Duration::from_millis(500)), 0);
    ours.stop(false).unwrap();
    assert!(
        wait_addr(&lan.hosts[1], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka_mid.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_addr(&lan.hosts[0], VIP), "{}", ka_low.log());
    let ours = Ours::start(&lan.hosts[2], ours_v3(200)).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    assert!(
        wait_addr(&lan.hosts[1], VIP, false, SETTLE_V3).is_some(),
        "{}",
        ka_mid.log()
    );
    assert!(!has_addr(&lan.hosts[0], VIP));
}

/// keepalived's own `preempt_delay`: a higher-priority keepalived started after us waits at
/// least the delay before preempting; we then yield to it.
#[test]
fn keepalived_preempt_delay_on_their_side() {
    if lab::skip("keepalived_preempt_delay_on_their_side") {
        return;
    }
    let lan = Lan::new("vkapd", 2).unwrap();
    let ours = Ours::start(&lan.hosts[1], ours_v3(100)).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    let t = Instant::now();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(200, " preempt_delay 1\n")).unwrap();
    let at = ours
        .wait_state(State::Backup, t, SETTLE_V3)
        .expect("keepalived preempts");
    assert!(
        at - t >= SEC,
        "held for keepalived's delay: {:?}\n{}",
        at - t,
        ka.log()
    );
    let (_, _, reason) = ours.changes().pop().unwrap();
    assert_eq!(
        reason,
        format!("higher priority 200 from {}", lan.hosts[0].ipv4)
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    assert!(wait_addr(&lan.hosts[1], VIP, false, SETTLE_V3).is_some());
}
