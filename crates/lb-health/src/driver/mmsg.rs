//! One `sendmmsg` for a batch of half-open SYNs. The datagrams are the caller's (a buffer
//! allocated once); the message headers that point into them live on the stack for the
//! length of one call (no raw pointer outlives it, so the reactor stays `Send`). Replies are
//! still read one `recvfrom` each: `recvmmsg` measured no gain (BENCHMARKS.md, lb-health).
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
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
