//! A packet transmit ring (`PACKET_TX_RING`, `TPACKET_V2` frames) on a send-only socket: a
//! frame is copied into a slot of memory shared with the kernel and marked
//! `TP_STATUS_SEND_REQUEST`; one `send` per batch makes the kernel transmit every requested
//! slot, with no `msghdr` to copy in and no per-frame system call work. The kernel marks a slot
//! `TP_STATUS_AVAILABLE` again when it has finished with it.
//!
//! Facts relied on (Documentation/networking/packet_mmap.rst, net/packet/af_packet.c): slots
//! are `tp_frame_size` apart and the kernel walks them in order from slot 0, as we do; without
//! `PACKET_TX_HAS_OFF` a `TPACKET_V2` frame's data starts `TPACKET2_HDRLEN - sizeof(sockaddr_ll)`
//! (32) bytes into its slot, its length in `tp_len`; `PACKET_LOSS` makes the kernel skip a
//! malformed slot instead of stopping the ring there. The socket is bound with protocol 0, so
//! it receives nothing. `PACKET_QDISC_BYPASS` hands frames straight to the driver.
//!
//! Each frame is preceded by a `virtio_net_hdr` (`PACKET_VNET_HDR`) whose `hdr_len` is the whole
//! frame: the kernel then copies all of it into the skb's linear area. Without it the kernel
//! copies only the Ethernet header and points the skb at the slot's pages for the rest, and
//! veth, which must not pass on memory the sender will reuse, allocates a page and copies the
//! frame again (`skb_copy_ubufs`, 7 % of the forwarder's time in a lab profile).
//!
//! The `send` that makes the kernel transmit the requested slots is made by a thread of the
//! ring's own (the kicker), woken once per batch: the kernel's per-frame work (building each
//! skb, the driver, and with veth the receiver's whole input path, which veth runs in the
//! sender's context) then runs there while the caller receives and processes the next batch.
//! When the next slot is still the kernel's the caller kicks the ring itself; the kernel
//! serialises the two senders (`pg_vec_lock`).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::thread::JoinHandle;

use socket2::{Domain, Socket, Type};

use super::mmsg::bind_to_interface;
use super::sys::{map_shared, set_int_option, set_struct_option};
use crate::frame::Frame;

const TPACKET_V2: libc::c_int = 1;
const FRAME_SIZE: usize = 4096;
const BLOCK_SIZE: usize = 1 << 16;
const BLOCK_NR: usize = 8;
const FRAME_NR: usize = BLOCK_SIZE / FRAME_SIZE * BLOCK_NR;
/// Offsets in `tpacket2_hdr`, and of the frame data in a slot.
const SLOT_STATUS: usize = 0;
const SLOT_LEN: usize = 4;
const SLOT_DATA: usize = 32;
/// `sizeof(struct virtio_net_hdr)`: flags, gso_type, then `hdr_len` (a `__virtio16`, which
/// af_packet reads in legacy virtio byte order, that is the host's), and fields we leave 0.
const VNET_HDR_LEN: usize = 10;
const VNET_HDR_LEN_FIELD: usize = 2;
/// The longest frame a slot holds.
const MAX_FRAME: usize = FRAME_SIZE - SLOT_DATA - VNET_HDR_LEN;
/// Slot states in which the kernel owns the slot.
const KERNEL_OWNED: u32 = libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING;

/// What the caller and the kicker thread share.
struct Shared {
    socket: Socket,
    /// The kicker exits when this is set.
    stop: AtomicBool,
    /// The error number of the kicker's last failed `send` (0: none), reported by the next
    /// [`TxRing::send`].
    errno: AtomicI32,
}

/// A mapped transmit ring on its own socket, bound to one interface, and its kicker thread.
pub(crate) struct TxRing {
    shared: Arc<Shared>,
    kicker: Option<JoinHandle<()>>,
    map: *mut u8,
    len: usize,
    /// The next slot to fill.
    head: usize,
}

// SAFETY: the mapping is owned by exactly one `TxRing` and only touched through `&mut self`;
// moving the value to another thread moves that exclusive ownership with it.
unsafe impl Send for TxRing {}

impl Drop for TxRing {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(kicker) = self.kicker.take() {
            kicker.thread().unpark();
            let _ = kicker.join();
        }
        // SAFETY: `map` and `len` are exactly what mmap returned, unmapped once, here, after
        // the kicker (which only calls `send`) has exited.
        unsafe {
            libc::munmap(self.map.cast(), self.len);
        }
    }
}

impl TxRing {
    /// A transmit ring sending on the interface with this index.
    pub(crate) fn open(index: u32) -> io::Result<TxRing> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
        let fd = socket.as_raw_fd();
        set_int_option(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
        set_int_option(fd, libc::SOL_PACKET, libc::PACKET_VERSION, TPACKET_V2)?;
        set_int_option(fd, libc::SOL_PACKET, libc::PACKET_LOSS, 1)?;
        // Before the ring: the kernel refuses it once a ring exists.
        set_int_option(fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: BLOCK_NR as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: FRAME_NR as u32,
        };
        set_struct_option(fd, libc::SOL_PACKET, libc::PACKET_TX_RING, &req)?;
        let len = BLOCK_SIZE * BLOCK_NR;
        let map = map_shared(fd, len)?;
        let shared = Arc::new(Shared {
            socket,
            stop: AtomicBool::new(false),
            errno: AtomicI32::new(0),
        });
        let mut ring = TxRing {
            shared: shared.clone(),
            kicker: None,
            map,
            len,
            head: 0,
        };
        bind_to_interface(fd, index, 0)?;
        ring.kicker = Some(
            std::thread::Builder::new()
                .name("lb-forward-tx".into())
                .spawn(move || {
                    loop {
                        std::thread::park();
                        if shared.stop.load(Ordering::Acquire) {
                            break;
                        }
                        if let Err(e) = kick(shared.socket.as_raw_fd()) {
                            let errno = e.raw_os_error().unwrap_or(libc::EIO);
                            shared.errno.store(errno, Ordering::Release);
                        }
                    }
                })?,
        );
        Ok(ring)
    }

    fn slot(&self, k: usize) -> *mut u8 {
        debug_assert!(k < FRAME_NR);
        // SAFETY: `k < FRAME_NR`, so the slot lies inside the `len`-byte mapping.
        unsafe { self.map.add(k * FRAME_SIZE) }
    }

    fn status(&self, k: usize) -> &AtomicU32 {
        // SAFETY: the status word starts the slot (page-offset multiple of FRAME_SIZE, so
        // 4-byte aligned) inside the mapping, which lives as long as `self`; the kernel and we
        // access it atomically.
        unsafe { AtomicU32::from_ptr(self.slot(k).add(SLOT_STATUS).cast::<u32>()) }
    }

    /// Puts a frame in the next slot if it is ours and the frame fits; false otherwise.
    fn put(&mut self, bytes: &[u8]) -> bool {
        let k = self.head;
        if bytes.len() > MAX_FRAME || self.status(k).load(Ordering::Acquire) & KERNEL_OWNED != 0 {
            return false;
        }
        let slot = self.slot(k);
        let mut vnet = [0u8; VNET_HDR_LEN];
        // `bytes.len() <= MAX_FRAME < 2^16`.
        vnet[VNET_HDR_LEN_FIELD..VNET_HDR_LEN_FIELD + 2]
            .copy_from_slice(&(bytes.len() as u16).to_ne_bytes());
        // SAFETY: the slot is ours (no kernel-owned status bit) and `SLOT_DATA + VNET_HDR_LEN +
        // bytes.len() <= FRAME_SIZE`, so both copies stay in this slot and cannot overlap their
        // sources (our memory, not the mapping); `tp_len` is a 4-byte aligned word of the slot
        // header.
        unsafe {
            let data = slot.add(SLOT_DATA);
            core::ptr::copy_nonoverlapping(vnet.as_ptr(), data, VNET_HDR_LEN);
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(VNET_HDR_LEN), bytes.len());
            let len = (VNET_HDR_LEN + bytes.len()) as u32;
            core::ptr::write_volatile(slot.add(SLOT_LEN).cast::<u32>(), len);
        }
        self.status(k)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.head = (k + 1) % FRAME_NR;
        true
    }

    /// Queues the selected frames whose interface is `index` and wakes the kicker; returns how
    /// many were queued, or the error of the kicker's last failed `send`. When the next slot is
    /// still the kernel's, the ring is kicked here and the slot tried again; a frame that still
    /// finds no slot, or is longer than a slot, is not sent.
    pub(crate) fn send(
        &mut self,
        index: u32,
        frames: &[Frame],
        send: &[bool],
    ) -> io::Result<usize> {
        let mut queued = 0;
        for (frame, _) in frames
            .iter()
            .zip(send)
            .filter(|(f, s)| **s && f.interface == index)
        {
            if self.put(frame.bytes()) {
                queued += 1;
            } else if frame.len() <= MAX_FRAME {
                kick(self.shared.socket.as_raw_fd())?;
                queued += usize::from(self.put(frame.bytes()));
            }
        }
        if queued > 0 {
            if let Some(kicker) = &self.kicker {
                kicker.thread().unpark();
            }
        }
        match self.shared.errno.swap(0, Ordering::AcqRel) {
            0 => Ok(queued),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Asks the kernel to transmit every requested slot of the ring on `fd`, without waiting for
/// it.
fn kick(fd: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: a send of no bytes on an open socket; the kernel reads the ring, not the
        // (null, empty) buffer.
        let rc = unsafe { libc::send(fd, core::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            // Every slot is in flight: what was requested goes out as slots free up.
            io::ErrorKind::WouldBlock => return Ok(()),
            _ => return Err(e),
        }
    }
}
