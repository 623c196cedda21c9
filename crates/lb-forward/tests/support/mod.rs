//! Shared by the core tests: a forwarder on one interface with helpers to build frames, and
//! an independent checksum check with smoltcp's parsers.

#![allow(dead_code, unreachable_pub)]

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use lb_forward::testing::{self, check_frame};
use lb_forward::*;
use lb_sched::{Algorithm, PoolConfig};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UdpPacket,
};

/// The director's one interface.
pub const IF: u32 = 7;
/// The director's MAC.
pub const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd];
/// The client's (or its router's) MAC.
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
/// The GUE port the tunnel tests use.
pub const GUE_PORT: u16 = 6080;

/// Real `i`'s MAC.
pub fn real_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 1, i as u8]
}

/// Parses a socket address.
pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A forwarder on interface [`IF`] with v4 and v6 addresses.
pub fn forwarder(settings: Settings) -> Forwarder {
    let mut fw = Forwarder::new(settings);
    fw.set_interface(InterfaceConfig {
        index: IF,
        mac: DIRECTOR_MAC,
        mtu: 1500,
        ipv4: Some("10.0.0.2".parse().unwrap()),
        ipv6: Some("fd00::2".parse().unwrap()),
    });
    fw
}

/// An lb-sched pool scheduler.
pub fn pool(alg: Algorithm) -> PoolScheduler {
    PoolScheduler::new(PoolConfig::new(alg), 7).unwrap()
}

/// A service with `reals` (addresses), each with its MAC `real_mac(i)` as next hop.
pub fn service(
    fw: &mut Forwarder,
    proto: Protocol,
    vip: &str,
    sched: PoolScheduler,
    reals: &[(&str, Method)],
) -> ServiceKey {
    let key = ServiceKey::new(proto, sa(vip));
    fw.add_service(key, ServiceConfig::default(), sched)
        .unwrap();
    for (i, (addr, method)) in reals.iter().enumerate() {
        let cfg = RealConfig::new(sa(addr), 1, *method);
        fw.add_real(&key, cfg, Duration::ZERO).unwrap();
        fw.set_next_hop(
            cfg.addr.ip(),
            Some(NextHop {
                interface: IF,
                mac: real_mac(i),
            }),
        );
    }
    key
}

/// A TCP frame from the client to the VIP.
pub fn tcp_in(client: &str, vip: &str, flags: u8, payload: &[u8]) -> Frame {
    Frame::from_bytes(
        &testing::tcp(
            CLIENT_MAC,
            DIRECTOR_MAC,
            sa(client),
            sa(vip),
            flags,
            payload,
        ),
        IF,
    )
}

/// A UDP frame from the client to the VIP.
pub fn udp_in(client: &str, vip: &str, payload: &[u8], checksum: bool) -> Frame {
    Frame::from_bytes(
        &testing::udp(
            CLIENT_MAC,
            DIRECTOR_MAC,
            sa(client),
            sa(vip),
            payload,
            checksum,
        ),
        IF,
    )
}

/// A TCP frame from real `i` to the client.
pub fn tcp_from_real(i: usize, real: &str, client: &str, flags: u8, payload: &[u8]) -> Frame {
    Frame::from_bytes(
        &testing::tcp(
            real_mac(i),
            DIRECTOR_MAC,
            sa(real),
            sa(client),
            flags,
            payload,
        ),
        IF,
    )
}

/// Seconds.
pub fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Checks an emitted frame with our checker and, for plain IP packets, with smoltcp.
pub fn verify(frame: &[u8]) -> testing::Checked {
    let checked = check_frame(frame, Some(GUE_PORT)).unwrap_or_else(|e| panic!("{e}"));
    smoltcp_verify(frame);
    checked
}

/// smoltcp's view of the outer packet: IP header checksum and TCP/UDP checksum.
pub fn smoltcp_verify(frame: &[u8]) {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    let (src, dst, proto, payload): (IpAddress, IpAddress, IpProtocol, &[u8]) =
        match eth.ethertype() {
            EthernetProtocol::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
                assert!(ip.verify_checksum(), "smoltcp: ipv4 checksum");
                let (s, d, p) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
                let payload = &eth.payload()[ip.header_len() as usize..ip.total_len() as usize];
                (s.into(), d.into(), p, payload)
            }
            EthernetProtocol::Ipv6 => {
                let ip = Ipv6Packet::new_checked(eth.payload()).expect("ipv6");
                let (s, d, p) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
                let payload = &eth.payload()[40..40 + ip.payload_len() as usize];
                (s.into(), d.into(), p, payload)
            }
            other => panic!("smoltcp: ethertype {other}"),
        };
    match proto {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(payload).expect("tcp");
            assert!(tcp.verify_checksum(&src, &dst), "smoltcp: tcp checksum");
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(payload).expect("udp");
            if udp.checksum() != 0 {
                assert!(udp.verify_checksum(&src, &dst), "smoltcp: udp checksum");
            }
        }
        _ => {}
    }
}

/// The address of a socket address string.
pub fn ip_of(s: &str) -> IpAddr {
    sa(s).ip()
}
