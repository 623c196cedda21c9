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

/// A virtual service: protocol, virtual IP and port, or a firewall mark.
///
/// Port 0 takes every port of the VIP for that protocol; a service on an exact port wins over
/// it. A firewall-mark service (`ipvsadm -f`, keepalived's `virtual_server fwmark N`) is one
/// service (one scheduler, one persistence table) over every packet that its [`MatchKey`]s
/// take ([`Forwarder::set_matches`](crate::Forwarder::set_matches)): the packets the
/// operator's firewall would mark. As in IPVS it is looked up first, before the address
/// services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// The transport protocol (unused by a firewall-mark service: each match key has its own).
    pub protocol: Protocol,
    /// The virtual IP address; for a firewall-mark service, the unspecified address of its
    /// family.
    pub vip: IpAddr,
    /// The port, 0 for every port (and for a firewall-mark service).
    pub port: u16,
    /// The firewall mark, 0 for an address service.
    pub fwmark: u32,
}

impl ServiceKey {
    /// A service on one port.
    pub fn new(protocol: Protocol, vip: SocketAddr) -> Self {
        ServiceKey {
            protocol,
            vip: vip.ip(),
            port: vip.port(),
            fwmark: 0,
        }
    }

    /// The firewall-mark service `mark` (not 0) of the IPv4 or the IPv6 family.
    pub fn fwmark(mark: u32, ipv6: bool) -> Self {
        ServiceKey {
            protocol: Protocol::Tcp,
            vip: if ipv6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            },
            port: 0,
            fwmark: mark,
        }
    }

    /// Whether this is a firewall-mark service.
    pub fn is_fwmark(&self) -> bool {
        self.fwmark != 0
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_fwmark() {
            let family = if self.vip.is_ipv6() { " IPv6" } else { "" };
            return write!(f, "FWM {}{family}", self.fwmark);
        }
        let port: &dyn fmt::Display = if self.port == 0 { &"*" } else { &self.port };
        match self.vip {
            IpAddr::V4(a) => write!(f, "{}:{a}:{port}", self.protocol.name()),
            IpAddr::V6(a) => write!(f, "{}:[{a}]:{port}", self.protocol.name()),
        }
    }
}

/// Packets a firewall-mark service takes: a protocol, a destination prefix and a range of
/// destination ports, which is what a firewall rule that sets the mark matches
/// (`ip daddr 10.0.0.0/24 tcp dport 80-90 meta mark set 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatchKey {
    /// The transport protocol.
    pub protocol: Protocol,
    /// The destination network (host bits beyond `prefix_len` are ignored).
    pub addr: IpAddr,
    /// The prefix length: 32 (IPv4) or 128 (IPv6) for one address.
    pub prefix_len: u8,
    /// The first destination port.
    pub first_port: u16,
    /// The last destination port (`first_port..=last_port`; 0-65535 for every port).
    pub last_port: u16,
}

impl MatchKey {
    /// One address, every port.
    pub fn host(protocol: Protocol, addr: IpAddr) -> Self {
        MatchKey {
            protocol,
            addr,
            prefix_len: if addr.is_ipv6() { 128 } else { 32 },
            first_port: 0,
            last_port: u16::MAX,
        }
    }

    /// The same key on ports `first..=last`.
    pub fn ports(self, first: u16, last: u16) -> Self {
        MatchKey {
            first_port: first,
            last_port: last,
            ..self
        }
    }

    /// The same key on the network `addr/prefix_len`.
    pub fn prefix(self, addr: IpAddr, prefix_len: u8) -> Self {
        MatchKey {
            addr,
            prefix_len,
            ..self
        }
    }

    /// Whether some packet matches both keys.
    pub fn overlaps(&self, other: &MatchKey) -> bool {
        if self.protocol != other.protocol || self.addr.is_ipv6() != other.addr.is_ipv6() {
            return false;
        }
        let len = self.prefix_len.min(other.prefix_len);
        let mask = prefix_mask(len);
        let ports = self.first_port <= other.last_port && other.first_port <= self.last_port;
        ports && addr_bits(self.addr) & mask == addr_bits(other.addr) & mask
    }
}

/// An address as the top bits of a `u128` (IPv4 in the first 32).
pub(crate) fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The mask of a prefix of `len` bits over [`addr_bits`].
pub(crate) fn prefix_mask(len: u8) -> u128 {
    match len {
        0 => 0,
        l => u128::MAX << (128 - u32::from(l.min(128))),
    }
}

impl fmt::Display for MatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv6() { 128 } else { 32 };
        write!(f, "{} {}", self.protocol.name(), self.addr)?;
        if self.prefix_len != full {
            write!(f, "/{}", self.prefix_len)?;
        }
        match (self.first_port, self.last_port) {
            (0, u16::MAX) => Ok(()),
            (a, b) if a == b => write!(f, " dport {a}"),
            (a, b) => write!(f, " dport {a}-{b}"),
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

/// A time as nanoseconds in a `u64` (saturating, after about 584 years): the connection
/// table's clock, so that refreshing and checking a timer is one add and one compare.
#[inline]
pub(crate) fn nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}
