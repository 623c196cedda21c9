//! A pool of backends under one algorithm: the IPVS "virtual service" without the packets.

use crate::backend::IdIndex;
use crate::hash::BoundedLoad;
use crate::ipvs::lblc::LocalityConfig;
use crate::persistence::Templates;
use crate::roster::Roster;
use crate::scheduler::{Change, Scheduler};
use crate::{
    Algorithm, Availability, Backend, BackendId, Error, Persistence, Request, SlowStart, Thresholds,
};
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;
use rand_core::Rng;

/// How a pool schedules: the algorithm and the optional layers around it.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// The scheduling algorithm.
    pub algorithm: Algorithm,
    /// Client persistence (IPVS `-p`), checked before the algorithm.
    pub persistence: Option<Persistence>,
    /// Weight ramp for backends that join or recover.
    pub slow_start: Option<SlowStart>,
    /// Load bound for the consistent hashes.
    pub bounded_load: Option<BoundedLoad>,
    /// Cache collection settings for `lblc` and `lblcr`.
    pub locality: LocalityConfig,
}

impl PoolConfig {
    /// The algorithm alone.
    pub fn new(algorithm: Algorithm) -> Self {
        PoolConfig {
            algorithm,
            persistence: None,
            slow_start: None,
            bounded_load: None,
            locality: LocalityConfig::default(),
        }
    }

    /// Adds persistence.
    pub fn with_persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = Some(persistence);
        self
    }

    /// Adds slow start.
    pub fn with_slow_start(mut self, slow_start: SlowStart) -> Self {
        self.slow_start = Some(slow_start);
        self
    }

    /// Bounds the load of a consistent hash.
    pub fn with_bounded_load(mut self, bounded: BoundedLoad) -> Self {
        self.bounded_load = Some(bounded);
        self
    }
}

/// The state of a connection, for the load counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Established: counts in `active`.
    Active,
    /// Not established or closing: counts in `inactive`.
    Inactive,
}

/// Backends in list order, the algorithm's state, and the persistence templates.
///
/// The list order matters: IPVS schedulers break ties and walk tables in it. Positions shift
/// when a backend is removed; [`BackendId`]s never do.
#[derive(Clone, Debug)]
pub struct Pool {
    config: PoolConfig,
    backends: Vec<Backend>,
    /// The backends' ids and schedulable flags, packed for the pick path.
    roster: Roster,
    index: IdIndex,
    scheduler: Scheduler,
    templates: Option<Templates>,
    /// A bitset of one bit per backend for the consistent hashes' fallback walks.
    scratch: Vec<u64>,
    /// Backends in a slow-start ramp, and when their weights are next recomputed.
    ramping: usize,
    next_ramp: Duration,
    /// Persistence is on or a backend is ramping: a pick takes [`Pool::pick_with_upkeep`].
    upkeep: bool,
}

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Result<Self, Error> {
        Self::with_backends(config, [])
    }

    /// A pool created with these backends at once, as IPVS initialises a scheduler on a
    /// service that already has real servers (`wrr` then starts its first pass at the largest
    /// weight; adding them one by one starts where the last pass left off).
    pub fn with_backends(
        config: PoolConfig,
        backends: impl IntoIterator<Item = Backend>,
    ) -> Result<Self, Error> {
        config.algorithm.validate()?;
        if config.bounded_load.is_some() && !config.algorithm.is_consistent_hash() {
            return Err(Error::BoundedLoadNeedsHash(config.algorithm.name()));
        }
        let backends = backends.into_iter();
        let mut list = Vec::with_capacity(backends.size_hint().0);
        let mut index = IdIndex::default();
        index.reserve(backends.size_hint().0);
        for mut b in backends {
            if index.insert(b.id, list.len()).is_some() {
                return Err(Error::DuplicateBackend(b.id));
            }
            b.ramp_since = None;
            b.effective_weight = b.weight;
            b.table_weight = b.last_weight;
            b.overloaded = false;
            list.push(b);
        }
        check_capacity(&config.algorithm, list.len())?;
        let scheduler = Scheduler::new(
            &config.algorithm,
            config.locality,
            config.bounded_load,
            &list,
        );
        Ok(Pool {
            scratch: alloc::vec![0; list.len().div_ceil(64)],
            templates: config.persistence.map(Templates::new),
            roster: Roster::new(&list),
            backends: list,
            index,
            scheduler,
            ramping: 0,
            next_ramp: Duration::ZERO,
            upkeep: config.persistence.is_some(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.config.algorithm
    }

    /// The backends in list order.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// One backend.
    pub fn backend(&self, id: BackendId) -> Option<&Backend> {
        self.index.get(&id).map(|&pos| &self.backends[pos])
    }

    /// A backend's position in the list.
    pub fn position(&self, id: BackendId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// The number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the pool has no backends.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Appends a backend to the list. With slow start, a backend joining a non-empty pool
    /// ramps up from `now`.
    pub fn add(&mut self, mut backend: Backend, now: Duration) -> Result<(), Error> {
        if self.index.contains_key(&backend.id) {
            return Err(Error::DuplicateBackend(backend.id));
        }
        check_capacity(&self.config.algorithm, self.backends.len() + 1)?;
        backend.overloaded = false;
        backend.ramp_since = None;
        let ramp = !self.backends.is_empty() && backend.availability == Availability::Up;
        self.index.insert(backend.id, self.backends.len());
        self.backends.push(backend);
        self.scratch.resize(self.backends.len().div_ceil(64), 0);
        let pos = self.backends.len() - 1;
        if ramp {
            self.start_ramp(pos, now);
        }
        self.apply_ramp(pos, now);
        self.roster.rebuild(&self.backends);
        self.scheduler.weights_changed(&self.backends);
        Ok(())
    }

    /// Removes a backend; the ones after it move up one position.
    pub fn remove(&mut self, id: BackendId) -> Result<Backend, Error> {
        let pos = self.index.remove(&id).ok_or(Error::UnknownBackend(id))?;
        self.scheduler.removing(pos, id);
        let backend = self.backends.remove(pos);
        if backend.ramp_since.is_some() {
            self.ramping -= 1;
            self.refresh_upkeep();
        }
        for (i, b) in self.backends.iter().enumerate().skip(pos) {
            self.index.insert(b.id, i);
        }
        self.roster.rebuild(&self.backends);
        if let Some(t) = &mut self.templates {
            t.removed(id);
        }
        self.scheduler.weights_changed(&self.backends);
        Ok(backend)
    }

    /// Sets a backend's weight; 0 quiesces it (existing connections and persistence continue,
    /// no new connections).
    pub fn set_weight(&mut self, id: BackendId, weight: u32, now: Duration) -> Result<(), Error> {
        let pos = self.pos(id)?;
        self.backends[pos].set_weight(weight);
        self.apply_ramp(pos, now);
        self.scheduler.weights_changed(&self.backends);
        Ok(())
    }

    /// Sets a backend's availability. With slow start, a backend coming back up ramps up from
    /// `now`.
    pub fn set_availability(
        &mut self,
        id: BackendId,
        availability: Availability,
        now: Duration,
    ) -> Result<(), Error> {
        let pos = self.pos(id)?;
        let was = self.backends[pos].availability;
        if was == availability {
            return Ok(());
        }
        self.backends[pos].availability = availability;
        self.roster.refresh(&self.backends, pos);
        if availability == Availability::Up && self.start_ramp(pos, now) {
            self.apply_ramp(pos, now);
            self.scheduler.weights_changed(&self.backends);
        }
        self.scheduler
            .changed(&self.backends, pos, Change::Availability);
        Ok(())
    }

    /// Sets a backend's overload thresholds (IPVS `-x` / `-y`).
    pub fn set_thresholds(&mut self, id: BackendId, thresholds: Thresholds) -> Result<(), Error> {
        let pos = self.pos(id)?;
        self.load_changed(pos, |b| b.set_thresholds(thresholds));
        Ok(())
    }

    /// A connection to this backend was created (IPVS binds it: the upper threshold may set
    /// the overload flag).
    #[inline]
    pub fn conn_opened(&mut self, id: BackendId, state: ConnState) -> Result<(), Error> {
        self.update_load(id, |b| b.bind(state == ConnState::Active))
    }

    /// A connection moved between active and inactive (a TCP state change). Thresholds are not
    /// tested, as in IPVS.
    #[inline]
    pub fn conn_changed(
        &mut self,
        id: BackendId,
        from: ConnState,
        to: ConnState,
    ) -> Result<(), Error> {
        self.update_load(id, |b| {
            let l = &mut b.load;
            match (from, to) {
                (ConnState::Active, ConnState::Inactive) => {
                    l.active = l.active.saturating_sub(1);
                    l.inactive = l.inactive.saturating_add(1);
                }
                (ConnState::Inactive, ConnState::Active) => {
                    l.inactive = l.inactive.saturating_sub(1);
                    l.active = l.active.saturating_add(1);
                }
                _ => {}
            }
        })
    }

    /// A connection in this state ended (IPVS unbinds it: the lower threshold may clear the
    /// overload flag).
    #[inline]
    pub fn conn_closed(&mut self, id: BackendId, state: ConnState) -> Result<(), Error> {
        self.update_load(id, |b| b.unbind(state == ConnState::Active))
    }

    /// A request to this backend started (for request balancing: `p2c`, bounded load).
    #[inline]
    pub fn request_started(&mut self, id: BackendId) -> Result<(), Error> {
        self.update_load(id, |b| {
            b.load.in_flight = b.load.in_flight.saturating_add(1)
        })
    }

    /// A request to this backend finished.
    #[inline]
    pub fn request_finished(&mut self, id: BackendId) -> Result<(), Error> {
        self.update_load(id, |b| {
            b.load.in_flight = b.load.in_flight.saturating_sub(1)
        })
    }

    /// Chooses the backend for a new connection, or `None` when none can take it.
    ///
    /// With persistence, a live template for the client's network wins while its backend is
    /// available; otherwise the algorithm chooses and a template is recorded. The pick itself
    /// does not count the connection: call [`Pool::conn_opened`] when it is made.
    #[inline]
    pub fn pick(&mut self, req: &Request, now: Duration, rng: &mut dyn Rng) -> Option<BackendId> {
        if self.upkeep {
            return self.pick_with_upkeep(req, now, rng);
        }
        self.schedule(req, now, rng)
    }

    /// The algorithm's choice, as an id.
    #[inline(always)]
    fn schedule(&mut self, req: &Request, now: Duration, rng: &mut dyn Rng) -> Option<BackendId> {
        let (backends, index, scratch) = (&self.backends, &self.index, &mut self.scratch);
        self.scheduler
            .pick(backends, &self.roster, index, req, now, rng, scratch)
    }

    /// [`Pool::pick`] when a backend is ramping or persistence is on.
    #[inline(never)]
    fn pick_with_upkeep(
        &mut self,
        req: &Request,
        now: Duration,
        rng: &mut dyn Rng,
    ) -> Option<BackendId> {
        if self.ramping > 0 && now >= self.next_ramp {
            self.advance_ramps(now);
        }
        if let Some(templates) = &mut self.templates {
            if let Some(pos) = templates.lookup(req.src.ip(), &self.backends, &self.index, now) {
                return Some(self.roster.id(pos));
            }
        }
        let id = self.schedule(req, now, rng)?;
        if let Some(templates) = &mut self.templates {
            templates.insert(req.src.ip(), id, now);
        }
        Some(id)
    }

    /// Where a hashing algorithm (`sh`, `dh`, `mh`, `ring`, `maglev`, `rendezvous`, `jump`)
    /// sends this request now, without changing anything (persistence is not consulted).
    /// `Err` for algorithms whose choice depends on their history or on chance.
    pub fn lookup(&self, req: &Request) -> Result<Option<BackendId>, Error> {
        match self
            .scheduler
            .lookup(&self.backends, &self.roster, req, &mut Vec::new())
        {
            Some(id) => Ok(id),
            None => Err(Error::InvalidParameter {
                what: "algorithm",
                why: "lookup needs a hashing algorithm (sh, dh, mh, ring, maglev, rendezvous, jump)",
            }),
        }
    }

    /// Keeps a persistent client's template alive while one of its connections lasts (IPVS
    /// does not expire a template that still controls connections). Returns whether there was
    /// one.
    pub fn touch_persistence(&mut self, client: IpAddr, now: Duration) -> bool {
        self.templates
            .as_mut()
            .is_some_and(|t| t.touch(client, now))
    }

    /// The backend a persistence template currently names for this client, if any.
    pub fn persistent_backend(&self, client: IpAddr) -> Option<BackendId> {
        self.templates.as_ref().and_then(|t| t.get(client))
    }

    /// The number of persistence templates held (live or not yet collected).
    pub fn templates(&self) -> usize {
        self.templates.as_ref().map_or(0, Templates::len)
    }

    /// New clients scheduled without a template because the pool held its maximum
    /// ([`Persistence::with_max_templates`](crate::Persistence::with_max_templates)).
    pub fn templates_refused(&self) -> u64 {
        self.templates.as_ref().map_or(0, |t| t.refused)
    }

    /// Collects expired persistence templates and `lblc` / `lblcr` cache entries. Call it
    /// periodically (IPVS collects every 60 seconds).
    pub fn expire(&mut self, now: Duration) {
        if let Some(t) = &mut self.templates {
            t.expire(now);
        }
        self.scheduler.expire(now);
    }

    pub(crate) fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    fn pos(&self, id: BackendId) -> Result<usize, Error> {
        self.index
            .get(&id)
            .copied()
            .ok_or(Error::UnknownBackend(id))
    }

    #[inline]
    fn update_load(&mut self, id: BackendId, f: impl FnOnce(&mut Backend)) -> Result<(), Error> {
        let pos = self.pos(id)?;
        self.load_changed(pos, f);
        Ok(())
    }

    /// Applies `f` to the backend at `pos` (its load or thresholds) and tells the scheduler
    /// whether that flipped its overload flag, the only part of whether it is schedulable that
    /// `f` can change: the roster, and `wrr`'s passes, are refreshed only then, not per
    /// connection.
    fn load_changed(&mut self, pos: usize, f: impl FnOnce(&mut Backend)) {
        let b = &mut self.backends[pos];
        let before = b.overloaded;
        f(b);
        let change = if b.overloaded == before {
            Change::Load
        } else {
            self.roster.refresh(&self.backends, pos);
            Change::Overload
        };
        self.scheduler.changed(&self.backends, pos, change);
    }

    fn refresh_upkeep(&mut self) {
        self.upkeep = self.ramping > 0 || self.templates.is_some();
    }

    /// Starts a ramp if slow start is configured; returns whether it did.
    fn start_ramp(&mut self, pos: usize, now: Duration) -> bool {
        let Some(slow) = self.config.slow_start else {
            return false;
        };
        let b = &mut self.backends[pos];
        if b.ramp_since.is_none() {
            self.ramping += 1;
        }
        b.ramp_since = Some(now);
        self.next_ramp = self.next_ramp.min(now.saturating_add(slow.step()));
        self.refresh_upkeep();
        true
    }

    /// Recomputes one backend's ramped weights; returns whether they changed.
    fn apply_ramp(&mut self, pos: usize, now: Duration) -> bool {
        let slow = self.config.slow_start;
        let b = &mut self.backends[pos];
        let before = (b.effective_weight, b.table_weight);
        let ramp = |w| match (slow, b.ramp_since) {
            (Some(s), Some(since)) => s.ramp(w, now.saturating_sub(since)),
            _ => None,
        };
        match (ramp(b.weight), ramp(b.last_weight)) {
            (Some(eff), Some(table)) => (b.effective_weight, b.table_weight) = (eff, table),
            _ => {
                if b.ramp_since.take().is_some() {
                    self.ramping -= 1;
                }
                (b.effective_weight, b.table_weight) = (b.weight, b.last_weight);
            }
        }
        let changed = before != (b.effective_weight, b.table_weight);
        self.roster.refresh(&self.backends, pos);
        self.refresh_upkeep();
        changed
    }

    fn advance_ramps(&mut self, now: Duration) {
        let mut changed = false;
        for pos in 0..self.backends.len() {
            if self.backends[pos].ramp_since.is_some() {
                changed |= self.apply_ramp(pos, now);
            }
        }
        if let Some(slow) = self.config.slow_start {
            self.next_ramp = now.saturating_add(slow.step());
        }
        if changed {
            self.scheduler.weights_changed(&self.backends);
        }
    }
}

/// Tables index backends with 32 bits; Maglev tables need a slot per backend.
fn check_capacity(algorithm: &Algorithm, n: usize) -> Result<(), Error> {
    let max = match *algorithm {
        Algorithm::Mh { table_size, .. } | Algorithm::Maglev { table_size } => table_size as usize,
        _ => u32::MAX as usize - 1,
    };
    if n > max {
        Err(Error::TooManyBackends(max))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The roster the pick path reads follows every change the pool makes to its backends,
        /// slow-start ramps included.
        #[test]
        fn the_roster_describes_the_backends(
            weights in prop::collection::vec(0u32..5, 0..80),
            ops in prop::collection::vec((0u8..9, 0u32..90, 0u32..5), 0..200),
        ) {
            let config = PoolConfig::new(Algorithm::Rr)
                .with_slow_start(SlowStart::new(Duration::from_secs(10)).unwrap());
            let backends = weights.iter().zip(0..).map(|(&w, i)| Backend::new(BackendId(i), w));
            let mut pool = Pool::with_backends(config, backends).unwrap();
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
            for (step, (op, id, arg)) in (0u64..).zip(ops) {
                let (id, now) = (BackendId(id), Duration::from_secs(step));
                // Unknown ids are errors; what matters is that none desynchronises the roster.
                let _ = match op {
                    0 => pool.set_availability(id, Availability::Down, now),
                    1 => pool.set_availability(id, Availability::Up, now),
                    2 => pool.set_weight(id, arg, now),
                    3 => pool.remove(id).map(drop),
                    4 => pool.add(Backend::new(id, arg), now),
                    5 => pool.conn_opened(id, ConnState::Active),
                    6 => pool.conn_closed(id, ConnState::Active),
                    7 => pool.set_thresholds(id, Thresholds { upper: arg, lower: 0 }),
                    _ => {
                        pool.pick(&Request::default(), now, &mut rng);
                        Ok(())
                    }
                };
                prop_assert!(pool.roster.describes(&pool.backends));
            }
        }
    }
}
