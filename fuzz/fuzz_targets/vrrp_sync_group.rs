//! Drives a two-member `SyncGroup` (VRIDs 51 and 52, arbitrary priorities, owners included, a
//! weight-0 and a weighted track each) with an arbitrary sequence of inputs: startups,
//! shutdowns, adverts of any priority for either member, timeouts, tracked inputs and link
//! changes of either member.
//!
//! Contract held here (keepalived's sync group rules):
//! - nothing panics;
//! - after every input the members are in one state (they change state together);
//! - Master and Backup always have a timeout; after `handle_timeout(now)` the next one is
//!   later than `now`;
//! - a group event comes after its members' changes: its `from` is the state the group last
//!   reported and its `to` the state every member is in;
//! - while a member's link or weight-0 track is down, no member is master or backup.
#![no_main]

use arbitrary::Arbitrary;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;
use lb_vrrp::wire::{Addresses, AdvertRepr, Auth, ChecksumForm, Family, IpMeta, Version};
use lb_vrrp::{Config, Event, Router, State, SyncGroup, Track};
use libfuzzer_sys::fuzz_target;

const MAX_OPS: usize = 400;

#[derive(Arbitrary, Debug)]
enum Op {
    Startup,
    Shutdown,
    Advert {
        member: bool,
        from: u8,
        priority: u8,
    },
    Wait {
        ms: u16,
    },
    WaitForTimeout,
    Track {
        member: bool,
        weighted: bool,
        up: bool,
    },
    Link {
        member: bool,
        up: bool,
    },
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn config(vrid: u8, priority: u8, weight: i8) -> Config {
    let mut c = Config::new(vrid, ip(1), vec![ip(vrid)]);
    c.priority = priority.max(1);
    c.interval = Duration::from_millis(100);
    c.tracks = vec![
        Track {
            name: "fault".into(),
            weight: 0,
        },
        Track {
            name: "weighted".into(),
            weight: i32::from(weight.max(1)),
        },
    ];
    c
}

fn advert(vrid: u8, from: u8, priority: u8) -> (IpMeta, Vec<u8>) {
    let mut vips = Vec::new();
    Addresses::encode(Family::Ipv4, &[ip(vrid)], &mut vips);
    let repr = AdvertRepr {
        version: Version::V3,
        vrid,
        priority,
        interval: Duration::from_millis(100),
        addresses: Addresses::from_bytes(Family::Ipv4, &vips).expect("whole addresses"),
        auth: Auth::None,
    };
    let meta = IpMeta {
        src: ip(from),
        dst: ip(1),
        hop_limit: 255,
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, ChecksumForm::MessageOnly, meta.src, meta.dst);
    (meta, out)
}

fuzz_target!(|input: ([u8; 2], [i8; 2], Vec<Op>)| {
    let (priorities, weights, ops) = input;
    let members = vec![
        Router::new(config(51, priorities[0], weights[0])).expect("valid"),
        Router::new(config(52, priorities[1], weights[1])).expect("valid"),
    ];
    let mut g = SyncGroup::new(members).expect("distinct VRIDs");
    let mut now = Duration::ZERO;
    let mut group_state = State::Initialize;
    let mut faults = [[false; 2]; 2]; // [member][link, fault track]
    let mut buf = Vec::new();
    for op in ops.into_iter().take(MAX_OPS) {
        let mut timed_out = false;
        match op {
            Op::Startup => g.handle_startup(now),
            Op::Shutdown => g.handle_shutdown(now),
            Op::Advert {
                member,
                from,
                priority,
            } => {
                let (meta, bytes) = advert(if member { 52 } else { 51 }, from, priority);
                g.handle_advert(now, &meta, &bytes);
            }
            Op::Wait { ms } => {
                now += Duration::from_millis(u64::from(ms));
                g.handle_timeout(now);
                timed_out = true;
            }
            Op::WaitForTimeout => {
                if let Some(t) = g.poll_timeout() {
                    now = now.max(t);
                    g.handle_timeout(now);
                    timed_out = true;
                }
            }
            Op::Track {
                member,
                weighted,
                up,
            } => {
                let m = usize::from(member);
                if !weighted {
                    faults[m][1] = !up;
                }
                let r = g.member_mut(m).expect("two members");
                r.set_track(now, usize::from(weighted), up)
                    .expect("two tracks");
                g.sync(now);
            }
            Op::Link { member, up } => {
                let m = usize::from(member);
                faults[m][0] = !up;
                g.member_mut(m).expect("two members").set_link(now, up);
                g.sync(now);
            }
        }
        while g.poll_transmit(&mut buf).is_some() {}
        let states: Vec<State> = g.members().iter().map(Router::state).collect();
        assert_eq!(states[0], states[1], "members apart");
        while let Some(event) = g.poll_event() {
            if let Event::GroupStateChanged { group, from, to } = event {
                assert_eq!(group, 0);
                assert_eq!(from, group_state);
                assert_eq!(to, states[0]);
                group_state = to;
            }
        }
        if faults.iter().flatten().any(|f| *f) {
            assert!(
                matches!(states[0], State::Fault | State::Initialize),
                "{states:?} with a fault"
            );
        }
        for r in g.members() {
            match r.state() {
                State::Master | State::Backup => {
                    let t = r.poll_timeout();
                    assert!(t.is_some(), "{:?} without a timer", r.state());
                    if timed_out {
                        assert!(t.is_some_and(|t| t > now), "busy loop at {now:?}");
                    }
                }
                State::Initialize | State::Fault => {}
            }
        }
    }
});
