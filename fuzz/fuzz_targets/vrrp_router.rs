//! Drives a `Router` with an arbitrary configuration and an arbitrary sequence of inputs:
//! startups, shutdowns, well-formed adverts of any priority, version, interval and source, raw
//! bytes, timeouts, tracked inputs and link changes (`vrrp_sync_group` drives sync groups).
//!
//! Contract held here:
//! - nothing panics;
//! - after `handle_timeout(now)`, the next timeout is later than `now` (no busy loop);
//! - Master and Backup always have a timeout; Initialize and Fault have none;
//! - every state change starts from the state the router was in, and ends in its new state;
//! - every advert it transmits parses, carries its VRID and its effective priority (or 0,
//!   resigning), and goes to the multicast group or a configured unicast peer;
//! - drop counters plus accepted adverts equal the adverts handed in.
#![no_main]

use arbitrary::Arbitrary;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;
use lb_vrrp::wire::{Addresses, AdvertRepr, Auth, ChecksumForm, Family, IpMeta, Packet, Version};
use lb_vrrp::{ChecksumMode, Config, Event, Router, State, Track};
use libfuzzer_sys::fuzz_target;

const MAX_OPS: usize = 400;

#[derive(Arbitrary, Debug)]
struct Setup {
    priority: u8,
    v2: bool,
    interval_cs: u16,
    preempt: bool,
    preempt_delay_ms: u16,
    unicast: bool,
    pass: Option<[u8; 8]>,
    checksum: u8,
    weights: Vec<i8>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Startup,
    Shutdown,
    Advert {
        from: u8,
        priority: u8,
        v3: bool,
        interval_cs: u16,
        pseudo: bool,
        ttl_ok: bool,
        extra_vip: bool,
        pass: bool,
    },
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    Wait {
        ms: u16,
    },
    WaitForTimeout,
    Track {
        index: u8,
        up: bool,
    },
    Link {
        up: bool,
    },
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fuzz_target!(|input: (Setup, Vec<Op>)| {
    let (setup, ops) = input;
    let vip = ip(100);
    let mut c = Config::new(9, ip(1), vec![vip]);
    c.priority = setup.priority.max(1);
    if setup.v2 {
        c.version = Version::V2;
        c.interval = Duration::from_secs(u64::from(setup.interval_cs % 5 + 1));
        c.auth = setup.pass.map_or(Auth::None, Auth::Pass);
    } else {
        c.interval = Duration::from_millis(u64::from(setup.interval_cs % 4095 + 1) * 10);
    }
    c.preempt = setup.preempt;
    c.preempt_delay = Duration::from_millis(u64::from(setup.preempt_delay_ms));
    if setup.unicast {
        c.unicast_peers = vec![ip(2), ip(3)];
    }
    c.checksum = match setup.checksum % 3 {
        0 => ChecksumMode::Rfc9568,
        1 => ChecksumMode::PseudoHeader,
        _ => ChecksumMode::Auto,
    };
    c.tracks = setup
        .weights
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, w)| Track {
            name: format!("t{i}"),
            weight: i32::from(*w),
        })
        .collect();
    let peers = c.unicast_peers.clone();
    let config = c.clone();
    let mut r = Router::new(c).expect("a valid configuration");
    let mut now = Duration::ZERO;
    let mut state = State::Initialize;
    let mut handed_in = 0u64;
    let mut buf = Vec::new();
    let mut vips = Vec::new();
    Addresses::encode(Family::Ipv4, &[vip], &mut vips);
    let mut vips2 = vips.clone();
    Addresses::encode(Family::Ipv4, &[ip(101)], &mut vips2);

    for op in ops.into_iter().take(MAX_OPS) {
        let mut timed_out = false;
        match op {
            Op::Startup => r.handle_startup(now),
            Op::Shutdown => r.handle_shutdown(now),
            Op::Advert {
                from,
                priority,
                v3,
                interval_cs,
                pseudo,
                ttl_ok,
                extra_vip,
                pass,
            } => {
                let version = if v3 { Version::V3 } else { Version::V2 };
                let interval = match version {
                    Version::V2 => Duration::from_secs(u64::from(interval_cs % 255 + 1)),
                    Version::V3 => Duration::from_millis(u64::from(interval_cs % 4095 + 1) * 10),
                };
                let bytes = if extra_vip { &vips2[..] } else { &vips[..] };
                let repr = AdvertRepr {
                    version,
                    vrid: 9,
                    priority,
                    interval,
                    addresses: Addresses::from_bytes(Family::Ipv4, bytes).expect("whole addresses"),
                    auth: if pass && !v3 { config.auth } else { Auth::None },
                };
                let meta = IpMeta {
                    src: ip(from),
                    dst: ip(1),
                    hop_limit: if ttl_ok { 255 } else { 64 },
                };
                let mut out = vec![0u8; repr.buffer_len()];
                let form = if pseudo {
                    ChecksumForm::PseudoHeader
                } else {
                    ChecksumForm::MessageOnly
                };
                repr.emit(&mut out, form, meta.src, meta.dst);
                r.handle_advert(now, &meta, &out);
                handed_in += 1;
            }
            Op::Raw { from, bytes } => {
                let meta = IpMeta {
                    src: ip(from),
                    dst: ip(1),
                    hop_limit: 255,
                };
                r.handle_advert(now, &meta, &bytes);
                handed_in += 1;
            }
            Op::Wait { ms } => {
                now += Duration::from_millis(u64::from(ms));
                r.handle_timeout(now);
                timed_out = true;
            }
            Op::WaitForTimeout => {
                if let Some(t) = r.poll_timeout() {
                    now = now.max(t);
                    r.handle_timeout(now);
                    timed_out = true;
                }
            }
            Op::Track { index, up } => {
                let result = r.set_track(now, usize::from(index), up);
                assert_eq!(result.is_ok(), usize::from(index) < config.tracks.len());
            }
            Op::Link { up } => r.set_link(now, up),
        }
        while let Some(tx) = r.poll_transmit(&mut buf) {
            assert!(
                tx.dst == Family::Ipv4.multicast() || peers.contains(&tx.dst),
                "{tx:?}"
            );
            let meta = IpMeta {
                src: tx.src,
                dst: tx.dst,
                hop_limit: 255,
            };
            let p = Packet::new_checked(&buf[..], Family::Ipv4).expect("own advert checks");
            let (advert, _) = AdvertRepr::parse(&p, &meta).expect("own advert parses");
            assert_eq!(advert.vrid, 9);
            assert_eq!(advert.priority, tx.priority);
            assert!(
                tx.priority == 0 || tx.priority == r.effective_priority() || tx.priority == 255
            );
        }
        while let Some(event) = r.poll_event() {
            if let Event::StateChanged { from, to, .. } = event {
                assert_eq!(from, state);
                state = to;
            }
        }
        assert_eq!(state, r.state());
        let timeout = r.poll_timeout();
        match r.state() {
            State::Master | State::Backup => {
                assert!(timeout.is_some(), "{:?} without a timer", r.state())
            }
            State::Initialize | State::Fault => assert!(timeout.is_none()),
        }
        if timed_out {
            assert!(
                timeout.is_none_or(|t| t > now),
                "busy loop: {timeout:?} at {now:?}"
            );
        }
        let counters = r.counters();
        assert_eq!(counters.dropped_total() + counters.accepted, handed_in);
    }
});
