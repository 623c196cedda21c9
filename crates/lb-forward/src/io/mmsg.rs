//! The batched Linux backend: one `AF_PACKET` socket per interface, a whole batch per
//! `recvmmsg` / `sendmmsg` system call, `PACKET_IGNORE_OUTGOING` so that the socket never
//! reads back its own transmissions, and `PACKET_QDISC_BYPASS` so that sends skip the qdisc
//! layer. Sockets are waited on together with epoll.
//!
//! The few calls the safe crates do not wrap (binding to a link address, packet socket
//! options, and the two multi-message calls) are the only `unsafe` code of the crate; each
//! block states the invariant it relies on (the option setters are in `sys.rs`). The tests in
//! `tests/io_backends.rs` and the lab tests with `--io fast` exercise
//! all of it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::PacketIo;
use crate::frame::Frame;

const ETH_P_ALL: u16 = 0x0003;

struct Port {
    index: u32,
    socket: Socket,
    ready: bool,
}

/// `AF_PACKET` sockets driven a batch per system call.
pub struct MmsgIo {
    ports: Vec<Port>,
    poll: Poll,
    events: Events,
    next: usize,
    /// Scratch arrays for the multi-message calls, sized to the largest batch seen.
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// Frame indices per send call.
    picked: Vec<usize>,
}

// SAFETY: the raw pointers a `MmsgIo` holds are in its scratch arrays, which are filled
// afresh before every system call and never read otherwise; between calls they point at
// nothing that is used, so moving the value to another thread cannot create shared access.
unsafe impl Send for MmsgIo {}

fn bind_to_interface(fd: RawFd, index: u32) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_ll is a valid value of this plain C struct.
    let mut addr: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ALL.to_be();
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

impl MmsgIo {
    /// Opens a socket on each interface (by index).
    pub fn open(indices: &[u32]) -> io::Result<MmsgIo> {
        let poll = Poll::new()?;
        let mut ports = Vec::new();
        for (i, &index) in indices.iter().enumerate() {
            let socket = Socket::new(
                Domain::PACKET,
                Type::RAW,
                Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
            )?;
            let fd = socket.as_raw_fd();
            super::sys::packet_socket_options(fd)?;
            socket.set_recv_buffer_size(4 << 20)?;
            socket.set_send_buffer_size(4 << 20)?;
            bind_to_interface(fd, index)?;
            poll.registry()
                .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)?;
            ports.push(Port {
                index,
                socket,
                ready: true,
            });
        }
        Ok(MmsgIo {
            ports,
            poll,
            events: Events::with_capacity(64),
            next: 0,
            iovecs: Vec::new(),
            headers: Vec::new(),
            picked: Vec::new(),
        })
    }

    fn scratch(&mut self, n: usize) {
        if self.iovecs.len() < n {
            let empty = libc::iovec {
                iov_base: core::ptr::null_mut(),
                iov_len: 0,
            };
            self.iovecs.resize(n, empty);
            // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is a valid value.
            self.headers.resize(n, unsafe { core::mem::zeroed() });
        }
    }

    fn recv_port(&mut self, p: usize, frames: &mut [Frame]) -> io::Result<usize> {
        let want = frames.len();
        self.scratch(want);
        for (k, frame) in frames.iter_mut().enumerate() {
            let buf = frame.receive_buffer();
            self.iovecs[k] = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
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
        let fd = self.ports[p].socket.as_raw_fd();
        // SAFETY: `headers[..want]` are initialised mmsghdrs whose single iovec points into a
        // distinct frame buffer of `frames`, borrowed mutably for this call, with its true
        // length; no name or control buffer is given. The kernel writes at most `iov_len`
        // bytes into each and the message lengths into `headers`.
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
                io::ErrorKind::WouldBlock => {
                    self.ports[p].ready = false;
                    Ok(0)
                }
                io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = rc as usize;
        let index = self.ports[p].index;
        for (frame, h) in frames.iter_mut().zip(&self.headers[..got]) {
            frame.set_received(h.msg_len as usize, index);
        }
        if got < want {
            self.ports[p].ready = false;
        }
        Ok(got)
    }

    fn drain(&mut self, frames: &mut [Frame]) -> io::Result<usize> {
        let count = self.ports.len();
        let mut n = 0;
        for k in 0..count {
            let p = (self.next + k) % count;
            while self.ports[p].ready && n < frames.len() {
                n += self.recv_port(p, &mut frames[n..])?;
            }
        }
        self.next = (self.next + 1) % count.max(1);
        Ok(n)
    }

    fn send_port(&mut self, p: usize, frames: &[Frame]) -> io::Result<usize> {
        let n = self.picked.len();
        self.scratch(n);
        for (k, &i) in self.picked.iter().enumerate() {
            let bytes = frames[i].bytes();
            self.iovecs[k] = libc::iovec {
                // sendmmsg only reads through iov_base.
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
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
        let fd = self.ports[p].socket.as_raw_fd();
        let mut sent = 0;
        while sent < n {
            // SAFETY: `headers[sent..n]` are initialised mmsghdrs, each with one iovec over a
            // frame of `frames`, which is borrowed for this call; the kernel only reads them.
            // The socket is bound to its interface, so no address is needed.
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers[sent..].as_mut_ptr(),
                    (n - sent) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // A frame the interface refuses (too long, link down) must not stop the rest.
                sent += 1;
                continue;
            }
            if rc == 0 {
                break;
            }
            sent += rc as usize;
        }
        Ok(sent)
    }
}

impl PacketIo for MmsgIo {
    fn recv_batch(&mut self, frames: &mut [Frame], timeout: Option<Duration>) -> io::Result<usize> {
        let n = self.drain(frames)?;
        if n > 0 || self.ports.is_empty() {
            return Ok(n);
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        for event in &self.events {
            if let Some(port) = self.ports.get_mut(event.token().0) {
                port.ready = true;
            }
        }
        self.drain(frames)
    }

    fn send_batch(&mut self, frames: &[Frame], send: &[bool]) -> io::Result<usize> {
        let mut total = 0;
        for p in 0..self.ports.len() {
            let index = self.ports[p].index;
            self.picked.clear();
            self.picked.extend(
                frames
                    .iter()
                    .zip(send)
                    .enumerate()
                    .filter(|(_, (f, s))| **s && f.interface == index)
                    .map(|(i, _)| i),
            );
            if !self.picked.is_empty() {
                total += self.send_port(p, frames)?;
            }
        }
        Ok(total)
    }

    fn name(&self) -> &'static str {
        "mmsg"
    }
}
