//! Many datagrams per system call on a half-open raw socket: one `sendmmsg` for a batch of
//! SYNs, one `recvmmsg` for a batch of replies. The packets and reply buffers are allocated
//! once by the caller; the message headers that point into them live on the stack for the
//! length of one call (no raw pointer outlives it, so the reactor stays `Send`).
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::{SockAddr, SockAddrStorage};

/// The most datagrams one call moves.
pub(crate) const BATCH: usize = 64;
/// The longest datagram a [`Datagram`] holds: an IPv4 header and a segment of up to 60 bytes.
pub(crate) const DATAGRAM_LEN: usize = 80;
/// Bytes kept of each reply: the longest IPv4 and TCP headers (60 + 60) with room to spare. A
/// longer reply (a SYN-ACK carrying data) is cut short and fails to parse, as a truncated
/// read always did.
const REPLY_LEN: usize = 256;

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

/// Buffers for [`Replies::recv`], allocated once.
pub(crate) struct Replies {
    bufs: Box<[[u8; REPLY_LEN]]>,
    /// Each reply's length and sender, for the first `count`.
    got: Box<[(usize, IpAddr)]>,
    count: usize,
}

impl core::fmt::Debug for Replies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Replies")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Default for Replies {
    fn default() -> Replies {
        Replies {
            bufs: vec![[0; REPLY_LEN]; BATCH].into_boxed_slice(),
            got: vec![(0, IpAddr::V4(Ipv4Addr::UNSPECIFIED)); BATCH].into_boxed_slice(),
            count: 0,
        }
    }
}

impl Replies {
    /// Reads up to [`BATCH`] datagrams from `fd` with one `recvmmsg` (non-blocking): how
    /// many; `WouldBlock` when none is queued.
    pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.count = 0;
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // Zeroed, so that the bytes past a sender's length are initialized too.
        let mut names: [SockAddrStorage; BATCH] = std::array::from_fn(|_| SockAddrStorage::zeroed());
        // SAFETY: all-zero bytes are a valid `mmsghdr` (null pointers, zero lengths).
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let slots = self.bufs.iter_mut().zip(&mut iovs).zip(&mut names);
        for (((buf, iov), name), h) in slots.zip(&mut headers) {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = REPLY_LEN;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
            h.msg_hdr.msg_namelen = size_of::<SockAddrStorage>() as libc::socklen_t;
        }
        let count = u32::try_from(self.bufs.len().min(BATCH)).unwrap_or(0);
        // SAFETY: `headers[..count]` each point to one iovec of `iovs`, which points to a
        // buffer of `self.bufs` of `REPLY_LEN` bytes, and to a storage of `names` of the
        // length given: all alive, unmoved and writable for the whole call.
        let got = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                headers.as_mut_ptr(),
                count,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let Ok(got) = usize::try_from(got) else {
            return Err(io::Error::last_os_error());
        };
        for ((h, name), slot) in headers.iter().zip(names).zip(&mut self.got).take(got) {
            // SAFETY: the kernel wrote this message's sender into its (zeroed) storage and
            // its length into `msg_namelen`.
            let from = unsafe { SockAddr::new(name, h.msg_hdr.msg_namelen) };
            let ip = from.as_socket().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
            *slot = ((h.msg_len as usize).min(REPLY_LEN), ip);
        }
        self.count = got;
        Ok(got)
    }

    /// The replies the last [`Replies::recv`] read: bytes and sender.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], IpAddr)> {
        self.bufs
            .iter()
            .zip(&self.got[..self.count])
            .map(|(buf, &(len, from))| (&buf[..len], from))
    }
}
