//! The default backend: pnet datalink channels for receiving. pnet reads one frame per call
//! (a `poll` and a `recvfrom`); this backend drains every ready interface into a batch and
//! waits on all of them at once with epoll, so that an idle interface never delays a busy one.
//! pnet's sender also costs a `poll` and a `sendto` per frame, so a batch leaves with one
//! `sendmmsg` on the same socket instead.

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use pnet_datalink::{Channel, Config, DataLinkReceiver, NetworkInterface};
use socket2::{Domain, Protocol, Socket, Type};

use super::PacketIo;
use super::mmsg::Scratch;
use crate::frame::{DEFAULT_CAPACITY, Frame};

/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;

struct Port {
    index: u32,
    /// pnet's socket, kept open by `rx`; batches are sent on it.
    fd: RawFd,
    rx: Box<dyn DataLinkReceiver>,
    /// Frames may be waiting (epoll is edge-triggered: a port is read until empty).
    ready: bool,
}

/// pnet datalink channels on a set of interfaces.
pub struct PnetIo {
    ports: Vec<Port>,
    poll: Poll,
    events: Events,
    /// Where the next batch starts reading, so that no interface starves the others.
    next: usize,
    scratch: Scratch,
}

impl PnetIo {
    /// Opens a channel on each named interface.
    pub fn open(names: &[String]) -> io::Result<PnetIo> {
        let all = pnet_datalink::interfaces();
        let poll = Poll::new()?;
        let mut ports = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let iface: &NetworkInterface =
                all.iter().find(|n| &n.name == name).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("interface {name}"))
                })?;
            // The socket is made here so that its descriptor can join the epoll set; pnet
            // binds it to the interface and owns it from then on.
            let socket = Socket::new(
                Domain::PACKET,
                Type::RAW,
                Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
            )?;
            socket.set_recv_buffer_size(4 << 20)?;
            socket.set_send_buffer_size(4 << 20)?;
            // Our own transmissions are not read back (the core also ignores frames with our
            // source MAC, for kernels before 4.20 where this fails).
            let _ = super::sys::packet_socket_options(std::os::fd::AsRawFd::as_raw_fd(&socket));
            let fd: RawFd = socket.into_raw_fd();
            let config = Config {
                read_buffer_size: DEFAULT_CAPACITY,
                write_buffer_size: DEFAULT_CAPACITY,
                // Non-blocking reads: waiting is done with epoll over every port.
                read_timeout: Some(Duration::ZERO),
                promiscuous: false,
                socket_fd: Some(fd),
                ..Config::default()
            };
            // pnet's sender is not used (see the module doc); its receiver holds the socket.
            let rx = match pnet_datalink::channel(iface, config)? {
                Channel::Ethernet(_tx, rx) => rx,
                _ => return Err(io::Error::other("pnet: not an Ethernet channel")),
            };
            poll.registry()
                .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)?;
            ports.push(Port {
                index: iface.index,
                fd,
                rx,
                ready: true,
            });
        }
        Ok(PnetIo {
            ports,
            poll,
            events: Events::with_capacity(64),
            next: 0,
            scratch: Scratch::default(),
        })
    }

    fn drain(&mut self, frames: &mut [Frame], mut n: usize) -> io::Result<usize> {
        let count = self.ports.len();
        for k in 0..count {
            let port = &mut self.ports[(self.next + k) % count];
            while port.ready && n < frames.len() {
                match port.rx.next() {
                    Ok(bytes) => {
                        if frames[n].fill(bytes, port.index) {
                            n += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => port.ready = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.next = (self.next + 1) % count.max(1);
        Ok(n)
    }
}

impl PacketIo for PnetIo {
    fn recv_batch(&mut self, frames: &mut [Frame], timeout: Option<Duration>) -> io::Result<usize> {
        let n = self.drain(frames, 0)?;
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
        self.drain(frames, 0)
    }

    fn send_batch(&mut self, frames: &[Frame], send: &[bool]) -> io::Result<usize> {
        let mut total = 0;
        for port in &self.ports {
            total += self.scratch.send(port.fd, port.index, frames, send)?;
        }
        Ok(total)
    }

    fn name(&self) -> &'static str {
        "pnet"
    }
}
