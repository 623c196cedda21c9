//! Accept mode in the Linux driver (RFC 9568 §6.4.3, RFC 3768 §6.4.3): a non-owner master
//! without Accept_Mode holds its virtual addresses but drops ping, TCP and UDP addressed to
//! them, while ARP and IPv6 neighbour discovery for them still work; with Accept_Mode, or as
//! the owner (priority 255), it answers. The nftables rules go when the router leaves master
//! and the table when the driver is dropped.
//!
//! Each test builds its own LAN (lb-lab): our driver on host 0, probes from host 1; a TCP and
//! UDP echo service on host 0 listens on every address, so silence means the filter.
#![cfg(feature = "linux")]

mod lab;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lab::{Ours, has_addr};
use lb_lab::{Host, Lan};
use lb_vrrp::{Config, State};

const PORT: u16 = 7007;
const PROBE: Duration = Duration::from_millis(700);

fn skip(test: &str) -> bool {
    if lb_lab::skip_unless_root(test) {
        return true;
    }
    if let Err(e) = lb_lab::require_tools(&["nft", "ping"]) {
        eprintln!("skipping {test}: {e}");
        return true;
    }
    false
}

/// A TCP and UDP echo service on `[::]:PORT` (IPv4 too) inside a host's namespace.
struct Echo {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(host: &Host) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, s) = (host.ns.name().to_owned(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            lb_lab::enter_netns(&ns).unwrap();
            let any = SocketAddr::from(([0u16; 8], PORT));
            let tcp = TcpListener::bind(any).unwrap();
            let udp = UdpSocket::bind(any).unwrap();
            tcp.set_nonblocking(true).unwrap();
            udp.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                if let Ok((mut c, _)) = tcp.accept() {
                    let _ = c.write_all(b"tcp");
                }
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(&buf[..n], from);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        ready_rx.recv().unwrap();
        Echo {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What `host` gets back from `vip` (link-local ones through `eth0`).
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    ping: bool,
    tcp: bool,
    udp: bool,
}

fn probe(host: &Host, vip: IpAddr) -> Answers {
    let target = match vip {
        IpAddr::V6(v6) if v6.segments()[0] == 0xfe80 => format!("{vip}%{}", host.ifname),
        _ => vip.to_string(),
    };
    let ping = host.ns.run(&["ping", "-c1", "-W1", &target]).is_ok();
    let ns = host.ns.name().to_owned();
    let (tcp, udp) = std::thread::spawn(move || {
        lb_lab::enter_netns(&ns).unwrap();
        let index = if_index("eth0");
        let addr = match vip {
            IpAddr::V4(a) => SocketAddr::from((a, PORT)),
            IpAddr::V6(a) => SocketAddr::V6(std::net::SocketAddrV6::new(a, PORT, 0, index)),
        };
        let tcp = TcpStream::connect_timeout(&addr, PROBE).is_ok_and(|mut c| {
            let _ = c.set_read_timeout(Some(PROBE));
            let mut b = [0u8; 3];
            c.read_exact(&mut b).is_ok() && &b == b"tcp"
        });
        let any: SocketAddr = match vip {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => ([0u16; 8], 0).into(),
        };
        let u = UdpSocket::bind(any).unwrap();
        u.set_read_timeout(Some(PROBE)).unwrap();
        let _ = u.send_to(b"udp", addr);
        let mut b = [0u8; 8];
        let udp = u.recv_from(&mut b).is_ok_and(|(n, _)| &b[..n] == b"udp");
        (tcp, udp)
    })
    .join()
    .unwrap();
    Answers { ping, tcp, udp }
}

fn if_index(name: &str) -> u32 {
    lb_vrrp::linux::Interface::lookup(name).map_or(0, |i| i.index)
}

/// The link-layer address `host` has for `addr` in its neighbour cache, when resolved.
fn neighbour(host: &Host, addr: IpAddr) -> Option<String> {
    let out = host
        .ns
        .run(&[
            "ip",
            "neigh",
            "show",
            &addr.to_string(),
            "dev",
            &host.ifname,
        ])
        .ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "lladdr")?;
    let state = words.last()?;
    (!matches!(*state, "FAILED" | "INCOMPLETE")).then(|| words[at + 1].to_owned())
}

/// The lb_vrrp_ tables in `host`'s namespace, and the elements of their sets.
fn nft_tables(host: &Host) -> String {
    host.ns.run(&["nft", "list", "ruleset"]).unwrap_or_default()
}

fn master(host: &Host, vips: Vec<IpAddr>, priority: u8, accept: bool) -> Ours {
    let family_unspecified = match vips[0] {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    };
    let mut c = Config::new(51, family_unspecified, vips);
    c.priority = priority;
    c.accept = accept;
    c.interval = Duration::from_millis(100);
    let ours = Ours::start(host, c).unwrap();
    let t = Instant::now() - Duration::from_secs(1);
    assert!(
        ours.wait_state(State::Master, t, Duration::from_secs(3))
            .is_some(),
        "{:?}",
        ours.changes()
    );
    ours
}

#[test]
fn rfc9568_6_4_3_non_owner_master_without_accept_mode_drops_vip_traffic() {
    if skip("rfc9568_6_4_3_non_owner_master_without_accept_mode_drops_vip_traffic") {
        return;
    }
    let lan = Lan::new("vacc", 2).unwrap();
    let (h0, h1) = (&lan.hosts[0], &lan.hosts[1]);
    let _echo = Echo::start(h0);
    let vip: IpAddr = "10.0.0.100".parse().unwrap();
    let primary = IpAddr::V4(h0.ipv4);
    let everything = Answers {
        ping: true,
        tcp: true,
        udp: true,
    };
    let nothing = Answers {
        ping: false,
        tcp: false,
        udp: false,
    };
    assert_eq!(probe(h1, primary), everything, "the echo service answers");

    let ours = master(h0, vec![vip], 100, false);
    assert!(has_addr(h0, "10.0.0.100"));
    let _ = h1.ns.run(&["ip", "neigh", "flush", "dev", "eth0"]);
    assert_eq!(probe(h1, vip), nothing, "{}", nft_tables(h0));
    assert_eq!(
        neighbour(h1, vip).as_deref(),
        Some("02:00:00:00:00:01"),
        "ARP for the VIP still answered"
    );
    assert_eq!(probe(h1, primary), everything, "only the VIP is filtered");
    let rules = nft_tables(h0);
    assert!(
        rules.contains("ip daddr @vips drop") && rules.contains("10.0.0.100"),
        "{rules}"
    );
    // Leaving master (FAULT: link down) takes the VIP out of the set.
    let t = Instant::now();
    h0.ns.run(&["ip", "link", "set", "eth0", "down"]).unwrap();
    assert!(
        ours.wait_state(State::Fault, t, Duration::from_secs(2))
            .is_some()
    );
    let rules = nft_tables(h0);
    assert!(
        rules.contains("lb_vrrp_") && !rules.contains("10.0.0.100"),
        "{rules}"
    );
    h0.ns.run(&["ip", "link", "set", "eth0", "up"]).unwrap();
    assert!(
        ours.wait_state(State::Master, t, Duration::from_secs(3))
            .is_some()
    );
    assert!(nft_tables(h0).contains("10.0.0.100"));
    ours.stop(true).unwrap();
    assert!(
        !nft_tables(h0).contains("lb_vrrp_"),
        "the table goes with the driver: {}",
        nft_tables(h0)
    );

    // Accept_Mode on: everything answers, and no table is made.
    let ours = master(h0, vec![vip], 100, true);
    assert_eq!(probe(h1, vip), everything);
    assert!(!nft_tables(h0).contains("lb_vrrp_"));
    ours.stop(true).unwrap();

    // The owner accepts without Accept_Mode.
    let ours = master(h0, vec![vip], 255, false);
    assert_eq!(probe(h1, vip), everything);
    assert!(!nft_tables(h0).contains("lb_vrrp_"));
    ours.stop(true).unwrap();
}

/// IPv6: traffic to a global and a link-local virtual address is dropped, neighbour
/// solicitations for them are still answered (RFC 9568 §6.4.3).
#[test]
fn rfc9568_6_4_3_ipv6_drops_vip_traffic_but_answers_neighbour_discovery() {
    if skip("rfc9568_6_4_3_ipv6_drops_vip_traffic_but_answers_neighbour_discovery") {
        return;
    }
    let lan = Lan::new("vacc6", 2).unwrap();
    let (h0, h1) = (&lan.hosts[0], &lan.hosts[1]);
    let _echo = Echo::start(h0);
    let ll: IpAddr = "fe80::100".parse().unwrap();
    // Outside the hosts' fd00::/64: a virtual address in it would become host 0's preferred
    // source there (the newest address wins the tie), and the output rule drops what leaves
    // from a virtual address, as keepalived's does.
    let global: IpAddr = "fd00:1::100".parse().unwrap();
    h1.ns
        .run(&["ip", "-6", "route", "add", "fd00:1::/64", "dev", "eth0"])
        .unwrap();
    let everything = Answers {
        ping: true,
        tcp: true,
        udp: true,
    };
    let nothing = Answers {
        ping: false,
        tcp: false,
        udp: false,
    };
    assert_eq!(probe(h1, IpAddr::V6(h0.ipv6)), everything);

    let ours = master(h0, vec![ll, global], 100, false);
    let _ = h1.ns.run(&["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    for vip in [global, ll] {
        assert_eq!(probe(h1, vip), nothing, "{vip}: {}", nft_tables(h0));
        assert_eq!(
            neighbour(h1, vip).as_deref(),
            Some("02:00:00:00:00:01"),
            "{vip}: neighbour solicitation answered"
        );
    }
    assert_eq!(probe(h1, IpAddr::V6(h0.ipv6)), everything);
    ours.stop(true).unwrap();
    assert!(!nft_tables(h0).contains("lb_vrrp_"));

    let ours = master(h0, vec![ll, global], 100, true);
    for vip in [global, ll] {
        assert_eq!(probe(h1, vip), everything, "{vip}");
    }
    ours.stop(true).unwrap();
}
