//! IPVS `lblc` and `lblcr` (ip_vs_lblc.c, ip_vs_lblcr.c): locality-based least connection.
//!
//! A destination address (a cache server's client target) sticks to one backend (`lblc`) or a
//! set of backends (`lblcr`) until the backend is overloaded by the locality rule: more active
//! connections than its weight while some backend has fewer than half its weight. New
//! placements use `wlc`.

use super::tournament::{Rule, Tournament};
use crate::backend::IdIndex;
use crate::{Availability, Backend, BackendId};
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;
use hashbrown::HashMap;

/// The cache's garbage-collection settings (the kernel's sysctls and constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalityConfig {
    /// Entries idle this long are dropped (sysctl `lblc_expiration` / `lblcr_expiration`,
    /// default 24 h). For `lblcr` it is also how long a set must stay unchanged before its
    /// most loaded member is dropped.
    pub expiration: Duration,
    /// Above this many entries, entries idle longer than [`Self::entry_timeout`] are evicted
    /// (the kernel's 16 * 1024).
    pub max_entries: usize,
    /// The idle time that makes an entry evictable when the cache is over its size
    /// (`ENTRY_TIMEOUT`, 6 minutes).
    pub entry_timeout: Duration,
}

impl Default for LocalityConfig {
    fn default() -> Self {
        LocalityConfig {
            expiration: Duration::from_secs(24 * 60 * 60),
            max_entries: 16 * 1024,
            entry_timeout: Duration::from_secs(6 * 60),
        }
    }
}

/// `is_overloaded` in ip_vs_lblc.c: busier than its weight while another backend is below half
/// of its own. The count of such "half-idle" backends is kept up to date, so the test does not
/// scan the list.
#[derive(Clone, Debug, Default)]
struct HalfIdle {
    flags: Vec<bool>,
    count: usize,
}

impl HalfIdle {
    fn is_half_idle(b: &Backend) -> bool {
        (b.load.active as u64) * 2 < b.effective_weight as u64
    }

    fn rebuild(&mut self, backends: &[Backend]) {
        self.flags = backends.iter().map(Self::is_half_idle).collect();
        self.count = self.flags.iter().filter(|&&f| f).count();
    }

    fn update(&mut self, backends: &[Backend], pos: usize) {
        let (Some(flag), Some(b)) = (self.flags.get_mut(pos), backends.get(pos)) else {
            return;
        };
        let now = Self::is_half_idle(b);
        if now != *flag {
            *flag = now;
            if now {
                self.count += 1
            } else {
                self.count -= 1
            }
        }
    }

    fn overloaded(&self, b: &Backend) -> bool {
        b.load.active > b.effective_weight && self.count > 0
    }
}

/// Whether a cached backend may keep its destinations: available (up) and weighted.
fn cache_usable(b: &Backend) -> bool {
    b.availability == Availability::Up && b.effective_weight > 0
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    backend: BackendId,
    last_use: Duration,
}

#[derive(Clone, Debug)]
struct ReplicaSet {
    /// Newest first, as the kernel inserts at the list head.
    members: Vec<BackendId>,
    last_modified: Duration,
    last_use: Duration,
}

/// Both schedulers: the cache, the global `wlc` tree and the half-idle count.
#[derive(Clone, Debug)]
pub(crate) struct Locality {
    replicated: bool,
    config: LocalityConfig,
    wlc: Tournament,
    half_idle: HalfIdle,
    single: HashMap<IpAddr, Entry>,
    sets: HashMap<IpAddr, ReplicaSet>,
}

type Index = IdIndex;

impl Locality {
    pub(crate) fn new(replicated: bool, config: LocalityConfig, backends: &[Backend]) -> Self {
        let mut half_idle = HalfIdle::default();
        half_idle.rebuild(backends);
        Locality {
            replicated,
            config,
            wlc: Tournament::new(Rule::Wlc, backends),
            half_idle,
            single: HashMap::new(),
            sets: HashMap::new(),
        }
    }

    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.wlc.rebuild(backends);
        self.half_idle.rebuild(backends);
    }

    pub(crate) fn update(&mut self, backends: &[Backend], pos: usize) {
        self.wlc.update(backends, pos);
        self.half_idle.update(backends, pos);
    }

    /// Drops a removed backend from the cache (the kernel drops it lazily, when its entries
    /// are next used or collected).
    pub(crate) fn removed(&mut self, id: BackendId) {
        self.single.retain(|_, e| e.backend != id);
        for set in self.sets.values_mut() {
            set.members.retain(|&m| m != id);
        }
        self.sets.retain(|_, s| !s.members.is_empty());
    }

    /// Whether `b` is overloaded by the locality rule.
    pub(crate) fn overloaded(&self, b: &Backend) -> bool {
        self.half_idle.overloaded(b)
    }

    /// The number of cached destinations.
    pub(crate) fn entries(&self) -> usize {
        if self.replicated {
            self.sets.len()
        } else {
            self.single.len()
        }
    }

    pub(crate) fn pick(
        &mut self,
        backends: &[Backend],
        index: &Index,
        dst: IpAddr,
        now: Duration,
    ) -> Option<usize> {
        if self.replicated {
            self.pick_replicated(backends, index, dst, now)
        } else {
            self.pick_single(backends, index, dst, now)
        }
    }

    fn pick_single(
        &mut self,
        backends: &[Backend],
        index: &Index,
        dst: IpAddr,
        now: Duration,
    ) -> Option<usize> {
        if let Some(entry) = self.single.get_mut(&dst) {
            entry.last_use = now;
            if let Some(&pos) = index.get(&entry.backend) {
                let b = &backends[pos];
                if cache_usable(b) && !self.half_idle.overloaded(b) {
                    return Some(pos);
                }
            }
        }
        let pos = self.wlc.pick()?;
        let entry = Entry {
            backend: backends[pos].id,
            last_use: now,
        };
        self.single.insert(dst, entry);
        Some(pos)
    }

    fn pick_replicated(
        &mut self,
        backends: &[Backend],
        index: &Index,
        dst: IpAddr,
        now: Duration,
    ) -> Option<usize> {
        let Some(set) = self.sets.get_mut(&dst) else {
            let pos = self.wlc.pick()?;
            let set = ReplicaSet {
                members: alloc::vec![backends[pos].id],
                last_modified: now,
                last_use: now,
            };
            self.sets.insert(dst, set);
            return Some(pos);
        };
        set.last_use = now;
        let least = set_min(&set.members, backends, index);
        if set.members.len() > 1 && now > set.last_modified.saturating_add(self.config.expiration) {
            if let Some(most) = set_max(&set.members, backends, index) {
                set.members.retain(|&m| m != most);
                set.last_modified = now;
            }
        }
        if let Some(pos) = least {
            if !self.half_idle.overloaded(&backends[pos]) {
                return Some(pos);
            }
        }
        let pos = self.wlc.pick()?;
        let id = backends[pos].id;
        if !set.members.contains(&id) {
            set.members.insert(0, id);
            set.last_modified = now;
        }
        Some(pos)
    }

    /// The kernel's periodic collection (`ip_vs_lblc_check_expire` / `full_check`): drops
    /// entries idle longer than the expiration, then, above the size limit, entries idle
    /// longer than the entry timeout until the excess and a third more are gone (at most half
    /// the limit).
    pub(crate) fn expire(&mut self, now: Duration) {
        let LocalityConfig {
            expiration,
            max_entries,
            entry_timeout,
        } = self.config;
        let idle_for = |last: Duration| now.saturating_sub(last);
        self.single
            .retain(|_, e| idle_for(e.last_use) <= expiration);
        self.sets.retain(|_, s| idle_for(s.last_use) <= expiration);
        let count = self.entries();
        if count <= max_entries {
            return;
        }
        let mut goal = ((count - max_entries) * 4 / 3).min(max_entries / 2);
        let mut evict = |last: Duration| {
            let drop = goal > 0 && idle_for(last) >= entry_timeout;
            goal -= drop as usize;
            !drop
        };
        self.single.retain(|_, e| evict(e.last_use));
        self.sets.retain(|_, s| evict(s.last_use));
    }
}

fn positions<'a>(
    members: &'a [BackendId],
    backends: &'a [Backend],
    index: &'a Index,
) -> impl Iterator<Item = (usize, &'a Backend)> + 'a {
    members
        .iter()
        .filter_map(|id| index.get(id).map(|&pos| (pos, &backends[pos])))
}

/// `ip_vs_dest_set_min`: the set member with the least weighted load, skipping overloaded and
/// unavailable members.
fn set_min(members: &[BackendId], backends: &[Backend], index: &Index) -> Option<usize> {
    let mut least: Option<(usize, &Backend)> = None;
    for (pos, b) in positions(members, backends, index) {
        if b.overloaded {
            continue;
        }
        match least {
            None if b.effective_weight > 0 && b.availability == Availability::Up => {
                least = Some((pos, b));
            }
            None => {}
            Some((_, l)) => {
                let worse = l.load.ipvs_overhead() as u128 * b.effective_weight as u128
                    > b.load.ipvs_overhead() as u128 * l.effective_weight as u128;
                if worse && b.availability == Availability::Up {
                    least = Some((pos, b));
                }
            }
        }
    }
    least.map(|(pos, _)| pos)
}

/// `ip_vs_dest_set_max`: the set member with the most weighted load.
fn set_max(members: &[BackendId], backends: &[Backend], index: &Index) -> Option<BackendId> {
    let mut most: Option<&Backend> = None;
    for (_, b) in positions(members, backends, index) {
        match most {
            None if b.effective_weight > 0 => most = Some(b),
            None => {}
            Some(m) => {
                let more = (m.load.ipvs_overhead() as u128 * b.effective_weight as u128)
                    < (b.load.ipvs_overhead() as u128 * m.effective_weight as u128);
                if more && b.effective_weight > 0 {
                    most = Some(b);
                }
            }
        }
    }
    most.map(|b| b.id)
}
