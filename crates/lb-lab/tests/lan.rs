//! The lab itself: a bridged LAN whose hosts reach each other over IPv4 and IPv6, and guards
//! that leave nothing behind.

use std::time::Duration;

#[test]
fn lan_hosts_reach_each_other_and_cleanup_removes_everything() {
    if lb_lab::skip_unless_root("lan_hosts_reach_each_other_and_cleanup_removes_everything") {
        return;
    }
    let names;
    let sleeper;
    {
        let lan = lb_lab::Lan::new("lab", 2).unwrap();
        let b = &lan.hosts[1];
        lan.hosts[0]
            .ns
            .run(&["ping", "-c1", "-W2", &b.ipv4.to_string()])
            .unwrap();
        lan.hosts[0]
            .ns
            .run(&["ping", "-6", "-c1", "-W2", &b.ipv6.to_string()])
            .unwrap();
        let link = b.ns.run(&["ip", "-br", "link", "show", "eth0"]).unwrap();
        assert!(link.contains("02:00:00:00:00:02"), "{link}");
        let mut p = b.ns.spawn(&["sleep", "30"]).unwrap();
        assert_eq!(p.wait_timeout(Duration::from_millis(50)).unwrap(), None);
        sleeper = p.pid();
        assert!(b.ns.pids().contains(&sleeper));
        names = [
            lan.switch.name().to_owned(),
            lan.hosts[0].ns.name().to_owned(),
            b.ns.name().to_owned(),
        ];
    }
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for name in &names {
        assert!(!listed.contains(name.as_str()), "{name} left behind");
    }
    let gone = lb_lab::wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
        (!std::path::Path::new(&format!("/proc/{sleeper}")).exists()).then_some(())
    });
    assert!(gone.is_some(), "process {sleeper} survived its namespace");
}

#[test]
fn ifname_fits_linux_limit() {
    assert_eq!(lb_lab::ifname("veth", 3), "veth3");
    assert_eq!(lb_lab::ifname("averyveryverylongprefix", 12345).len(), 15);
}
