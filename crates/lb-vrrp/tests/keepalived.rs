//! Interoperation with real keepalived 2.2.7 in network namespaces, named after the RFC
//! sections they check. Each test builds its own LAN (lb-lab), runs keepalived and our driver
//! on it, drives them only over the wire and cleans up through guards. They skip, saying why,
//! when not root or keepalived is missing. Where 1 s timing is not the point, VRRPv3 runs at
//! 100 ms.
#![cfg(feature = "linux")]

mod lab;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lab::{Keepalived, Ours, has_addr, inject_v4, wait_addr};
use lb_lab::Lan;
use lb_vrrp::timers::{master_down_interval, skew_time};
use lb_vrrp::wire::{Addresses, AdvertRepr, Auth, ChecksumForm, Family, MULTICAST_V4, Version};
use lb_vrrp::{ChecksumMode, Config, DropReason, InteropWarning, State};

const VIP: &str = "10.0.0.100";
const I: Duration = Duration::from_millis(100);
const SEC: Duration = Duration::from_secs(1);

fn vip() -> IpAddr {
    VIP.parse().unwrap()
}

/// keepalived's instance block: VRRPv3 at 100 ms with one VIP, plus `extra` lines.
fn ka_v3(priority: u8, extra: &str) -> String {
    format!(
        "state BACKUP\n version 3\n virtual_router_id 51\n priority {priority}\n advert_int 0.1\n virtual_ipaddress {{\n  {VIP}/24\n }}\n{extra}"
    )
}

fn ka_v2(priority: u8, extra: &str) -> String {
    format!(
        "state BACKUP\n version 2\n virtual_router_id 51\n priority {priority}\n advert_int 1\n virtual_ipaddress {{\n  {VIP}/24\n }}\n{extra}"
    )
}

/// Our VRRPv3 router at 100 ms in keepalived 2.2.7's checksum form (the primary address is
/// filled in by the lab from the interface).
fn ours_v3(priority: u8) -> Config {
    let mut c = Config::new(51, IpAddr::V4(Ipv4Addr::UNSPECIFIED), vec![vip()]);
    c.priority = priority;
    c.interval = I;
    c.checksum = ChecksumMode::PseudoHeader;
    c
}

fn ours_v2(priority: u8) -> Config {
    let mut c = ours_v3(priority);
    c.version = Version::V2;
    c.interval = SEC;
    c
}

/// Long enough for any election at 100 ms to settle.
const SETTLE_V3: Duration = Duration::from_secs(3);
const SETTLE_V2: Duration = Duration::from_secs(8);

/// Holds for `d` and checks nobody changed state meanwhile.
fn steady(ours: &Ours, d: Duration) -> usize {
    let before = ours.changes().len();
    std::thread::sleep(d);
    ours.changes().len() - before
}

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
/// [3 x I + skew - I, 3 x I + skew + 50 ms] of the kill (the last advert came up to I before).
#[test]
fn rfc9568_6_4_2_hard_failure_takeover_window() {
    if lab::skip("rfc9568_6_4_2_hard_failure_takeover_window") {
        return;
    }
    let lan = Lan::new("vhard", 2).unwrap();
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
    ka.kill_all();
    let at = ours
        .wait_state(State::Master, t, SETTLE_V3)
        .expect("takeover");
    let mdi = master_down_interval(Version::V3, 100, I);
    let took = at - t;
    assert!(
        took >= mdi - I && took <= mdi + Duration::from_millis(50),
        "took {took:?}, window [{:?}, {:?}]",
        mdi - I,
        mdi + Duration::from_millis(50)
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
    assert!(wait_addr(&lan.hosts[1], VIP, true, SETTLE_V3).is_some());
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

#[test]
fn rfc9568_5_2_8_checksum_forms_against_keepalived_2_2_7() {
    if lab::skip("rfc9568_5_2_8_checksum_forms_against_keepalived_2_2_7") {
        return;
    }
    // RFC 9568's form: keepalived 2.2.7 rejects it and also becomes master; we say why.
    let lan = Lan::new("vck", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(100, "")).unwrap();
    let mut c = ours_v3(200);
    c.checksum = ChecksumMode::Rfc9568;
    let ours = Ours::start(&lan.hosts[1], c).unwrap();
    assert!(
        ka.wait_log("Invalid VRRPv3 checksum", 1, SETTLE_V3),
        "{}",
        ka.log()
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "dual master: {}",
        ka.log()
    );
    let from = IpAddr::V4(lan.hosts[0].ipv4);
    assert!(
        ours.warnings()
            .contains(&InteropWarning::ChecksumFormMismatch {
                from,
                form: ChecksumForm::PseudoHeader
            }),
        "{:?}",
        ours.warnings()
    );
    drop(ours);
    drop(ka);
    // Auto: starts in RFC 9568's form, answers in keepalived's once heard; one master remains.
    let lan = Lan::new("vcka", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(100, "")).unwrap();
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    let mut c = ours_v3(200);
    c.checksum = ChecksumMode::Auto;
    let ours = Ours::start(&lan.hosts[1], c).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, false, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    assert_eq!(steady(&ours, SEC), 0);
    assert!(!has_addr(&lan.hosts[0], VIP));
    assert!(ours.warnings().is_empty(), "{:?}", ours.warnings());
}

#[test]
fn rfc2338_5_3_6_pass_authentication_match_and_mismatch() {
    if lab::skip("rfc2338_5_3_6_pass_authentication_match_and_mismatch") {
        return;
    }
    for (theirs, matches) in [("secret12", true), ("other123", false)] {
        let lan = Lan::new("vauth", 2).unwrap();
        let auth = format!(" authentication {{\n  auth_type PASS\n  auth_pass {theirs}\n }}\n");
        let ka = Keepalived::start(&lan.hosts[0], &ka_v2(100, &auth)).unwrap();
        let mut c = ours_v2(200);
        c.auth = Auth::pass(b"secret12");
        let ours = Ours::start(&lan.hosts[1], c).unwrap();
        assert!(
            ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V2)
                .is_some()
        );
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(
            has_addr(&lan.hosts[0], VIP),
            !matches,
            "{theirs}: {}",
            ka.log()
        );
        let from = IpAddr::V4(lan.hosts[0].ipv4);
        let warned = ours
            .warnings()
            .contains(&InteropWarning::AuthMismatch { from });
        assert_eq!(warned, !matches, "{:?}", ours.warnings());
        let counters = ours.stop(true).unwrap();
        assert_eq!(
            counters.dropped(DropReason::AuthMismatch) > 0,
            !matches,
            "{counters:?}"
        );
    }
}

#[test]
fn rfc9568_7_1_version_mismatch_gives_two_masters_and_a_warning() {
    if lab::skip("rfc9568_7_1_version_mismatch_gives_two_masters_and_a_warning") {
        return;
    }
    let lan = Lan::new("vver", 2).unwrap();
    let ka = Keepalived::start(&lan.hosts[0], &ka_v2(100, "")).unwrap();
    let mut c = ours_v3(200);
    c.interval = SEC;
    let ours = Ours::start(&lan.hosts[1], c).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V2)
            .is_some()
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V2).is_some(),
        "{}",
        ka.log()
    );
    let from = IpAddr::V4(lan.hosts[0].ipv4);
    assert!(
        ours.warnings().contains(&InteropWarning::VersionMismatch {
            from,
            version: Version::V2
        }),
        "{:?}",
        ours.warnings()
    );
}

#[test]
fn keepalived_unicast_peers_elect_one_master() {
    if lab::skip("keepalived_unicast_peers_elect_one_master") {
        return;
    }
    let lan = Lan::new("vuni", 2).unwrap();
    let extra = format!(
        " unicast_src_ip {}\n unicast_peer {{\n  {}\n }}\n",
        lan.hosts[0].ipv4, lan.hosts[1].ipv4
    );
    let ka = Keepalived::start(&lan.hosts[0], &ka_v3(100, &extra)).unwrap();
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    let mut c = ours_v3(200);
    c.unicast_peers = vec![IpAddr::V4(lan.hosts[0].ipv4)];
    let ours = Ours::start(&lan.hosts[1], c).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, false, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
    assert_eq!(steady(&ours, SEC), 0);
    let counters = ours.stop(true).unwrap();
    assert!(
        counters.accepted > 0,
        "keepalived's unicast adverts reached us: {counters:?}"
    );
    assert!(
        wait_addr(&lan.hosts[0], VIP, true, SETTLE_V3).is_some(),
        "{}",
        ka.log()
    );
}

/// A higher-priority advert made malformed four ways: each is dropped and counted, and the
/// master stays master; the same advert well formed then demotes it (the injection works).
#[test]
fn rfc9568_7_1_malformed_adverts_are_counted_and_ignored() {
    if lab::skip("rfc9568_7_1_malformed_adverts_are_counted_and_ignored") {
        return;
    }
    let lan = Lan::new("vbad", 2).unwrap();
    let ours = Ours::start(&lan.hosts[1], ours_v3(100)).unwrap();
    assert!(
        ours.wait_state(State::Master, Instant::now() - SEC, SETTLE_V3)
            .is_some()
    );
    let src = IpAddr::V4(lan.hosts[0].ipv4);
    let dst = IpAddr::V4(MULTICAST_V4);
    let mut vips = Vec::new();
    Addresses::encode(Family::Ipv4, &[vip()], &mut vips);
    let repr = AdvertRepr {
        version: Version::V3,
        vrid: 51,
        priority: 250,
        interval: I,
        addresses: Addresses::from_bytes(Family::Ipv4, &vips).unwrap(),
        auth: Auth::None,
    };
    let mut good = vec![0u8; repr.buffer_len()];
    repr.emit(&mut good, ChecksumForm::PseudoHeader, src, dst);
    let mut count_zero = good[..8].to_vec();
    count_zero[3] = 0;
    let mut p = lb_vrrp::wire::Packet::new_unchecked(&mut count_zero[..], Family::Ipv4);
    p.fill_checksum(ChecksumForm::PseudoHeader, src, dst);
    let mut long = good.clone();
    long.extend_from_slice(&[0, 0, 0, 0]);
    let mut bad_sum = good.clone();
    bad_sum[6] ^= 0x55;
    inject_v4(
        &lan.hosts[0],
        vec![
            (254, good.clone()),
            (255, count_zero),
            (255, long),
            (255, bad_sum),
        ],
    )
    .unwrap();
    std::thread::sleep(I * 3);
    assert_eq!(ours.state(), State::Master, "{:?}", ours.changes());
    inject_v4(&lan.hosts[0], vec![(255, good)]).unwrap();
    assert!(
        ours.wait_state(State::Backup, Instant::now() - I * 3, SETTLE_V3)
            .is_some(),
        "the well-formed advert is heard"
    );
    let counters = ours.stop(false).unwrap();
    for reason in [
        DropReason::BadTtl,
        DropReason::ZeroCount,
        DropReason::BadLength,
        DropReason::BadChecksum,
    ] {
        assert_eq!(counters.dropped(reason), 1, "{reason}: {counters:?}");
    }
    assert_eq!(counters.accepted, 1);
}
