//! DR, NAT and TUN rewrites of the core, frame by frame, with every emitted frame checked by
//! our checksum verifier and by smoltcp's parsers.

mod support;

use lb_forward::testing::{ACK, FIN, SYN};
use lb_forward::*;
use lb_sched::Algorithm;
use support::*;

#[test]
fn dr_changes_only_the_macs() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"");
    let before = f.bytes().to_vec();
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    assert_eq!(&f.bytes()[0..6], &real_mac(0));
    assert_eq!(&f.bytes()[6..12], &DIRECTOR_MAC);
    assert_eq!(&f.bytes()[12..], &before[12..]);
    assert_eq!(f.interface, IF);
    let c: Vec<_> = fw.connections().collect();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].state, ConnState::SynRecv);
    assert_eq!(c[0].real, sa("10.0.0.3:80"));
    // DR sees only the client side: IPVS's INPUT_ONLY table.
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", ACK, b"GET /");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    assert_eq!(
        fw.connections().next().unwrap().state,
        ConnState::Established
    );
    let st = fw.status();
    assert_eq!((st[0].reals[0].active, st[0].reals[0].inactive), (1, 0));
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", FIN | ACK, b"");
    assert_eq!(fw.process(s(2), &mut f), Verdict::Transmit);
    let c = fw.connections().next().unwrap();
    assert_eq!(c.state, ConnState::FinWait);
    assert_eq!(c.expires, s(2 + 120));
    let st = fw.status();
    assert_eq!((st[0].reals[0].active, st[0].reals[0].inactive), (0, 1));
    assert_eq!(st[0].counters.packets_in, 3);
    assert_eq!(st[0].counters.conns, 1);
}

#[test]
fn nat_ipv4_tcp_both_directions() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:8080", Method::Nat)],
    );
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let c = verify(f.bytes());
    assert_eq!(c.ips, vec![(ip_of("10.0.0.1:0"), ip_of("10.0.0.3:0"))]);
    assert_eq!(c.ports, Some((40000, 8080)));
    assert_eq!(&f.bytes()[0..6], &real_mac(0));

    let mut r = tcp_from_real(0, "10.0.0.3:8080", "10.0.0.1:40000", SYN | ACK, b"");
    assert_eq!(fw.process(s(1), &mut r), Verdict::Transmit);
    let c = verify(r.bytes());
    assert_eq!(c.ips, vec![(ip_of("10.0.0.100:0"), ip_of("10.0.0.1:0"))]);
    assert_eq!(c.ports, Some((80, 40000)));
    assert_eq!(&r.bytes()[0..6], &CLIENT_MAC);
    assert_eq!(&r.bytes()[6..12], &DIRECTOR_MAC);

    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", ACK, b"hello");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    verify(f.bytes());
    assert_eq!(
        fw.connections().next().unwrap().state,
        ConnState::Established
    );
    let mut r = tcp_from_real(0, "10.0.0.3:8080", "10.0.0.1:40000", ACK, b"world");
    assert_eq!(fw.process(s(1), &mut r), Verdict::Transmit);
    verify(r.bytes());
    let st = &fw.status()[0];
    assert_eq!((st.counters.packets_in, st.counters.packets_out), (2, 2));
    assert!(st.counters.bytes_out > 80);
}

#[test]
fn nat_ipv6_tcp_and_udp() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "[fd00::100]:443",
        pool(Algorithm::Rr),
        &[("[fd00::3]:8443", Method::Nat)],
    );
    service(
        &mut fw,
        Protocol::Udp,
        "[fd00::100]:53",
        pool(Algorithm::Rr),
        &[("[fd00::3]:5353", Method::Nat)],
    );
    let mut f = tcp_in("[fd00::1]:40000", "[fd00::100]:443", SYN, b"");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    assert_eq!(verify(f.bytes()).ports, Some((40000, 8443)));
    let mut f = udp_in("[fd00::1]:5000", "[fd00::100]:53", b"query", true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let c = verify(f.bytes());
    assert_eq!(c.ips, vec![(ip_of("[fd00::1]:0"), ip_of("[fd00::3]:0"))]);
    assert_eq!(c.ports, Some((5000, 5353)));
    let mut r = Frame::from_bytes(
        &lb_forward::testing::udp(
            real_mac(0),
            DIRECTOR_MAC,
            sa("[fd00::3]:5353"),
            sa("[fd00::1]:5000"),
            b"answer",
            true,
        ),
        IF,
    );
    assert_eq!(fw.process(s(1), &mut r), Verdict::Transmit);
    assert_eq!(verify(r.bytes()).ports, Some((53, 5000)));
}

#[test]
fn nat_keeps_a_zero_udp_checksum() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:5353", Method::Nat)],
    );
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"q", false);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let b = f.bytes();
    assert_eq!(&b[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    verify(b);
}

#[test]
fn tunnels_ipip_ip6ip6_and_gue() {
    let gue = Method::Tunnel(Encap::Gue { port: GUE_PORT });
    let ipip = Method::Tunnel(Encap::Ip);
    for (vip, client, real, method, outer_src) in [
        (
            "10.0.0.100:80",
            "10.0.0.1:40000",
            "10.0.0.3:0",
            ipip,
            "10.0.0.2:0",
        ),
        (
            "[fd00::100]:80",
            "[fd00::1]:40000",
            "[fd00::3]:0",
            ipip,
            "[fd00::2]:0",
        ),
        (
            "10.0.0.100:80",
            "10.0.0.1:40000",
            "10.0.0.3:0",
            gue,
            "10.0.0.2:0",
        ),
        (
            "[fd00::100]:80",
            "[fd00::1]:40000",
            "[fd00::3]:0",
            gue,
            "[fd00::2]:0",
        ),
    ] {
        let mut fw = forwarder(Settings::default());
        service(
            &mut fw,
            Protocol::Tcp,
            vip,
            pool(Algorithm::Rr),
            &[(real, method)],
        );
        let mut f = tcp_in(client, vip, SYN, b"");
        let inner = f.bytes()[14..].to_vec();
        assert_eq!(
            fw.process(s(1), &mut f),
            Verdict::Transmit,
            "{method:?} {vip}"
        );
        let c = verify(f.bytes());
        assert_eq!(c.ips[0], (ip_of(outer_src), ip_of(real)));
        assert_eq!(c.ips[1], (ip_of(client), ip_of(vip)));
        assert_eq!(c.ports, Some((40000, 80)));
        assert!(f.bytes().ends_with(&inner), "inner packet unchanged");
        assert_eq!(&f.bytes()[0..6], &real_mac(0));
    }
}

#[test]
fn tunnel_too_big_sends_icmp_back_and_mss_is_clamped() {
    let mut fw = forwarder(Settings::default());
    let key = service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Tunnel(Encap::Ip))],
    );
    fw.edit_real(&key, sa("10.0.0.3:0"), 1, true, s(0)).unwrap();
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"");
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    verify(f.bytes());
    // Inner TCP options start at 14 + 20 (outer) + 20 (inner IP) + 20: MSS 1500-20-40.
    let o = 14 + 20 + 20 + 20;
    assert_eq!(&f.bytes()[o..o + 2], &[2, 4]);
    assert_eq!(
        u16::from_be_bytes([f.bytes()[o + 2], f.bytes()[o + 3]]),
        1440
    );

    // A full-size DF segment does not fit once encapsulated.
    let mut f = tcp_in("10.0.0.1:40000", "10.0.0.100:80", ACK, &[0x61; 1460]);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let b = f.bytes();
    assert_eq!(&b[0..6], &CLIENT_MAC);
    let c = verify(b);
    assert_eq!(c.proto, 1);
    assert_eq!(c.ips[0], (ip_of("10.0.0.100:0"), ip_of("10.0.0.1:0")));
    assert_eq!(&b[34..36], &[3, 4]);
    assert_eq!(u16::from_be_bytes([b[40], b[41]]), 1480);
    assert!(b.len() <= 14 + 576);
    assert_eq!(fw.stats().icmp_sent, 1);
    assert_eq!(fw.stats().drops(DropReason::TooBig), 1);
}

#[test]
fn ipv6_tunnel_too_big_sends_packet_too_big() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "[fd00::100]:9",
        pool(Algorithm::Rr),
        &[("[fd00::3]:0", Method::Tunnel(Encap::Gue { port: GUE_PORT }))],
    );
    let mut f = udp_in("[fd00::1]:4000", "[fd00::100]:9", &[0; 1420], true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let b = f.bytes();
    let c = verify(b);
    assert_eq!(c.proto, 58);
    assert_eq!(b[14 + 40], 2);
    assert_eq!(u32::from_be_bytes([b[58], b[59], b[60], b[61]]), 1500 - 52);
    assert!(b.len() <= 14 + 1280);
}

#[test]
fn icmp_errors_follow_their_connection() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:5353", Method::Nat)],
    );
    let mut f = udp_in("10.0.0.1:5000", "10.0.0.100:53", b"query", true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let to_real = f.bytes()[14..].to_vec();

    // The real answers port unreachable, quoting the translated datagram: the client must
    // see it come from the VIP, quoting what it sent.
    let icmp = icmp_v4(real_mac(0), "10.0.0.3", "10.0.0.1", &to_real);
    let mut e = Frame::from_bytes(&icmp, IF);
    assert_eq!(fw.process(s(1), &mut e), Verdict::Transmit);
    let b = e.bytes();
    verify(b);
    assert_eq!(&b[0..6], &CLIENT_MAC);
    assert_eq!(&b[26..30], &[10, 0, 0, 100]);
    let q = 14 + 20 + 8;
    assert_eq!(
        &b[q + 16..q + 20],
        &[10, 0, 0, 100],
        "quoted destination is the VIP"
    );
    assert_eq!(&b[q + 22..q + 24], &53u16.to_be_bytes());

    // The client's side sends an error about a reply (VIP -> client): it goes to the real,
    // translated.
    let reply = lb_forward::testing::udp(
        [0; 6],
        [0; 6],
        sa("10.0.0.100:53"),
        sa("10.0.0.1:5000"),
        b"a",
        true,
    );
    let icmp = icmp_v4(CLIENT_MAC, "10.0.0.1", "10.0.0.100", &reply[14..]);
    let mut e = Frame::from_bytes(&icmp, IF);
    assert_eq!(fw.process(s(1), &mut e), Verdict::Transmit);
    let b = e.bytes();
    verify(b);
    assert_eq!(&b[0..6], &real_mac(0));
    assert_eq!(&b[30..34], &[10, 0, 0, 3]);
    assert_eq!(
        &b[q + 12..q + 16],
        &[10, 0, 0, 3],
        "quoted source is the real"
    );

    // An error about nothing we track, sent to the VIP: counted.
    let other = lb_forward::testing::udp(
        [0; 6],
        [0; 6],
        sa("10.0.0.100:53"),
        sa("10.0.0.9:1"),
        b"a",
        true,
    );
    let icmp = icmp_v4(CLIENT_MAC, "10.0.0.9", "10.0.0.100", &other[14..]);
    let mut e = Frame::from_bytes(&icmp, IF);
    assert_eq!(
        fw.process(s(1), &mut e),
        Verdict::Drop(DropReason::UntrackedIcmp)
    );
}

/// An ICMPv4 port unreachable from `src` to `dst` quoting `quoted` (an IP packet).
fn icmp_v4(mac: [u8; 6], src: &str, dst: &str, quoted: &[u8]) -> Vec<u8> {
    let mut msg = vec![3, 3, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&quoted[..quoted.len().min(548)]);
    let c = !fold(&msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + msg.len()) as u16).to_be_bytes());
    h[8] = 64;
    h[9] = 1;
    h[12..16].copy_from_slice(&src.parse::<std::net::Ipv4Addr>().unwrap().octets());
    h[16..20].copy_from_slice(&dst.parse::<std::net::Ipv4Addr>().unwrap().octets());
    let c = !fold(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(&msg);
    f
}

fn fold(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for w in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[test]
fn own_frames_non_ip_and_fragments() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr)],
    );
    let mut own = Frame::from_bytes(
        &lb_forward::testing::tcp(
            DIRECTOR_MAC,
            real_mac(0),
            sa("10.0.0.1:1"),
            sa("10.0.0.100:80"),
            SYN,
            b"",
        ),
        IF,
    );
    assert_eq!(fw.process(s(1), &mut own), Verdict::Ignore);
    let mut arp = Frame::from_bytes(
        &[0xff; 6]
            .iter()
            .chain(&CLIENT_MAC)
            .chain(&[0x08, 0x06, 0, 1])
            .copied()
            .collect::<Vec<_>>(),
        IF,
    );
    assert_eq!(fw.process(s(1), &mut arp), Verdict::Ignore);
    let mut frag = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"x");
    {
        let b = frag.bytes_mut();
        b[14 + 6] |= 0x20; // more fragments
        b[14 + 10] = 0;
        b[14 + 11] = 0;
        let c = !fold(&b[14..34]);
        b[24..26].copy_from_slice(&c.to_be_bytes());
    }
    assert_eq!(
        fw.process(s(1), &mut frag),
        Verdict::Drop(DropReason::Fragment)
    );
    let mut other = Frame::from_bytes(&[0u8; 60], 99);
    assert_eq!(
        fw.process(s(1), &mut other),
        Verdict::Drop(DropReason::UnknownInterface)
    );
    let mut short = Frame::from_bytes(&[1, 2, 3], IF);
    assert_eq!(
        fw.process(s(1), &mut short),
        Verdict::Drop(DropReason::Truncated)
    );
    // A frame longer than the buffer it is received into (a GSO frame from a local peer with
    // segmentation offload on) keeps what fits, and is dropped as truncated, not forwarded.
    let payload = vec![7u8; 3000];
    let gso = tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, &payload);
    let mut received = Frame::default();
    assert!(!received.fill(gso.bytes(), IF));
    assert_eq!(received.len(), lb_forward::DEFAULT_CAPACITY);
    assert_eq!(
        fw.process(s(1), &mut received),
        Verdict::Drop(DropReason::Truncated)
    );
    assert_eq!(fw.connection_count(), 0);
}

#[test]
fn the_tunnel_endpoint_finds_what_the_director_wrapped() {
    use lb_forward::decap::decapsulate;
    let gue = Method::Tunnel(Encap::Gue { port: GUE_PORT });
    for (vip, client, real, method) in [
        (
            "10.0.0.100:80",
            "10.0.0.1:40000",
            "10.0.0.3:0",
            Method::Tunnel(Encap::Ip),
        ),
        (
            "[fd00::100]:80",
            "[fd00::1]:40000",
            "[fd00::3]:0",
            Method::Tunnel(Encap::Ip),
        ),
        ("10.0.0.100:80", "10.0.0.1:40000", "10.0.0.3:0", gue),
        ("[fd00::100]:80", "[fd00::1]:40000", "[fd00::3]:0", gue),
    ] {
        let mut fw = forwarder(Settings::default());
        service(
            &mut fw,
            Protocol::Tcp,
            vip,
            pool(Algorithm::Rr),
            &[(real, method)],
        );
        let mut f = tcp_in(client, vip, SYN, b"payload");
        let inner = f.bytes()[14..].to_vec();
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        let d = decapsulate(f.bytes(), Some(GUE_PORT)).unwrap().unwrap();
        assert_eq!(&f.bytes()[d.inner.clone()], &inner[..]);
        assert_eq!(d.inner_dst, ip_of(vip));
        // Without the GUE port, GUE frames are plain UDP to the endpoint.
        if method == gue {
            assert_eq!(decapsulate(f.bytes(), None), Ok(None));
        }
        // A cut frame is an error, not a panic.
        let cut = &f.bytes()[..f.len() - 3];
        assert!(decapsulate(cut, Some(GUE_PORT)).is_err());
    }
    // Plain traffic is not tunnelled.
    let plain = tcp_in("10.0.0.1:1", "10.0.0.100:80", SYN, b"");
    assert_eq!(decapsulate(plain.bytes(), Some(GUE_PORT)), Ok(None));
}

/// An ICMPv6 error (type 1, destination unreachable) from `src` to `dst` quoting `quoted`.
fn icmp_v6(mac: [u8; 6], src: &str, dst: &str, quoted: &[u8]) -> Vec<u8> {
    let src: std::net::Ipv6Addr = src.parse().unwrap();
    let dst: std::net::Ipv6Addr = dst.parse().unwrap();
    let mut msg = vec![1, 4, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&quoted[..quoted.len().min(1232)]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&msg);
    let c = !fold(&pseudo);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(msg.len() as u16).to_be_bytes());
    h[6] = 58;
    h[7] = 64;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    f.extend_from_slice(&h);
    f.extend_from_slice(&msg);
    f
}

#[test]
fn icmpv6_errors_are_translated_for_nat() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "[fd00::100]:53",
        pool(Algorithm::Rr),
        &[("[fd00::3]:5353", Method::Nat)],
    );
    let mut f = udp_in("[fd00::1]:5000", "[fd00::100]:53", b"query", true);
    assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
    let to_real = f.bytes()[14..].to_vec();
    let icmp = icmp_v6(real_mac(0), "fd00::3", "fd00::1", &to_real);
    let mut e = Frame::from_bytes(&icmp, IF);
    assert_eq!(fw.process(s(1), &mut e), Verdict::Transmit);
    let b = e.bytes();
    let c = verify(b);
    assert_eq!(c.proto, 58);
    assert_eq!(c.ips[0], (ip_of("[fd00::100]:0"), ip_of("[fd00::1]:0")));
    assert_eq!(&b[0..6], &CLIENT_MAC);
    // The quote names the VIP and the service port again.
    let q = 14 + 40 + 8;
    assert_eq!(
        &b[q + 24..q + 40],
        &ip_of("[fd00::100]:0")
            .to_string()
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(&b[q + 42..q + 44], &53u16.to_be_bytes());
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "[fd00::100]:80",
        pool(Algorithm::Rr),
        &[("[fd00::3]:8080", Method::Nat)],
    );
    // Insert an 8-byte hop-by-hop header (PadN) between the IPv6 header and TCP.
    let plain = lb_forward::testing::tcp(
        CLIENT_MAC,
        DIRECTOR_MAC,
        sa("[fd00::1]:4000"),
        sa("[fd00::100]:80"),
        SYN,
        b"",
    );
    let mut f = plain[..14 + 40].to_vec();
    f[14 + 6] = 0; // next header: hop-by-hop
    let payload = u16::from_be_bytes([f[18], f[19]]) + 8;
    f[18..20].copy_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    f.extend_from_slice(&plain[14 + 40..]);
    let mut frame = Frame::from_bytes(&f, IF);
    assert_eq!(fw.process(s(1), &mut frame), Verdict::Transmit);
    let c = check_frame_v6(frame.bytes());
    assert_eq!(c.ports, Some((4000, 8080)));
    // A fragment header instead: a fragment for the VIP, dropped and counted.
    let mut frag = f.clone();
    frag[14 + 40] = 6;
    frag[14 + 6] = 44;
    frag[14 + 40 + 1] = 0;
    let mut frame = Frame::from_bytes(&frag, IF);
    assert_eq!(
        fw.process(s(1), &mut frame),
        Verdict::Drop(DropReason::Fragment)
    );
}

fn check_frame_v6(b: &[u8]) -> lb_forward::testing::Checked {
    lb_forward::testing::check_frame(b, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Leaves only the pseudo-header's sum in an IPv4 TCP or UDP checksum, as a local sender's
/// checksum offload does, and flags the frame as a backend would.
fn make_partial(f: &mut Frame) {
    let b = f.bytes_mut();
    let ihl = usize::from(b[14] & 0xf) * 4;
    let l4 = 14 + ihl;
    let l4_len = u32::from(u16::from_be_bytes([b[16], b[17]])) - ihl as u32;
    let word = |i: usize| u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
    let mut sum = word(26) + word(28) + word(30) + word(32) + u32::from(b[23]) + l4_len;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let at = l4 + if b[23] == 6 { 16 } else { 6 };
    b[at..at + 2].copy_from_slice(&(sum as u16).to_be_bytes());
    f.partial_checksum = true;
}

#[test]
fn partial_checksums_are_completed_before_forwarding() {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.100:80",
        pool(Algorithm::Rr),
        &[("10.0.0.3:8080", Method::Nat)],
    );
    service(
        &mut fw,
        Protocol::Tcp,
        "10.0.0.101:80",
        pool(Algorithm::Rr),
        &[("10.0.0.4:0", Method::Dr)],
    );
    service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.5:5353", Method::Nat)],
    );
    let frames = [
        tcp_in("10.0.0.1:40000", "10.0.0.100:80", SYN, b"odd"),
        tcp_in("10.0.0.1:40001", "10.0.0.101:80", SYN, b"even"),
        udp_in("10.0.0.1:40002", "10.0.0.100:53", b"query", true),
    ];
    for mut f in frames {
        make_partial(&mut f);
        assert_eq!(fw.process(s(1), &mut f), Verdict::Transmit);
        verify(f.bytes());
        assert!(!f.partial_checksum);
    }
    // A NAT reply from a real with offload on, too.
    let mut r = tcp_from_real(0, "10.0.0.3:8080", "10.0.0.1:40000", SYN | ACK, b"");
    make_partial(&mut r);
    assert_eq!(fw.process(s(1), &mut r), Verdict::Transmit);
    verify(r.bytes());
}
