//! The packet I/O backends on a real veth pair inside a network namespace: frames sent by one
//! arrive intact, with the right interface, at the other; neither reads back what it sent.

use std::time::Duration;

use lb_forward::Frame;
use lb_forward::io::{NextHopResolver, PacketIo, PnetCalls, PnetIo, RingIo, interface};
use lb_lab::{Netns, veth};

/// A frame of the local experimental ethertype, numbered, so that other traffic on the link
/// (IPv6 neighbour discovery) is told apart.
fn frame(n: u8, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5, n]);
    f.resize(60 + usize::from(n), n);
    f
}

fn ours(f: &Frame) -> bool {
    f.bytes().get(12..14) == Some(&[0x88, 0xb5])
}

/// Runs `body` on a thread inside a new namespace that holds the veth pair `x0` - `x1` (the
/// sockets must live in the namespace), unless the test skips (not root). The namespace goes
/// when the test ends, passed or failed.
fn in_veth_pair(test: &str, tag: &str, body: impl FnOnce() + Send + 'static) {
    if lb_lab::skip_unless_root(test) {
        return;
    }
    let ns = Netns::new(tag).unwrap();
    veth(&ns, "x0", &ns, "x1").unwrap();
    let name = ns.name().to_owned();
    std::thread::spawn(move || {
        lb_lab::enter_netns(&name).unwrap();
        body()
    })
    .join()
    .unwrap();
}

fn receive(io: &mut dyn PacketIo, want: usize) -> Vec<Frame> {
    let mut got = Vec::new();
    let mut batch: Vec<Frame> = (0..16).map(|_| Frame::default()).collect();
    for _ in 0..50 {
        let n = io
            .recv_batch(&mut batch, Some(Duration::from_millis(20)))
            .unwrap();
        got.extend(batch[..n].iter().filter(|f| ours(f)).cloned());
        if got.len() >= want {
            break;
        }
    }
    got
}

#[test]
fn backends_exchange_frames_and_skip_their_own() {
    in_veth_pair("backends_exchange_frames_and_skip_their_own", "fio", || {
        let a = interface("x0").unwrap();
        let b = interface("x1").unwrap();
        let mut pnet_a = PnetIo::open(&["x0".to_owned()]).unwrap();
        let mut per_frame = PnetIo::open_with(&["x0".to_owned()], PnetCalls::PerFrame).unwrap();
        let mut pnet = PnetIo::open(&["x1".to_owned()]).unwrap();
        let mut ring = RingIo::open(&[a.index]).unwrap();

        // pnet (x1) -> pnet (x0), one batch of 8.
        let out: Vec<Frame> = (0..8)
            .map(|n| {
                let mut f = Frame::from_bytes(&frame(n, b.mac, a.mac), b.index);
                f.interface = b.index;
                f
            })
            .collect();
        assert_eq!(pnet.send_batch(&out, &[true; 8]).unwrap(), 8);
        // Each socket on x0 gets its own copy of each: batched pnet, per-frame pnet, ring.
        for io in [&mut pnet_a as &mut dyn PacketIo, &mut per_frame, &mut ring] {
            let got = receive(io, 8);
            assert_eq!(got.len(), 8, "{}", io.name());
            for (g, o) in got.iter().zip(&out) {
                assert_eq!(g.bytes(), o.bytes());
                assert_eq!(g.interface, a.index);
            }
        }
        // pnet did not read back what it sent.
        assert!(receive(&mut pnet, 1).is_empty());

        // pnet (x0) -> pnet (x1), batched then per frame; only the selected frames go.
        let out: Vec<Frame> = (10..14)
            .map(|n| {
                let mut f = Frame::from_bytes(&frame(n, a.mac, b.mac), a.index);
                f.interface = a.index;
                f
            })
            .collect();
        for io in [&mut pnet_a as &mut dyn PacketIo, &mut per_frame] {
            assert_eq!(io.send_batch(&out, &[true, false, true, true]).unwrap(), 3);
            let got = receive(&mut pnet, 3);
            let numbers: Vec<u8> = got.iter().map(|f| f.bytes()[14]).collect();
            assert_eq!(numbers, [10, 12, 13], "{}", io.name());
            assert!(got.iter().all(|f| f.interface == b.index));
        }
        // Sockets skip outgoing frames: neither read back what was sent on x0.
        for io in [&mut pnet_a as &mut dyn PacketIo, &mut per_frame, &mut ring] {
            assert!(receive(io, 1).is_empty(), "{} read back", io.name());
        }

        // ring (x0) -> pnet (x1) through the transmit ring: only the selected frames go, byte
        // for byte; then a batch of 200, more than the ring's 128 slots, all of which arrive.
        let numbered = |range: std::ops::Range<u8>| -> Vec<Frame> {
            range
                .map(|n| {
                    let mut f = Frame::from_bytes(&frame(n, a.mac, b.mac), a.index);
                    f.interface = a.index;
                    f
                })
                .collect()
        };
        let out = numbered(20..24);
        assert_eq!(
            ring.send_batch(&out, &[true, true, false, true]).unwrap(),
            3
        );
        let got = receive(&mut pnet, 3);
        assert_eq!(got.len(), 3);
        for (g, o) in got.iter().zip([&out[0], &out[1], &out[3]]) {
            assert_eq!(g.bytes(), o.bytes());
            assert_eq!(g.interface, b.index);
        }
        let out = numbered(0..200);
        assert_eq!(ring.send_batch(&out, &[true; 200]).unwrap(), 200);
        let got = receive(&mut pnet, 200);
        let numbers: Vec<u8> = got.iter().map(|f| f.bytes()[14]).collect();
        assert_eq!(numbers, (0..200).collect::<Vec<u8>>());
        assert!(
            receive(&mut ring, 1).is_empty(),
            "the ring read back its own frames"
        );
    });
}

#[test]
fn workers_split_an_interface_by_flow() {
    if lb_lab::skip_unless_root("workers_split_an_interface_by_flow") {
        return;
    }
    let ns = Netns::new("fwk").unwrap();
    veth(&ns, "x0", &ns, "x1").unwrap();
    // For a datagram of the host's own stack out of x0, below.
    ns.run(&["ip", "addr", "add", "10.77.0.1/24", "dev", "x0"])
        .unwrap();
    ns.run(&[
        "ip",
        "neigh",
        "add",
        "10.77.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "x0",
    ])
    .unwrap();
    let name = ns.name().to_owned();
    std::thread::spawn(move || {
        lb_lab::enter_netns(&name).unwrap();
        let a = interface("x0").unwrap();
        let b = interface("x1").unwrap();
        let x0 = ["x0".to_owned()];
        let mut pnet = PnetIo::open(&["x1".to_owned()]).unwrap();
        let groups: Vec<Vec<Box<dyn PacketIo>>> = vec![
            PnetIo::open_many(&x0, PnetCalls::Batched, 2)
                .unwrap()
                .into_iter()
                .map(|io| Box::new(io) as Box<dyn PacketIo>)
                .collect(),
            RingIo::open_many(&[a.index], 2)
                .unwrap()
                .into_iter()
                .map(|io| Box::new(io) as Box<dyn PacketIo>)
                .collect(),
        ];
        // 64 UDP flows (source ports 40000-40063), three datagrams each, the flow's index in
        // the payload.
        let flows = 64u16;
        let out: Vec<Frame> = (0..3)
            .flat_map(|_| 0..flows)
            .map(|i| {
                let bytes = lb_forward::testing::udp(
                    b.mac,
                    a.mac,
                    format!("10.77.0.2:{}", 40000 + i).parse().unwrap(),
                    "10.77.0.1:53".parse().unwrap(),
                    &i.to_be_bytes(),
                    true,
                );
                let mut f = Frame::from_bytes(&bytes, b.index);
                f.interface = b.index;
                f
            })
            .collect();
        assert_eq!(
            pnet.send_batch(&out, &vec![true; out.len()]).unwrap(),
            out.len()
        );
        let is_ipv4 = |f: &Frame| f.bytes().get(12..14) == Some(&[0x08, 0x00]);
        // One of ours: to port 53 (x0's stack also answers some with ICMP errors).
        let is_flow = |f: &Frame| {
            is_ipv4(f) && f.bytes().get(23) == Some(&17) && f.bytes().get(36..38) == Some(&[0, 53])
        };
        for mut group in groups {
            // Each group gets every datagram exactly once, each flow on one member only, and
            // both members get some.
            let mut member_of = vec![None; usize::from(flows)];
            let mut per_member = [0usize; 2];
            for (m, io) in group.iter_mut().enumerate() {
                let mut batch: Vec<Frame> = (0..64).map(|_| Frame::default()).collect();
                for _ in 0..10 {
                    let n = io
                        .recv_batch(&mut batch, Some(Duration::from_millis(20)))
                        .unwrap();
                    for f in batch[..n].iter().filter(|f| is_flow(f)) {
                        let bytes = f.bytes();
                        let flow = usize::from(u16::from_be_bytes([bytes[42], bytes[43]]));
                        assert_eq!(*member_of[flow].get_or_insert(m), m, "flow {flow} split");
                        per_member[m] += 1;
                    }
                }
            }
            assert_eq!(
                per_member.iter().sum::<usize>(),
                out.len(),
                "{per_member:?}"
            );
            assert!(per_member.iter().all(|&n| n > 0), "{per_member:?}");
            // What a member sends, or the host's own stack (through the qdisc, where taps see
            // it: a datagram, ICMP errors for the datagrams above), is read back by no member
            // of the group (x1 sends nothing more).
            let host = std::net::UdpSocket::bind("10.77.0.1:0").unwrap();
            host.send_to(b"hi", "10.77.0.2:9").unwrap();
            let reply: Vec<Frame> = out[..4]
                .iter()
                .map(|f| {
                    let mut r = Frame::from_bytes(f.bytes(), a.index);
                    r.interface = a.index;
                    r
                })
                .collect();
            assert_eq!(group[0].send_batch(&reply, &[true; 4]).unwrap(), 4);
            let mut batch: Vec<Frame> = (0..8).map(|_| Frame::default()).collect();
            let mut arrived = 0;
            for _ in 0..10 {
                let n = pnet
                    .recv_batch(&mut batch, Some(Duration::from_millis(20)))
                    .unwrap();
                arrived += batch[..n].iter().filter(|f| is_flow(f)).count();
            }
            assert_eq!(arrived, 4, "the member's frames reach x1");
            for io in &mut group {
                let mut batch: Vec<Frame> = (0..8).map(|_| Frame::default()).collect();
                let n = io
                    .recv_batch(&mut batch, Some(Duration::from_millis(50)))
                    .unwrap();
                assert!(!batch[..n].iter().any(&is_ipv4), "{} read back", io.name());
            }
        }
    })
    .join()
    .unwrap();
}

/// A link that is down takes nothing: each backend says so (no frame counted as sent, or an
/// error that `Driver::poll` counts as not sent and passes over), and sends again once it is
/// up.
#[test]
fn a_link_that_is_down_sends_nothing() {
    in_veth_pair("a_link_that_is_down_sends_nothing", "fdown", || {
        let a = interface("x0").unwrap();
        let b = interface("x1").unwrap();
        let mut pnet = PnetIo::open(&["x0".to_owned()]).unwrap();
        let mut ring = RingIo::open(&[a.index]).unwrap();
        let mut peer = PnetIo::open(&["x1".to_owned()]).unwrap();
        let out: Vec<Frame> = (0..4)
            .map(|n| Frame::from_bytes(&frame(n, a.mac, b.mac), a.index))
            .collect();
        let link = |state: &str| {
            let status = std::process::Command::new("ip")
                .args(["link", "set", "x0", state])
                .status()
                .unwrap();
            assert!(status.success(), "ip link set x0 {state}");
        };
        link("down");
        assert_eq!(pnet.send_batch(&out, &[true; 4]).unwrap(), 0);
        // The ring queues the frames and its kicker thread makes the kernel send them: that
        // send fails, and the next call returns why.
        let mut error = None;
        for _ in 0..100 {
            match ring.send_batch(&out, &[true; 4]) {
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    error = Some(e.kind());
                    break;
                }
            }
        }
        assert_eq!(error, Some(std::io::ErrorKind::NetworkDown));
        link("up");
        // The first frames after the link comes up may still find it not running.
        let mut sent = 0;
        for _ in 0..50 {
            sent = pnet.send_batch(&out, &[true; 4]).unwrap();
            if sent == 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(sent, 4);
        assert!(receive(&mut peer, 4).len() >= 4);
    });
}

/// A datagram from this host's own stack over a veth with checksum offload on arrives with a
/// partial checksum: both batched backends flag it, and not once offload is off.
#[test]
fn partial_checksums_are_flagged() {
    in_veth_pair("partial_checksums_are_flagged", "fcsum", || {
        let a = interface("x0").unwrap();
        let mac: Vec<String> = a.mac.iter().map(|b| format!("{b:02x}")).collect();
        // Only x1 has an address: the datagram to 10.9.0.1 leaves by x1 and reaches x0.
        let sh = |script: &str| {
            let status = std::process::Command::new("sh")
                .args(["-c", script])
                .status()
                .unwrap();
            assert!(status.success(), "{script}");
        };
        sh(&format!(
            "ip addr add 10.9.0.2/24 dev x1 && ip neigh add 10.9.0.1 lladdr {} dev x1 && ethtool -K x1 tx on",
            mac.join(":")
        ));
        let mut pnet = PnetIo::open(&["x0".to_owned()]).unwrap();
        let mut ring = RingIo::open(&[a.index]).unwrap();
        let socket = std::net::UdpSocket::bind("10.9.0.2:0").unwrap();
        for (offload, partial) in [("on", true), ("off", false)] {
            sh(&format!("ethtool -K x1 tx {offload}"));
            socket.send_to(b"ping", "10.9.0.1:9").unwrap();
            for io in [&mut pnet as &mut dyn PacketIo, &mut ring] {
                let got = receive_udp(io);
                assert_eq!(got.partial_checksum, partial, "{} tx {offload}", io.name());
            }
        }
    });
}

/// The next IPv4 UDP frame to port 9 a backend receives.
fn receive_udp(io: &mut dyn PacketIo) -> Frame {
    let mut batch: Vec<Frame> = (0..16).map(|_| Frame::default()).collect();
    for _ in 0..50 {
        let n = io
            .recv_batch(&mut batch, Some(Duration::from_millis(20)))
            .unwrap();
        let udp = |f: &&Frame| {
            let b = f.bytes();
            b.get(12..14) == Some(&[8, 0])
                && b.get(23) == Some(&17)
                && b.get(36..38) == Some(&[0, 9])
        };
        if let Some(f) = batch[..n].iter().find(udp) {
            return f.clone();
        }
    }
    panic!("{}: no UDP frame", io.name());
}

/// A real behind an IPv6 router known by its link-local address (as router advertisements set
/// routes up), on a director with more than one link: the resolver has the kernel run
/// neighbour discovery for that address on the route's interface, then finds the router's MAC.
#[test]
fn next_hops_behind_a_link_local_ipv6_gateway_resolve() {
    if lb_lab::skip_unless_root("next_hops_behind_a_link_local_ipv6_gateway_resolve") {
        return;
    }
    let director = Netns::new("fll6d").unwrap();
    let router = Netns::new("fll6r").unwrap();
    // No router solicitation from the router's side either: it would tell the director its
    // MAC unasked.
    router
        .sh("sysctl -qw net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0")
        .unwrap();
    // Another link first: its fe80::/64 route comes before x0's, so a link-local address
    // without the interface as its scope would be looked for there.
    let other = Netns::new("fll6o").unwrap();
    veth(&director, "a0", &other, "a1").unwrap();
    veth(&director, "x0", &router, "x1").unwrap();
    router.sh("ip -6 addr add fe80::2/64 dev x1").unwrap();
    // Forwarding on, as on a director: the kernel then does not probe a router's reachability
    // on its own when a route through it is looked up, so only the resolver's datagram starts
    // neighbour discovery.
    director
        .sh("sysctl -qw net.ipv6.conf.all.forwarding=1 && ip -6 route add 2001:db8:9::/64 via fe80::2 dev x0")
        .unwrap();
    let router_mac = router.sh("cat /sys/class/net/x1/address").unwrap();
    let name = director.name().to_owned();
    std::thread::spawn(move || {
        lb_lab::enter_netns(&name).unwrap();
        let x0 = interface("x0").unwrap();
        let mut resolver = NextHopResolver::new().unwrap();
        let real = "2001:db8:9::5".parse().unwrap();
        let mut hop = None;
        for _ in 0..100 {
            hop = resolver.resolve(real).unwrap();
            if hop.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let hop = hop.expect("the router's MAC within 2 s");
        assert_eq!(hop.interface, x0.index);
        let mac: Vec<String> = hop.mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(mac.join(":"), router_mac.trim());
    })
    .join()
    .unwrap();
}
