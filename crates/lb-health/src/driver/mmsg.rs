//! One `sendmmsg` for a batch of half-open SYNs, one `recvmmsg` for their replies. The
//! datagrams and reply buffers are the caller's (allocated once); the message headers that
//! point into them live on the stack for the length of one call (no raw pointer outlives
//! it, so the reactor stays `Send`).
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::SockAddr;

/// The most datagrams one call sends.
pub(crate) const BATCH: usize = 64;
/// The longest datagram a [`Datagram`] holds: an IPv4 header and a segment of up to 60 bytes.
const DATAGRAM_LEN: usize = 80;

/// One datagram to send: its bytes and destination.
#[derive(Clone, Debug)]
pub(crate) struct Datagram {
    bytes: [u8; DATAGRAM_LEN],
    len: usize,
    to: SockAddr,
}

impl Datagram {
    /// `bytes` (at most [`DATAGRAM_LEN`]) to `to`; `None` if too long.
    pub(crate) fn new(bytes: &[u8], to: SocketAddr) -> Option<Datagram> {
        let mut d = Datagram {
            bytes: [0; DATAGRAM_LEN],
            len: bytes.len(),
            to: SockAddr::from(to),
        };
        d.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(d)
    }

    /// Its bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Its destination.
    pub(crate) fn to(&self) -> &SockAddr {
        &self.to
    }
}

/// Sends up to [`BATCH`] of `datagrams` on `fd` with one `sendmmsg`: how many left (at least
/// one), or the error of the first, which was not sent (the kernel reports an error only when
/// no message went out; the next call reports a later message's).
pub(crate) fn send(fd: BorrowedFd<'_>, datagrams: &[Datagram]) -> io::Result<usize> {
    let datagrams = &datagrams[..datagrams.len().min(BATCH)];
    if datagrams.is_empty() {
        return Ok(0);
    }
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: all-zero bytes are a valid `mmsghdr` (null pointers, zero lengths).
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for ((d, iov), h) in datagrams.iter().zip(&mut iovs).zip(&mut headers) {
        // The kernel only reads through these pointers (sendmmsg's buffers are const).
        iov.iov_base = d.bytes.as_ptr().cast_mut().cast();
        iov.iov_len = d.len;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_name = d.to.as_ptr().cast_mut().cast();
        h.msg_hdr.msg_namelen = d.to.len();
    }
    let count = u32::try_from(datagrams.len()).unwrap_or(0);
    // SAFETY: `headers[..count]` each point to one iovec of `iovs` and to an address, which
    // point into `datagrams`: all alive and unmoved for the whole call, and sized by the
    // lengths given. The kernel writes only the headers' `msg_len`.
    let sent = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            headers.as_mut_ptr(),
            count,
            libc::MSG_DONTWAIT,
        )
    };
    match usize::try_from(sent) {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

/// The most replies one [`recv`] reads: twice a send batch, so that the replies to one batch
/// (on loopback all queued before its `sendmmsg` returns) come back in one call that
/// returns short, which says the queue was empty: no second, empty call.
pub(crate) const RECV_BATCH: usize = 2 * BATCH;
/// Room for one reply: the longest IPv4 header and the longest TCP header. A longer
/// datagram is cut short and fails to parse.
pub(crate) const REPLY_LEN: usize = 128;

/// The bytes of one reply read by [`recv`] (its length comes separately).
pub(crate) type Reply = [u8; REPLY_LEN];

/// Reads up to [`RECV_BATCH`] queued datagrams from `fd` into `replies` with one
/// `recvmmsg`, each one's length and sender into `from` (an IPv4 sender is left
/// unspecified: its raw datagram carries it in its header). How many were read, `WouldBlock`
/// if none was queued. Fewer than [`RECV_BATCH`] means the queue was empty when the call
/// returned.
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    replies: &mut [Reply],
    from: &mut [(usize, IpAddr)],
) -> io::Result<usize> {
    let count = replies.len().min(from.len()).min(RECV_BATCH);
    if count == 0 {
        return Ok(0);
    }
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; RECV_BATCH];
    // SAFETY: all-zero bytes are a valid `sockaddr_in6` and `mmsghdr` (zero fields, null
    // pointers).
    let mut names: [libc::sockaddr_in6; RECV_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut headers: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
    let name_len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    for (((reply, iov), name), h) in replies
        .iter_mut()
        .zip(&mut iovs)
        .zip(&mut names)
        .zip(&mut headers)
        .take(count)
    {
        iov.iov_base = reply.as_mut_ptr().cast();
        iov.iov_len = REPLY_LEN;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
        h.msg_hdr.msg_namelen = name_len;
    }
    // SAFETY: `headers[..count]` each point to one iovec of `iovs` (into one reply of
    // `replies`, REPLY_LEN bytes) and to one of `names` (its size given): all alive, unmoved
    // and not otherwise borrowed for the whole call. The kernel writes only into those and
    // the headers' lengths; no timeout pointer.
    let read = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            headers.as_mut_ptr(),
            u32::try_from(count).unwrap_or(0),
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let read = match usize::try_from(read) {
        Ok(n) => n.min(count),
        Err(_) => return Err(io::Error::last_os_error()),
    };
    for ((h, name), slot) in headers.iter().zip(&names).zip(from.iter_mut()).take(read) {
        let ip = match i32::from(name.sin6_family) {
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(name.sin6_addr.s6_addr)),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        *slot = ((h.msg_len as usize).min(REPLY_LEN), ip);
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::{RECV_BATCH, REPLY_LEN, Reply, recv};
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
    use std::os::fd::AsFd;

    /// More datagrams queued than one call reads: a full read, then the rest (short), then
    /// `WouldBlock`; each one's bytes and length intact, an IPv4 sender left unspecified.
    #[test]
    fn a_full_read_then_the_rest_then_would_block() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let total = RECV_BATCH + 3;
        for i in 0..total {
            let len = 1 + i % 50;
            tx.send_to(
                &vec![u8::try_from(i % 256).unwrap(); len],
                rx.local_addr().unwrap(),
            )
            .unwrap();
        }
        let mut replies: Vec<Reply> = vec![[0; REPLY_LEN]; RECV_BATCH];
        let mut from = vec![(0, IpAddr::V4(Ipv4Addr::LOCALHOST)); RECV_BATCH];
        let mut seen = 0;
        for expected in [RECV_BATCH, 3] {
            let n = recv(rx.as_fd(), &mut replies, &mut from).unwrap();
            assert_eq!(n, expected);
            for (reply, &(len, ip)) in replies.iter().zip(&from).take(n) {
                assert_eq!(len, 1 + seen % 50);
                assert!(reply[..len].iter().all(|&b| usize::from(b) == seen % 256));
                assert_eq!(ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                seen += 1;
            }
        }
        let err = recv(rx.as_fd(), &mut replies, &mut from).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    /// An IPv6 datagram's sender comes back (raw IPv6 replies carry no IP header).
    #[test]
    fn an_ipv6_sender_is_reported() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback");
            return;
        };
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"reply", rx.local_addr().unwrap()).unwrap();
        let mut replies: Vec<Reply> = vec![[0; REPLY_LEN]; 4];
        let mut from = vec![(0, IpAddr::V4(Ipv4Addr::UNSPECIFIED)); 4];
        // The datagram is queued by the time `send_to` returns on loopback.
        assert_eq!(recv(rx.as_fd(), &mut replies, &mut from).unwrap(), 1);
        assert_eq!(from[0], (5, tx.local_addr().unwrap().ip()));
        assert_eq!(&replies[0][..5], b"reply");
    }
}
