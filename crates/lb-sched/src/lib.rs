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
//! | family | names | use it when | pick cost |
//! |---|---|---|---|
//! | round robin | `rr`, `wrr` (IPVS); `swrr` (nginx smooth); `edf` (Envoy) | requests cost about the same; `swrr`/`edf` when bursts to the heaviest backend hurt | O(1); `edf` O(log n) |
//! | least connection | `lc`, `wlc`, `sed`, `nq` (IPVS) | long or uneven connections; `sed`/`nq` favour idle, fast backends | O(1) pick, O(log n) per load update |
//! | failover | `fo`, `ovf` (IPVS) | a primary with spares: highest weight first, `ovf` overflows past `active > weight` | O(1) pick, O(log n) per update |
//! | random | `random`, `twos` (IPVS), `p2c` | many balancers share backends without coordination; `twos`/`p2c` add load awareness | O(d log n) |
//! | locality | `lblc`, `lblcr` (IPVS) | cache clusters: one destination address should hit one (or a few) caches | O(1) average |
//! | static hash | `sh`, `dh` (IPVS) | client or destination affinity with a fixed backend set | O(1) |
//! | consistent hash | `mh` (IPVS Maglev), `maglev`, `ring`, `rendezvous`, `jump` | affinity that survives backends joining and leaving; wrap in [`BoundedLoad`] to cap hot keys | O(1); `ring` O(log n); `rendezvous` O(n) |
//!
//! Consistent hashes build their tables from configured membership and skip unavailable
//! backends at pick time along the key's own fallback sequence, so a backend going down and
//! up moves only its own keys. [`analyze`] measures shares and churn.
//!
//! # Semantics shared by every algorithm
//!
//! - Weight 0 quiesces: never picked for a new connection; `None` when nothing is eligible.
//! - [`Availability::Down`] and [`Availability::Draining`] exclude a backend like weight 0
//!   does; `Down` also voids its persistence templates.
//! - IPVS overload thresholds ([`Thresholds`]) apply to every algorithm.
//! - [`SlowStart`] ramps the weight every algorithm reads.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod analyze;
mod algorithm;
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
mod scheduler;
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
pub use persistence::Persistence;
pub use pool::{ConnState, Pool, PoolConfig};
pub use request::{Request, fold_addr};
pub use rand_core::Rng;
pub use slow_start::SlowStart;
