//! [`Forwarder`]: the virtual services, their real servers and the connection table, and the
//! operations that change them while traffic flows. The per-packet path is in `datapath.rs`.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::Error;
use crate::conn::{Conn, ConnTable, fold_mul};
use crate::scheduler::{PoolScheduler, RealId, Scheduler};
use crate::service::{
    InterfaceConfig, MatchKey, Method, NextHop, Protocol, RealConfig, ServiceConfig, ServiceKey,
    Settings, addr_bits, nanos, prefix_mask,
};
use crate::state::{ConnState, Timeouts};
use crate::stats::{Counters, Stats};
use crate::wire::Family;

/// A service's lookup key in the datapath's representation (`mark` is 0 in the lookups of
/// packets: firewall-mark services are found through their [`MarkMatch`]es).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VipKey {
    pub proto: u8,
    pub family: Family,
    pub vip: [u8; 16],
    pub port: u16,
    pub mark: u32,
}

/// The hasher of [`VipKey`]s, which are looked up for every packet that opens a connection:
/// one folded multiply per word (foldhash's general-purpose state machine cost about 100
/// instructions per lookup there). The map holds only configured services, so lookups with
/// chosen keys cannot crowd a bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VipHasher {
    seed: u64,
    acc: u64,
}

/// Builds [`VipHasher`]s from a seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VipHash(u64);

impl core::hash::BuildHasher for VipHash {
    type Hasher = VipHasher;

    fn build_hasher(&self) -> VipHasher {
        VipHasher {
            seed: self.0 | 1,
            acc: self.0,
        }
    }
}

impl core::hash::Hasher for VipHasher {
    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.acc = fold_mul(self.acc ^ word, self.seed);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.acc
    }
}

// Words, not a byte slice, for [`VipHasher`].
impl core::hash::Hash for VipKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&self.vip[..8]);
        b.copy_from_slice(&self.vip[8..]);
        state.write_u64(u64::from_ne_bytes(a));
        state.write_u64(u64::from_ne_bytes(b));
        state.write_u64(
            u64::from(self.mark) << 32
                | u64::from(self.port) << 16
                | u64::from(self.proto) << 8
                | (self.family == Family::V6) as u64,
        );
    }
}

pub(crate) fn raw_addr(ip: IpAddr) -> ([u8; 16], Family) {
    let mut a = [0; 16];
    match ip {
        IpAddr::V4(v4) => {
            a[..4].copy_from_slice(&v4.octets());
            (a, Family::V4)
        }
        IpAddr::V6(v6) => (v6.octets(), Family::V6),
    }
}

pub(crate) fn ip_addr(a: &[u8; 16], family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::from([a[0], a[1], a[2], a[3]]),
        Family::V6 => IpAddr::from(*a),
    }
}

impl VipKey {
    fn of(key: &ServiceKey) -> Self {
        let (vip, family) = raw_addr(key.vip);
        VipKey {
            proto: key.protocol.number(),
            family,
            vip,
            port: key.port,
            mark: key.fwmark,
        }
    }
}

/// A [`MatchKey`] of a firewall-mark service, in the datapath's representation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MarkMatch {
    pub key: MatchKey,
    pub proto: u8,
    pub family: Family,
    /// The network's bits (see [`addr_bits`]) and mask.
    pub net: u128,
    pub mask: u128,
    pub service: u32,
}

impl MarkMatch {
    #[inline]
    pub(crate) fn takes(&self, proto: u8, family: Family, dst: &[u8; 16], port: u16) -> bool {
        self.proto == proto
            && self.family == family
            && u128::from_be_bytes(*dst) & self.mask == self.net
            && (self.key.first_port..=self.key.last_port).contains(&port)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Real {
    pub config: RealConfig,
    pub addr: [u8; 16],
    pub next_hop: Option<NextHop>,
    pub active: u32,
    pub inactive: u32,
    pub counters: Counters,
}

#[derive(Clone, Debug)]
pub(crate) struct RealSlot {
    pub generation: u32,
    pub real: Option<Real>,
}

#[derive(Clone, Debug)]
pub(crate) struct Service<S> {
    pub key: ServiceKey,
    pub config: ServiceConfig,
    pub scheduler: S,
    pub reals: Vec<RealSlot>,
    pub counters: Counters,
}

impl<S> Service<S> {
    pub(crate) fn real_by_addr(&self, addr: SocketAddr) -> Option<usize> {
        self.reals
            .iter()
            .position(|s| s.real.as_ref().is_some_and(|r| r.config.addr == addr))
    }

    fn has_nat_real(&self) -> bool {
        self.reals.iter().any(|s| {
            s.real
                .as_ref()
                .is_some_and(|r| r.config.method == Method::Nat)
        })
    }
}

/// A NAT real's replies are translated by its connection entry, which a one-packet service
/// does not keep: they would reach the client from the real's own address (IPVS accepts the
/// combination and has that fault; here it is refused).
const ONE_PACKET_NAT: Error = Error::Invalid {
    what: "NAT real server",
    why: "not on a one-packet service: its replies need a connection entry",
};

#[derive(Clone, Debug)]
pub(crate) struct ServiceSlot<S> {
    pub generation: u32,
    pub service: Option<Service<S>>,
}

/// A real server's state, for tables like `ipvsadm -Ln`.
#[derive(Clone, Debug, PartialEq)]
pub struct RealStatus {
    /// Its configuration.
    pub config: RealConfig,
    /// Where its frames go, once known.
    pub next_hop: Option<NextHop>,
    /// Established connections.
    pub active: u32,
    /// Other connections.
    pub inactive: u32,
    /// Its traffic.
    pub counters: Counters,
}

/// A service's state.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceStatus {
    /// Its key.
    pub key: ServiceKey,
    /// Its options.
    pub config: ServiceConfig,
    /// The packets a firewall-mark service takes (empty for an address service).
    pub matches: Vec<MatchKey>,
    /// Its traffic.
    pub counters: Counters,
    /// Its real servers, in the order they were added.
    pub reals: Vec<RealStatus>,
}

/// One entry of the connection table, like a line of `ipvsadm -Lc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The protocol.
    pub protocol: Protocol,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The virtual address and port it connected to.
    pub virtual_addr: SocketAddr,
    /// The real server's address and port.
    pub real: SocketAddr,
    /// The state.
    pub state: ConnState,
    /// When it expires if no packet refreshes it.
    pub expires: Duration,
}

/// The datapath: virtual services with their real servers and schedulers, the connection
/// table, and counters. Feed it frames with [`Forwarder::process`]; call
/// [`Forwarder::expire`] regularly.
pub struct Forwarder<S = PoolScheduler> {
    pub(crate) settings: Settings,
    pub(crate) interfaces: Vec<InterfaceConfig>,
    pub(crate) services: Vec<ServiceSlot<S>>,
    pub(crate) by_key: HashMap<VipKey, u32, VipHash>,
    /// How many services each VIP has (to recognise fragments and ICMP sent to a VIP).
    pub(crate) vips: HashMap<([u8; 16], Family), u32, FixedState>,
    /// The match keys of the firewall-mark services, first set first.
    pub(crate) marks: Vec<MarkMatch>,
    pub(crate) conns: ConnTable,
    pub(crate) stats: Stats,
    pub(crate) ip_id: u16,
    /// Bumped by every change of services, reals, next hops or interfaces: connections cache
    /// their route under it (see `Conn::route_gen`). Never 0, which marks no cached route.
    pub(crate) route_gen: u32,
    /// When the schedulers were last ticked.
    pub(crate) last_tick: Duration,
}

impl Forwarder<PoolScheduler> {
    /// A forwarder whose services use lb-sched pools.
    pub fn new(settings: Settings) -> Self {
        Forwarder::with_scheduler(settings)
    }
}

impl<S: Scheduler> Forwarder<S> {
    /// A forwarder whose services use the scheduler type `S`.
    pub fn with_scheduler(settings: Settings) -> Self {
        let hasher = FixedState::with_seed(settings.hash_seed.rotate_left(17));
        Forwarder {
            conns: ConnTable::new(settings.max_connections, settings.hash_seed),
            settings,
            interfaces: Vec::new(),
            services: Vec::new(),
            by_key: HashMap::with_hasher(VipHash(settings.hash_seed.rotate_left(29))),
            vips: HashMap::with_hasher(hasher),
            marks: Vec::new(),
            stats: Stats::default(),
            ip_id: 0,
            route_gen: 1,
            last_tick: Duration::ZERO,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Changes the timeouts (`ipvsadm --set`); connections get the new ones on their next
    /// packet.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.settings.timeouts = timeouts;
    }

    /// Changes `expire_nodest_conn` (see [`Settings`]).
    pub fn set_expire_nodest_conn(&mut self, expire: bool) {
        self.settings.expire_nodest_conn = expire;
    }

    /// Invalidates the routes connections cached.
    fn routes_changed(&mut self) {
        self.route_gen = self.route_gen.wrapping_add(1);
        if self.route_gen == 0 {
            // Wrapped around: a stale cache could match again.
            self.conns.forget_routes();
            self.route_gen = 1;
        }
    }

    /// Adds or replaces an interface.
    pub fn set_interface(&mut self, interface: InterfaceConfig) {
        self.routes_changed();
        match self
            .interfaces
            .iter_mut()
            .find(|i| i.index == interface.index)
        {
            Some(i) => *i = interface,
            None => self.interfaces.push(interface),
        }
    }

    /// The interfaces.
    pub fn interfaces(&self) -> &[InterfaceConfig] {
        &self.interfaces
    }

    #[inline]
    pub(crate) fn interface(&self, index: u32) -> Option<InterfaceConfig> {
        self.interfaces.iter().find(|i| i.index == index).copied()
    }

    /// Adds a virtual service with its scheduler.
    pub fn add_service(
        &mut self,
        key: ServiceKey,
        config: ServiceConfig,
        scheduler: S,
    ) -> Result<(), Error> {
        // A firewall-mark service's protocols are its match keys', checked as they are set.
        if config.one_packet && key.protocol != Protocol::Udp && !key.is_fwmark() {
            return Err(Error::Invalid {
                what: "one-packet scheduling",
                why: "UDP services only",
            });
        }
        let vk = VipKey::of(&key);
        if self.by_key.contains_key(&vk) {
            return Err(Error::DuplicateService(key));
        }
        self.routes_changed();
        let service = Service {
            key,
            config,
            scheduler,
            reals: Vec::new(),
            counters: Counters::default(),
        };
        let index = match self.services.iter().position(|s| s.service.is_none()) {
            Some(i) => {
                let slot = &mut self.services[i];
                slot.generation = slot.generation.wrapping_add(1);
                slot.service = Some(service);
                i
            }
            None => {
                self.services.push(ServiceSlot {
                    generation: 0,
                    service: Some(service),
                });
                self.services.len() - 1
            }
        };
        self.by_key.insert(vk, index as u32);
        if !key.is_fwmark() {
            *self.vips.entry((vk.vip, vk.family)).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Changes a service's options.
    pub fn edit_service(&mut self, key: &ServiceKey, config: ServiceConfig) -> Result<(), Error> {
        let index = self.service_index(key)? as u32;
        let tcp = if key.is_fwmark() {
            self.marks
                .iter()
                .any(|m| m.service == index && m.key.protocol != Protocol::Udp)
        } else {
            key.protocol != Protocol::Udp
        };
        if config.one_packet && tcp {
            return Err(Error::Invalid {
                what: "one-packet scheduling",
                why: "UDP services only",
            });
        }
        let svc = self.service_mut(key)?;
        if config.one_packet && svc.has_nat_real() {
            return Err(ONE_PACKET_NAT);
        }
        svc.config = config;
        Ok(())
    }

    /// Sets the packets the firewall-mark service `key` takes, replacing its previous match
    /// keys. A packet that two services' keys match goes to the service whose keys were set
    /// first (the rule that sets the mark last wins in a firewall: the caller orders them).
    /// New flows are matched against the keys of every firewall-mark service in turn, as a
    /// firewall runs its rules: keep them few (a prefix or port range is one key).
    pub fn set_matches(&mut self, key: &ServiceKey, matches: &[MatchKey]) -> Result<(), Error> {
        if !key.is_fwmark() {
            return Err(Error::Invalid {
                what: "match keys",
                why: "firewall-mark services only",
            });
        }
        let index = self.service_index(key)? as u32;
        let one_packet = self.services[index as usize]
            .service
            .as_ref()
            .is_some_and(|s| s.config.one_packet);
        let mut new = Vec::with_capacity(matches.len());
        for m in matches {
            let full = if m.addr.is_ipv6() { 128 } else { 32 };
            if m.addr.is_ipv6() != key.vip.is_ipv6() {
                return Err(Error::Invalid {
                    what: "match key address",
                    why: "the same family as the service",
                });
            }
            if m.prefix_len > full || m.first_port > m.last_port {
                return Err(Error::Invalid {
                    what: "match key",
                    why: "a prefix length within the address and first port <= last port",
                });
            }
            if one_packet && m.protocol != Protocol::Udp {
                return Err(Error::Invalid {
                    what: "one-packet scheduling",
                    why: "UDP services only",
                });
            }
            let mask = prefix_mask(m.prefix_len);
            let (_, family) = raw_addr(m.addr);
            new.push(MarkMatch {
                key: *m,
                proto: m.protocol.number(),
                family,
                net: addr_bits(m.addr) & mask,
                mask,
                service: index,
            });
        }
        self.marks.retain(|m| m.service != index);
        self.marks.extend(new);
        Ok(())
    }

    /// The match keys of a firewall-mark service, as set.
    pub fn matches(&self, key: &ServiceKey) -> Result<Vec<MatchKey>, Error> {
        let index = self.service_index(key)? as u32;
        Ok(self.service_matches(index))
    }

    fn service_matches(&self, index: u32) -> Vec<MatchKey> {
        self.marks
            .iter()
            .filter(|m| m.service == index)
            .map(|m| m.key)
            .collect()
    }

    /// Removes a service and its reals. Its connections follow the `expire_nodest_conn`
    /// setting, like those of a removed real.
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        let vk = VipKey::of(key);
        let index = self.by_key.remove(&vk).ok_or(Error::UnknownService(*key))?;
        self.routes_changed();
        let slot = &mut self.services[index as usize];
        slot.service = None;
        slot.generation = slot.generation.wrapping_add(1);
        if key.is_fwmark() {
            self.marks.retain(|m| m.service != index);
            return Ok(());
        }
        if let Some(n) = self.vips.get_mut(&(vk.vip, vk.family)) {
            *n -= 1;
            if *n == 0 {
                self.vips.remove(&(vk.vip, vk.family));
            }
        }
        Ok(())
    }

    fn service_index(&self, key: &ServiceKey) -> Result<usize, Error> {
        self.by_key
            .get(&VipKey::of(key))
            .map(|&i| i as usize)
            .ok_or(Error::UnknownService(*key))
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Result<&mut Service<S>, Error> {
        let i = self.service_index(key)?;
        self.services[i]
            .service
            .as_mut()
            .ok_or(Error::UnknownService(*key))
    }

    /// The scheduler of a service.
    pub fn scheduler(&self, key: &ServiceKey) -> Result<&S, Error> {
        let i = self.service_index(key)?;
        self.services[i]
            .service
            .as_ref()
            .map(|s| &s.scheduler)
            .ok_or(Error::UnknownService(*key))
    }

    /// Adds a real server to a service.
    pub fn add_real(
        &mut self,
        key: &ServiceKey,
        real: RealConfig,
        now: Duration,
    ) -> Result<(), Error> {
        let (addr, family) = raw_addr(real.addr.ip());
        if family != VipKey::of(key).family {
            return Err(Error::Invalid {
                what: "real server address",
                why: "the same family as the VIP",
            });
        }
        // A firewall-mark service's NAT reals may take every port to one; its DR and TUN reals
        // keep each packet's port whatever theirs (keepalived gives them their check's port).
        let fixed = !key.is_fwmark();
        if fixed
            && real.method != Method::Nat
            && real.addr.port() != 0
            && real.addr.port() != key.port
        {
            return Err(Error::Invalid {
                what: "real server port",
                why: "DR and TUN keep the service port: give 0 or the same port",
            });
        }
        if fixed && key.port == 0 && real.addr.port() != 0 {
            return Err(Error::Invalid {
                what: "real server port",
                why: "0 for a service on every port",
            });
        }
        let svc = self.service_mut(key)?;
        if svc.real_by_addr(real.addr).is_some() {
            return Err(Error::DuplicateReal(real.addr));
        }
        if svc.config.one_packet && real.method == Method::Nat {
            return Err(ONE_PACKET_NAT);
        }
        let slot = match svc.reals.iter().position(|s| s.real.is_none()) {
            Some(i) => i,
            None => {
                svc.reals.push(RealSlot {
                    generation: 0,
                    real: None,
                });
                svc.reals.len() - 1
            }
        };
        let id = RealId::try_from(slot).map_err(|_| Error::Invalid {
            what: "real servers",
            why: "at most 2^32 per service",
        })?;
        svc.scheduler.add_real(id, real.addr, real.weight, now)?;
        self.routes_changed();
        let svc = self.service_mut(key)?;
        let s = &mut svc.reals[slot];
        s.generation = s.generation.wrapping_add(1);
        s.real = Some(Real {
            config: real,
            addr,
            next_hop: None,
            active: 0,
            inactive: 0,
            counters: Counters::default(),
        });
        Ok(())
    }

    /// Changes a real server's weight (0 quiesces it: its connections continue, it gets no
    /// new ones) and MSS clamping. Its method and address are its identity: remove and add
    /// it to change them.
    pub fn edit_real(
        &mut self,
        key: &ServiceKey,
        addr: SocketAddr,
        weight: u32,
        clamp_mss: bool,
        now: Duration,
    ) -> Result<(), Error> {
        let svc = self.service_mut(key)?;
        let slot = svc.real_by_addr(addr).ok_or(Error::UnknownReal(addr))?;
        svc.scheduler.set_weight(slot as RealId, weight, now)?;
        // The MSS clamping is cached with the route.
        self.routes_changed();
        let svc = self.service_mut(key)?;
        if let Some(r) = svc.reals[slot].real.as_mut() {
            r.config.weight = weight;
            r.config.clamp_mss = clamp_mss;
        }
        Ok(())
    }

    /// Removes a real server. Its connections follow the `expire_nodest_conn` setting; if the
    /// same address is added back while they live, they continue on it.
    pub fn remove_real(&mut self, key: &ServiceKey, addr: SocketAddr) -> Result<(), Error> {
        let svc = self.service_mut(key)?;
        let slot = svc.real_by_addr(addr).ok_or(Error::UnknownReal(addr))?;
        svc.scheduler.remove_real(slot as RealId);
        let s = &mut svc.reals[slot];
        s.real = None;
        s.generation = s.generation.wrapping_add(1);
        self.routes_changed();
        Ok(())
    }

    /// Sets the next hop of every real server with this address (from the routing and
    /// neighbour tables); `None` when it is unknown (their packets are then dropped).
    pub fn set_next_hop(&mut self, addr: IpAddr, next_hop: Option<NextHop>) {
        self.routes_changed();
        for slot in &mut self.services {
            let Some(svc) = slot.service.as_mut() else {
                continue;
            };
            for r in svc.reals.iter_mut().filter_map(|s| s.real.as_mut()) {
                if r.config.addr.ip() == addr {
                    r.next_hop = next_hop;
                }
            }
        }
    }

    /// The addresses of every configured real server (each once), to resolve next hops.
    pub fn real_addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for svc in self.services.iter().filter_map(|s| s.service.as_ref()) {
            for r in svc.reals.iter().filter_map(|s| s.real.as_ref()) {
                if !out.contains(&r.config.addr.ip()) {
                    out.push(r.config.addr.ip());
                }
            }
        }
        out
    }

    /// Every service with its reals and counters (allocates: for status tables).
    pub fn status(&self) -> Vec<ServiceStatus> {
        self.services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.service.as_ref()?)))
            .map(|(i, svc)| ServiceStatus {
                key: svc.key,
                config: svc.config,
                matches: self.service_matches(i as u32),
                counters: svc.counters,
                reals: svc
                    .reals
                    .iter()
                    .filter_map(|s| s.real.as_ref())
                    .map(|r| RealStatus {
                        config: r.config,
                        next_hop: r.next_hop,
                        active: r.active,
                        inactive: r.inactive,
                        counters: r.counters,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Datapath counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections in the table.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The connection table's entries (like `ipvsadm -Lc`).
    pub fn connections(&self) -> impl Iterator<Item = ConnectionInfo> + '_ {
        self.conns.iter().map(|(_, c)| conn_info(c))
    }

    /// Expires up to `budget` table entries whose timeout passed, examining `budget` entries
    /// under a clock hand; returns how many expired. Call it regularly (for example once per
    /// received batch with a budget of a few hundred): its cost is bounded by the budget, plus,
    /// once a second of `now`, each scheduler's [`Scheduler::tick`].
    pub fn expire(&mut self, now: Duration, budget: usize) -> usize {
        if now.saturating_sub(self.last_tick) >= Duration::from_secs(1) {
            self.last_tick = now;
            for svc in self.services.iter_mut().filter_map(|s| s.service.as_mut()) {
                svc.scheduler.tick(now);
            }
        }
        let mut expired = [0u32; 64];
        let mut total = 0;
        let mut left = budget;
        while left > 0 {
            let step = left.min(expired.len());
            let mut n = 0;
            self.conns.sweep(nanos(now), step, &mut |i| {
                expired[n] = i;
                n += 1;
            });
            for &i in &expired[..n] {
                self.remove_conn(i, now);
            }
            self.stats.expired += n as u64;
            total += n;
            left -= step;
        }
        total
    }

    /// Removes a connection and tells its scheduler, if its real is still there.
    pub(crate) fn remove_conn(&mut self, index: u32, now: Duration) {
        let Some(c) = self.conns.remove(index) else {
            return;
        };
        let client = SocketAddr::new(ip_addr(&c.client, c.family), c.cport);
        let (service, service_gen, real, real_gen, active) =
            (c.service, c.service_gen, c.real, c.real_gen, c.active);
        let Some(svc) = self
            .services
            .get_mut(service as usize)
            .filter(|s| s.generation == service_gen)
            .and_then(|s| s.service.as_mut())
        else {
            return;
        };
        let Some(r) = svc
            .reals
            .get_mut(real as usize)
            .filter(|s| s.generation == real_gen)
            .and_then(|s| s.real.as_mut())
        else {
            return;
        };
        if active {
            r.active = r.active.saturating_sub(1);
        } else {
            r.inactive = r.inactive.saturating_sub(1);
        }
        svc.scheduler.conn_closed(real, active, client, now);
    }

    pub(crate) fn live_service_mut(&mut self, c: &Conn) -> Option<&mut Service<S>> {
        let slot = self.services.get_mut(c.service as usize)?;
        if slot.generation != c.service_gen {
            return None;
        }
        slot.service.as_mut()
    }
}

pub(crate) fn live_real<'a>(reals: &'a mut [RealSlot], c: &Conn) -> Option<&'a mut Real> {
    let slot = reals.get_mut(c.real as usize)?;
    if slot.generation != c.real_gen {
        return None;
    }
    slot.real.as_mut()
}

pub(crate) fn conn_info(c: &Conn) -> ConnectionInfo {
    let protocol = Protocol::from_number(c.proto).unwrap_or(Protocol::Tcp);
    ConnectionInfo {
        protocol,
        client: SocketAddr::new(ip_addr(&c.client, c.family), c.cport),
        virtual_addr: SocketAddr::new(ip_addr(&c.vip, c.family), c.vport),
        real: SocketAddr::new(ip_addr(&c.raddr, c.family), c.rport),
        state: c.state,
        expires: Duration::from_nanos(c.expires),
    }
}
