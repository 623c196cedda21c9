//! Opening the sockets probes need, non-blocking, through socket2.

use std::io;
#[cfg(feature = "reactor")]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

#[cfg(feature = "reactor")]
fn domain(addr: SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

#[cfg(feature = "reactor")]
/// A non-blocking TCP connect in progress (EINPROGRESS is not an error). Every syscall
/// counts at ten thousand probes a second: the socket is created non-blocking (no fcntl),
/// and `nodelay` is set only for probes that send data.
pub(crate) fn tcp_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    nodelay: bool,
) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(
        domain(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    if nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

#[cfg(feature = "reactor")]
/// Closes with a reset instead of a FIN handshake, so thousands of checks per second leave no
/// TIME_WAIT sockets behind (HAProxy closes its checks the same way).
pub(crate) fn close_with_reset(stream: &mio::net::TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
}

#[cfg(feature = "reactor")]
/// A non-blocking UDP socket connected to `addr`, so ICMP errors come back as refused.
pub(crate) fn udp_connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<mio::net::UdpSocket> {
    let any: SocketAddr = match (source, addr.ip()) {
        (Some(ip), _) => (ip, 0).into(),
        (None, IpAddr::V4(_)) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (None, IpAddr::V6(_)) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = Socket::new(domain(addr), Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
    socket.bind(&any.into())?;
    socket.connect(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// An ICMP socket for echo: an unprivileged ping socket where `ping_group_range` allows it,
/// else a raw socket (root or CAP_NET_RAW).
pub(crate) fn icmp_socket(v6: bool) -> io::Result<Socket> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(proto))
        .or_else(|_| Socket::new(domain, Type::RAW, Some(proto)))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
