//! The consistent hashes: ketama ring, weighted Maglev, weighted rendezvous and jump hash, and
//! the bounded-load rule that can wrap any of them.
//!
//! Tables are built from configured membership: every backend in the pool, with its latest
//! non-zero weight (ramped by slow start). Availability, quiescing and overload never rebuild
//! a table; a pick walks the key's own stable fallback sequence to the first backend that
//! accepts it, so a backend going down and up again moves only its own keys.

mod bounded;
mod jump;
mod maglev;
mod rendezvous;
mod ring;

pub use bounded::BoundedLoad;
pub(crate) use jump::{Jump, JumpFunction};
pub(crate) use maglev::Maglev;
pub(crate) use rendezvous::Rendezvous;
pub(crate) use ring::Ring;

use crate::{Algorithm, Backend};
use alloc::vec::Vec;

/// SplitMix64's increment: [`mix64`] of `seed + k * GOLDEN_GAMMA` is its k-th output.
pub(crate) const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A 64-bit mixing function (the SplitMix64 / MurmurHash3 `fmix64` finaliser): every input
/// bit affects every output bit.
#[inline]
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(GOLDEN_GAMMA);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A backend's identity for hashing: its address when it has one, else its id. Stable across
/// rebuilds and independent of its position in the list.
pub(crate) fn backend_key(b: &Backend) -> u64 {
    match b.addr {
        Some(addr) => {
            let ip = match addr.ip() {
                core::net::IpAddr::V4(v4) => u32::from(v4) as u128,
                core::net::IpAddr::V6(v6) => u128::from(v6),
            };
            mix64((ip as u64) ^ mix64((ip >> 64) as u64) ^ ((addr.port() as u64) << 48))
        }
        None => mix64(0x6c62_5f73_6368_6564 ^ b.id.0 as u64),
    }
}

/// One of the consistent hashes, built over a pool's backends.
#[derive(Clone, Debug)]
#[repr(u8)]
pub(crate) enum ConsistentHash {
    Ring(Ring),
    Maglev(Maglev),
    Rendezvous(Rendezvous),
    Jump(Jump),
    JumpClassic(Jump),
}

impl ConsistentHash {
    /// The hash for a consistent-hash [`Algorithm`], or `None` for the others.
    pub(crate) fn new(algorithm: &Algorithm, backends: &[Backend]) -> Option<Self> {
        Some(match *algorithm {
            Algorithm::Ring { points_per_weight } => {
                ConsistentHash::Ring(Ring::new(points_per_weight, backends))
            }
            Algorithm::Maglev { table_size } => {
                ConsistentHash::Maglev(Maglev::new(table_size, backends))
            }
            Algorithm::Rendezvous => ConsistentHash::Rendezvous(Rendezvous::new(backends)),
            Algorithm::Jump => ConsistentHash::Jump(Jump::new(backends)),
            Algorithm::JumpClassic => ConsistentHash::JumpClassic(Jump::new(backends)),
            _ => return None,
        })
    }

    /// Rebuilds after an add, a removal or a weight change. Maglev keeps every slot it can.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        match self {
            ConsistentHash::Ring(h) => h.rebuild(backends),
            ConsistentHash::Maglev(h) => h.rebuild(backends),
            ConsistentHash::Rendezvous(h) => h.rebuild(backends),
            ConsistentHash::Jump(h) | ConsistentHash::JumpClassic(h) => h.rebuild(backends),
        }
    }

    /// Walks the key's fallback sequence and returns what `accept` answers for the first
    /// position it takes (`Some`). The sequence starts at the key's home backend, depends only on the key and the table, and
    /// reaches every backend that holds a share of the table.
    /// `scratch` is an all-zero bitset of at least one bit per backend, left all-zero.
    #[inline]
    pub(crate) fn pick<T>(
        &self,
        backends: &[Backend],
        key: u64,
        scratch: &mut Vec<u64>,
        accept: impl FnMut(usize) -> Option<T>,
    ) -> Option<T> {
        match self {
            ConsistentHash::Ring(h) => h.pick_in(key, scratch, accept),
            ConsistentHash::Maglev(h) => h.pick_in(key, scratch, accept),
            ConsistentHash::Rendezvous(h) => h.pick_in(backends, key, accept),
            ConsistentHash::Jump(h) => h.pick_in(JumpFunction::Back, key, scratch, accept),
            ConsistentHash::JumpClassic(h) => {
                h.pick_in(JumpFunction::Classic, key, scratch, accept)
            }
        }
    }

    /// Each position's share of the hash space, in table slots, ring points or weight.
    pub(crate) fn shares(&self, backends: &[Backend]) -> Vec<u64> {
        match self {
            ConsistentHash::Ring(h) => h.shares(backends.len()),
            ConsistentHash::Maglev(h) => h.shares(backends.len()),
            ConsistentHash::Rendezvous(_)
            | ConsistentHash::Jump(_)
            | ConsistentHash::JumpClassic(_) => {
                backends.iter().map(|b| b.table_weight as u64).collect()
            }
        }
    }
}
