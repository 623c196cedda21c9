//! What an operator configures: virtual services, their real servers, the forwarding method of
//! each real, the director's interfaces, and the table-wide settings.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use crate::state::Timeouts;

/// A transport protocol a virtual service balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    pub(crate) fn number(self) -> u8 {
        match self {
            Protocol::Tcp => crate::wire::PROTO_TCP,
            Protocol::Udp => crate::wire::PROTO_UDP,
        }
    }

    pub(crate) fn from_number(n: u8) -> Option<Protocol> {
        match n {
            crate::wire::PROTO_TCP => Some(Protocol::Tcp),
            crate::wire::PROTO_UDP => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A virtual service: protocol, virtual IP and port. Port 0 takes every port of the VIP for
/// that protocol, like an IPVS firewall-mark service matching the address alone; a service on
/// an exact port wins over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// The transport protocol.
    pub protocol: Protocol,
    /// The virtual IP address.
    pub vip: IpAddr,
    /// The port, 0 for every port.
    pub port: u16,
}

impl ServiceKey {
    /// A service on one port.
    pub fn new(protocol: Protocol, vip: SocketAddr) -> Self {
        ServiceKey {
            protocol,
            vip: vip.ip(),
            port: vip.port(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port: &dyn fmt::Display = if self.port == 0 { &"*" } else { &self.port };
        match self.vip {
            IpAddr::V4(a) => write!(f, "{}:{a}:{port}", self.protocol.name()),
            IpAddr::V6(a) => write!(f, "{}:[{a}]:{port}", self.protocol.name()),
        }
    }
}

/// How packets reach a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Direct routing (`ipvsadm -g`): only the destination MAC changes; the real holds the VIP
    /// on a non-ARPing interface and answers the client itself.
    Dr,
    /// NAT / masquerading (`-m`): the destination becomes the real's address and port; replies
    /// come back through the director, which puts the VIP and service port back.
    Nat,
    /// Tunnelling (`-i`): the packet is encapsulated to the real, which decapsulates it and
    /// answers the client itself.
    Tunnel(Encap),
}

/// The encapsulation of [`Method::Tunnel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encap {
    /// IPIP for IPv4, IP6IP6 for IPv6 (IPVS's default `tun_type`).
    Ip,
    /// Generic UDP Encapsulation (IPVS `--tun-type gue`): outer UDP to this port, a 4-byte GUE
    /// header (version 0), source port from the flow hash for receive-side spreading.
    Gue {
        /// The real's GUE port.
        port: u16,
    },
}

impl Encap {
    /// Bytes added in front of the inner packet (outer IP header included).
    pub(crate) fn overhead(self, v6: bool) -> usize {
        let ip = if v6 { 40 } else { 20 };
        match self {
            Encap::Ip => ip,
            Encap::Gue { .. } => ip + 8 + 4,
        }
    }
}

impl Method {
    /// `route`, `masq` or `tunnel`, as `ipvsadm -Ln` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Dr => "Route",
            Method::Nat => "Masq",
            Method::Tunnel(_) => "Tunnel",
        }
    }
}

/// A real server of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealConfig {
    /// Its address and port; port 0 keeps the port the client connected to (DR and TUN always
    /// keep it: only NAT rewrites ports).
    pub addr: SocketAddr,
    /// Its weight; 0 quiesces it (existing connections continue, no new ones).
    pub weight: u32,
    /// The forwarding method.
    pub method: Method,
    /// Lower the MSS option of SYNs so that segments fit the tunnel without fragmentation
    /// (tunnel reals only).
    pub clamp_mss: bool,
}

impl RealConfig {
    /// A real with this address, weight and method, without MSS clamping.
    pub fn new(addr: SocketAddr, weight: u32, method: Method) -> Self {
        RealConfig {
            addr,
            weight,
            method,
            clamp_mss: false,
        }
    }
}

/// Per-service options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    /// One-packet scheduling (`ipvsadm -o`, UDP only): every datagram is scheduled on its own
    /// and no connection entry is kept.
    pub one_packet: bool,
}

/// Where frames for a real go: the egress interface and the next hop's MAC, from the kernel's
/// routing and neighbour tables (see the `io` module) or set by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// The egress interface index.
    pub interface: u32,
    /// The next hop's MAC address.
    pub mac: [u8; 6],
}

/// An interface the forwarder receives on and sends from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The kernel's interface index (the id frames carry).
    pub index: u32,
    /// Its MAC: the source of every frame sent from it. Frames received with this source are
    /// the forwarder's own and are ignored.
    pub mac: [u8; 6],
    /// Its MTU, for the tunnel size check.
    pub mtu: u16,
    /// The IPv4 source of tunnels leaving it.
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 source of tunnels leaving it.
    pub ipv6: Option<Ipv6Addr>,
}

/// Table-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Connection timeouts per state.
    pub timeouts: Timeouts,
    /// The connection table's capacity, allocated up front. When it is full a new connection
    /// replaces an expired one, or else one that is not established (a half-open SYN, a
    /// closing connection); established connections are never evicted, so a SYN flood cannot
    /// push them out. When no entry can be replaced the new connection is dropped
    /// ([`DropReason::TableFull`](crate::DropReason::TableFull)).
    pub max_connections: usize,
    /// IPVS `expire_nodest_conn`: `false` (the default) drops the packets of a connection
    /// whose real server was removed and keeps the entry until it times out, so that the real
    /// can be added back without breaking it; `true` expires the entry on its next packet.
    pub expire_nodest_conn: bool,
    /// Seeds the connection table's hash (pass a random value so that clients cannot aim at
    /// one bucket).
    pub hash_seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeouts: Timeouts::default(),
            max_connections: 1 << 16,
            expire_nodest_conn: false,
            hash_seed: 0x5eed_1bf0_4a4d,
        }
    }
}

/// Settings shortcut: a connection that lives this long after its last packet.
#[inline]
pub(crate) fn expiry(now: Duration, timeout: Duration) -> Duration {
    now.saturating_add(timeout)
}
