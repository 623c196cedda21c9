//! keepalived's `vrrp_sync_group` across two interfaces, against keepalived 2.2.7 running the
//! same group: our driver holds VRID 51 on eth0 and VRID 52 on eth1 as one group.
#![cfg(feature = "linux")]

mod lab;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use lab::{Keepalived, Ours, has_addr_on, ours_v3, primary};
use lb_lab::Lan;
use lb_vrrp::State;
use lb_vrrp::linux::{Driver, Interface};

const VIP0: &str = "10.0.0.100";
const VIP1: &str = "10.1.0.100";

/// keepalived's group: V1 on eth0 and V2 on eth1, VRRPv3 at 100 ms, priority 100.
fn keepalived_group() -> String {
    let instance = |name: &str, dev: &str, vrid: u8, vip: &str| {
        format!(
            "vrrp_instance {name} {{\n interface {dev}\n state BACKUP\n version 3\n virtual_router_id {vrid}\n priority 100\n advert_int 0.1\n virtual_ipaddress {{\n  {vip}/24\n }}\n}}\n"
        )
    };
    format!(
        "vrrp_sync_group G {{\n group {{\n  V1\n  V2\n }}\n}}\n{}{}",
        instance("V1", "eth0", 51, VIP0),
        instance("V2", "eth1", 52, VIP1)
    )
}

/// Both members master here or both there: the addresses on `host`.
fn holds(host: &lb_lab::Host, yes: bool) -> bool {
    has_addr_on(host, "eth0", VIP0) == yes && has_addr_on(host, "eth1", VIP1) == yes
}

fn wait_holds(host: &lb_lab::Host, yes: bool, timeout: Duration) -> bool {
    lb_lab::wait_until(timeout, Duration::from_millis(20), || {
        holds(host, yes).then_some(())
    })
    .is_some()
}

/// One member's interface loses its carrier: keepalived 2.2.7 puts that member in FAULT and the
/// group with it (the master on the other interface resigns with priority 0), so the peer's
/// group takes both addresses. The carrier returns: both members back to backup, then master
/// together (preempting the lower priority), and the peer's group backs off.
#[test]
fn keepalived_sync_group_follows_one_interface_losing_carrier() {
    if lab::skip("keepalived_sync_group_follows_one_interface_losing_carrier") {
        return;
    }
    let lan = Lan::new("vsg", 2).unwrap();
    lan.add_segment(1, &[0, 1]).unwrap();
    let (ours_host, ka_host) = (&lan.hosts[0], &lan.hosts[1]);
    let ka = Keepalived::start_conf(ka_host, &keepalived_group()).unwrap();
    let ours = Ours::start_driver(ours_host, || {
        let mut builder = Driver::builder();
        let mut members = Vec::new();
        for (dev, vrid, vip) in [("eth0", 51, VIP0), ("eth1", 52, VIP1)] {
            let mut c = ours_v3(150);
            c.vrid = vrid;
            c.vips = vec![vip.parse::<IpAddr>().unwrap()];
            c.primary = primary(&Interface::lookup(dev)?, &c)?;
            members.push(builder.router(dev, c, vec![24]));
        }
        builder.sync_group(members);
        builder.build()
    })
    .unwrap();

    assert!(
        wait_holds(ours_host, true, Duration::from_secs(5)),
        "{:?}",
        ours.changes()
    );
    assert!(holds(ka_host, false), "{}", ka.log());

    // eth1's carrier goes (its switch port down): both members FAULT, keepalived takes both.
    let t = Instant::now();
    lan.switch
        .run(&["ip", "link", "set", &Lan::port(1, 0), "down"])
        .unwrap();
    assert!(
        ours.wait_state(State::Fault, t, Duration::from_secs(2))
            .is_some()
    );
    assert!(
        lb_lab::wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
            (ours.state_of(51) == State::Fault && ours.state_of(52) == State::Fault).then_some(())
        })
        .is_some(),
        "{:?}",
        ours.changes()
    );
    let reasons: Vec<String> = ours
        .changes()
        .into_iter()
        .filter(|c| c.0 >= t)
        .map(|c| c.2)
        .collect();
    assert!(reasons.contains(&"link down".to_owned()), "{reasons:?}");
    assert!(
        reasons.contains(&"sync group member 52 changed state".to_owned()),
        "{reasons:?}"
    );
    assert!(holds(ours_host, false), "addresses removed");
    assert!(
        wait_holds(ka_host, true, Duration::from_secs(3)),
        "keepalived's group takes both: {}",
        ka.log()
    );

    // The carrier returns: backup, then master together; keepalived's group backs off.
    let t = Instant::now();
    lan.switch
        .run(&["ip", "link", "set", &Lan::port(1, 0), "up"])
        .unwrap();
    assert!(
        ours.wait_state(State::Backup, t, Duration::from_secs(2))
            .is_some()
    );
    assert!(
        wait_holds(ours_host, true, Duration::from_secs(3)),
        "{:?}",
        ours.changes()
    );
    assert!(
        wait_holds(ka_host, false, Duration::from_secs(3)),
        "keepalived's group backs off: {}",
        ka.log()
    );
    assert!(
        ka.log().contains("Syncing instances to BACKUP state"),
        "{}",
        ka.log()
    );
    let groups: Vec<(State, State)> = ours
        .group_changes()
        .into_iter()
        .map(|(g, from, to)| {
            assert_eq!(g, 0);
            (from, to)
        })
        .collect();
    assert_eq!(
        groups,
        [
            (State::Initialize, State::Backup),
            (State::Backup, State::Master),
            (State::Master, State::Fault),
            (State::Fault, State::Backup),
            (State::Backup, State::Master),
        ]
    );
    ours.stop(true).unwrap();
    assert!(holds(ours_host, false), "shutdown removes both");
}
