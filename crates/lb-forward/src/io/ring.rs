//! The fast Linux backend: a `TPACKET_V3` receive ring per interface (the kernel writes frames
//! into blocks of memory shared with us, and one `poll` wakes us per block instead of one
//! system call per frame or batch), and a `PACKET_TX_RING` per interface for sending (a batch
//! is copied into shared slots and sent with one `send` made by the ring's own thread, see
//! `txring.rs`). The receiving sockets skip their own transmissions (`PACKET_IGNORE_OUTGOING`).
//!
//! Ring protocol (Documentation/networking/packet_mmap.rst): each block starts with a
//! `tpacket_block_desc`; the kernel fills a block, then hands it over by setting
//! `TP_STATUS_USER` in its `block_status`; we read its `num_pkts` frames, each behind a
//! `tpacket3_hdr`, and hand the block back with `TP_STATUS_KERNEL`. A block is retired after
//! `RETIRE_MS` even if not full, which bounds the latency at low rates; at moderate rates
//! blocks are retired part-full, so the ring has many smaller blocks: it holds at least
//! `BLOCK_NR` milliseconds of traffic up to about 400 kpps of 64-byte frames (a 64 KiB block
//! takes about 400 of them), so a forwarder descheduled for that long loses nothing. Every
//! offset read from the ring is checked against the block before use.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use socket2::Socket;

use super::PacketIo;
use super::mmsg::{ETH_P_ALL, Fanout, bind_to_interface, packet_socket};
use super::readiness::Readiness;
use super::sys::{map_shared, set_int_option, set_struct_option};
use super::txring::TxRing;
use crate::frame::Frame;

const TPACKET_V3: libc::c_int = 2;
const BLOCK_SIZE: usize = 1 << 16;
const BLOCK_NR: usize = 128;
const FRAME_SIZE: usize = 2048;
const RETIRE_MS: u32 = 1;
/// Offsets in `tpacket_block_desc` (version, offset_to_priv, then `tpacket_hdr_v1`).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
/// Offsets in `tpacket3_hdr`.
const PKT_NEXT: usize = 0;
const PKT_SNAPLEN: usize = 12;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_HDR_LEN: usize = 48;

/// A mapped receive ring.
struct Ring {
    map: *mut u8,
    len: usize,
    /// The block being read, the next frame's number in it and its offset.
    block: usize,
    pkt: u32,
    off: usize,
}

impl Ring {
    fn block_ptr(&self) -> *mut u8 {
        // SAFETY: `block < BLOCK_NR`, so the offset stays inside the `len`-byte mapping.
        unsafe { self.map.add(self.block * BLOCK_SIZE) }
    }

    fn read_u32(&self, at: usize) -> u32 {
        debug_assert!(at + 4 <= BLOCK_SIZE);
        // SAFETY: `at + 4 <= BLOCK_SIZE` (callers check), so the read is inside the current
        // block of the mapping; block and header fields are 4-byte aligned (blocks are page
        // aligned, frames TPACKET_ALIGNMENT aligned). Volatile: the kernel writes this memory.
        unsafe { core::ptr::read_volatile(self.block_ptr().add(at).cast::<u32>()) }
    }

    fn status(&self) -> &AtomicU32 {
        // SAFETY: the block status word is 4-byte aligned inside the mapping, which lives as
        // long as `self`; the kernel and we access it atomically.
        unsafe { AtomicU32::from_ptr(self.block_ptr().add(BLOCK_STATUS).cast::<u32>()) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map` and `len` are exactly what mmap returned, unmapped once, here.
        unsafe {
            libc::munmap(self.map.cast(), self.len);
        }
    }
}

struct Port {
    index: u32,
    /// Kept open for the ring's lifetime.
    _socket: Socket,
    ring: Ring,
    tx: TxRing,
    ready: bool,
}

/// `TPACKET_V3` receive rings and `PACKET_TX_RING` transmit rings.
pub struct RingIo {
    ports: Vec<Port>,
    readiness: Readiness,
    next: usize,
}

// SAFETY: each ring mapping is owned by exactly one `RingIo` and only touched through
// `&mut self`; moving the value to another thread moves that exclusive ownership with it.
unsafe impl Send for RingIo {}

fn map_ring(fd: RawFd) -> io::Result<Ring> {
    set_int_option(fd, libc::SOL_PACKET, libc::PACKET_VERSION, TPACKET_V3)?;
    let req = libc::tpacket_req3 {
        tp_block_size: BLOCK_SIZE as u32,
        tp_block_nr: BLOCK_NR as u32,
        tp_frame_size: FRAME_SIZE as u32,
        tp_frame_nr: (BLOCK_SIZE * BLOCK_NR / FRAME_SIZE) as u32,
        tp_retire_blk_tov: RETIRE_MS,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    set_struct_option(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
    let len = BLOCK_SIZE * BLOCK_NR;
    let map = map_shared(fd, len)?;
    Ok(Ring {
        map,
        len,
        block: 0,
        pkt: 0,
        off: 0,
    })
}

impl RingIo {
    /// Opens a ring on each interface (by index).
    pub fn open(indices: &[u32]) -> io::Result<RingIo> {
        RingIo::open_in(indices, None)
    }

    /// Opens `workers` backends, each with a ring on each interface; when there are several,
    /// the rings of one interface are in one fanout group, each receiving some of the flows
    /// (see [`Driver::worker`](super::Driver::worker)).
    pub fn open_many(indices: &[u32], workers: usize) -> io::Result<Vec<RingIo>> {
        let mut fanout = Fanout::default();
        (0..workers.max(1))
            .map(|_| RingIo::open_in(indices, (workers > 1).then_some(&mut fanout)))
            .collect()
    }

    fn open_in(indices: &[u32], mut fanout: Option<&mut Fanout>) -> io::Result<RingIo> {
        let readiness = Readiness::new()?;
        let mut ports = Vec::new();
        for (i, &index) in indices.iter().enumerate() {
            let socket = packet_socket()?;
            let fd = socket.as_raw_fd();
            let ring = map_ring(fd)?;
            bind_to_interface(fd, index, ETH_P_ALL)?;
            if let Some(fanout) = fanout.as_deref_mut() {
                fanout.join(fd, index)?;
            }
            readiness.register(fd, i)?;
            ports.push(Port {
                index,
                _socket: socket,
                ring,
                tx: TxRing::open(index)?,
                ready: true,
            });
        }
        Ok(RingIo {
            ports,
            readiness,
            next: 0,
        })
    }

    /// Copies frames out of the port's user-owned blocks into `frames`.
    fn drain_port(port: &mut Port, frames: &mut [Frame]) -> usize {
        let mut n = 0;
        let ring = &mut port.ring;
        while n < frames.len() {
            if ring.status().load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                port.ready = false;
                break;
            }
            let num = ring.read_u32(BLOCK_NUM_PKTS);
            if ring.pkt == 0 {
                ring.off = ring.read_u32(BLOCK_FIRST_PKT) as usize;
            }
            let mut corrupt = false;
            while ring.pkt < num && n < frames.len() {
                let off = ring.off;
                if off < BLOCK_FIRST_PKT + 4 || off + PKT_HDR_LEN > BLOCK_SIZE {
                    corrupt = true;
                    break;
                }
                let next = ring.read_u32(off + PKT_NEXT) as usize;
                let snaplen = ring.read_u32(off + PKT_SNAPLEN) as usize;
                let status = ring.read_u32(off + PKT_STATUS);
                let mac = (ring.read_u32(off + PKT_MAC) & 0xffff) as usize;
                if off + mac + snaplen > BLOCK_SIZE {
                    corrupt = true;
                    break;
                }
                // SAFETY: `off + mac + snaplen <= BLOCK_SIZE` was checked, so the slice lies in
                // the current block, which the kernel handed to us (TP_STATUS_USER) and does
                // not write until we hand it back below; the slice is dropped before that.
                let bytes = unsafe {
                    core::slice::from_raw_parts(ring.block_ptr().add(off + mac), snaplen)
                };
                // A frame longer than the batch's buffers (a GSO frame from a local peer) is
                // kept truncated: the core counts it.
                frames[n].fill(bytes, port.index);
                frames[n].partial_checksum = status & libc::TP_STATUS_CSUMNOTREADY != 0;
                n += 1;
                ring.pkt += 1;
                ring.off = off + next;
                if next == 0 && ring.pkt < num {
                    corrupt = true;
                    break;
                }
            }
            if ring.pkt >= num || corrupt {
                ring.status()
                    .store(libc::TP_STATUS_KERNEL, Ordering::Release);
                ring.block = (ring.block + 1) % BLOCK_NR;
                ring.pkt = 0;
            }
        }
        n
    }

    fn drain(&mut self, frames: &mut [Frame]) -> usize {
        let count = self.ports.len();
        let mut n = 0;
        for k in 0..count {
            let port = &mut self.ports[(self.next + k) % count];
            if port.ready && n < frames.len() {
                n += Self::drain_port(port, &mut frames[n..]);
            }
        }
        self.next = (self.next + 1) % count.max(1);
        n
    }
}

impl PacketIo for RingIo {
    fn recv_batch(&mut self, frames: &mut [Frame], timeout: Option<Duration>) -> io::Result<usize> {
        let n = self.drain(frames);
        if n > 0 || self.ports.is_empty() {
            return Ok(n);
        }
        self.readiness.wait(timeout, |_| {})?;
        // Every port, not only those with an event: a block may have been retired without an
        // event reaching us yet.
        for port in &mut self.ports {
            port.ready = true;
        }
        Ok(self.drain(frames))
    }

    fn send_batch(&mut self, frames: &[Frame], send: &[bool]) -> io::Result<usize> {
        let mut total = 0;
        for port in &mut self.ports {
            total += port.tx.send(port.index, frames, send)?;
        }
        Ok(total)
    }

    fn name(&self) -> &'static str {
        "tpacket_v3"
    }
}
