//! The state machine's rules one at a time, driven by hand-made adverts (RFC 9568 §6.4 and
//! keepalived's extras).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lb_vrrp::wire::{
    Addresses, AdvertRepr, Auth, ChecksumForm, Family, IpMeta, MULTICAST_V4, Version,
};
use lb_vrrp::{
    Announce, ChecksumMode, Config, DropReason, Event, InteropWarning, Reason, Router, State,
    SyncGroup, Track,
};

const MS: Duration = Duration::from_millis(1);

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn config(priority: u8) -> Config {
    let mut c = Config::new(51, ip(1), vec![ip(100)]);
    c.priority = priority;
    c.interval = 100 * MS;
    c
}

/// An advert from 10.0.0.`from` as the peer would send it.
fn advert(c: &Config, from: u8, priority: u8) -> (IpMeta, Vec<u8>) {
    let mut vips = Vec::new();
    Addresses::encode(Family::Ipv4, &c.vips, &mut vips);
    let repr = AdvertRepr {
        version: c.version,
        vrid: c.vrid,
        priority,
        interval: c.interval,
        addresses: Addresses::from_bytes(Family::Ipv4, &vips).unwrap(),
        auth: c.auth,
    };
    let mut buf = vec![0; repr.buffer_len()];
    let meta = IpMeta {
        src: ip(from),
        dst: IpAddr::V4(MULTICAST_V4),
        hop_limit: 255,
    };
    repr.emit(&mut buf, ChecksumForm::MessageOnly, meta.src, meta.dst);
    (meta, buf)
}

fn feed(r: &mut Router, now: Duration, a: &(IpMeta, Vec<u8>)) {
    r.handle_advert(now, &a.0, &a.1);
}

fn states(r: &mut Router) -> Vec<(State, Reason)> {
    let mut out = Vec::new();
    while let Some(e) = r.poll_event() {
        if let Event::StateChanged { to, reason, .. } = e {
            out.push((to, reason));
        }
    }
    out
}

fn warnings(r: &mut Router) -> Vec<InteropWarning> {
    let mut out = Vec::new();
    while let Some(e) = r.poll_event() {
        if let Event::Warning { warning, .. } = e {
            out.push(warning);
        }
    }
    out
}

fn sent_priorities(r: &mut Router) -> Vec<u8> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| r.poll_transmit(&mut buf).map(|t| t.priority)).collect()
}

#[test]
fn rfc9568_6_4_1_owner_starts_as_master() {
    let mut r = Router::new(config(255)).unwrap();
    r.handle_startup(Duration::ZERO);
    assert_eq!(states(&mut r), [(State::Master, Reason::Owner)]);
    assert_eq!(sent_priorities(&mut r), [255]);
    assert!(r.accepts_vip_traffic(), "the owner accepts its addresses");
}

#[test]
fn rfc9568_6_4_2_backup_takes_over_after_master_down_interval() {
    let c = config(100);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    feed(&mut r, 50 * MS, &advert(&c, 2, 200));
    let mdi = r.master_down_interval();
    assert_eq!(r.poll_timeout(), Some(50 * MS + mdi));
    r.handle_timeout(50 * MS + mdi - Duration::from_nanos(1));
    assert_eq!(r.state(), State::Backup);
    r.handle_timeout(50 * MS + mdi);
    assert_eq!(r.state(), State::Master);
}

#[test]
fn rfc9568_6_4_2_backup_learns_the_master_interval() {
    let c = config(100);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    let mut slow = c.clone();
    slow.interval = 500 * MS;
    feed(&mut r, Duration::ZERO, &advert(&slow, 2, 200));
    assert_eq!(r.master_adver_interval(), 500 * MS);
    assert_eq!(r.master_down_interval(), 1500 * MS + 500 * MS * 156 / 256);
}

#[test]
fn rfc9568_6_4_2_priority_zero_means_skew_time() {
    let c = config(100);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    feed(&mut r, 10 * MS, &advert(&c, 2, 200));
    feed(&mut r, 20 * MS, &advert(&c, 2, 0));
    assert_eq!(r.poll_timeout(), Some(20 * MS + 100 * MS * 156 / 256));
}

#[test]
fn rfc9568_6_4_2_nopreempt_keeps_a_lower_master() {
    let mut c = config(200);
    c.preempt = false;
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    for t in 0..50 {
        feed(&mut r, t * 100 * MS, &advert(&c, 2, 100));
        r.handle_timeout(t * 100 * MS);
    }
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn rfc9568_6_4_2_preempt_takes_over_a_lower_master() {
    let c = config(200);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    let _ = states(&mut r);
    let mut t = Duration::ZERO;
    while r.state() == State::Backup {
        feed(&mut r, t, &advert(&c, 2, 100));
        t += 10 * MS;
        r.handle_timeout(t);
    }
    assert_eq!(
        states(&mut r),
        [(
            State::Master,
            Reason::Preempt {
                priority: 100,
                from: ip(2)
            }
        )]
    );
    // Lower adverts do not reset the down timer: it runs out one Master_Down_Interval after
    // startup (checked on the next 10 ms step).
    let mdi = r.master_down_interval();
    assert!(t >= mdi && t < mdi + 10 * MS, "{t:?}");
}

#[test]
fn keepalived_preempt_delay_holds_preemption() {
    let mut c = config(200);
    c.preempt_delay = Duration::from_secs(1);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    let mut t = Duration::ZERO;
    while r.state() == State::Backup {
        feed(&mut r, t, &advert(&c, 2, 100));
        t += 10 * MS;
        r.handle_timeout(t);
    }
    // Held for the delay, then the down interval runs from the last advert accepted.
    assert!(
        t >= Duration::from_secs(1) + r.master_down_interval() - 10 * MS,
        "{t:?}"
    );
    assert!(
        t <= Duration::from_secs(1) + r.master_down_interval() + 10 * MS,
        "{t:?}"
    );
}

#[test]
fn rfc9568_6_4_3_master_yields_to_higher_priority_and_higher_address() {
    let c = config(100);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    r.handle_timeout(Duration::from_secs(1));
    assert_eq!(r.state(), State::Master);
    let _ = states(&mut r);
    feed(&mut r, Duration::from_secs(1), &advert(&c, 0, 100)); // 10.0.0.0 < 10.0.0.1: ignored
    assert_eq!(r.state(), State::Master);
    feed(&mut r, Duration::from_secs(1), &advert(&c, 2, 100));
    assert_eq!(
        states(&mut r),
        [(
            State::Backup,
            Reason::HigherAddress {
                priority: 100,
                from: ip(2)
            }
        )]
    );
}

#[test]
fn rfc9568_6_4_3_master_answers_lower_priority_at_once() {
    let c = config(200);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    r.handle_timeout(Duration::from_secs(1));
    let _ = sent_priorities(&mut r);
    feed(&mut r, Duration::from_secs(1) + MS, &advert(&c, 2, 100));
    assert_eq!(sent_priorities(&mut r), [200]);
    feed(&mut r, Duration::from_secs(1) + 2 * MS, &advert(&c, 2, 0));
    assert_eq!(sent_priorities(&mut r), [200], "and a resignation too");
}

#[test]
fn rfc9568_6_4_3_shutdown_sends_priority_zero() {
    let mut r = Router::new(config(255)).unwrap();
    r.handle_startup(Duration::ZERO);
    let _ = sent_priorities(&mut r);
    r.handle_shutdown(MS);
    assert_eq!(sent_priorities(&mut r), [0]);
    assert_eq!(r.state(), State::Initialize);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn rfc3768_7_1_v2_interval_auth_and_version_mismatches_are_dropped_and_warned() {
    let mut c = config(100);
    c.version = Version::V2;
    c.interval = Duration::from_secs(1);
    c.auth = Auth::pass(b"secret");
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    let mut other = c.clone();
    other.interval = Duration::from_secs(2);
    feed(&mut r, MS, &advert(&other, 2, 200));
    let mut other = c.clone();
    other.auth = Auth::pass(b"wrong");
    feed(&mut r, MS, &advert(&other, 2, 200));
    let mut other = c.clone();
    other.version = Version::V3;
    other.auth = Auth::None;
    feed(&mut r, MS, &advert(&other, 2, 200));
    feed(&mut r, MS, &advert(&other, 2, 200)); // warned once
    let counters = r.counters().clone();
    assert_eq!(counters.dropped(DropReason::IntervalMismatch), 1);
    assert_eq!(counters.dropped(DropReason::AuthMismatch), 1);
    assert_eq!(counters.dropped(DropReason::VersionMismatch), 2);
    assert_eq!(counters.accepted, 0);
    assert_eq!(
        warnings(&mut r),
        [
            InteropWarning::IntervalMismatch {
                from: ip(2),
                interval: Duration::from_secs(2)
            },
            InteropWarning::AuthMismatch { from: ip(2) },
            InteropWarning::VersionMismatch {
                from: ip(2),
                version: Version::V3
            },
        ]
    );
}

#[test]
fn interop_warnings_vip_set_checksum_form_and_duplicate_owner() {
    let mut c = config(255);
    c.checksum = ChecksumMode::PseudoHeader;
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    let mut other = c.clone();
    other.vips = vec![ip(100), ip(101)];
    feed(&mut r, MS, &advert(&other, 2, 255));
    let w = warnings(&mut r);
    assert!(
        w.contains(&InteropWarning::VipSetMismatch { from: ip(2) }),
        "{w:?}"
    );
    assert!(
        w.contains(&InteropWarning::DuplicateOwner { from: ip(2) }),
        "{w:?}"
    );
    assert!(
        w.contains(&InteropWarning::ChecksumFormMismatch {
            from: ip(2),
            form: ChecksumForm::MessageOnly
        }),
        "{w:?}"
    );
}

#[test]
fn auto_checksum_answers_in_the_peer_form() {
    let mut c = config(100);
    c.checksum = ChecksumMode::Auto;
    let mut r = Router::new(c.clone()).unwrap();
    assert_eq!(r.send_form(), ChecksumForm::MessageOnly);
    r.handle_startup(Duration::ZERO);
    let (meta, mut bytes) = advert(&c, 2, 200);
    let mut p = lb_vrrp::wire::Packet::new_unchecked(&mut bytes[..], Family::Ipv4);
    p.fill_checksum(ChecksumForm::PseudoHeader, meta.src, meta.dst);
    r.handle_advert(MS, &meta, &bytes);
    assert_eq!(r.send_form(), ChecksumForm::PseudoHeader);
}

#[test]
fn own_adverts_and_garbage_are_counted_not_acted_on() {
    let c = config(100);
    let mut r = Router::new(c.clone()).unwrap();
    r.handle_startup(Duration::ZERO);
    feed(&mut r, MS, &advert(&c, 1, 200));
    let (mut meta, bytes) = advert(&c, 2, 200);
    meta.hop_limit = 254;
    r.handle_advert(MS, &meta, &bytes);
    r.handle_advert(MS, &meta, &bytes[..3]);
    assert_eq!(r.counters().dropped(DropReason::OwnAdvert), 1);
    assert_eq!(r.counters().dropped(DropReason::BadTtl), 1);
    assert_eq!(r.counters().dropped(DropReason::Truncated), 1);
    assert_eq!(r.counters().dropped_total(), 3);
    assert_eq!(r.master_adver_interval(), 100 * MS);
}

#[test]
fn keepalived_tracking_weights_and_fault() {
    let mut c = config(100);
    c.tracks = vec![
        Track {
            name: "chk_nginx".into(),
            weight: -30,
        },
        Track {
            name: "eth1".into(),
            weight: 0,
        },
        Track {
            name: "bonus".into(),
            weight: 20,
        },
    ];
    let mut r = Router::new(c).unwrap();
    assert_eq!(r.effective_priority(), 120);
    r.handle_startup(Duration::ZERO);
    r.set_track(MS, 0, false).unwrap();
    assert_eq!(r.effective_priority(), 90);
    r.handle_timeout(Duration::from_secs(1));
    assert_eq!(r.state(), State::Master);
    let _ = states(&mut r);
    let _ = sent_priorities(&mut r);
    r.set_track(Duration::from_secs(1), 1, false).unwrap();
    assert_eq!(
        states(&mut r),
        [(
            State::Fault,
            Reason::TrackDown {
                name: "eth1".into()
            }
        )]
    );
    assert_eq!(sent_priorities(&mut r), [0], "a master resigns on fault");
    assert_eq!(r.poll_timeout(), None);
    r.set_track(Duration::from_secs(2), 1, true).unwrap();
    assert_eq!(states(&mut r), [(State::Backup, Reason::FaultCleared)]);
    assert!(r.set_track(Duration::from_secs(2), 9, true).is_err());
    r.set_link(Duration::from_secs(3), false);
    assert_eq!(r.state(), State::Fault);
}

/// keepalived passes the effective priority to `notify`: each state change carries the one the
/// router had on entering the state.
#[test]
fn keepalived_state_changes_carry_the_effective_priority() {
    let mut c = config(150);
    c.tracks = vec![Track {
        name: "chk".into(),
        weight: -60,
    }];
    let mut r = Router::new(c.clone()).unwrap();
    let priorities = |r: &mut Router| -> Vec<(State, u8)> {
        std::iter::from_fn(|| r.poll_event())
            .filter_map(|e| match e {
                Event::StateChanged { to, priority, .. } => Some((to, priority)),
                _ => None,
            })
            .collect()
    };
    r.handle_startup(Duration::ZERO);
    r.handle_timeout(Duration::from_secs(1));
    assert_eq!(
        priorities(&mut r),
        [(State::Backup, 150), (State::Master, 150)]
    );
    r.set_track(Duration::from_secs(1), 0, false).unwrap();
    feed(&mut r, Duration::from_secs(1), &advert(&c, 2, 100));
    assert_eq!(priorities(&mut r), [(State::Backup, 90)]);
    r.handle_shutdown(Duration::from_secs(2));
    assert_eq!(priorities(&mut r), [(State::Initialize, 90)]);
}

#[test]
fn keepalived_announcements_repeat_delay_and_refresh() {
    let mut c = config(255);
    c.announce = Announce {
        repeat: 3,
        interval: 10 * MS,
        delay: Duration::from_secs(5),
        refresh: Duration::from_secs(60),
    };
    let mut r = Router::new(c).unwrap();
    let mut announced = Vec::new();
    let mut now = Duration::ZERO;
    r.handle_startup(now);
    while now < Duration::from_secs(130) {
        while let Some(e) = r.poll_event() {
            if let Event::Announce { .. } = e {
                announced.push(now.as_millis());
            }
        }
        now = r.poll_timeout().unwrap();
        r.handle_timeout(now);
    }
    assert_eq!(announced, [0, 10, 20, 5000, 5010, 5020, 60000, 120000]);
}

#[test]
fn unicast_peers_get_one_advert_each() {
    let mut c = config(255);
    c.unicast_peers = vec![ip(2), ip(3)];
    let mut r = Router::new(c).unwrap();
    r.handle_startup(Duration::ZERO);
    let mut buf = Vec::new();
    let dsts: Vec<IpAddr> =
        std::iter::from_fn(|| r.poll_transmit(&mut buf).map(|t| t.dst)).collect();
    assert_eq!(dsts, [ip(2), ip(3)]);
    assert_eq!(r.counters().sent, 2);
}

/// Accept_Mode off by default (RFC 9568 §6.1, RFC 3768 §6.4.3); set, a master accepts in
/// either version (VRRPv2: keepalived's non-strict behaviour); a backup never does.
#[test]
fn accept_mode_as_configured_for_masters_only() {
    for version in [Version::V3, Version::V2] {
        for accept in [false, true] {
            let mut c = config(100);
            c.version = version;
            c.interval = Duration::from_secs(1);
            c.accept = accept;
            assert_eq!(c.accepts_vip_traffic(), accept);
            let mut r = Router::new(c).unwrap();
            r.handle_startup(Duration::ZERO);
            assert_eq!(r.state(), State::Backup);
            assert!(!r.accepts_vip_traffic(), "a backup accepts nothing");
            r.handle_timeout(Duration::from_secs(10));
            assert_eq!(r.state(), State::Master);
            assert_eq!(
                r.accepts_vip_traffic(),
                accept,
                "{version:?} accept {accept}"
            );
        }
    }
}

#[test]
fn sync_group_members_follow_each_other() {
    let a = config(100);
    let mut b = config(100);
    b.vrid = 52;
    let mut g = SyncGroup::new(vec![
        Router::new(a.clone()).unwrap(),
        Router::new(b).unwrap(),
    ])
    .unwrap();
    g.handle_startup(Duration::ZERO);
    // Member 52 hears a better master; 51 hears nothing and times out first.
    let mut t = Duration::ZERO;
    while t < Duration::from_secs(1) {
        let mut peer52 = a.clone();
        peer52.vrid = 52;
        let (meta, bytes) = advert(&peer52, 2, 200);
        g.handle_advert(t, &meta, &bytes);
        t += 50 * MS;
        g.handle_timeout(t);
    }
    let states: Vec<State> = g.members().iter().map(Router::state).collect();
    assert_eq!(states[0], states[1], "members move together: {states:?}");
    g.member_mut(0).unwrap().set_link(t, false);
    g.sync(t);
    assert!(g.members().iter().all(|m| m.state() == State::Fault));
    assert!(
        SyncGroup::new(vec![
            Router::new(config(1)).unwrap(),
            Router::new(config(2)).unwrap()
        ])
        .is_err()
    );
}

#[test]
fn config_rules() {
    let mut c = config(100);
    c.version = Version::V2;
    assert!(Router::new(c.clone()).is_err(), "v2 needs whole seconds");
    c.interval = Duration::from_secs(1);
    assert!(Router::new(c.clone()).is_ok());
    c.vips.push("fe80::1".parse().unwrap());
    assert!(Router::new(c.clone()).is_err());
    let mut c = config(100);
    c.interval = 5 * MS;
    assert!(Router::new(c.clone()).is_err());
    c.interval = 10 * MS;
    c.vrid = 0;
    assert!(Router::new(c).is_err());
}
