//! What a receiver accepts, against real keepalived 2.2.7 and injected adverts: checksum forms,
//! PASS authentication, version mismatch, unicast peers, malformed adverts.
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
use lb_vrrp::wire::{Addresses, AdvertRepr, Auth, ChecksumForm, Family, MULTICAST_V4, Version};
use lb_vrrp::{ChecksumMode, DropReason, InteropWarning, State};

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
    let mismatch = InteropWarning::ChecksumFormMismatch {
        from,
        form: ChecksumForm::PseudoHeader,
    };
    assert!(
        ours.wait_warning(&mismatch, SETTLE_V3),
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
    let mismatch = InteropWarning::VersionMismatch {
        from,
        version: Version::V2,
    };
    assert!(
        ours.wait_warning(&mismatch, SETTLE_V2),
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
