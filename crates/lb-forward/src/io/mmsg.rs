//! `AF_PACKET` socket helpers and the multi-message calls: a packet socket with our options
//! (`PACKET_IGNORE_OUTGOING`, so that it never reads back its own transmissions, and
//! `PACKET_QDISC_BYPASS`, so that sends skip the qdisc layer), binding to an interface, and
//! [`Scratch`], which receives a batch with one `recvmmsg` and sends one with one `sendmmsg`
//! (the pnet backend uses both on pnet's socket; the rings use the socket helpers).
//!
//! The calls the safe crates do not wrap (binding to a link address and the two multi-message
//! calls; the option setters are in `sys.rs`) are unsafe; each block states the invariant it
//! relies on. `tests/io_backends.rs` and the lab tests exercise all of it.
#![allow(unsafe_code)]

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::frame::Frame;

pub(crate) const ETH_P_ALL: u16 = 0x0003;

/// A packet socket for every protocol, with our options (bind it to an interface next).
pub(crate) fn packet_socket() -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
    )?;
    super::sys::packet_socket_options(socket.as_raw_fd())?;
    socket.set_recv_buffer_size(4 << 20)?;
    socket.set_send_buffer_size(4 << 20)?;
    Ok(socket)
}

/// Binds a packet socket to an interface, receiving `protocol` (an ethertype, host order; 0
/// receives nothing, for a send-only socket).
pub(crate) fn bind_to_interface(fd: RawFd, index: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_ll is a valid value of this plain C struct.
    let mut addr: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = index as i32;
    // SAFETY: `fd` is an open socket; the address pointer refers to the initialised
    // sockaddr_ll above, and the length is its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_ll).cast(),
            core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Packet fanout groups, one per interface, for sockets of several workers on the same
/// interfaces: the first socket bound to an interface creates its group (an id the kernel
/// picks, `PACKET_FANOUT_FLAG_UNIQUEID`), the others join it. The kernel then gives each
/// frame to one member, chosen by a hash of its flow that is the same in both directions
/// (`PACKET_FANOUT_HASH`), so a flow's frames stay in order. A member's own
/// `PACKET_IGNORE_OUTGOING` no longer applies once it is in a group (the group receives for
/// it): the group is made with `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` instead.
#[derive(Default)]
pub(crate) struct Fanout {
    /// (interface index, group id)
    groups: Vec<(u32, u16)>,
}

impl Fanout {
    const MODE: libc::c_uint = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;

    /// Puts a socket bound to the interface `index` in that interface's group.
    pub(crate) fn join(&mut self, fd: RawFd, index: u32) -> io::Result<()> {
        self.try_join(fd, index).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("PACKET_FANOUT (Linux 4.20 or later): {e}"),
            )
        })
    }

    fn try_join(&mut self, fd: RawFd, index: u32) -> io::Result<()> {
        use super::sys::{get_int_option, set_int_option};
        if let Some(&(_, id)) = self.groups.iter().find(|(i, _)| *i == index) {
            let value = u32::from(id) | Self::MODE << 16;
            return set_int_option(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, value as i32);
        }
        let value = (Self::MODE | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16;
        set_int_option(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, value as i32)?;
        // The group's id is the low 16 bits.
        let id = get_int_option(fd, libc::SOL_PACKET, libc::PACKET_FANOUT)? as u16;
        self.groups.push((index, id));
        Ok(())
    }
}

/// Room for the control messages of one received frame: its `PACKET_AUXDATA` (24 bytes of
/// data after a 16-byte header, on 64-bit Linux), 8-byte aligned.
type Control = [u64; 8];

/// The `tp_status` of a received message's `PACKET_AUXDATA`, 0 without one.
fn auxdata_status(h: &libc::msghdr) -> u32 {
    // SAFETY: `h` is a message header the kernel filled in `recvmmsg`: its control pointer
    // and length describe the `Control` buffer given, of which the kernel wrote
    // `msg_controllen` bytes; CMSG_FIRSTHDR / CMSG_NXTHDR stay within that length and return
    // null past it, and a `PACKET_AUXDATA` message's data is a `tpacket_auxdata`, read
    // unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux = libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>();
                return core::ptr::read_unaligned(aux).tp_status;
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
}

/// Scratch arrays for the multi-message calls, sized to the largest batch seen.
#[derive(Default)]
pub(crate) struct Scratch {
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    controls: Vec<Control>,
    picked: Vec<usize>,
}

// SAFETY: the raw pointers a `Scratch` holds are filled afresh before every system call and
// never read otherwise; between calls they point at nothing that is used, so moving the value
// to another thread cannot create shared access.
unsafe impl Send for Scratch {}

impl Scratch {
    fn reserve(&mut self, n: usize) {
        if self.iovecs.len() < n {
            let empty = libc::iovec {
                iov_base: core::ptr::null_mut(),
                iov_len: 0,
            };
            self.iovecs.resize(n, empty);
            // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is a valid value.
            self.headers.resize(n, unsafe { core::mem::zeroed() });
            self.controls.resize(n, [0; 8]);
        }
    }

    /// Points header `k` at iovec `k`, which covers `len` bytes at `base`.
    fn set(&mut self, k: usize, base: *mut libc::c_void, len: usize) {
        self.iovecs[k] = libc::iovec {
            iov_base: base,
            iov_len: len,
        };
        let h = &mut self.headers[k];
        h.msg_hdr.msg_name = core::ptr::null_mut();
        h.msg_hdr.msg_namelen = 0;
        h.msg_hdr.msg_iov = &mut self.iovecs[k];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = core::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }

    /// One `recvmmsg` into `frames`; `None` when nothing is waiting. On a socket with
    /// `PACKET_AUXDATA` on, each frame's [`Frame::partial_checksum`] comes from its
    /// `tp_status`.
    pub(crate) fn recv(
        &mut self,
        fd: RawFd,
        index: u32,
        frames: &mut [Frame],
    ) -> io::Result<Option<usize>> {
        let want = frames.len();
        self.reserve(want);
        for (k, frame) in frames.iter_mut().enumerate() {
            let buf = frame.receive_buffer();
            self.set(k, buf.as_mut_ptr().cast(), buf.len());
            let h = &mut self.headers[k].msg_hdr;
            h.msg_control = self.controls[k].as_mut_ptr().cast();
            h.msg_controllen = core::mem::size_of::<Control>();
        }
        // SAFETY: `headers[..want]` are initialised mmsghdrs whose single iovec points into a
        // distinct frame buffer of `frames`, borrowed mutably for this call, with its true
        // length, and whose control buffer is a distinct `Control` of `self.controls`, with its
        // size; no name is given. The kernel writes at most `iov_len` bytes into each buffer,
        // at most `msg_controllen` into each control buffer, and the lengths into `headers`.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                core::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(Some(0)),
                _ => Err(e),
            };
        }
        let got = rc as usize;
        for (frame, h) in frames.iter_mut().zip(&self.headers[..got]) {
            frame.set_received(h.msg_len as usize, index);
            frame.partial_checksum = auxdata_status(&h.msg_hdr) & libc::TP_STATUS_CSUMNOTREADY != 0;
        }
        Ok(Some(got))
    }

    /// Sends the selected frames whose interface is `index` with `sendmmsg` on `fd`.
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        index: u32,
        frames: &[Frame],
        send: &[bool],
    ) -> io::Result<usize> {
        self.picked.clear();
        self.picked.extend(
            frames
                .iter()
                .zip(send)
                .enumerate()
                .filter(|(_, (f, s))| **s && f.interface == index)
                .map(|(i, _)| i),
        );
        let n = self.picked.len();
        if n == 0 {
            return Ok(0);
        }
        self.reserve(n);
        for k in 0..n {
            let bytes = frames[self.picked[k]].bytes();
            // sendmmsg only reads through iov_base.
            self.set(k, bytes.as_ptr() as *mut libc::c_void, bytes.len());
        }
        // `next`: the first frame not yet tried; `sent`: how many of those tried went out.
        let (mut next, mut sent) = (0, 0);
        while next < n {
            // SAFETY: `headers[next..n]` are initialised mmsghdrs, each with one iovec over a
            // frame of `frames`, which is borrowed for this call; the kernel only reads them.
            // The socket is bound to its interface, so no address is needed.
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers[next..].as_mut_ptr(),
                    (n - next) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first frame failed (too long, link down, queue full): it is not sent, and
                // must not stop the rest.
                next += 1;
                continue;
            }
            if rc == 0 {
                break;
            }
            next += rc as usize;
            sent += rc as usize;
        }
        Ok(sent)
    }
}
