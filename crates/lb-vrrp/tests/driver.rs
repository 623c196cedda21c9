//! The Linux driver on its own (no peer): the link watch and its own adverts.
#![cfg(feature = "linux")]

mod lab;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lab::{Ours, has_addr};
use lb_lab::Lan;
use lb_vrrp::{Config, DropReason, State};

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
/// SCHED_RR; what it starts (notify scripts) runs under the normal scheduler again.
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
}
