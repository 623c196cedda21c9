//! The one backend model every algorithm reads: identity, weight, availability, load and the
//! IPVS overload thresholds.

use core::net::SocketAddr;
use core::time::Duration;

/// A stable backend identifier chosen by the caller. It never changes while the backend is in a
/// [`Pool`](crate::Pool), whatever is added or removed around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId(pub u32);

impl core::fmt::Display for BackendId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Backend positions by id. Ids are hashed with one multiplication (Fibonacci hashing): the
/// map is consulted on every connection event, and ids are not attacker-controlled.
pub(crate) type IdIndex =
    hashbrown::HashMap<BackendId, usize, core::hash::BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdIndex`]: a `u32` id times the golden ratio, in 64 bits.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl core::hash::Hasher for IdHasher {
    #[inline]
    fn write_u32(&mut self, id: u32) {
        self.0 = (id as u64 ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(b as u32);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Whether a backend may receive new connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Availability {
    /// Healthy: schedulable when its weight is above zero and it is not overloaded.
    #[default]
    Up,
    /// No new connections; existing ones and persistence templates pointing at it continue
    /// (like an IPVS real server quiesced with weight 0).
    Draining,
    /// Failed: no new connections and its persistence templates are not reused (like a real
    /// server removed from an IPVS service).
    Down,
}

/// The connection counts a caller reports through the [`Pool`](crate::Pool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Load {
    /// Established connections (IPVS `activeconns`).
    pub active: u32,
    /// Connections that are closing or not yet established (IPVS `inactconns`).
    pub inactive: u32,
    /// Requests in progress, for proxies that balance requests rather than connections.
    pub in_flight: u32,
}

impl Load {
    /// IPVS's connection overhead: `active * 256 + inactive` (`ip_vs_dest_conn_overhead`).
    #[inline]
    pub fn ipvs_overhead(&self) -> u64 {
        ((self.active as u64) << 8) + self.inactive as u64
    }

    /// Active and inactive connections together, the count the overload thresholds test.
    #[inline]
    pub fn connections(&self) -> u64 {
        self.active as u64 + self.inactive as u64
    }

    /// What least-load algorithms outside IPVS compare (power of d choices, bounded load):
    /// active connections plus requests in flight.
    #[inline]
    pub fn outstanding(&self) -> u64 {
        self.active as u64 + self.in_flight as u64
    }
}

/// IPVS connection thresholds (`ipvsadm -x UPPER -y LOWER`); 0 means unset.
///
/// A backend becomes overloaded when a new connection brings its active + inactive count to
/// `upper` or more. It stops being overloaded when a connection ends and the count falls below
/// `lower`, or below three quarters of `upper` when `lower` is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Thresholds {
    /// Upper connection limit; 0 = none.
    pub upper: u32,
    /// Lower connection limit for the hysteresis; 0 = 3/4 of `upper`.
    pub lower: u32,
}

/// A backend (an IPVS "real server") as the schedulers see it.
///
/// The fields a pick reads (id, availability, overload flag, weights, load) come first, in
/// this order, so that they share one cache line; the rest is read when the pool changes.
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct Backend {
    pub(crate) id: BackendId,
    /// `weight` after the slow-start ramp; what the algorithms use.
    pub(crate) effective_weight: u32,
    pub(crate) availability: Availability,
    pub(crate) overloaded: bool,
    pub(crate) load: Load,
    pub(crate) weight: u32,
    /// The latest non-zero weight (IPVS `last_weight`): hash tables keep a quiesced backend's
    /// slots so that quiescing moves no other key.
    pub(crate) last_weight: u32,
    /// `last_weight` after the slow-start ramp; what hash tables are built from.
    pub(crate) table_weight: u32,
    pub(crate) thresholds: Thresholds,
    /// When the current slow-start ramp began, if one is running.
    pub(crate) ramp_since: Option<Duration>,
    pub(crate) addr: Option<SocketAddr>,
}

impl Backend {
    /// A backend with this identity and weight, up, with no load and no thresholds.
    pub fn new(id: BackendId, weight: u32) -> Self {
        Backend {
            id,
            addr: None,
            weight,
            last_weight: weight,
            effective_weight: weight,
            table_weight: weight,
            availability: Availability::Up,
            load: Load::default(),
            thresholds: Thresholds::default(),
            overloaded: false,
            ramp_since: None,
        }
    }

    /// Sets the backend's address. IPVS's `mh` hashes it to place the backend in its table;
    /// the other hashes use it too when present (so that ids can be reassigned freely).
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Sets the overload thresholds.
    pub fn with_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Sets the availability.
    pub fn with_availability(mut self, availability: Availability) -> Self {
        self.availability = availability;
        self
    }

    /// The stable identifier.
    pub fn id(&self) -> BackendId {
        self.id
    }
    /// The address, if one was given.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }
    /// The configured weight (0 = quiesced).
    pub fn weight(&self) -> u32 {
        self.weight
    }
    /// The weight the algorithms use now: the configured weight, ramped while in slow start.
    pub fn effective_weight(&self) -> u32 {
        self.effective_weight
    }
    /// The availability.
    pub fn availability(&self) -> Availability {
        self.availability
    }
    /// The load counters.
    pub fn load(&self) -> Load {
        self.load
    }
    /// The overload thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }
    /// Whether the upper threshold was reached and the lower one not yet crossed again
    /// (IPVS `IP_VS_DEST_F_OVERLOAD`).
    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// Up, weight above zero and not overloaded: what IPVS schedulers accept for a new
    /// connection.
    #[inline]
    pub fn is_schedulable(&self) -> bool {
        self.availability == Availability::Up && self.effective_weight > 0 && !self.overloaded
    }

    /// Why this backend cannot take a new connection, if it cannot.
    pub fn exclusion(&self) -> Option<Exclusion> {
        match self.availability {
            Availability::Down => Some(Exclusion::Down),
            Availability::Draining => Some(Exclusion::Draining),
            Availability::Up if self.effective_weight == 0 => Some(Exclusion::WeightZero),
            Availability::Up if self.overloaded => Some(Exclusion::Overloaded),
            Availability::Up => None,
        }
    }

    /// IPVS `ip_vs_bind_dest`: a connection is bound; sets the overload flag at the upper
    /// threshold.
    pub(crate) fn bind(&mut self, active: bool) {
        if active {
            self.load.active = self.load.active.saturating_add(1);
        } else {
            self.load.inactive = self.load.inactive.saturating_add(1);
        }
        let upper = self.thresholds.upper;
        if upper != 0 && self.load.connections() >= upper as u64 {
            self.overloaded = true;
        }
    }

    /// IPVS `ip_vs_unbind_dest`: a connection ends; clears the overload flag below the lower
    /// threshold (or 3/4 of the upper one when no lower threshold is set).
    pub(crate) fn unbind(&mut self, active: bool) {
        if active {
            self.load.active = self.load.active.saturating_sub(1);
        } else {
            self.load.inactive = self.load.inactive.saturating_sub(1);
        }
        let total = self.load.connections();
        let Thresholds { upper, lower } = self.thresholds;
        if lower != 0 {
            if total < lower as u64 {
                self.overloaded = false;
            }
        } else if upper != 0 {
            if total * 4 < upper as u64 * 3 {
                self.overloaded = false;
            }
        } else {
            self.overloaded = false;
        }
    }

    /// IPVS `__ip_vs_update_dest` for thresholds: raising or unsetting the upper limit clears
    /// the overload flag; lowering it leaves the flag for the next bind to set.
    pub(crate) fn set_thresholds(&mut self, thresholds: Thresholds) {
        if thresholds.upper == 0 || thresholds.upper > self.thresholds.upper {
            self.overloaded = false;
        }
        self.thresholds = thresholds;
    }

    /// IPVS `__ip_vs_update_dest` for the weight: `last_weight` keeps the latest non-zero one.
    pub(crate) fn set_weight(&mut self, weight: u32) {
        self.weight = weight;
        if weight != 0 {
            self.last_weight = weight;
        }
    }
}

/// Why a backend was not eligible for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exclusion {
    /// Availability is [`Availability::Down`].
    Down,
    /// Availability is [`Availability::Draining`].
    Draining,
    /// Its (effective) weight is 0: quiesced.
    WeightZero,
    /// It reached its upper connection threshold.
    Overloaded,
    /// The algorithm's own rule excluded it (for example `ovf`: more active connections than
    /// its weight; bounded load: at capacity).
    AtCapacity,
}

impl core::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Exclusion::Down => "down",
            Exclusion::Draining => "draining",
            Exclusion::WeightZero => "weight 0",
            Exclusion::Overloaded => "overloaded",
            Exclusion::AtCapacity => "at capacity",
        })
    }
}
