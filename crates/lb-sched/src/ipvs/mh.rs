//! IPVS `mh` (ip_vs_mh.c): Maglev hashing exactly as the kernel builds and reads it.
//!
//! Each backend's permutation comes from its address and port through the kernel's
//! `hsiphash` with fixed keys; weights become consecutive "turns" per round, reduced by their
//! gcd and shifted so that the largest is below 2^(index/2). Slots follow `last_weight`, so a
//! backend quiesced with weight 0 keeps its slots and only refuses the connection.
//! `hsiphash` is SipHash-1-3 truncated to 32 bits on 64-bit kernels, which this matches.

use super::wrr::gcd;
use crate::algorithm::MH_PRIMES;
use crate::request::{fold_ip, fold_ip_port};
use crate::roster::Roster;
use crate::slots::{Position, Slots};
use crate::{Backend, BackendId};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

const KEY1: u64 = 2_654_435_761;
const KEY2: u64 = 2_654_446_892;

/// `a % d` by multiplication (Lemire, Kaser and Kurz, "Faster remainder by direct
/// computation"): exact for every 32-bit `a` and `d`, given `magic = u64::MAX / d + 1`.
#[derive(Clone, Copy, Debug)]
struct FastMod {
    d: u32,
    magic: u64,
}

impl FastMod {
    fn new(d: u32) -> Self {
        // d >= 2: table sizes are primes of at least 251.
        FastMod {
            d,
            magic: (u64::MAX / d.max(2) as u64).wrapping_add(1),
        }
    }

    #[inline]
    fn rem(self, a: u32) -> u32 {
        let low = self.magic.wrapping_mul(a as u64);
        ((low as u128 * self.d as u128) >> 64) as u32
    }
}

#[derive(Clone, Debug)]
pub(crate) struct MaglevIpvs {
    size: u32,
    modulo: FastMod,
    /// `IP_VS_MH_TAB_BITS`: half the Kconfig index the size comes from.
    weight_bits: u32,
    lookup: Slots,
    /// `0xffff` with the `mh-port` flag (the source port is hashed), else 0.
    port_mask: u16,
    /// The `mh-fallback` flag, read only by the out-of-line fallback walk.
    fallback: bool,
}

/// A backend's walk along its permutation (`ip_vs_mh_dest_setup`).
struct Setup {
    perm: u32,
    skip: u32,
    turns: u32,
}

impl MaglevIpvs {
    /// An empty table of `size` slots, with the `mh-port` and `mh-fallback` flags.
    pub(crate) fn new(size: u32, port: bool, fallback: bool) -> Self {
        let index = MH_PRIMES.iter().position(|&p| p == size).unwrap_or(4) as u32 + 8;
        MaglevIpvs {
            size,
            modulo: FastMod::new(size),
            weight_bits: index / 2,
            lookup: Slots::new(size as usize, 0),
            port_mask: if port { u16::MAX } else { 0 },
            fallback,
        }
    }

    /// `ip_vs_mh_reassign`: permutations, then rounds in which each backend in list order
    /// claims `turns` free slots along its permutation.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        let m = self.size;
        let g = backends
            .iter()
            .map(|b| b.table_weight)
            .filter(|&w| w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        self.lookup = Slots::new(m as usize, backends.len());
        if g == 0 || backends.len() > m as usize {
            return;
        }
        let max = backends.iter().map(|b| b.table_weight).max().unwrap_or(0) / g;
        let fls = 32 - max.leading_zeros();
        let shift = fls.saturating_sub(self.weight_bits);
        let mut setup: Vec<Setup> = backends
            .iter()
            .map(|b| {
                let addr = b.addr.unwrap_or_else(|| default_addr(b));
                let offset = hashkey(fold_ip(&addr), addr.port(), KEY1, 0) % m;
                let skip = hashkey(fold_ip(&addr), addr.port(), KEY2, 0) % (m - 1) + 1;
                let lw = b.table_weight;
                let turns = match (lw / g) >> shift {
                    0 => (lw != 0) as u32,
                    t => t,
                };
                Setup {
                    perm: offset,
                    skip,
                    turns,
                }
            })
            .collect();
        match &mut self.lookup {
            Slots::Narrow(t) => populate(t, &mut setup),
            Slots::Wide(t) => populate(t, &mut setup),
        }
    }
}

/// `ip_vs_mh_populate`: rounds in which each backend in list order claims `turns` free slots
/// along its permutation, until every slot is taken. Some backend has turns.
fn populate<T: Position>(lookup: &mut [T], setup: &mut [Setup]) {
    let m = lookup.len() as u32;
    let mut taken = alloc::vec![false; m as usize];
    let mut filled = 0u32;
    while filled < m {
        for (pos, s) in setup.iter_mut().enumerate() {
            for _ in 0..s.turns {
                while taken[s.perm as usize] {
                    s.perm += s.skip;
                    if s.perm >= m {
                        s.perm -= m;
                    }
                }
                taken[s.perm as usize] = true;
                lookup[s.perm as usize] = T::new(pos);
                filled += 1;
                if filled == m {
                    return;
                }
            }
        }
    }
}

impl MaglevIpvs {
    /// The slot `mh` reads first for this source.
    pub(crate) fn slot(&self, src: &SocketAddr) -> u32 {
        let (folded, port) = fold_ip_port(src);
        hashkey(folded, port & self.port_mask, KEY1, 0) % self.size
    }

    /// `ip_vs_mh_get` / `ip_vs_mh_get_fallback`.
    #[inline]
    pub(crate) fn pick(&self, roster: &Roster, src: &SocketAddr) -> Option<BackendId> {
        // The port is read whatever the flag and masked, instead of a branch on the flag.
        let (folded, port) = fold_ip_port(src);
        let port = port & self.port_mask;
        let first = self.modulo.rem(hashkey(folded, port, KEY1, 0));
        // An empty slot's entry is past every position: the roster refuses it, and so does
        // the fallback walk, which stops at the first empty slot (an empty table has no other).
        let pos = self.lookup.entry(first as usize)?;
        match roster.take(pos) {
            Some(id) => Some(id),
            None => self.fall_back(roster, folded, port, first),
        }
    }

    /// `ip_vs_mh_get_fallback` past the first slot `first` (`None` without the `fallback`
    /// flag): out of line, flag read included, so that the common pick stays small.
    #[inline(never)]
    fn fall_back(&self, roster: &Roster, folded: u32, port: u16, first: u32) -> Option<BackendId> {
        if !self.fallback {
            return None;
        }
        for offset in 0..self.size {
            let roffset = (offset + first) % self.size;
            let slot = self.modulo.rem(hashkey(folded, port, KEY1, roffset));
            let Some(pos) = self.lookup.get(slot as usize) else {
                break;
            };
            if let Some(id) = roster.take(pos) {
                return Some(id);
            }
        }
        None
    }

    /// How many slots each backend position holds.
    pub(crate) fn slot_counts(&self, n: usize) -> Vec<u64> {
        self.lookup.counts(n)
    }
}

/// The address `mh` hashes for a backend without one: 10.0.0.0 plus its id, port 0.
pub(crate) fn default_addr(b: &Backend) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0a00_0000u32.wrapping_add(b.id.0));
    SocketAddr::new(IpAddr::V4(ip), 0)
}

/// `ip_vs_mh_hashkey`: `hsiphash(offset + port + addr_fold)` with both key words equal;
/// `folded` is the address's [`fold_ip`].
#[inline]
fn hashkey(folded: u32, port: u16, key: u64, offset: u32) -> u32 {
    let v = offset.wrapping_add(port as u32).wrapping_add(folded);
    siphash13_u32(v, key, key) as u32
}

/// SipHash-1-3 of the four little-endian bytes of `v` (the kernel hashes the `u32` in host
/// order; the kernels this matches are little-endian).
#[inline]
pub(crate) fn siphash13_u32(v: u32, k0: u64, k1: u64) -> u64 {
    let mut s = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    #[inline(always)]
    fn round(s: &mut [u64; 4]) {
        s[0] = s[0].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(13) ^ s[0];
        s[0] = s[0].rotate_left(32);
        s[2] = s[2].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(16) ^ s[2];
        s[0] = s[0].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(21) ^ s[0];
        s[2] = s[2].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(17) ^ s[2];
        s[2] = s[2].rotate_left(32);
    }
    // One final block: the length (4) in the top byte and the four message bytes.
    let b = (4u64 << 56) | v as u64;
    s[3] ^= b;
    round(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    round(&mut s);
    round(&mut s);
    round(&mut s);
    s[0] ^ s[1] ^ s[2] ^ s[3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::Hasher;

    #[test]
    fn fast_modulo_is_exact() {
        for d in crate::algorithm::MH_PRIMES
            .into_iter()
            .chain([2, 7, 65537, u32::MAX])
        {
            let m = FastMod::new(d);
            for a in [
                0u32,
                1,
                d - 1,
                d,
                d.wrapping_add(1),
                0x8000_0000,
                u32::MAX,
                0xdead_beef,
            ] {
                assert_eq!(m.rem(a), a % d, "{a} % {d}");
            }
        }
    }

    #[test]
    fn siphash13_matches_reference_implementation() {
        for (i, v) in [0u32, 1, 0x0a00_0001, 0xffff_ffff, 0xdead_beef]
            .into_iter()
            .enumerate()
        {
            let k = [KEY1, KEY2, 0x0706_0504_0302_0100][i % 3];
            let mut h = siphasher::sip::SipHasher13::new_with_keys(k, k);
            h.write(&v.to_le_bytes());
            assert_eq!(siphash13_u32(v, k, k), h.finish(), "v={v:#x}");
        }
    }
}
