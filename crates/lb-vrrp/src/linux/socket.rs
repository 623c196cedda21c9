//! Raw IP sockets for VRRP adverts.

use std::io::{self, IoSliceMut, Read};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use super::Interface;
use crate::wire::{Family, HOP_LIMIT, IpMeta, MULTICAST_V4, MULTICAST_V6, PROTOCOL, ipv4_advert};

/// One received advert: where it came from and the range of the buffer holding the VRRP
/// message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Source, destination and hop limit.
    pub meta: IpMeta,
    /// The VRRP message within the receive buffer.
    pub range: core::ops::Range<usize>,
}

/// A receive socket joined to the VRRP group on one interface and an [`AdvertSender`] on it.
#[derive(Debug)]
pub struct AdvertSocket {
    family: Family,
    rx: Socket,
    tx: AdvertSender,
}

/// A raw protocol-112 socket that sends adverts out of one interface from one address, with
/// TTL / hop limit 255 and multicast loopback off.
#[derive(Debug)]
pub struct AdvertSender {
    tx: Socket,
    ifindex: u32,
}

fn raw_socket(iface: &Interface, family: Family) -> io::Result<Socket> {
    let domain = match family {
        Family::Ipv4 => Domain::IPV4,
        Family::Ipv6 => Domain::IPV6,
    };
    let s = Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(PROTOCOL))))?;
    s.bind_device(Some(iface.name.as_bytes()))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl AdvertSender {
    /// Opens a sender on `iface` (the interface frames leave by: the parent, or a virtual-MAC
    /// macvlan) sending from `src`.
    pub fn open(iface: &Interface, src: IpAddr) -> io::Result<AdvertSender> {
        let tx = raw_socket(iface, Family::of(src))?;
        match src {
            IpAddr::V4(src) => {
                // No IP_MULTICAST_IF: SO_BINDTODEVICE already picks the interface, and the
                // kernel refuses one naming another device (the primary address lives on the
                // parent, not on a virtual-MAC macvlan).
                tx.set_multicast_ttl_v4(u32::from(HOP_LIMIT))?;
                tx.set_ttl_v4(u32::from(HOP_LIMIT))?;
                tx.set_multicast_loop_v4(false)?;
                tx.bind(&SockAddr::from(SocketAddrV4::new(src, 0)))?;
            }
            IpAddr::V6(src) => {
                tx.set_multicast_if_v6(iface.index)?;
                tx.set_multicast_hops_v6(u32::from(HOP_LIMIT))?;
                tx.set_unicast_hops_v6(u32::from(HOP_LIMIT))?;
                tx.set_multicast_loop_v6(false)?;
                tx.bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, iface.index)))?;
            }
        }
        // It also receives adverts addressed to `src`; it is never read, so keep its queue
        // small.
        tx.set_recv_buffer_size(0)?;
        Ok(AdvertSender {
            tx,
            ifindex: iface.index,
        })
    }

    /// Sends `bytes` (a VRRP message) to `dst`.
    pub fn send(&self, bytes: &[u8], dst: IpAddr) -> io::Result<()> {
        let addr = match dst {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, 0, 0, self.ifindex)),
        };
        self.tx.send_to(bytes, &SockAddr::from(addr))?;
        Ok(())
    }
}

impl AdvertSocket {
    /// Opens the sockets of `family` on `iface`, sending from `src`.
    pub fn open(iface: &Interface, family: Family, src: IpAddr) -> io::Result<AdvertSocket> {
        if Family::of(src) != family {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source address of another family",
            ));
        }
        let rx = raw_socket(iface, family)?;
        match family {
            Family::Ipv4 => {
                rx.join_multicast_v4_n(
                    &MULTICAST_V4,
                    &InterfaceIndexOrAddress::Index(iface.index),
                )?;
            }
            Family::Ipv6 => {
                rx.join_multicast_v6(&MULTICAST_V6, iface.index)?;
                setsockopt(&rx, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
                setsockopt(&rx, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
            }
        }
        Ok(AdvertSocket {
            family,
            rx,
            tx: AdvertSender::open(iface, src)?,
        })
    }

    /// The sender on the same interface.
    pub fn sender(&self) -> &AdvertSender {
        &self.tx
    }

    /// Waits up to `timeout` (rounded up to a millisecond) for the receive socket to be
    /// readable; `true` when it is.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        AdvertSocket::wait_any([self], timeout)
    }

    /// Waits up to `timeout` (rounded up to a millisecond) until any of `sockets` is
    /// readable; `true` when one is.
    pub fn wait_any<'a>(
        sockets: impl IntoIterator<Item = &'a AdvertSocket>,
        timeout: Duration,
    ) -> io::Result<bool> {
        let ms = timeout
            .as_nanos()
            .div_ceil(1_000_000)
            .min(u128::from(u16::MAX)) as u16;
        let mut fds: Vec<PollFd<'_>> = sockets
            .into_iter()
            .map(|s| PollFd::new(s.rx.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads one datagram without blocking; `None` when none is queued. An IPv4 datagram whose
    /// header is malformed is an [`io::ErrorKind::InvalidData`] error carrying
    /// [`DropReason::BadIpHeader`](crate::DropReason::BadIpHeader): the socket stays usable.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        match self.family {
            Family::Ipv4 => self.recv_v4(buf),
            Family::Ipv6 => self.recv_v6(buf),
        }
    }

    fn recv_v4(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let n = match (&self.rx).read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        // An IPv4 raw socket hands over the IP header; a malformed one is reported, not read.
        match ipv4_advert(&buf[..n]) {
            Ok((meta, range)) => Ok(Some(Received { meta, range })),
            Err(reason) => Err(io::Error::new(io::ErrorKind::InvalidData, reason)),
        }
    }

    fn recv_v6(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut cmsg = nix::cmsg_space!(nix::libc::c_int, nix::libc::in6_pktinfo);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<SockaddrIn6>(
            std::os::fd::AsRawFd::as_raw_fd(&self.rx),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(src) = msg.address.map(|a| a.ip()) else {
            return Ok(None);
        };
        let (mut hop_limit, mut dst) = (0u8, None);
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).unwrap_or(0),
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    dst = Some(std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr));
                }
                _ => {}
            }
        }
        let Some(dst) = dst else { return Ok(None) };
        let meta = IpMeta {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            hop_limit,
        };
        Ok(Some(Received {
            meta,
            range: 0..msg.bytes,
        }))
    }
}
