//! IPVS `sh` and `dh` (ip_vs_sh.c, ip_vs_dh.c): static tables tiled over the backend list.
//!
//! Not consistent: any add, removal or weight change retiles the whole table, as in the
//! kernel. Availability and overload only make a bucket's backend refuse the connection.

use crate::request::fold_ip;
use crate::roster::Roster;
use crate::{Backend, BackendId};
use alloc::vec::Vec;
use core::net::SocketAddr;

const NONE: u32 = u32::MAX;
/// The kernel's `GOLDEN_RATIO_32` (`hash_32`, include/linux/hash.h).
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;
/// Knuth's multiplicative constant in ip_vs_dh.c.
const KNUTH: u32 = 2_654_435_761;

#[derive(Clone, Debug)]
pub(crate) struct HashTable {
    /// `32 - bits`: `hash_32` keeps the top `bits` bits of the product.
    shift: u32,
    /// `2^bits - 1`.
    mask: u32,
    buckets: Vec<u32>,
}

impl HashTable {
    pub(crate) fn new(bits: u8) -> Self {
        HashTable {
            shift: 32 - bits as u32,
            mask: (1u32 << bits) - 1,
            buckets: alloc::vec![NONE; 1 << bits],
        }
    }

    /// `ip_vs_sh_reassign`: consecutive buckets per backend in list order, `weight` buckets
    /// each (at least one, so a quiesced backend still holds one), repeating the list until
    /// the table is full.
    pub(crate) fn tile_weighted(&mut self, backends: &[Backend]) {
        self.tile(backends, |b| b.effective_weight.max(1));
    }

    /// `ip_vs_dh_reassign`: one bucket per backend in turn.
    pub(crate) fn tile_even(&mut self, backends: &[Backend]) {
        self.tile(backends, |_| 1);
    }

    fn tile(&mut self, backends: &[Backend], share: impl Fn(&Backend) -> u32) {
        if backends.is_empty() {
            self.buckets.fill(NONE);
            return;
        }
        let (mut pos, mut count) = (0usize, 0u32);
        for bucket in self.buckets.iter_mut() {
            *bucket = pos as u32;
            count += 1;
            if count >= share(&backends[pos]) {
                pos = (pos + 1) % backends.len();
                count = 0;
            }
        }
    }

    /// `ip_vs_sh_hashkey`: `(offset + hash_32(port + addr, bits)) & mask`.
    fn sh_bucket(&self, addr: u32, port: u16, offset: u32) -> usize {
        let h = (port as u32)
            .wrapping_add(addr)
            .wrapping_mul(GOLDEN_RATIO_32)
            >> self.shift;
        (offset.wrapping_add(h) & self.mask) as usize
    }

    /// `ip_vs_sh_get` / `ip_vs_sh_get_fallback`, keyed by the source address (and port with
    /// `sh-port`).
    #[inline]
    pub(crate) fn pick_sh(
        &self,
        roster: &Roster,
        src: &SocketAddr,
        use_port: bool,
        fallback: bool,
    ) -> Option<BackendId> {
        let addr = fold_ip(src);
        let port = if use_port { src.port() } else { 0 };
        let first = self.sh_bucket(addr, port, 0);
        let pos = self.buckets[first];
        if pos == NONE {
            return None;
        }
        if let Some(id) = roster.take(pos as usize) {
            return Some(id);
        }
        if !fallback {
            return None;
        }
        self.sh_fall_back(roster, addr, port, first)
    }

    /// `ip_vs_sh_get_fallback` past the first bucket `first`: out of line, so that the common
    /// pick stays small.
    #[inline(never)]
    fn sh_fall_back(
        &self,
        roster: &Roster,
        addr: u32,
        port: u16,
        first: usize,
    ) -> Option<BackendId> {
        let size = self.buckets.len() as u32;
        for offset in 0..size {
            let roffset = (offset + first as u32) % size;
            let pos = self.buckets[self.sh_bucket(addr, port, roffset)];
            if pos == NONE {
                break;
            }
            if let Some(id) = roster.take(pos as usize) {
                return Some(id);
            }
        }
        None
    }

    /// `ip_vs_dh_get`, keyed by the destination address.
    #[inline]
    pub(crate) fn pick_dh(&self, roster: &Roster, dst: &SocketAddr) -> Option<BackendId> {
        let bucket = fold_ip(dst).wrapping_mul(KNUTH) & self.mask;
        // An empty bucket's `NONE` is past every position: the roster refuses it.
        roster.take(self.buckets[bucket as usize] as usize)
    }

    /// The bucket `sh` reads first for this source, for explanations.
    pub(crate) fn sh_first_bucket(&self, src: &SocketAddr, use_port: bool) -> usize {
        let port = if use_port { src.port() } else { 0 };
        self.sh_bucket(fold_ip(src), port, 0)
    }

    /// The bucket `dh` reads for this destination, for explanations.
    pub(crate) fn dh_bucket(&self, dst: &SocketAddr) -> usize {
        (fold_ip(dst).wrapping_mul(KNUTH) & self.mask) as usize
    }

    /// How many buckets each backend position holds.
    pub(crate) fn bucket_counts(&self, n: usize) -> Vec<u32> {
        let mut counts = alloc::vec![0u32; n];
        for &b in &self.buckets {
            if let Some(c) = counts.get_mut(b as usize) {
                *c += 1;
            }
        }
        counts
    }
}
