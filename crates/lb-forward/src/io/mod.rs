//! Packet I/O for Linux: the [`PacketIo`] batch trait and its backends, a [`Driver`] that runs
//! a [`Forwarder`] on one, next-hop resolution from the kernel's tables, and the nftables rules
//! that keep the kernel's own stack off the packets the forwarder handles.
//!
//! [`TunnelEndpoint`] is the real server's side of TUN mode.
//!
//! Backends:
//! - [`PnetIo`] (`--io pnet`, the default): pnet datalink channels, one `AF_PACKET` socket per
//!   interface (made here with `PACKET_IGNORE_OUTGOING` and `PACKET_QDISC_BYPASS`, then handed
//!   to pnet, which binds it), a batch received with one `recvmmsg` and sent with one
//!   `sendmmsg` on it, the interfaces waited on together with epoll; or, with
//!   [`PnetCalls::PerFrame`], pnet's own one-frame calls (the benchmark's naive loop).
//! - [`RingIo`] (`--io fast`): a `TPACKET_V3` receive ring per interface (frames read from
//!   memory shared with the kernel, one wake-up per block) and a `PACKET_TX_RING` per
//!   interface (a batch copied into shared slots, then sent by one `send` made on a thread
//!   of the ring's own, so that the kernel's transmit work overlaps the next batch).
//!
//! Each backend also opens as several ([`PnetIo::open_many`], [`RingIo::open_many`]), one per
//! worker thread, with the receiving sockets of each interface in one `PACKET_FANOUT` group;
//! [`Driver::worker`] runs them on one shared forwarder.
//!
//! Every backend's sockets skip their own transmissions (`PACKET_IGNORE_OUTGOING`); the core
//! also ignores frames that carry the interface's own source MAC.
//!
//! A capture socket sees a copy of each frame; the kernel still receives the original. The
//! [`KernelRules`] drop, in the kernel, exactly what the forwarder handles: packets to each
//! VIP and service port, and NAT replies from each real's address and port.

mod endpoint;
mod kernel;
mod mmsg;
mod neighbour;
mod pnet;
mod readiness;
mod ring;
mod sys;
mod txring;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use endpoint::{EndpointStats, TunnelEndpoint};
pub use kernel::{KernelRules, disable_offloads, interface};
pub use neighbour::NextHopResolver;
pub use pnet::{PnetCalls, PnetIo};
pub use ring::RingIo;

use crate::{DropReason, Forwarder, Frame, PoolScheduler, Scheduler, Verdict};

/// A source and sink of Ethernet frames, a batch at a time. `Send`, so that a driver can run
/// on a thread of its own.
pub trait PacketIo: Send {
    /// Receives up to `frames.len()` frames (each records its ingress interface); waits up to
    /// `timeout` (`None`: forever) when none is ready. Returns how many were filled.
    fn recv_batch(
        &mut self,
        frames: &mut [Frame],
        timeout: Option<Duration>,
    ) -> std::io::Result<usize>;

    /// Sends `frames[i]` on `frames[i].interface` for each `i` with `send[i]`; returns how many
    /// were sent.
    fn send_batch(&mut self, frames: &[Frame], send: &[bool]) -> std::io::Result<usize>;

    /// The backend's name.
    fn name(&self) -> &'static str;
}

/// Boxes backends (as the `open_many` functions return them) for [`Driver::new`] and
/// [`Driver::worker`].
pub fn boxed<T: PacketIo + 'static>(ios: Vec<T>) -> Vec<Box<dyn PacketIo>> {
    ios.into_iter()
        .map(|io| Box::new(io) as Box<dyn PacketIo>)
        .collect()
}

/// Table entries examined for expiry after each batch.
const EXPIRE_BUDGET: usize = 256;

/// Runs a forwarder on a packet I/O backend: receive a batch, process each frame, send the
/// batch, expire a few connections. Time is a monotonic clock started with the driver.
///
/// Several drivers may share one forwarder ([`Driver::worker`]), each on a backend of its own
/// whose sockets are in one fanout group per interface ([`RingIo::open_many`],
/// [`PnetIo::open_many`]): the kernel then spreads flows over them, and each runs on a thread
/// of its own. The forwarder is locked once per batch, only while the batch is processed; the
/// kernel's per-frame work of receiving and sending, which is most of a forwarder's time, runs
/// outside the lock, on every worker at once. The scheduler, the connection table and the
/// statistics stay one, as in IPVS: a NAT reply is handled by whichever worker receives it.
pub struct Driver<S = PoolScheduler> {
    forwarder: Arc<Mutex<Forwarder<S>>>,
    io: Box<dyn PacketIo>,
    frames: Vec<Frame>,
    send: Vec<bool>,
    start: Instant,
}

impl<S: Scheduler> Driver<S> {
    /// A driver with batches of `batch` frames.
    pub fn new(forwarder: Forwarder<S>, io: Box<dyn PacketIo>, batch: usize) -> Self {
        let batch = batch.max(1);
        Driver {
            forwarder: Arc::new(Mutex::new(forwarder)),
            io,
            frames: (0..batch).map(|_| Frame::default()).collect(),
            send: vec![false; batch],
            start: Instant::now(),
        }
    }

    /// Another driver on `io` sharing this one's forwarder, clock and batch size; run it on a
    /// thread of its own ([`Driver::run`]).
    pub fn worker(&self, io: Box<dyn PacketIo>) -> Self {
        Driver {
            forwarder: Arc::clone(&self.forwarder),
            io,
            frames: (0..self.frames.len()).map(|_| Frame::default()).collect(),
            send: vec![false; self.frames.len()],
            start: self.start,
        }
    }

    /// The forwarder, locked: services, reals and next hops are changed, and statistics read,
    /// through it (between two batches of each worker).
    pub fn forwarder(&self) -> MutexGuard<'_, Forwarder<S>> {
        lock(&self.forwarder)
    }

    /// The driver's clock: time since it started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The backend's name.
    pub fn io_name(&self) -> &'static str {
        self.io.name()
    }

    /// One batch: waits up to `timeout` for frames, handles them, sends what is to be sent.
    /// Returns the number of frames received. Frames the backend could not send are counted
    /// as [`DropReason::NotSent`]; a send error that a link going down or a full queue
    /// explains does not stop the driver, any other is returned.
    pub fn poll(&mut self, timeout: Option<Duration>) -> std::io::Result<usize> {
        let n = self.io.recv_batch(&mut self.frames, timeout)?;
        let now = self.now();
        let mut any = false;
        {
            let mut forwarder = lock(&self.forwarder);
            forwarder.prefetch(&self.frames[..n]);
            for (frame, send) in self.frames[..n].iter_mut().zip(&mut self.send) {
                *send = forwarder.process(now, frame) == Verdict::Transmit;
                any |= *send;
            }
            forwarder.expire(now, EXPIRE_BUDGET);
        }
        if any {
            let wanted = self.send[..n].iter().filter(|s| **s).count();
            let sent = match self.io.send_batch(&self.frames[..n], &self.send[..n]) {
                Ok(sent) => sent,
                Err(e) if passing(&e) => 0,
                Err(e) => return Err(e),
            };
            if sent < wanted {
                lock(&self.forwarder)
                    .stats
                    .drop_many(DropReason::NotSent, (wanted - sent) as u64);
            }
        }
        Ok(n)
    }

    /// Polls until `stop` is set (checked at least every 100 ms); returns the backend's first
    /// error.
    pub fn run(&mut self, stop: &AtomicBool) -> std::io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.poll(Some(Duration::from_millis(100)))?;
        }
        Ok(())
    }
}

/// A send error that passes: the link is down or gone for now, or its queue is full.
fn passing(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENETDOWN
                | libc::ENXIO
                | libc::ENODEV
                | libc::ENOBUFS
                | libc::EAGAIN
                | libc::EMSGSIZE
        )
    )
}

/// Locks a shared forwarder. A worker that panicked while holding the lock left it between two
/// calls, each of which makes its change whole: forwarding goes on.
fn lock<S>(forwarder: &Mutex<Forwarder<S>>) -> MutexGuard<'_, Forwarder<S>> {
    forwarder.lock().unwrap_or_else(PoisonError::into_inner)
}
