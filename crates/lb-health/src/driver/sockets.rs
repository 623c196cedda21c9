//! Opening the sockets probes need, non-blocking, through socket2.

use std::io;
#[cfg(feature = "reactor")]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

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

#[cfg(feature = "reactor")]
/// The classic BPF program that passes only SYN-ACK and RST-ACK segments addressed to `port`.
/// IPv4 raw sockets read the IP header first (X = its length, `ldxb 4*([0]&0xf)`); IPv6 raw
/// sockets read the TCP header at offset 0 (X = 0).
fn syn_reply_filter(v6: bool, port: u16) -> [socket2::SockFilter; 9] {
    use libc::{
        BPF_ALU, BPF_AND, BPF_B, BPF_H, BPF_IMM, BPF_IND, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_LDX,
        BPF_MSH, BPF_RET, BPF_W,
    };
    use socket2::SockFilter;
    let op = |code: u32| code as u16;
    let load_x = if v6 {
        SockFilter::new(op(BPF_LDX | BPF_W | BPF_IMM), 0, 0, 0)
    } else {
        SockFilter::new(op(BPF_LDX | BPF_B | BPF_MSH), 0, 0, 0)
    };
    [
        load_x,
        // Destination port.
        SockFilter::new(op(BPF_LD | BPF_H | BPF_IND), 0, 0, 2),
        SockFilter::new(op(BPF_JMP | BPF_JEQ | BPF_K), 0, 4, u32::from(port)),
        // Flags: of SYN, RST and ACK, exactly SYN+ACK or RST+ACK.
        SockFilter::new(op(BPF_LD | BPF_B | BPF_IND), 0, 0, 13),
        SockFilter::new(op(BPF_ALU | BPF_AND | BPF_K), 0, 0, 0x16),
        SockFilter::new(op(BPF_JMP | BPF_JEQ | BPF_K), 2, 0, 0x12),
        SockFilter::new(op(BPF_JMP | BPF_JEQ | BPF_K), 1, 0, 0x14),
        SockFilter::new(op(BPF_RET | BPF_K), 0, 0, 0),
        SockFilter::new(op(BPF_RET | BPF_K), 0, 0, 0xffff),
    ]
}

#[cfg(feature = "reactor")]
use super::mmsg::{self, Datagram};
#[cfg(feature = "reactor")]
use socket2::SockRef;
#[cfg(feature = "reactor")]
use std::os::fd::AsFd;

#[cfg(feature = "reactor")]
/// The longest segment [`SynSocket::send`] takes (a SYN with options is 24 to 44 bytes).
const MAX_SEGMENT: usize = 60;

#[cfg(feature = "reactor")]
/// The socket half-open probes from one source address share (the reactor opens one per
/// source; it is public for loops of one's own, such as the benchmark's kernel floor): a
/// non-blocking raw TCP socket (root or CAP_NET_RAW) bound to the source address, so that
/// the kernel hands it only segments addressed there (not every TCP segment of the host, our
/// own SYNs and RSTs toward the targets among them), whose BPF filter passes only SYN-ACKs
/// and RSTs to [`SynSocket::port`]; for IPv4, a send-only raw socket the SYNs leave
/// through; and an ordinary TCP socket bound to that address and port which reserves it. That one is never connected nor listening, so the kernel finds no
/// socket for a SYN-ACK to the port and answers it with a RST, and no other application gets
/// the port.
#[derive(Debug)]
pub struct SynSocket {
    /// The raw socket, read with `recvmmsg` by the reactor ([`SynSocket::recv`]: one
    /// `recvfrom`), each read reporting the IPv6 sender; IPv6 SYNs leave through it.
    pub(crate) socket: mio::net::UdpSocket,
    /// IPv4: the socket SYNs leave through (`IPPROTO_RAW`: send-only, header included),
    /// unbound and never polled, so that freeing each sent segment wakes no one (a polled
    /// socket's write-space callback runs per segment) and routing skips the check of a
    /// bound source. IPv6 SYNs leave through `socket`.
    sender: Option<Socket>,
    port: u16,
    source: IpAddr,
    _reserved: Socket,
}

#[cfg(feature = "reactor")]
impl SynSocket {
    /// The reserved source port: SYNs leave from it, the filter passes replies to it.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The local address it is bound to: SYNs leave from it, replies come to it.
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// Sends one segment (from [`crate::probe::syn_segment`], with [`SynSocket::source`]
    /// as its source) to `dst`. IPv4 segments go out behind an IPv4 header built here,
    /// through a send-only raw socket (its own headers: the kernel's leaner path, and no IP
    /// ID hashing); one longer than 60 bytes is refused.
    pub fn send(&self, segment: &[u8], dst: IpAddr) -> io::Result<()> {
        let datagram = self.datagram(segment, dst)?;
        self.sending()
            .send_to(datagram.bytes(), datagram.to())
            .map(drop)
    }

    /// Sends up to [`mmsg::BATCH`] datagrams (from [`SynSocket::datagram`]) with one
    /// `sendmmsg`: how many went out (at least one), or the error of the first (not sent).
    pub(crate) fn send_batch(&self, datagrams: &[Datagram]) -> io::Result<usize> {
        mmsg::send(self.sending().as_fd(), datagrams)
    }

    /// The socket SYNs leave through.
    fn sending(&self) -> SockRef<'_> {
        match &self.sender {
            Some(sender) => SockRef::from(sender),
            None => SockRef::from(&self.socket),
        }
    }

    /// `segment` to `dst` as it leaves: behind an IPv4 header for IPv4 (the send-only socket
    /// includes its own), bare for IPv6.
    pub(crate) fn datagram(&self, segment: &[u8], dst: IpAddr) -> io::Result<Datagram> {
        let too_long = || io::Error::new(io::ErrorKind::InvalidInput, "segment too long");
        let to = SocketAddr::new(dst, 0);
        let (IpAddr::V4(src), IpAddr::V4(dst), Some(_)) = (self.source, dst, &self.sender) else {
            return Datagram::new(segment, to).ok_or_else(too_long);
        };
        let mut packet = [0u8; 20 + MAX_SEGMENT];
        packet
            .get_mut(20..20 + segment.len())
            .ok_or_else(too_long)?
            .copy_from_slice(segment);
        let len = 20 + segment.len();
        // The sequence number's low bits as the IP ID: non-zero, so the kernel keeps it.
        let id = match segment.get(6..8) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]).max(1),
            _ => 1,
        };
        let [len_hi, len_lo] = u16::try_from(len).unwrap_or(0).to_be_bytes();
        let [id_hi, id_lo] = id.to_be_bytes();
        // Version 4, 20-byte header; don't fragment; TTL 64; TCP. The kernel fills the
        // header checksum (and the length again).
        packet[..12]
            .copy_from_slice(&[0x45, 0, len_hi, len_lo, id_hi, id_lo, 0x40, 0, 64, 6, 0, 0]);
        packet[12..16].copy_from_slice(&src.octets());
        packet[16..20].copy_from_slice(&dst.octets());
        Datagram::new(&packet[..len], to).ok_or_else(too_long)
    }

    /// Reads one reply: its length in `buf` (for [`crate::probe::parse_syn_reply`]) and its
    /// sender; `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        self.socket.recv_from(buf).map(|(n, from)| (n, from.ip()))
    }

    /// Reads up to [`mmsg::RECV_BATCH`] replies with one `recvmmsg` (see [`mmsg::recv`]).
    pub(crate) fn recv_batch(
        &self,
        replies: &mut [mmsg::Reply],
        from: &mut [(usize, IpAddr)],
    ) -> io::Result<usize> {
        mmsg::recv(self.socket.as_fd(), replies, from)
    }

    /// Opens the pair for `source` (a local address).
    pub fn open(source: IpAddr) -> io::Result<SynSocket> {
        let v6 = source.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let local = SockAddr::from(SocketAddr::new(source, 0));
        let raw = Socket::new(domain, Type::RAW.nonblocking(), Some(Protocol::TCP)).map_err(
            |e| match e.kind() {
                io::ErrorKind::PermissionDenied => io::Error::new(
                    e.kind(),
                    "tcp half-open checks need a raw socket: root or CAP_NET_RAW",
                ),
                _ => e,
            },
        )?;
        raw.bind(&local)?;
        let sender = match v6 {
            true => None,
            false => Some(Socket::new(
                domain,
                Type::RAW.nonblocking(),
                Some(Protocol::from(libc::IPPROTO_RAW)),
            )?),
        };
        let reserved = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        if v6 {
            reserved.set_only_v6(true)?;
        }
        reserved.bind(&local)?;
        let port = reserved
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("reserved port has no address"))?;
        raw.attach_filter(&syn_reply_filter(v6, port))?;
        let socket = mio::net::UdpSocket::from_std(std::net::UdpSocket::from(raw));
        Ok(SynSocket {
            socket,
            sender,
            port,
            source,
            _reserved: reserved,
        })
    }
}

#[cfg(feature = "reactor")]
/// The address the kernel's routing picks to reach `dst` (a connected UDP socket's local
/// address; nothing is sent): half-open SYNs need it for their checksum.
pub(crate) fn route_source(dst: IpAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = match dst {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect((dst, 9))?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(feature = "reactor")]
impl std::os::fd::AsRawFd for SynSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}
