//! What a scheduler knows about the connection it places.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The new connection (or request) to place.
///
/// IPVS schedulers read the addresses: `sh` and `mh` the source, `dh`, `lblc` and `lblcr` the
/// destination. The consistent hashes outside IPVS (`ring`, `maglev`, `rendezvous`, `jump`)
/// hash [`Request::key`] when it is set, else the source address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// The client's address and port.
    pub src: SocketAddr,
    /// The address and port the client connected to (the virtual service).
    pub dst: SocketAddr,
    /// An explicit hash key (a session id, a URL hash...).
    pub key: Option<u64>,
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl Default for Request {
    fn default() -> Self {
        Request {
            src: UNSPECIFIED,
            dst: UNSPECIFIED,
            key: None,
        }
    }
}

impl Request {
    /// A request from this client address.
    pub fn from_src(src: SocketAddr) -> Self {
        Request {
            src,
            ..Request::default()
        }
    }

    /// A request carrying only a hash key.
    pub fn from_key(key: u64) -> Self {
        Request {
            key: Some(key),
            ..Request::default()
        }
    }

    /// Sets the destination address.
    pub fn with_dst(mut self, dst: SocketAddr) -> Self {
        self.dst = dst;
        self
    }

    /// The key the consistent hashes use: the explicit key, else the source address (IPv6
    /// folded as IPVS folds it, see [`fold_addr`]) and port packed into 64 bits. Each hash
    /// mixes the key itself, so an address costs no more than an explicit key.
    #[inline]
    pub fn hash_key(&self) -> u64 {
        // Matched per family, so that each reads its own port.
        match (self.key, &self.src) {
            (Some(key), _) => key,
            (None, SocketAddr::V4(a)) => (u32::from(*a.ip()) as u64) << 16 | a.port() as u64,
            (None, SocketAddr::V6(a)) => (fold_v6(a.ip()) as u64) << 16 | a.port() as u64,
        }
    }
}

/// IPVS's address fold: an IPv4 address in host order, an IPv6 address as the XOR of its four
/// 32-bit words (`addr_fold` in ip_vs_sh.c, ip_vs_dh.c and ip_vs_mh.c).
#[inline]
pub fn fold_addr(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(v4) => u32::from(*v4),
        IpAddr::V6(v6) => fold_v6(v6),
    }
}

/// [`fold_addr`] of a socket address's IP, without building an [`IpAddr`] first.
#[inline]
pub(crate) fn fold_ip(addr: &SocketAddr) -> u32 {
    fold_ip_port(addr).0
}

/// [`fold_ip`] and the port, from one match on the address family.
#[inline]
pub(crate) fn fold_ip_port(addr: &SocketAddr) -> (u32, u16) {
    match addr {
        SocketAddr::V4(a) => (u32::from(*a.ip()), a.port()),
        SocketAddr::V6(a) => (fold_v6(a.ip()), a.port()),
    }
}

#[inline]
fn fold_v6(v6: &Ipv6Addr) -> u32 {
    let o = v6.octets();
    let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
    word(0) ^ word(4) ^ word(8) ^ word(12)
}
