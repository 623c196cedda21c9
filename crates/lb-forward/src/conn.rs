//! The connection table: connections in a slab allocated up front, indexed by the 5-tuple of
//! each direction the director sees (client to VIP, and for NAT real to client), with a clock
//! hand that sweeps expired entries a few at a time and picks what to evict when full.

use core::hash::BuildHasher;
use core::time::Duration;

use foldhash::fast::FixedState;

use crate::index::FlowIndex;

use crate::service::Method;
use crate::state::ConnState;
use crate::wire::Family;

/// A 5-tuple packed into five words, so that hashing and comparing it are a few instructions:
/// source address, destination address, then ports, protocol and family.
#[derive(Clone, Copy, Debug, Eq)]
pub(crate) struct FlowKey([u64; 5]);

// Written out: the derived versions treat the array as bytes and call memcmp / hash a slice.
impl PartialEq for FlowKey {
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&self.0, &o.0);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl core::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        let w = &self.0;
        // IPv4 addresses leave words 1 and 3 zero: three words carry the whole key.
        if w[4] & 1 == 0 {
            state.write_u64(w[0]);
            state.write_u64(w[2]);
            state.write_u64(w[4]);
        } else {
            for x in w {
                state.write_u64(*x);
            }
        }
    }
}

impl FlowKey {
    #[inline]
    pub(crate) fn new(
        proto: u8,
        family: Family,
        src: &[u8; 16],
        sport: u16,
        dst: &[u8; 16],
        dport: u16,
    ) -> Self {
        let w = |a: &[u8; 16], i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&a[i..i + 8]);
            u64::from_ne_bytes(b)
        };
        FlowKey([
            w(src, 0),
            w(src, 8),
            w(dst, 0),
            w(dst, 8),
            (u64::from(sport) << 48)
                | (u64::from(dport) << 32)
                | (u64::from(proto) << 8)
                | u64::from(family == Family::V6),
        ])
    }
}

/// One tracked connection. `repr(C)` lays it out by use: the first cache line holds what the
/// lookup compares and what every packet reads or updates except the timer, the second the
/// timer, the service and real ids and the addresses rewrites need; the rest is read only when
/// a connection opens or closes, or for NAT replies.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Conn {
    pub key_in: FlowKey,
    /// Spreads tunnelled flows (GUE source port, IPv6 flow label) on the real's side.
    pub flow_hash: u32,
    /// Where replies to the client go (NAT): the interface the client's frames came from.
    pub client_if: u32,
    pub rport: u16,
    pub vport: u16,
    /// The slot holds a connection (the table's slab keeps dead slots for reuse).
    pub live: bool,
    pub state: ConnState,
    /// No reply seen yet: TCP uses IPVS's INPUT_ONLY table.
    pub no_output: bool,
    /// Counted as active in the scheduler.
    pub active: bool,
    pub method: Method,
    // Second line.
    pub expires: Duration,
    pub service: u32,
    pub service_gen: u32,
    pub real: u32,
    pub real_gen: u32,
    pub raddr: [u8; 16],
    pub vip: [u8; 16],
    // Cold.
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
    hasher: FixedState,
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
            hasher: FixedState::with_seed(seed),
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
        self.hasher.hash_one(key)
    }

    #[inline]
    pub(crate) fn lookup(&self, key: &FlowKey) -> Option<Hit> {
        self.lookup_hashed(key, self.hash(key))
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

    /// Inserts a connection whose `key_in` the caller just looked up in vain, with
    /// `conn.hash_in` set to its hash; `None` when the table is full or the reply key is taken.
    pub(crate) fn insert(&mut self, mut conn: Conn) -> Option<u32> {
        debug_assert_eq!(conn.hash_in, self.hash(&conn.key_in));
        if self.is_full() {
            return None;
        }
        conn.live = true;
        if let Some(out) = conn.key_out {
            conn.hash_out = self.hash(&out);
            if self.lookup_hashed(&out, conn.hash_out).is_some() {
                return None;
            }
        }
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = conn;
                i
            }
            None => {
                // Entries carry the slot shifted left by one.
                let i = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|i| *i < 1 << 31)?;
                self.slots.push(conn);
                i
            }
        };
        self.index.insert(conn.hash_in, index << 1);
        if conn.key_out.is_some() {
            self.index.insert(conn.hash_out, index << 1 | 1);
        }
        self.len += 1;
        Some(index)
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

    /// The next `budget` slots under the clock hand whose connections expired at `now`.
    pub(crate) fn sweep(&mut self, now: Duration, budget: usize, out: &mut impl FnMut(u32)) {
        let n = self.slots.len();
        if n == 0 {
            return;
        }
        for _ in 0..budget.min(n) {
            self.hand = (self.hand + 1) % n;
            let c = &self.slots[self.hand];
            if c.live && c.expires <= now {
                out(self.hand as u32);
            }
        }
    }

    /// A connection the size policy may replace: the first expired or not-established one
    /// among the next few under the clock hand. Established TCP and live UDP flows are kept.
    pub(crate) fn victim(&mut self, now: Duration) -> Option<u32> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        for _ in 0..EVICTION_PROBES.min(n) {
            self.hand = (self.hand + 1) % n;
            let c = &self.slots[self.hand];
            let replaceable =
                c.expires <= now || !matches!(c.state, ConnState::Established | ConnState::Udp);
            if c.live && replaceable {
                return Some(self.hand as u32);
            }
        }
        None
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.live)
            .map(|(i, c)| (i as u32, c))
    }
}
