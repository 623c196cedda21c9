//! Load-balancing schedulers: the fourteen Linux IPVS schedulers with the kernel's exact
//! decisions, the consistent-hash family, persistence and slow start, in one pure crate.
//!
//! # Run loop
//!
//! A [`Pool`] holds backends in list order and one [`Algorithm`]. The caller picks a backend
//! for each new connection and reports the connection's life, so the load-aware algorithms
//! and the IPVS overload thresholds see it. Time and randomness are arguments: nothing here
//! reads a clock, touches the network or allocates on the pick path (`lblc`, `lblcr` and
//! persistence insert into their tables on a miss).
//!
//! ```
//! use core::time::Duration;
//! use lb_sched::{Algorithm, Backend, BackendId, ConnState, Pool, PoolConfig, Request};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let backends = [5, 1, 1].into_iter().enumerate().map(|(i, w)| Backend::new(BackendId(i as u32), w));
//! let mut pool = Pool::with_backends(PoolConfig::new(Algorithm::Wrr), backends).unwrap();
//! let mut rng = StdRng::seed_from_u64(7);
//! let now = Duration::ZERO;
//! let picks: Vec<u32> = (0..7)
//!     .map(|_| {
//!         let id = pool.pick(&Request::default(), now, &mut rng).unwrap();
//!         pool.conn_opened(id, ConnState::Active).unwrap();
//!         id.0
//!     })
//!     .collect();
//! assert_eq!(picks, [0, 0, 0, 0, 0, 1, 2]); // the kernel's interleaved wrr
//! pool.conn_closed(BackendId(0), ConnState::Active).unwrap();
//! ```
//!
//! # Choosing an algorithm
//!
//! | family | names | use it when | pick cost (at 1000 backends) |
//! |---|---|---|---|
//! | round robin | `rr`, `wrr` (IPVS); `swrr` (nginx smooth); `edf` (Envoy) | requests cost about the same; `swrr`/`edf` when bursts to the heaviest backend hurt | O(1), 6-8 ns; `edf` O(log n), 70 ns |
//! | least connection | `lc`, `wlc`, `sed`, `nq` (IPVS) | long or uneven connections; `sed`/`nq` favour idle, fast backends | O(1) pick, 5-7 ns; O(log n) per load update |
//! | failover | `fo`, `ovf` (IPVS) | a primary with spares: highest weight first, `ovf` overflows past `active > weight` | O(1) pick, 5-6 ns; O(log n) per update |
//! | random | `random`, `twos` (IPVS), `p2c` | many balancers share backends without coordination; `twos`/`p2c` add load awareness | O(d log n), 25-55 ns with `StdRng` |
//! | locality | `lblc`, `lblcr` (IPVS) | cache clusters: one destination address should hit one (or a few) caches | O(1) average, 30-50 ns |
//! | static hash | `sh`, `dh` (IPVS) | client or destination affinity with a fixed backend set | O(1), 6-8 ns |
//! | consistent hash | `mh` (IPVS Maglev), `maglev`, `ring`, `rendezvous`, `jump` (JumpBackHash), `jump-classic` (Lamping and Veach's function) | affinity that survives backends joining and leaving; wrap in [`BoundedLoad`] to cap hot keys | O(1): `maglev` 6-15 ns, `mh` 10-14 ns (the kernel's SipHash), `jump` 12-25 ns, `ring` 20-35 ns (a radix index); `jump-classic` O(log n), 61-66 ns; `rendezvous` O(n), 14 µs |
//!
//! The costs are criterion medians and best-of-40 rounds on a 2-vCPU AMD EPYC guest, harness
//! included (`BENCHMARKS.md` in the repository). A Maglev table of M slots builds in O(M log M):
//! 65537 slots for 1000 backends in about 1 ms.
//!
//! Consistent hashes build their tables from configured membership and skip unavailable
//! backends at pick time along the key's own fallback sequence, so a backend going down and
//! up moves only its own keys. [`analyze`] measures shares and churn.
//!
//! # One example per family
//!
//! Least connection: the kernel's `wlc`, fed by the caller's connection events.
//!
//! ```
//! # use core::time::Duration;
//! # use lb_sched::*;
//! # let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
//! let backends = [3, 1].into_iter().enumerate().map(|(i, w)| Backend::new(BackendId(i as u32), w));
//! let mut pool = Pool::with_backends(PoolConfig::new(Algorithm::Wlc), backends)?;
//! let mut order = Vec::new();
//! for _ in 0..6 {
//!     let id = pool.pick(&Request::default(), Duration::ZERO, &mut rng).unwrap();
//!     pool.conn_opened(id, ConnState::Active)?; // active * 256 + inactive, per unit of weight
//!     order.push(id.0);
//! }
//! assert_eq!(order, [0, 1, 0, 0, 0, 1]);
//! # Ok::<(), Error>(())
//! ```
//!
//! Failover: `fo` sends everything to the heaviest backend until it fails.
//!
//! ```
//! # use core::time::Duration;
//! # use lb_sched::*;
//! # let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
//! let primary_and_spare = [Backend::new(BackendId(1), 100), Backend::new(BackendId(2), 1)];
//! let mut pool = Pool::with_backends(PoolConfig::new(Algorithm::Fo), primary_and_spare)?;
//! assert_eq!(pool.pick(&Request::default(), Duration::ZERO, &mut rng), Some(BackendId(1)));
//! pool.set_availability(BackendId(1), Availability::Down, Duration::ZERO)?;
//! assert_eq!(pool.pick(&Request::default(), Duration::ZERO, &mut rng), Some(BackendId(2)));
//! # Ok::<(), Error>(())
//! ```
//!
//! Random with load awareness: power of two choices on requests in flight.
//!
//! ```
//! # use core::time::Duration;
//! # use lb_sched::*;
//! let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
//! let backends = (0..8).map(|i| Backend::new(BackendId(i), 1));
//! let mut pool = Pool::with_backends(PoolConfig::new(Algorithm::P2c { choices: 2 }), backends)?;
//! for _ in 0..800 {
//!     let id = pool.pick(&Request::default(), Duration::ZERO, &mut rng).unwrap();
//!     pool.request_started(id)?; // never finished: load only grows
//! }
//! let loads: Vec<u32> = pool.backends().iter().map(|b| b.load().in_flight).collect();
//! assert!(loads.iter().all(|&l| (95..=105).contains(&l)), "{loads:?}");
//! # Ok::<(), Error>(())
//! ```
//!
//! Locality: `lblc` keeps a destination address on one cache server.
//!
//! ```
//! # use core::time::Duration;
//! # use lb_sched::*;
//! # let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
//! let caches = (0..4).map(|i| Backend::new(BackendId(i), 10));
//! let mut pool = Pool::with_backends(PoolConfig::new(Algorithm::Lblc), caches)?;
//! let to = |site: &str| Request::default().with_dst(site.parse().unwrap());
//! let a = pool.pick(&to("203.0.113.5:80"), Duration::ZERO, &mut rng).unwrap();
//! pool.conn_opened(a, ConnState::Active)?;
//! let b = pool.pick(&to("198.51.100.9:80"), Duration::ZERO, &mut rng).unwrap();
//! assert_ne!(a, b); // wlc placed the new destination on an idle cache
//! assert_eq!(pool.pick(&to("203.0.113.5:80"), Duration::ZERO, &mut rng), Some(a));
//! # Ok::<(), Error>(())
//! ```
//!
//! Consistent hashing: Maglev with a bounded load, and what a removal costs.
//!
//! ```
//! # use core::time::Duration;
//! # use lb_sched::*;
//! let config = PoolConfig::new(Algorithm::Maglev { table_size: 65537 })
//!     .with_bounded_load(BoundedLoad::new(125)?);
//! let backends: Vec<Backend> = (0..20).map(|i| Backend::new(BackendId(i), 1)).collect();
//! let before = Pool::with_backends(config, backends)?;
//! let mut after = before.clone();
//! after.remove(BackendId(4))?; // the rebuild keeps every slot it can
//! let keys = (0..50_000u64).map(Request::from_key);
//! let moved = analyze::disruption(&before, &after, keys)?.moved_fraction;
//! assert!(moved < 0.06, "{moved}"); // 1/20 = 0.05: only backend 4's keys
//! # Ok::<(), Error>(())
//! ```
//!
//! Persistence: IPVS `-p 300 -M 255.255.255.0` on top of any algorithm.
//!
//! ```
//! # use core::time::Duration;
//! # use lb_sched::*;
//! # let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
//! let sticky = Persistence::new(Duration::from_secs(300))?
//!     .with_v4_netmask("255.255.255.0".parse().unwrap())?;
//! let config = PoolConfig::new(Algorithm::Rr).with_persistence(sticky);
//! let mut pool = Pool::with_backends(config, (0..3).map(|i| Backend::new(BackendId(i), 1)))?;
//! let from = |a: &str| Request::from_src(a.parse().unwrap());
//! let first = pool.pick(&from("192.0.2.10:1000"), Duration::ZERO, &mut rng);
//! assert_eq!(pool.pick(&from("192.0.2.77:2000"), Duration::from_secs(10), &mut rng), first);
//! # Ok::<(), Error>(())
//! ```
//!
//! # Semantics shared by every algorithm
//!
//! - Weight 0 quiesces: never picked for a new connection; `None` when nothing is eligible.
//! - [`Availability::Down`] and [`Availability::Draining`] exclude a backend like weight 0
//!   does; `Down` also voids its persistence templates.
//! - IPVS overload thresholds ([`Thresholds`]) apply to every algorithm, with the kernel's one
//!   exception: `lblc` keeps a destination on its cached backend until its own locality rule
//!   moves it.
//! - [`SlowStart`] ramps the weight every algorithm reads.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

extern crate alloc;

mod algorithm;
pub mod analyze;
mod backend;
mod error;
mod explain;
mod extra;
mod fenwick;
mod hash;
mod ipvs;
mod persistence;
mod pool;
mod request;
mod roster;
mod scheduler;
mod slots;
mod slow_start;
pub mod trace;

pub use algorithm::{
    Algorithm, HASH_TABLE_BITS, MAGLEV_DEFAULT_TABLE, MAGLEV_MAX_TABLE, MH_DEFAULT_TABLE,
    MH_PRIMES, RING_DEFAULT_POINTS, RING_MAX_POINTS,
};
pub use backend::{Availability, Backend, BackendId, Exclusion, Load, Thresholds};
pub use error::Error;
pub use explain::{Candidate, Decision, Explanation, Score};
pub use hash::BoundedLoad;
pub use ipvs::lblc::LocalityConfig;
pub use persistence::{DEFAULT_MAX_TEMPLATES, Persistence};
pub use pool::{ConnState, Pool, PoolConfig};
pub use rand_core::Rng;
pub use request::{Request, fold_addr};
pub use slow_start::SlowStart;
