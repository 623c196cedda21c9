//! The default backend, on pnet datalink channels.
//!
//! What pnet does: `pnet_datalink::channel` binds an `AF_PACKET` socket to the interface,
//! makes it non-blocking and returns a sender and a receiver on it. pnet 0.35's receiver
//! reads one frame per `next()` (a `poll` then a `recvfrom` into its own buffer) and its sender
//! one per `send_to()` (a `poll` then a `sendto`); its `Config` offers buffer sizes, timeouts,
//! promiscuous mode, `PACKET_FANOUT` and a socket of our own, nothing that moves more than
//! one frame per system call.
//!
//! What this backend does around it ([`PnetCalls::Batched`], the default): the socket is
//! made here (with `PACKET_IGNORE_OUTGOING` and `PACKET_QDISC_BYPASS`; `PACKET_AUXDATA` once
//! bound, for each frame's partial-checksum status) and handed to pnet,
//! which binds and configures it and keeps it open; frames are then received straight into
//! the batch's buffers with one `recvmmsg` per batch and sent with one `sendmmsg` per batch,
//! on that socket. Every interface is waited on at once with epoll, and drained in turn, so
//! that an idle interface never delays a busy one. [`PnetCalls::PerFrame`] uses pnet's own
//! `next()` and `send_to()` instead: the naive per-frame loop the lab benchmark compares with
//! (pnet reads no ancillary data, so it cannot flag partial checksums).

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::time::Duration;

use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};
use socket2::{Domain, Protocol, Socket, Type};

use super::PacketIo;
use super::mmsg::{ETH_P_ALL, Fanout, Scratch};
use super::readiness::Readiness;
use crate::frame::{DEFAULT_CAPACITY, Frame};

/// How the pnet backend moves frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PnetCalls {
    /// A batch per system call (`recvmmsg`, `sendmmsg`) on pnet's socket.
    #[default]
    Batched,
    /// pnet's own calls, a `poll` and a `recvfrom` or `sendto` per frame.
    PerFrame,
}

struct Port {
    index: u32,
    /// pnet's socket, kept open by `rx` and `tx`.
    fd: RawFd,
    rx: Box<dyn DataLinkReceiver>,
    tx: Box<dyn DataLinkSender>,
    /// Frames may be waiting (epoll is edge-triggered: a port is read until empty).
    ready: bool,
}

/// pnet datalink channels on a set of interfaces.
pub struct PnetIo {
    ports: Vec<Port>,
    calls: PnetCalls,
    readiness: Readiness,
    /// Where the next batch starts reading, so that no interface starves the others.
    next: usize,
    scratch: Scratch,
}

impl PnetIo {
    /// Opens a channel on each named interface, moving frames a batch per system call.
    pub fn open(names: &[String]) -> io::Result<PnetIo> {
        PnetIo::open_with(names, PnetCalls::Batched)
    }

    /// Opens a channel on each named interface, moving frames as `calls` says.
    pub fn open_with(names: &[String], calls: PnetCalls) -> io::Result<PnetIo> {
        PnetIo::open_in(names, calls, None)
    }

    /// Opens `workers` backends, each with a channel on each named interface; when there are
    /// several, the sockets of one interface are in one fanout group, each receiving some of
    /// the flows (see [`Driver::worker`](super::Driver::worker)).
    pub fn open_many(
        names: &[String],
        calls: PnetCalls,
        workers: usize,
    ) -> io::Result<Vec<PnetIo>> {
        let mut fanout = Fanout::default();
        (0..workers.max(1))
            .map(|_| PnetIo::open_in(names, calls, (workers > 1).then_some(&mut fanout)))
            .collect()
    }

    fn open_in(
        names: &[String],
        calls: PnetCalls,
        mut fanout: Option<&mut Fanout>,
    ) -> io::Result<PnetIo> {
        let all = pnet_datalink::interfaces();
        let readiness = Readiness::new()?;
        let mut ports = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let iface: &NetworkInterface =
                all.iter().find(|n| &n.name == name).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("interface {name}"))
                })?;
            // The socket is made here so that its descriptor can join the epoll set and take
            // the multi-message calls; pnet binds it to the interface and owns it from then on.
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
            let (tx, rx) = match pnet_datalink::channel(iface, config)? {
                Channel::Ethernet(tx, rx) => (tx, rx),
                _ => return Err(io::Error::other("pnet: not an Ethernet channel")),
            };
            // Each frame's status, for partial checksums (`Scratch::recv`).
            super::sys::set_int_option(fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
            // pnet has bound the socket: it may join a group now.
            if let Some(fanout) = fanout.as_deref_mut() {
                fanout.join(fd, iface.index)?;
            }
            readiness.register(fd, i)?;
            ports.push(Port {
                index: iface.index,
                fd,
                rx,
                tx,
                ready: true,
            });
        }
        Ok(PnetIo {
            ports,
            calls,
            readiness,
            next: 0,
            scratch: Scratch::default(),
        })
    }

    fn drain(&mut self, frames: &mut [Frame]) -> io::Result<usize> {
        let count = self.ports.len();
        let mut n = 0;
        for k in 0..count {
            let port = &mut self.ports[(self.next + k) % count];
            while port.ready && n < frames.len() {
                match self.calls {
                    PnetCalls::Batched => {
                        let want = frames.len() - n;
                        match self.scratch.recv(port.fd, port.index, &mut frames[n..])? {
                            None => port.ready = false,
                            Some(got) => {
                                n += got;
                                // Fewer than asked for: the socket's queue is empty.
                                port.ready = got == want;
                            }
                        }
                    }
                    PnetCalls::PerFrame => match port.rx.next() {
                        Ok(bytes) => {
                            // Kept truncated if too long, as `recvmmsg` does: the core
                            // counts it.
                            frames[n].fill(bytes, port.index);
                            n += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => port.ready = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    },
                }
            }
        }
        self.next = (self.next + 1) % count.max(1);
        Ok(n)
    }
}

impl PacketIo for PnetIo {
    fn recv_batch(&mut self, frames: &mut [Frame], timeout: Option<Duration>) -> io::Result<usize> {
        let n = self.drain(frames)?;
        if n > 0 || self.ports.is_empty() {
            return Ok(n);
        }
        let ports = &mut self.ports;
        self.readiness.wait(timeout, |i| {
            if let Some(port) = ports.get_mut(i) {
                port.ready = true;
            }
        })?;
        self.drain(frames)
    }

    fn send_batch(&mut self, frames: &[Frame], send: &[bool]) -> io::Result<usize> {
        let mut total = 0;
        for port in &mut self.ports {
            total += match self.calls {
                PnetCalls::Batched => self.scratch.send(port.fd, port.index, frames, send)?,
                PnetCalls::PerFrame => {
                    let mut sent = 0;
                    for (frame, _) in frames
                        .iter()
                        .zip(send)
                        .filter(|(f, s)| **s && f.interface == port.index)
                    {
                        // A frame the interface refuses must not stop the rest.
                        if let Some(Ok(())) = port.tx.send_to(frame.bytes(), None) {
                            sent += 1;
                        }
                    }
                    sent
                }
            };
        }
        Ok(total)
    }

    fn name(&self) -> &'static str {
        match self.calls {
            PnetCalls::Batched => "pnet",
            PnetCalls::PerFrame => "pnet per frame",
        }
    }
}
