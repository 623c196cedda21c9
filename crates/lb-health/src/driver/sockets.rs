//! Opening the sockets probes need, non-blocking, through socket2.

use std::io;
#[cfg(feature = "reactor")]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
#[cfg(feature = "reactor")]
use std::os::fd::AsRawFd;

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

/// Segments per [`SynSocket::send_batch`] and replies per [`SynSocket::recv_batch`].
#[cfg(feature = "reactor")]
pub const SYN_BATCH: usize = 64;

/// Bytes of a [`SynSocket::recv_batch`] buffer per reply: IPv4 and TCP headers with every
/// option fit.
#[cfg(feature = "reactor")]
pub const REPLY_SLOT: usize = 256;

#[cfg(feature = "reactor")]
/// The socket half-open probes of one family share (the reactor opens one per family; it is
/// public for loops of one's own, such as the benchmark's kernel floor): a non-blocking raw
/// TCP socket (root or CAP_NET_RAW) whose BPF filter passes only SYN-ACKs and RSTs to
/// [`SynSocket::port`], and an ordinary TCP socket bound to that port on the wildcard address
/// which reserves it. That one is never connected nor listening, so the kernel finds no
/// socket for a SYN-ACK to the port and answers it with a RST, and no other application gets
/// the port.
#[derive(Debug)]
pub struct SynSocket {
    /// The raw socket, driven through `UdpSocket`'s `send_to` / `recv_from` (plain `sendto`
    /// and `recvfrom`, which also report the IPv6 sender).
    pub(crate) socket: mio::net::UdpSocket,
    port: u16,
    _reserved: Socket,
}

#[cfg(feature = "reactor")]
impl SynSocket {
    /// The reserved source port: SYNs leave from it, the filter passes replies to it.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends one segment (from [`crate::probe::syn_segment`]) to `dst`.
    pub fn send(&self, segment: &[u8], dst: IpAddr) -> io::Result<()> {
        self.socket
            .send_to(segment, SocketAddr::new(dst, 0))
            .map(drop)
    }

    /// Reads one reply: its length in `buf` (for [`crate::probe::parse_syn_reply`]) and its
    /// sender; `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        self.socket.recv_from(buf).map(|(n, from)| (n, from.ip()))
    }

    /// Sends the first (at most [`SYN_BATCH`]) of `segments`, each to its destination, with
    /// one `sendmmsg`: how many were sent (at least one), or the error of the first.
    #[allow(unsafe_code)]
    pub fn send_batch<'a>(
        &self,
        segments: impl IntoIterator<Item = (&'a [u8], IpAddr)>,
    ) -> io::Result<usize> {
        let mut names = [const { None }; SYN_BATCH];
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; SYN_BATCH];
        let mut n = 0;
        for ((segment, dst), (name, iov)) in segments
            .into_iter()
            .zip(names.iter_mut().zip(iovs.iter_mut()))
        {
            *name = Some(socket2::SockAddr::from(SocketAddr::new(dst, 0)));
            iov.iov_base = segment.as_ptr().cast_mut().cast();
            iov.iov_len = segment.len();
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
        let mut msgs: [libc::mmsghdr; SYN_BATCH] = unsafe { std::mem::zeroed() };
        for ((msg, name), iov) in msgs.iter_mut().zip(&names).zip(iovs.iter_mut()).take(n) {
            if let Some(name) = name {
                msg.msg_hdr.msg_name = name.as_ptr().cast_mut().cast();
                msg.msg_hdr.msg_namelen = name.len();
            }
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        loop {
            // SAFETY: the first `n` headers point at `names` and `iovs`, whose buffers (the
            // caller's segments) outlive the call; the kernel only reads them and writes
            // `msg_len`.
            let r = unsafe { libc::sendmmsg(self.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
            match usize::try_from(r) {
                Ok(sent) => return Ok(sent),
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Reads the replies queued (at most [`SYN_BATCH`], one per [`REPLY_SLOT`] bytes of
    /// `buf`) with one `recvmmsg`: the length of each (from the start of its slot, for
    /// [`crate::probe::parse_syn_reply`]) and its sender into `out`, which is cleared first.
    /// Returns how many were read; fewer than the slots means the queue was drained.
    /// `WouldBlock` when none is queued. Replies longer than a slot are read but left out of
    /// `out` (a SYN-ACK or RST carries no payload).
    #[allow(unsafe_code)]
    pub fn recv_batch(&self, buf: &mut [u8], out: &mut Vec<(usize, IpAddr)>) -> io::Result<usize> {
        out.clear();
        let slots = (buf.len() / REPLY_SLOT).min(SYN_BATCH);
        if slots == 0 {
            return Err(io::Error::other("recv_batch: buffer smaller than one slot"));
        }
        let mut names: [socket2::SockAddrStorage; SYN_BATCH] =
            std::array::from_fn(|_| socket2::SockAddrStorage::zeroed());
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; SYN_BATCH];
        // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
        let mut msgs: [libc::mmsghdr; SYN_BATCH] = unsafe { std::mem::zeroed() };
        for (((msg, name), iov), slot) in msgs
            .iter_mut()
            .zip(names.iter_mut())
            .zip(iovs.iter_mut())
            .zip(buf.chunks_exact_mut(REPLY_SLOT))
        {
            iov.iov_base = slot.as_mut_ptr().cast();
            iov.iov_len = slot.len();
            msg.msg_hdr.msg_namelen = name.size_of();
            msg.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        let got = loop {
            // SAFETY: the first `slots` headers point at `names`, `iovs` and disjoint
            // `REPLY_SLOT`-byte slots of `buf`, all alive and writable for the call; no
            // timeout pointer, the socket is non-blocking.
            let r = unsafe {
                libc::recvmmsg(
                    self.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    slots as u32,
                    0,
                    std::ptr::null_mut(),
                )
            };
            match usize::try_from(r) {
                Ok(got) => break got,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        };
        for (msg, name) in msgs.iter().zip(names).take(got) {
            // SAFETY: the kernel filled `name` with a socket address of `msg_namelen` bytes.
            let from = unsafe { socket2::SockAddr::new(name, msg.msg_hdr.msg_namelen) };
            let Some(from) = from.as_socket() else {
                continue;
            };
            if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            out.push((msg.msg_len as usize, from.ip()));
        }
        Ok(got)
    }

    /// Opens the pair for `v6`'s family.
    pub fn open(v6: bool) -> io::Result<SynSocket> {
        let (domain, any) = if v6 {
            (Domain::IPV6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
        } else {
            (Domain::IPV4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        };
        let raw = Socket::new(domain, Type::RAW.nonblocking(), Some(Protocol::TCP)).map_err(
            |e| match e.kind() {
                io::ErrorKind::PermissionDenied => io::Error::new(
                    e.kind(),
                    "tcp half-open checks need a raw socket: root or CAP_NET_RAW",
                ),
                _ => e,
            },
        )?;
        let reserved = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        if v6 {
            reserved.set_only_v6(true)?;
        }
        reserved.bind(&any.into())?;
        let port = reserved
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("reserved port has no address"))?;
        raw.attach_filter(&syn_reply_filter(v6, port))?;
        let socket = mio::net::UdpSocket::from_std(std::net::UdpSocket::from(raw));
        Ok(SynSocket {
            socket,
            port,
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
impl AsRawFd for SynSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}
