//! The connection table: connections in a slab allocated up front, indexed by the 5-tuple of
//! each direction the director sees (client to VIP, and for NAT real to client), with a clock
//! hand that sweeps expired entries a few at a time and picks what to evict when full.

use crate::DropReason;
use crate::index::FlowIndex;

use crate::service::Method;
use crate::state::ConnState;
use crate::wire::{Family, Ip};

/// A 5-tuple packed into five words, so that hashing and comparing it are a few instructions:
/// source address, destination address, then ports, protocol and family (the lowest bit:
/// IPv6).
#[derive(Clone, Copy, Debug, Eq)]
pub(crate) struct FlowKey([u64; 5]);

// Written out: the derived version treats the array as bytes and calls memcmp.
impl PartialEq for FlowKey {
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&self.0, &o.0);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

/// The 128-bit product's halves xored: every input bit reaches the upper bits the index
/// uses (foldhash's and wyhash's mixing step).
#[inline(always)]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The 5-tuple hash of the connection index, with seeds drawn from the table's seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlowHasher([u64; 4]);

impl FlowHasher {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64: four well-spread words from one.
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        FlowHasher([next(), next(), next(), next()])
    }

    /// The key's hash: two (IPv4) or three (IPv6) independent folded multiplies xored, so the
    /// index's probe waits on one multiply's latency only.
    ///
    /// Each multiply's factors both hold both words of its pair (the other one rotated), so
    /// bits that vary in either word vary in both factors: the product is then not linear in
    /// them (a single multiply by a fixed factor spreads a run of addresses or ports badly
    /// for some seeds). Two keys give the same factors only if they differ in every bit of
    /// both words (rotations by 32 and 31 compose to 63), whatever the seed; two IPv4 keys
    /// never do, as their family bits are equal.
    #[inline(always)]
    pub(crate) fn hash(&self, key: &FlowKey) -> u64 {
        let (w, s) = (&key.0, &self.0);
        let pair = |x: u64, y: u64, a: u64, b: u64| {
            fold_mul(x ^ y.rotate_left(32) ^ a, y ^ x.rotate_left(31) ^ b)
        };
        if w[4] & 1 == 0 {
            // IPv4 leaves words 1 and 3 zero; words 0 and 2 hold an address in one half each
            // (whichever the byte order), so the rotation puts them side by side. Two pairs,
            // the second with the words swapped: one alone left runs of client ports at
            // 0.96 of a uniform hash's spread for some seeds.
            // Written out as pair(addrs, w[4], s[0], s[1]) ^ pair(w[4], addrs, s[2], s[3])
            // with addrs = w[0] ^ w[2].rotate_left(32), the rotations of addrs distributed,
            // so each factor is a shallow tree rather than a chain after the address loads.
            let (a, b, t) = (w[0], w[2], w[4]);
            let f = (a ^ b.rotate_left(32)) ^ (t.rotate_left(32) ^ s[0]);
            let g = (t ^ s[1]) ^ (a.rotate_left(31) ^ b.rotate_left(63));
            let h = (t ^ s[2]) ^ (a.rotate_left(32) ^ b);
            let k = (a ^ b.rotate_left(32)) ^ (t.rotate_left(31) ^ s[3]);
            fold_mul(f, g) ^ fold_mul(h, k)
        } else {
            // Ports into the low bits, where a multiply spreads them over the whole product.
            let tail = w[4].rotate_right(32) ^ s[1];
            pair(w[0], w[1], s[0], s[2]) ^ pair(w[2], w[3], s[3], s[1]) ^ pair(tail, 0, s[2], s[3])
        }
    }
}

/// The 8 bytes of `b` at `i` as a native-order word (one load).
#[inline(always)]
fn word(b: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes([
        b[i],
        b[i + 1],
        b[i + 2],
        b[i + 3],
        b[i + 4],
        b[i + 5],
        b[i + 6],
        b[i + 7],
    ])
}

impl FlowKey {
    /// The key of a parsed packet, its addresses read as words from the frame itself (where
    /// `ip` was parsed) rather than from `ip`'s copies: a spilled copy may have been stored
    /// in pieces that cannot be forwarded to word loads, a stall just before the hash.
    #[inline(always)]
    pub(crate) fn of_packet(frame: &[u8], ip: &Ip, proto: u8, sport: u16, dport: u16) -> Self {
        let tail = Self::tail(proto, ip.family, sport, dport);
        // Both addresses, contiguous in either family; the parse checked these bytes.
        let at = ip.src_at();
        match (ip.family, frame.get(at..at + 2 * ip.family.addr_len())) {
            (Family::V4, Some(a)) => {
                let v4 =
                    |i: usize| u64::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3], 0, 0, 0, 0]);
                FlowKey([v4(0), 0, v4(4), 0, tail])
            }
            (Family::V6, Some(a)) => {
                FlowKey([word(a, 0), word(a, 8), word(a, 16), word(a, 24), tail])
            }
            _ => FlowKey::new(proto, ip.family, &ip.src, sport, &ip.dst, dport),
        }
    }

    /// Word 4: ports, protocol and family.
    #[inline(always)]
    fn tail(proto: u8, family: Family, sport: u16, dport: u16) -> u64 {
        (u64::from(sport) << 48)
            | (u64::from(dport) << 32)
            | (u64::from(proto) << 8)
            | u64::from(family == Family::V6)
    }

    #[inline]
    pub(crate) fn new(
        proto: u8,
        family: Family,
        src: &[u8; 16],
        sport: u16,
        dst: &[u8; 16],
        dport: u16,
    ) -> Self {
        FlowKey([
            word(src, 0),
            word(src, 8),
            word(dst, 0),
            word(dst, 8),
            Self::tail(proto, family, sport, dport),
        ])
    }
}

/// One tracked connection. `repr(C)` lays it out by use: the first cache line holds what the
/// lookup compares and what every packet reads or updates except the timer, including the
/// cached route; the second the timer, the service and real ids and what rewrites to the real
/// need; the rest is read only when a connection opens or closes, or for NAT replies. The
/// alignment makes those two groups two cache lines: unaligned, every other connection
/// straddled three.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Conn {
    pub key_in: FlowKey,
    /// Spreads tunnelled flows (GUE source port, IPv6 flow label) on the real's side.
    pub flow_hash: u32,
    /// The cached route below is valid while this equals the forwarder's `route_gen`, which
    /// every change of services, reals, next hops or interfaces bumps: then the real is live
    /// and a packet to it needs no other lookup.
    pub route_gen: u32,
    /// The next hop's MAC.
    pub nh_mac: [u8; 6],
    /// The egress interface's position in the forwarder's interface list.
    pub egress: u16,
    pub rport: u16,
    pub vport: u16,
    /// The slot holds a connection (the table's slab keeps dead slots for reuse).
    pub live: bool,
    pub state: ConnState,
    /// No reply seen yet: TCP uses IPVS's INPUT_ONLY table.
    pub no_output: bool,
    /// Counted as active in the scheduler.
    pub active: bool,
    // Second line.
    /// When it expires, in nanoseconds of the forwarder's clock (`service::nanos`).
    pub expires: u64,
    pub method: Method,
    pub service: u32,
    pub service_gen: u32,
    pub real: u32,
    pub real_gen: u32,
    pub raddr: [u8; 16],
    /// The real clamps the MSS of SYNs (cached with the route).
    pub clamp: bool,
    // Cold.
    pub vip: [u8; 16],
    /// Where replies to the client go (NAT): the interface the client's frames came from.
    pub client_if: u32,
    /// The MAC the client's frames came from (NAT replies go back to it).
    pub client_mac: [u8; 6],
    pub family: Family,
    pub proto: u8,
    pub cport: u16,
    /// The reply tuple (real to client), indexed for NAT only.
    pub key_out: Option<FlowKey>,
    /// The hashes the index filed the keys under (set by [`ConnTable::insert`]).
    pub hash_in: u64,
    pub hash_out: u64,
    pub client: [u8; 16],
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub index: u32,
    /// The packet travels real to client.
    pub reply: bool,
}

pub(crate) struct ConnTable {
    /// Connections by index; dead ones (`live == false`) are on the free list.
    slots: Vec<Conn>,
    free: Vec<u32>,
    /// Entries are `slot << 1 | reply`.
    index: FlowIndex,
    hasher: FlowHasher,
    capacity: usize,
    len: usize,
    hand: usize,
}

/// Entries examined for a victim when the table is full.
const EVICTION_PROBES: usize = 64;

impl ConnTable {
    pub(crate) fn new(capacity: usize, seed: u64) -> Self {
        ConnTable {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            // Two keys per NAT connection.
            index: FlowIndex::new(capacity * 2),
            hasher: FlowHasher::new(seed),
            capacity,
            len: 0,
            hand: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    #[inline]
    pub(crate) fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash(key)
    }

    #[inline]
    pub(crate) fn lookup(&self, key: &FlowKey) -> Option<Hit> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// Prefetches the index slot a lookup of `hash` reads first.
    #[inline]
    pub(crate) fn prefetch_index(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// Prefetches the hot lines (the first two) of the connection a lookup of `hash` most
    /// likely finds; best after [`prefetch_index`](Self::prefetch_index) had time to land.
    #[inline]
    pub(crate) fn prefetch_conn(&self, hash: u64) {
        if let Some(c) = self
            .index
            .first_tagged(hash)
            .and_then(|e| self.slots.get((e >> 1) as usize))
        {
            crate::prefetch::prefetch(c);
            crate::prefetch::prefetch(&c.expires);
        }
    }

    /// [`lookup`](Self::lookup) with the key's [`hash`](Self::hash) already computed.
    #[inline]
    pub(crate) fn lookup_hashed(&self, key: &FlowKey, hash: u64) -> Option<Hit> {
        let entry = self.index.find(hash, |e| {
            let Some(c) = self.slots.get((e >> 1) as usize).filter(|c| c.live) else {
                return false;
            };
            if e & 1 == 0 {
                c.key_in == *key
            } else {
                c.key_out.as_ref() == Some(key)
            }
        })?;
        Some(Hit {
            index: entry >> 1,
            reply: entry & 1 == 1,
        })
    }

    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&Conn> {
        self.slots.get(index as usize).filter(|c| c.live)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut Conn> {
        self.slots.get_mut(index as usize).filter(|c| c.live)
    }

    /// Inserts a copy of a connection whose `key_in` the caller just looked up in vain, with
    /// `conn.hash_in` set to its hash; why not when the table is full or the reply key is
    /// another connection's. By reference: the connection is copied once, into its slot.
    #[inline]
    pub(crate) fn insert(&mut self, conn: &Conn) -> Result<u32, DropReason> {
        debug_assert_eq!(conn.hash_in, self.hash(&conn.key_in));
        if self.is_full() {
            return Err(DropReason::TableFull);
        }
        let hash_out = match &conn.key_out {
            Some(out) => {
                let h = self.hash(out);
                if self.lookup_hashed(out, h).is_some() {
                    return Err(DropReason::ReplyTupleTaken);
                }
                Some(h)
            }
            None => None,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = *conn;
                i
            }
            None => {
                // Entries carry the slot shifted left by one.
                let i = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|i| *i < 1 << 31)
                    .ok_or(DropReason::TableFull)?;
                self.slots.push(*conn);
                i
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.live = true;
        self.index.insert(conn.hash_in, index << 1);
        if let Some(h) = hash_out {
            slot.hash_out = h;
            self.index.insert(h, index << 1 | 1);
        }
        self.len += 1;
        Ok(index)
    }

    /// Removes a connection; the reference shows it as it was until the slot is reused.
    pub(crate) fn remove(&mut self, index: u32) -> Option<&Conn> {
        let slot = self.slots.get_mut(index as usize).filter(|c| c.live)?;
        slot.live = false;
        let conn = &self.slots[index as usize];
        self.index.remove(conn.hash_in, index << 1);
        if conn.key_out.is_some() {
            self.index.remove(conn.hash_out, index << 1 | 1);
        }
        self.free.push(index);
        self.len -= 1;
        Some(conn)
    }

    /// Moves the clock hand to the next of `n` slots (a compare, not a division).
    #[inline]
    fn advance_hand(&mut self, n: usize) {
        self.hand += 1;
        if self.hand >= n {
            self.hand = 0;
        }
    }

    /// The next `budget` slots under the clock hand whose connections expired at `now`.
    pub(crate) fn sweep(&mut self, now: u64, budget: usize, out: &mut impl FnMut(u32)) {
        let n = self.slots.len();
        if n == 0 {
            return;
        }
        for _ in 0..budget.min(n) {
            self.advance_hand(n);
            let c = &self.slots[self.hand];
            if c.live && c.expires <= now {
                out(self.hand as u32);
            }
        }
    }

    /// A connection the size policy may replace: the first expired or not-established one
    /// among the next few under the clock hand. Established TCP and live UDP flows are kept.
    pub(crate) fn victim(&mut self, now: u64) -> Option<u32> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        for _ in 0..EVICTION_PROBES.min(n) {
            self.advance_hand(n);
            let c = &self.slots[self.hand];
            let replaceable =
                c.expires <= now || !matches!(c.state, ConnState::Established | ConnState::Udp);
            if c.live && replaceable {
                return Some(self.hand as u32);
            }
        }
        None
    }

    /// Invalidates every cached route (when the route generation wraps around).
    pub(crate) fn forget_routes(&mut self) {
        for c in &mut self.slots {
            c.route_gen = 0;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.live)
            .map(|(i, c)| (i as u32, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hot_fields_fill_the_first_two_lines() {
        assert_eq!(core::mem::align_of::<Conn>(), 64);
        assert_eq!(core::mem::offset_of!(Conn, expires), 64);
        assert!(core::mem::offset_of!(Conn, clamp) < 128);
        assert_eq!(core::mem::size_of::<Conn>(), 256);
    }

    /// Distinct slots among `keys` placed by the index's home bits (33 and up) in a table of
    /// `slots` with a hasher of `seed`, against what uniform hashing gives on average.
    fn spread(keys: &[FlowKey], seed: u64, slots: usize) -> (usize, f64) {
        let h = FlowHasher::new(seed);
        let homes: HashSet<u64> = keys
            .iter()
            .map(|k| (h.hash(k) >> 33) & (slots as u64 - 1))
            .collect();
        let (n, m) = (keys.len() as f64, slots as f64);
        (homes.len(), m * (1.0 - (1.0 - 1.0 / m).powf(n)))
    }

    /// The key read from the frame equals the key built from the parsed addresses.
    #[test]
    fn packet_key_matches_the_parsed_addresses() {
        for (src, dst) in [
            ("10.1.2.3:4000", "10.0.0.100:80"),
            ("[fd01::1:2]:4000", "[fd00::100]:443"),
        ] {
            let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
            let frame = crate::testing::tcp([2; 6], [4; 6], src, dst, crate::testing::ACK, b"");
            let pkt = crate::wire::parse(&frame).unwrap().unwrap();
            let ip = &pkt.ip;
            let want = FlowKey::new(6, ip.family, &ip.src, src.port(), &ip.dst, dst.port());
            let got = FlowKey::of_packet(&frame, ip, 6, src.port(), dst.port());
            assert_eq!(got.0, want.0);
        }
    }

    fn v4(a: u32) -> [u8; 16] {
        u128::from(u32::from_le_bytes(a.to_be_bytes())).to_le_bytes()
    }

    #[test]
    fn hash_spreads_structured_keys() {
        let vip = v4(0x0a00_0064);
        let by_port: Vec<FlowKey> = (0..4096u16)
            .map(|p| FlowKey::new(6, Family::V4, &v4(0x0a01_0001), 10_000 + p, &vip, 80))
            .collect();
        let by_addr: Vec<FlowKey> = (0..4096u32)
            .map(|a| FlowKey::new(17, Family::V4, &v4(0x0a01_0000 + a), 5353, &vip, 53))
            .collect();
        let by_v6: Vec<FlowKey> = (0..4096u16)
            .map(|i| {
                let mut src = [0xfd; 16];
                src[14..].copy_from_slice(&i.to_be_bytes());
                FlowKey::new(6, Family::V6, &src, 40_000, &[0xfe; 16], 443)
            })
            .collect();
        for keys in [&by_port, &by_addr, &by_v6] {
            let (got, uniform) = spread(keys, 0x5eed, 16384);
            assert!(
                got as f64 > 0.97 * uniform,
                "{got} homes, uniform {uniform:.0}"
            );
        }
    }

    /// Runs of keys a director sees, varying in one field: the client's address (IPv4 in
    /// steps of 1, 256 and 4096, so in its last, third and second bytes; IPv6 in its last
    /// bytes, at the start of its interface identifier and at the end of its prefix), the
    /// client's port, or the server's port. Each spreads about as a uniform hash would for
    /// every seed tried.
    #[test]
    fn hash_spreads_structured_keys_for_any_seed() {
        let vip4 = v4(0x0a00_0064);
        let v4_key = move |step: u32, sport: u16, dport: u16| {
            FlowKey::new(6, Family::V4, &v4(0x0a01_0000 + step), sport, &vip4, dport)
        };
        let v6_key = |at: usize, i: u16, sport: u16, dport: u16| {
            let mut src = [0xfd; 16];
            if at < 16 {
                src[at..at + 2].copy_from_slice(&i.to_be_bytes());
            }
            FlowKey::new(6, Family::V6, &src, sport, &[0xfe; 16], dport)
        };
        type Run = Box<dyn Fn(u16) -> FlowKey>;
        let runs: Vec<(&str, Run)> = vec![
            (
                "v4 address +1",
                Box::new(move |i| v4_key(u32::from(i), 40_000, 80)),
            ),
            (
                "v4 address +256",
                Box::new(move |i| v4_key(u32::from(i) << 8, 40_000, 80)),
            ),
            (
                "v4 address +4096",
                Box::new(move |i| v4_key(u32::from(i) << 12, 40_000, 80)),
            ),
            (
                "v4 client port",
                Box::new(move |i| v4_key(1, 10_000 + i, 80)),
            ),
            (
                "v4 server port",
                Box::new(move |i| v4_key(1, 40_000, 1 + i)),
            ),
            ("v6 bytes 14", Box::new(move |i| v6_key(14, i, 40_000, 443))),
            ("v6 bytes 8", Box::new(move |i| v6_key(8, i, 40_000, 443))),
            ("v6 bytes 6", Box::new(move |i| v6_key(6, i, 40_000, 443))),
            ("v6 bytes 0", Box::new(move |i| v6_key(0, i, 40_000, 443))),
            (
                "v6 client port",
                Box::new(move |i| v6_key(16, 0, 10_000 + i, 443)),
            ),
            (
                "v6 server port",
                Box::new(move |i| v6_key(16, 0, 40_000, 1 + i)),
            ),
        ];
        for (name, key) in &runs {
            let keys: Vec<FlowKey> = (0..4096u16).map(key).collect();
            for seed in 0..16 {
                let (got, uniform) = spread(&keys, seed, 16384);
                assert!(
                    got as f64 > 0.95 * uniform,
                    "{name}: {got} homes for seed {seed}, uniform {uniform:.0}"
                );
            }
        }
    }
}
