//! keepalived 2.2.7's sync group rules (`vrrp_sync.c`), driven in virtual time: two members,
//! VRID 51 and VRID 52, each on its own segment with its own peers.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lb_vrrp::wire::{Addresses, AdvertRepr, ChecksumForm, Family, IpMeta, MULTICAST_V4};
use lb_vrrp::{Config, Event, Reason, Router, State, SyncGroup, Track};

const MS: Duration = Duration::from_millis(1);
/// 3 x 100 ms + skew (priority 100): the longest a member waits for a silent master.
const DOWN: Duration = Duration::from_millis(361);

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn config(vrid: u8, priority: u8) -> Config {
    let mut c = Config::new(vrid, ip(1), vec![ip(vrid)]);
    c.priority = priority;
    c.interval = 100 * MS;
    c.tracks = vec![Track {
        name: format!("chk{vrid}"),
        weight: 0,
    }];
    c
}

fn group(p51: u8, p52: u8) -> SyncGroup {
    SyncGroup::new(vec![
        Router::new(config(51, p51)).unwrap(),
        Router::new(config(52, p52)).unwrap(),
    ])
    .unwrap()
}

/// An advert for `vrid` from 10.0.0.`from`.
fn advert(vrid: u8, from: u8, priority: u8) -> (IpMeta, Vec<u8>) {
    let mut vips = Vec::new();
    Addresses::encode(Family::Ipv4, &[ip(vrid)], &mut vips);
    let repr = AdvertRepr {
        version: lb_vrrp::wire::Version::V3,
        vrid,
        priority,
        interval: 100 * MS,
        addresses: Addresses::from_bytes(Family::Ipv4, &vips).unwrap(),
        auth: lb_vrrp::wire::Auth::None,
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

/// What came out of the group: (member VRID or group, state, reason) and the advertised
/// priorities by VRID.
#[derive(Default, Debug)]
struct Out {
    changes: Vec<(u8, State, Reason)>,
    group: Vec<(State, State)>,
    sent: Vec<(u8, u8)>,
}

fn drain(g: &mut SyncGroup, out: &mut Out) {
    let mut buf = Vec::new();
    while let Some(tx) = g.poll_transmit(&mut buf) {
        out.sent.push((buf[1], tx.priority));
    }
    while let Some(e) = g.poll_event() {
        match e {
            Event::StateChanged {
                vrid, to, reason, ..
            } => out.changes.push((vrid, to, reason)),
            Event::GroupStateChanged { group, from, to } => {
                assert_eq!(group, 0);
                out.group.push((from, to));
            }
            _ => {}
        }
    }
}

/// Runs the group from `now` to `until`, with each `(vrid, from, priority)` peer advertising
/// every 100 ms; returns the new time.
fn run(
    g: &mut SyncGroup,
    mut now: Duration,
    until: Duration,
    peers: &[(u8, u8, u8)],
    out: &mut Out,
) -> Duration {
    let mut next_peer = now;
    while now < until {
        if now >= next_peer {
            for &(vrid, from, priority) in peers {
                let (meta, bytes) = advert(vrid, from, priority);
                g.handle_advert(now, &meta, &bytes);
            }
            next_peer = now + 100 * MS;
        }
        drain(g, out);
        let t = g.poll_timeout().unwrap_or(until).min(next_peer).min(until);
        now = t.max(now + MS);
        g.handle_timeout(now);
        drain(g, out);
    }
    now
}

fn states(g: &SyncGroup) -> Vec<State> {
    g.members().iter().map(Router::state).collect()
}

#[test]
fn keepalived_sync_group_is_master_only_when_every_member_wants_it() {
    let mut g = group(100, 100);
    let mut out = Out::default();
    g.handle_startup(Duration::ZERO);
    // Member 52 hears a master of priority 200; 51 hears nobody and wants master, but the
    // group prefers backup.
    let now = run(
        &mut g,
        Duration::ZERO,
        Duration::from_secs(3),
        &[(52, 2, 200)],
        &mut out,
    );
    assert_eq!(states(&g), [State::Backup, State::Backup], "{out:?}");
    assert!(out.changes.iter().all(|c| c.1 == State::Backup), "{out:?}");
    assert_eq!(out.group, [(State::Initialize, State::Backup)]);
    // 52's master goes silent: once 52's down timer runs out, both become master at once.
    let silent = now;
    let now = run(&mut g, now, now + Duration::from_secs(1), &[], &mut out);
    assert_eq!(states(&g), [State::Master, State::Master]);
    let masters: Vec<_> = out
        .changes
        .iter()
        .filter(|c| c.1 == State::Master)
        .collect();
    assert_eq!(masters.len(), 2, "{out:?}");
    // Each member's own reason: no master heard on its segment.
    assert!(
        masters
            .iter()
            .all(|c| matches!(c.2, Reason::MasterDown { .. })),
        "{masters:?}"
    );
    assert_eq!(
        out.group,
        [
            (State::Initialize, State::Backup),
            (State::Backup, State::Master)
        ]
    );
    assert!(now > silent + DOWN);
}

#[test]
fn keepalived_sync_group_master_backing_off_takes_the_group_to_backup() {
    let mut g = group(150, 150);
    let mut out = Out::default();
    g.handle_startup(Duration::ZERO);
    let now = run(
        &mut g,
        Duration::ZERO,
        Duration::from_secs(1),
        &[],
        &mut out,
    );
    assert_eq!(states(&g), [State::Master, State::Master]);
    out = Out::default();
    // A higher priority on 52's segment: 52 backs off, 51 follows at once without resigning.
    let (meta, bytes) = advert(52, 2, 200);
    g.handle_advert(now, &meta, &bytes);
    drain(&mut g, &mut out);
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    // (Events come out in member order.)
    assert_eq!(
        out.changes,
        [
            (51, State::Backup, Reason::SyncGroup { vrid: 52 }),
            (
                52,
                State::Backup,
                Reason::HigherPriority {
                    priority: 200,
                    from: ip(2)
                }
            ),
        ]
    );
    assert!(
        !out.sent.iter().any(|s| s.1 == 0),
        "no resignation: {out:?}"
    );
    assert_eq!(out.group, [(State::Master, State::Backup)]);
}

#[test]
fn keepalived_sync_group_fault_of_one_member_holds_all_until_every_fault_clears() {
    let mut g = group(150, 150);
    let mut out = Out::default();
    g.handle_startup(Duration::ZERO);
    let mut now = run(
        &mut g,
        Duration::ZERO,
        Duration::from_secs(1),
        &[],
        &mut out,
    );
    out = Out::default();
    // 51 loses its link: both enter FAULT; 52 (its link is up) resigns with priority 0.
    g.member_mut(0).unwrap().set_link(now, false);
    g.sync(now);
    drain(&mut g, &mut out);
    assert_eq!(states(&g), [State::Fault, State::Fault]);
    assert_eq!(
        out.changes,
        [
            (
                51,
                State::Fault,
                Reason::TrackDown {
                    name: "link".into()
                }
            ),
            (52, State::Fault, Reason::SyncGroup { vrid: 51 }),
        ]
    );
    assert_eq!(out.sent, [(52, 0)], "only the member with a link resigns");
    assert_eq!(out.group, [(State::Master, State::Fault)]);
    // 52's weight-0 script fails too: already in FAULT through the group, it reports no
    // change (keepalived 2.2.7 sends no notify then: vrrp_notify.c, send_instance_notifies).
    // 51's link returns: still FAULT, held by 52.
    now += 50 * MS;
    out = Out::default();
    g.member_mut(1).unwrap().set_track(now, 0, false).unwrap();
    g.sync(now);
    drain(&mut g, &mut out);
    assert_eq!(out.changes, [], "no FAULT to FAULT change");
    g.member_mut(0).unwrap().set_link(now, true);
    g.sync(now);
    drain(&mut g, &mut out);
    assert_eq!(out.changes, [], "51 stays in FAULT for 52");
    assert_eq!(states(&g), [State::Fault, State::Fault]);
    assert_eq!(g.poll_timeout(), None);
    // The last fault clears: both backup, then master together once their timers run out.
    out = Out::default();
    now += 50 * MS;
    g.member_mut(1).unwrap().set_track(now, 0, true).unwrap();
    g.sync(now);
    drain(&mut g, &mut out);
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    assert!(
        out.changes
            .iter()
            .all(|c| c.1 == State::Backup && c.2 == Reason::FaultCleared),
        "{out:?}"
    );
    run(&mut g, now, now + Duration::from_secs(1), &[], &mut out);
    assert_eq!(states(&g), [State::Master, State::Master]);
    assert_eq!(
        out.group,
        [
            (State::Fault, State::Backup),
            (State::Backup, State::Master)
        ]
    );
}

#[test]
fn keepalived_sync_group_of_owners_is_master_at_startup_and_a_mixed_one_waits() {
    let mut g = group(255, 255);
    g.handle_startup(Duration::ZERO);
    assert_eq!(states(&g), [State::Master, State::Master]);
    let mut out = Out::default();
    drain(&mut g, &mut out);
    // Each passes through backup, where the group holds members until all want master.
    let owner = |vrid| {
        [
            (vrid, State::Backup, Reason::Startup),
            (vrid, State::Master, Reason::Owner),
        ]
    };
    assert_eq!(out.changes, [owner(51), owner(52)].concat());
    assert_eq!(out.group, [(State::Initialize, State::Master)]);

    // keepalived warns that an owner grouped with a non-owner "won't work": the owner waits in
    // backup until the other member wants master too.
    let mut g = group(255, 100);
    g.handle_startup(Duration::ZERO);
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    let mut out = Out::default();
    run(
        &mut g,
        Duration::ZERO,
        Duration::from_secs(3),
        &[(52, 2, 200)],
        &mut out,
    );
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    run(
        &mut g,
        Duration::from_secs(3),
        Duration::from_secs(4),
        &[],
        &mut out,
    );
    assert_eq!(states(&g), [State::Master, State::Master]);
}

#[test]
fn keepalived_sync_group_stops_together() {
    let mut g = group(150, 150);
    let mut out = Out::default();
    g.handle_startup(Duration::ZERO);
    let now = run(
        &mut g,
        Duration::ZERO,
        Duration::from_secs(1),
        &[],
        &mut out,
    );
    out = Out::default();
    g.handle_shutdown(now);
    drain(&mut g, &mut out);
    assert_eq!(states(&g), [State::Initialize, State::Initialize]);
    assert_eq!(out.sent, [(51, 0), (52, 0)]);
    assert_eq!(out.group, [(State::Master, State::Initialize)]);
}
