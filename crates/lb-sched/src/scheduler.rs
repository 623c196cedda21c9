//! Dispatch from an [`Algorithm`] to the state its scheduler keeps.

use crate::backend::IdIndex;
use crate::extra::{edf::Edf, random, smooth::Smooth};
use crate::fenwick::WeightSums;
use crate::hash::{BoundedLoad, ConsistentHash};
use crate::ipvs::{
    lblc::{Locality, LocalityConfig},
    mh::MaglevIpvs,
    rr::RoundRobin,
    table::HashTable,
    tournament::{Rule, Tournament},
    twos,
    wrr::WeightedRoundRobin,
};
use crate::roster::Roster;
use crate::{Algorithm, Backend, BackendId, Request};
use alloc::vec::Vec;
use core::time::Duration;
use rand_core::Rng;

/// Tagged with an explicit byte (`repr(u8)`), so a pick dispatches on one load instead of
/// decoding a niche in a variant's fields.
#[derive(Clone, Debug)]
#[repr(u8)]
pub(crate) enum Scheduler {
    Rr(RoundRobin),
    Wrr(WeightedRoundRobin),
    Best(Tournament),
    Locality(Locality),
    Dh(HashTable),
    Sh {
        table: HashTable,
        fallback: bool,
        port: bool,
    },
    /// `mh`, its flags in the table.
    Mh(MaglevIpvs),
    Twos(WeightSums),
    Swrr(Smooth),
    Edf(Edf),
    Random(WeightSums),
    P2c {
        sums: WeightSums,
        choices: u8,
    },
    /// A consistent hash without bounded load: a variant of its own, so that its pick tests
    /// no bound.
    Hash(ConsistentHash),
    BoundedHash {
        hash: ConsistentHash,
        bound: BoundedLoad,
        /// The weight and load totals the bound compares with.
        sums: WeightSums,
    },
}

/// What the pool tells a scheduler about one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Its load counters changed, and whether it takes new connections did not.
    Load,
    /// Its load counters or thresholds changed, and so did its overload flag.
    Overload,
    /// Its availability changed.
    Availability,
}

impl Scheduler {
    /// IPVS `init_service`: the scheduler's state for the backends present at creation.
    pub(crate) fn new(
        algorithm: &Algorithm,
        locality: LocalityConfig,
        bounded: Option<BoundedLoad>,
        backends: &[Backend],
    ) -> Self {
        let best = |rule| Scheduler::Best(Tournament::new(rule, backends));
        match *algorithm {
            Algorithm::Rr => Scheduler::Rr(RoundRobin::default()),
            Algorithm::Wrr => Scheduler::Wrr(WeightedRoundRobin::new(backends)),
            Algorithm::Lc => best(Rule::Lc),
            Algorithm::Wlc => best(Rule::Wlc),
            Algorithm::Sed => best(Rule::Sed),
            Algorithm::Nq => best(Rule::Nq),
            Algorithm::Fo => best(Rule::Fo),
            Algorithm::Ovf => best(Rule::Ovf),
            Algorithm::Lblc => Scheduler::Locality(Locality::new(false, locality, backends)),
            Algorithm::Lblcr => Scheduler::Locality(Locality::new(true, locality, backends)),
            Algorithm::Dh { table_bits } => {
                let mut table = HashTable::new(table_bits);
                table.tile_even(backends);
                Scheduler::Dh(table)
            }
            Algorithm::Sh {
                fallback,
                port,
                table_bits,
            } => {
                let mut table = HashTable::new(table_bits);
                table.tile_weighted(backends);
                Scheduler::Sh {
                    table,
                    fallback,
                    port,
                }
            }
            Algorithm::Mh {
                fallback,
                port,
                table_size,
            } => {
                let mut table = MaglevIpvs::new(table_size, port, fallback);
                table.rebuild(backends);
                Scheduler::Mh(table)
            }
            Algorithm::Twos => Scheduler::Twos(WeightSums::new(backends)),
            Algorithm::Swrr => Scheduler::Swrr(Smooth::new(backends)),
            Algorithm::Edf => Scheduler::Edf(Edf::new(backends)),
            Algorithm::Random => Scheduler::Random(WeightSums::new(backends)),
            Algorithm::P2c { choices } => Scheduler::P2c {
                sums: WeightSums::new(backends),
                choices,
            },
            Algorithm::Ring { .. }
            | Algorithm::Maglev { .. }
            | Algorithm::Rendezvous
            | Algorithm::Jump
            | Algorithm::JumpClassic => match ConsistentHash::new(algorithm, backends) {
                Some(hash) => match bounded {
                    None => Scheduler::Hash(hash),
                    Some(bound) => Scheduler::BoundedHash {
                        hash,
                        bound,
                        sums: WeightSums::new(backends),
                    },
                },
                None => Scheduler::Rr(RoundRobin::default()),
            },
        }
    }

    /// IPVS `add_dest` / `upd_dest` / `del_dest`: membership or weights changed.
    pub(crate) fn weights_changed(&mut self, backends: &[Backend]) {
        match self {
            Scheduler::Rr(_) => {}
            Scheduler::Wrr(s) => s.changed(backends),
            Scheduler::Best(t) => t.rebuild(backends),
            Scheduler::Locality(l) => l.rebuild(backends),
            Scheduler::Dh(t) => t.tile_even(backends),
            Scheduler::Sh { table, .. } => table.tile_weighted(backends),
            Scheduler::Mh(table) => table.rebuild(backends),
            Scheduler::Twos(s) | Scheduler::Random(s) | Scheduler::P2c { sums: s, .. } => {
                s.rebuild(backends)
            }
            Scheduler::Swrr(s) => s.rebuild(backends),
            Scheduler::Edf(s) => s.rebuild(backends),
            Scheduler::Hash(hash) => hash.rebuild(backends),
            Scheduler::BoundedHash { hash, sums, .. } => {
                hash.rebuild(backends);
                sums.rebuild(backends);
            }
        }
    }

    /// One backend's load, overload flag or availability changed. Tables do not move: the
    /// backend just accepts or refuses connections.
    #[inline]
    pub(crate) fn changed(&mut self, backends: &[Backend], pos: usize, change: Change) {
        match self {
            Scheduler::Wrr(s) if change != Change::Load => s.refresh(backends, pos),
            Scheduler::Best(t) => t.update(backends, pos),
            Scheduler::Locality(l) => l.update(backends, pos),
            Scheduler::Twos(s) | Scheduler::Random(s) | Scheduler::P2c { sums: s, .. } => {
                s.update(backends, pos)
            }
            Scheduler::BoundedHash { sums, .. } => sums.update(backends, pos),
            Scheduler::Swrr(s) if change == Change::Availability => s.rebuild(backends),
            Scheduler::Edf(s) if change == Change::Availability => s.rebuild(backends),
            _ => {}
        }
    }

    /// A backend is about to leave position `pos` (its id is `id`).
    pub(crate) fn removing(&mut self, pos: usize, id: BackendId) {
        match self {
            Scheduler::Rr(s) => s.removed(pos),
            Scheduler::Locality(l) => l.removed(id),
            _ => {}
        }
    }

    /// Collects `lblc` / `lblcr` cache entries.
    pub(crate) fn expire(&mut self, now: Duration) {
        if let Scheduler::Locality(l) = self {
            l.expire(now);
        }
    }

    /// The chosen backend's id. `roster` describes `backends`. `scratch`: an all-zero bitset
    /// of one bit per backend for the consistent hashes' fallback walks, so that no pick
    /// allocates; it is left all-zero.
    ///
    /// The table and hash arms answer with [`Roster::take`], so that the check that a backend
    /// is schedulable and the read of its id are one load.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pick(
        &mut self,
        backends: &[Backend],
        roster: &Roster,
        index: &IdIndex,
        req: &Request,
        now: Duration,
        rng: &mut dyn Rng,
        scratch: &mut Vec<u64>,
    ) -> Option<BackendId> {
        let id = |pos: usize| roster.id(pos);
        match self {
            Scheduler::Rr(s) => s.pick(roster, backends.len()).map(id),
            Scheduler::Wrr(s) => s.pick(backends, roster).map(id),
            Scheduler::Best(t) => t.pick().map(id),
            Scheduler::Locality(l) => l.pick(backends, index, req.dst.ip(), now).map(id),
            Scheduler::Twos(sums) => twos::pick(backends, sums, rng).map(id),
            Scheduler::Swrr(s) => s.pick(backends, roster).map(id),
            Scheduler::Edf(s) => s.pick(backends).map(id),
            Scheduler::Random(sums) => random::weighted(sums, rng).map(id),
            Scheduler::P2c { sums, choices } => {
                random::power_of_choices(backends, sums, *choices, rng).map(id)
            }
            // The arms of `lookup`, repeated so that a pick dispatches once.
            Scheduler::Dh(t) => t.pick_dh(roster, &req.dst),
            Scheduler::Sh {
                table,
                fallback,
                port,
            } => table.pick_sh(roster, &req.src, *port, *fallback),
            Scheduler::Mh(table) => table.pick(roster, &req.src),
            Scheduler::Hash(hash) => {
                hash.pick(backends, req.hash_key(), scratch, |pos| roster.take(pos))
            }
            Scheduler::BoundedHash { hash, bound, sums } => {
                Self::pick_bounded(hash, bound, sums, backends, roster, req.hash_key(), scratch)
            }
        }
    }

    /// A bounded-load hash's pick: the key's fallback sequence to the first schedulable
    /// backend the bound admits.
    #[inline]
    fn pick_bounded(
        hash: &ConsistentHash,
        bound: &BoundedLoad,
        sums: &WeightSums,
        backends: &[Backend],
        roster: &Roster,
        key: u64,
        scratch: &mut Vec<u64>,
    ) -> Option<BackendId> {
        let (total_load, total_weight) = (sums.total_load(), sums.total());
        hash.pick(backends, key, scratch, |pos| {
            roster.take(pos).filter(|_| {
                let b = &backends[pos];
                bound.admits(
                    b.load.outstanding(),
                    b.effective_weight,
                    total_load,
                    total_weight,
                )
            })
        })
    }

    /// Where a hashing algorithm sends this request now, without changing any state; `None`
    /// for algorithms whose choice depends on their history or on chance.
    #[inline]
    pub(crate) fn lookup(
        &self,
        backends: &[Backend],
        roster: &Roster,
        req: &Request,
        scratch: &mut Vec<u64>,
    ) -> Option<Option<BackendId>> {
        Some(match self {
            Scheduler::Dh(t) => t.pick_dh(roster, &req.dst),
            Scheduler::Sh {
                table,
                fallback,
                port,
            } => table.pick_sh(roster, &req.src, *port, *fallback),
            Scheduler::Mh(table) => table.pick(roster, &req.src),
            Scheduler::Hash(hash) => {
                hash.pick(backends, req.hash_key(), scratch, |pos| roster.take(pos))
            }
            Scheduler::BoundedHash { hash, bound, sums } => {
                Self::pick_bounded(hash, bound, sums, backends, roster, req.hash_key(), scratch)
            }
            _ => return None,
        })
    }
}
