//! [`Frame`]: one reusable packet buffer with headroom, so that tunnel headers are prepended
//! in place and no packet allocates.

/// Bytes kept free in front of a received frame: enough for the largest encapsulation
/// (IPv6 + UDP + GUE = 52 bytes) plus alignment slack.
pub const HEADROOM: usize = 64;

/// The default room for frame data after the headroom: a 1500-byte MTU frame with a VLAN tag
/// and then some, rounded to 2 KiB with the headroom.
pub const DEFAULT_CAPACITY: usize = 2048 - HEADROOM;

/// A frame buffer: the bytes of one Ethernet frame, the interface it came from or goes to,
/// and free room in front of it.
#[derive(Clone, Debug)]
pub struct Frame {
    buf: Box<[u8]>,
    start: usize,
    len: usize,
    /// The interface index the frame arrived on; after [`Verdict::Transmit`](crate::Verdict),
    /// the one it leaves from.
    pub interface: u32,
    /// The TCP or UDP checksum field holds only the pseudo-header's sum: a sender on this host
    /// (a veth peer) left the rest to checksum offload, and the kernel said so on receipt
    /// (`TP_STATUS_CSUMNOTREADY`). The core completes it before anything reads or updates it.
    /// Reset by every fill; a backend sets it after.
    pub partial_checksum: bool,
}

impl Default for Frame {
    fn default() -> Self {
        Frame::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Frame {
    /// An empty frame with room for `capacity` bytes of data after [`HEADROOM`].
    pub fn with_capacity(capacity: usize) -> Self {
        Frame {
            buf: vec![0; HEADROOM + capacity].into_boxed_slice(),
            start: HEADROOM,
            len: 0,
            interface: 0,
            partial_checksum: false,
        }
    }

    /// A frame holding a copy of `data`, received on `interface` (allocates: for tests and
    /// tools; a datapath reuses frames with [`Frame::fill`]).
    pub fn from_bytes(data: &[u8], interface: u32) -> Self {
        let mut f = Frame::with_capacity(data.len().max(DEFAULT_CAPACITY));
        f.interface = interface;
        f.buf[HEADROOM..HEADROOM + data.len()].copy_from_slice(data);
        f.len = data.len();
        f
    }

    /// Replaces the content with a copy of `data` received on `interface`; `false` when it
    /// does not fit: the frame then holds what fits, as a receive into a buffer of this size
    /// would (the core drops it as [`DropReason::Truncated`](crate::DropReason), counted).
    #[inline]
    pub fn fill(&mut self, data: &[u8], interface: u32) -> bool {
        self.interface = interface;
        self.partial_checksum = false;
        self.start = HEADROOM;
        let room = self.buf.len() - HEADROOM;
        let len = data.len().min(room);
        self.buf[HEADROOM..HEADROOM + len].copy_from_slice(&data[..len]);
        self.len = len;
        len == data.len()
    }

    /// The whole room after the headroom, to receive into; then call [`Frame::set_received`].
    #[inline]
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        self.start = HEADROOM;
        self.len = 0;
        &mut self.buf[HEADROOM..]
    }

    /// Marks `len` bytes of [`Frame::receive_buffer`] as a frame received on `interface`.
    #[inline]
    pub fn set_received(&mut self, len: usize, interface: u32) {
        self.start = HEADROOM;
        self.len = len.min(self.buf.len() - HEADROOM);
        self.interface = interface;
        self.partial_checksum = false;
    }

    /// The frame's bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The frame's bytes, writable.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// The frame's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the Ethernet destination and source; a frame too short to hold them (which the
    /// datapath never rewrites: it parsed the frame first) is left alone.
    #[inline(always)]
    pub(crate) fn set_macs(&mut self, dst: &[u8; 6], src: &[u8; 6]) {
        if self.len < 12 {
            return;
        }
        if let Some(h) = self.buf.get_mut(self.start..self.start + 12) {
            h[..6].copy_from_slice(dst);
            h[6..].copy_from_slice(src);
        }
    }

    /// Grows the frame by `n` bytes at the front; `false` when the headroom is too small.
    #[inline]
    pub(crate) fn push_front(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }

    /// Sets the length, keeping the start; `false` when the buffer is too small.
    #[inline]
    pub(crate) fn resize(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
}
