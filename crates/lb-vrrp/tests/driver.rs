//! The Linux driver on its own (no peer): the link watch and its own adverts.
#![cfg(feature = "linux")]

mod lab;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lab::{Ours, has_addr};
use lb_lab::{Host, Lan};
use lb_vrrp::linux::Interface;
use lb_vrrp::{Config, DropReason, Event, State};

/// keepalived's FAULT: the link goes down, the master leaves (removing its VIP); back up, it
/// returns through Backup. It never hears its own adverts.
#[test]
fn keepalived_fault_state_follows_the_link() {
    if lb_lab::skip_unless_root("keepalived_fault_state_follows_the_link") {
        return;
    }
    let lan = Lan::new("vflt", 1).unwrap();
    let host = &lan.hosts[0];
    let mut c = Config::new(
        51,
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        vec!["10.0.0.100".parse().unwrap()],
    );
    c.interval = Duration::from_millis(100);
    let ours = Ours::start(host, c).unwrap();
    let t = Instant::now() - Duration::from_secs(1);
    assert!(
        ours.wait_state(State::Master, t, Duration::from_secs(3))
            .is_some()
    );
    assert!(has_addr(host, "10.0.0.100"));
    let t = Instant::now();
    host.ns.run(&["ip", "link", "set", "eth0", "down"]).unwrap();
    assert!(
        ours.wait_state(State::Fault, t, Duration::from_secs(2))
            .is_some(),
        "{:?}",
        ours.changes()
    );
    assert!(!has_addr(host, "10.0.0.100"));
    let (_, _, reason) = ours.changes().pop().unwrap();
    assert_eq!(reason, "link down");
    let t = Instant::now();
    host.ns.run(&["ip", "link", "set", "eth0", "up"]).unwrap();
    assert!(
        ours.wait_state(State::Backup, t, Duration::from_secs(2))
            .is_some(),
        "{:?}",
        ours.changes()
    );
    assert!(
        ours.wait_state(State::Master, t, Duration::from_secs(3))
            .is_some(),
        "{:?}",
        ours.changes()
    );
    let counters = ours.stop(true).unwrap();
    assert_eq!(
        counters.dropped(DropReason::OwnAdvert),
        0,
        "multicast loopback is off"
    );
    assert_eq!(counters.accepted, 0, "{counters:?}");
}

/// 255 virtual routers at a 1 s interval on one interface, one thread: all become master with
/// their addresses installed. The driver thread's CPU share at steady state is printed (set
/// `LB_VRRP_CPU_SECS` for a longer window; `benches/lab/vrrp-failover.sh cpu` runs it), not
/// asserted: timing is for benchmarks.
#[test]
fn driver_runs_255_vrids_on_one_thread() {
    if lb_lab::skip_unless_root("driver_runs_255_vrids_on_one_thread") {
        return;
    }
    let lan = Lan::new("v255", 1).unwrap();
    let host = &lan.hosts[0];
    let routers = (1..=255u8)
        .map(|vrid| {
            let vip = IpAddr::V4(Ipv4Addr::new(10, 9, vrid / 128, vrid % 128 + 1));
            let mut c = Config::new(vrid, IpAddr::V4(Ipv4Addr::UNSPECIFIED), vec![vip]);
            c.priority = 100;
            // Steady state only: no second announcement burst inside the window.
            c.announce.delay = Duration::ZERO;
            (c, vec![32])
        })
        .collect();
    let ours = Ours::start_many(host, routers).unwrap();
    let all_master = lb_lab::wait_until(Duration::from_secs(8), Duration::from_millis(50), || {
        let masters = ours
            .changes()
            .iter()
            .filter(|c| c.1 == State::Master)
            .count();
        (masters == 255).then_some(())
    });
    assert!(
        all_master.is_some(),
        "{} masters",
        ours.changes()
            .iter()
            .filter(|c| c.1 == State::Master)
            .count()
    );
    let installed = host
        .ns
        .run(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert_eq!(
        installed.lines().filter(|l| l.contains(" 10.9.")).count(),
        255
    );
    let secs: u64 = std::env::var("LB_VRRP_CPU_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    std::thread::sleep(Duration::from_millis(500));
    let (cpu0, t0) = (ours.cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu1, wall) = (ours.cpu_time(), t0.elapsed());
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        println!(
            "255 VRIDs at 1 s on one thread: {:.2}% of a core over {:.1} s ({:?} CPU)",
            (b - a).as_secs_f64() * 100.0 / wall.as_secs_f64(),
            wall.as_secs_f64(),
            b - a
        );
    }
    let counters = ours.stop(true).unwrap();
    assert!(counters.sent >= 255 * secs, "{counters:?}");
    let left = host
        .ns
        .run(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert_eq!(
        left.lines().filter(|l| l.contains(" 10.9.")).count(),
        0,
        "shutdown removes them"
    );
}

/// keepalived's `vrrp_rt_priority`: `set_realtime` moves the calling thread, only it, to
/// SCHED_RR; what it starts (notify scripts) runs under the normal scheduler again; a running
/// thread can change its priority and go back (`set_normal`), as a reload does.
#[test]
fn realtime_scheduling_for_the_driver_thread_only() {
    if lb_lab::skip_unless_root("realtime_scheduling_for_the_driver_thread_only") {
        return;
    }
    use lb_vrrp::linux::realtime;
    let other = realtime::current_policy().unwrap();
    assert!(realtime::set_realtime(0).is_err(), "1-99 only");
    let (policy, child) = std::thread::spawn(|| {
        realtime::set_realtime(10).unwrap();
        let child = std::process::Command::new("sh")
            .args(["-c", "chrt -p $$"])
            .output()
            .unwrap();
        (
            realtime::current_policy().unwrap(),
            String::from_utf8_lossy(&child.stdout).into_owned(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(policy, 2, "SCHED_RR");
    assert_eq!(
        realtime::current_policy().unwrap(),
        other,
        "other threads keep theirs"
    );
    assert!(child.contains("SCHED_OTHER"), "reset on fork: {child}");
    let policy = std::thread::spawn(|| {
        realtime::set_realtime(10).unwrap();
        realtime::set_realtime(20).unwrap();
        realtime::set_normal().unwrap();
        realtime::current_policy().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(policy, 0, "SCHED_OTHER again");
}

/// A VRRPv3 IPv4 configuration at 100 ms, one announcement burst, with VIP `10.0.0.LAST`; the primary address is
/// filled in by the driver's host.
fn at_100ms(vrid: u8, last: u8, priority: u8) -> Config {
    let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, last));
    let mut c = Config::new(vrid, IpAddr::V4(Ipv4Addr::UNSPECIFIED), vec![vip]);
    c.priority = priority;
    c.interval = Duration::from_millis(100);
    // One announcement burst only, so that a router left alone has no event at all.
    c.announce.delay = Duration::ZERO;
    c
}

/// Adds `config` (primary address from `ifname`) to a running driver.
fn add(ours: &Ours, ifname: &str, mut config: Config) {
    let ifname = ifname.to_owned();
    ours.change(move |routers, _| {
        config.primary = lab::primary(&Interface::lookup(&ifname)?, &config)?;
        routers.add(&ifname, config, vec![24]).map(|_| ())
    })
    .unwrap();
}

/// Removes the router with `vrid` from a running driver.
fn remove(ours: &Ours, vrid: u8) {
    ours.change(move |routers, on_event| {
        let i = routers.routers().iter().position(|r| r.vrid() == vrid);
        routers.remove(
            i.ok_or_else(|| std::io::Error::other("no such VRID"))?,
            on_event,
        )
    })
    .unwrap();
}

/// The events of `vrid` after `since`.
fn events_of(ours: &Ours, vrid: u8, since: Instant) -> Vec<Event> {
    ours.events()
        .into_iter()
        .filter(|(t, e)| {
            *t >= since
                && match e {
                    Event::StateChanged { vrid: v, .. } | Event::Announce { vrid: v } => *v == vrid,
                    _ => false,
                }
        })
        .map(|(_, e)| e)
        .collect()
}

/// The addresses in the driver's accept-mode set on `host` (`lb_vrrp_PID_N`, family ip).
fn blocked(host: &Host) -> String {
    let tables = host.ns.run(&["nft", "list", "tables", "ip"]).unwrap();
    let table = tables
        .split_whitespace()
        .find(|w| w.starts_with("lb_vrrp_"))
        .expect("the driver's accept-mode table");
    host.ns
        .run(&["nft", "list", "set", "ip", table, "vips"])
        .unwrap()
}

/// A running driver changes its set of routers without disturbing the others: the removed
/// router resigns (the peer hears its priority-0 advert and takes over after Skew_Time, RFC
/// 9568 §6.4.2), its address and accept-mode entry go; an added one starts, becomes master
/// and installs its address; the router that stays sees no event at all.
#[test]
fn driver_removes_and_adds_routers_while_the_others_stay_master() {
    if lb_lab::skip_unless_root("driver_removes_and_adds_routers_while_the_others_stay_master") {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["nft"]) {
        eprintln!("skipping: {e}");
        return;
    }
    let lan = Lan::new("vchg", 2).unwrap();
    let (a, b) = (&lan.hosts[0], &lan.hosts[1]);
    let ours = Ours::start_many(
        a,
        vec![
            (at_100ms(51, 100, 200), vec![24]),
            (at_100ms(52, 101, 200), vec![24]),
        ],
    )
    .unwrap();
    let peer = Ours::start(b, at_100ms(52, 101, 100)).unwrap();
    let t0 = Instant::now() - Duration::from_secs(1);
    for vrid in [51, 52] {
        let master = lb_lab::wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
            (ours.state_of(vrid) == State::Master).then_some(())
        });
        assert!(master.is_some(), "{vrid}: {:?}", ours.changes());
    }
    assert!(
        peer.wait_state(State::Backup, t0, Duration::from_secs(2))
            .is_some()
    );
    assert!(has_addr(a, "10.0.0.101") && blocked(a).contains("10.0.0.101"));
    let t = Instant::now();
    remove(&ours, 52);
    let took = peer.wait_state(State::Master, t, Duration::from_secs(2));
    let (_, _, reason) = peer.changes().pop().unwrap();
    assert!(
        took.is_some() && reason.contains("resigned (priority 0)"),
        "{reason}"
    );
    assert!(!has_addr(a, "10.0.0.101"), "VIP removed");
    assert!(
        !blocked(a).contains("10.0.0.101"),
        "accept-mode entry removed"
    );
    assert!(has_addr(a, "10.0.0.100") && blocked(a).contains("10.0.0.100"));
    let resigned = events_of(&ours, 52, t);
    assert!(
        matches!(
            resigned.as_slice(),
            [Event::StateChanged {
                from: State::Master,
                to: State::Initialize,
                ..
            }]
        ),
        "{resigned:?}"
    );

    // Added: 53 starts as backup and takes master after Master_Down_Interval; 52 again, at
    // the higher priority, preempts the peer.
    add(&ours, &a.ifname, at_100ms(53, 102, 150));
    add(&ours, &a.ifname, at_100ms(52, 101, 200));
    let back = peer.wait_state(State::Backup, t, Duration::from_secs(3));
    assert!(back.is_some(), "{:?}", peer.changes());
    for vrid in [52, 53] {
        let states: Vec<State> =
            lb_lab::wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
                let states: Vec<State> = events_of(&ours, vrid, t)
                    .iter()
                    .filter_map(|e| match e {
                        Event::StateChanged { to, .. } => Some(*to),
                        _ => None,
                    })
                    .collect();
                states
                    .ends_with(&[State::Backup, State::Master])
                    .then_some(states)
            })
            .unwrap_or_else(|| panic!("{vrid}: {:?}", ours.changes()));
        assert_eq!(states.last(), Some(&State::Master));
    }
    assert!(has_addr(a, "10.0.0.101") && has_addr(a, "10.0.0.102"));
    assert_eq!(events_of(&ours, 51, t), [], "51 undisturbed");
    assert_eq!(ours.state_of(51), State::Master);
    ours.stop(true).unwrap();
    peer.stop(true).unwrap();
}

/// A removed router's virtual MAC (keepalived `use_vmac`) goes with it; an added router gets
/// its own.
#[test]
fn driver_deletes_a_removed_routers_virtual_mac() {
    if lb_lab::skip_unless_root("driver_deletes_a_removed_routers_virtual_mac") {
        return;
    }
    let lan = Lan::new("vchgm", 1).unwrap();
    let host = &lan.hosts[0];
    let routers = vec![
        (at_100ms(51, 100, 200), vec![24]),
        (at_100ms(52, 101, 200), vec![24]),
    ];
    let ours = Ours::start_with(host, routers, true).unwrap();
    let link = |name: &str| host.ns.run(&["ip", "link", "show", name]).is_ok();
    assert!(link("vrrp.51") && link("vrrp.52"));
    remove(&ours, 52);
    assert!(link("vrrp.51") && !link("vrrp.52"));
    add(&ours, &host.ifname, at_100ms(53, 102, 200));
    assert!(link("vrrp.53"));
    let master = lb_lab::wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
        (ours.state_of(53) == State::Master).then_some(())
    });
    assert!(master.is_some(), "{:?}", ours.changes());
    assert!(lab::has_addr_on(host, "vrrp.53", "10.0.0.102"));
    ours.stop(true).unwrap();
    assert!(
        !link("vrrp.51") && !link("vrrp.53"),
        "deleted with the driver"
    );
}
