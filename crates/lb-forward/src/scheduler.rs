//! How the forwarder asks for a real server: the [`Scheduler`] trait, and [`PoolScheduler`],
//! its implementation on an lb-sched [`Pool`].

use core::net::SocketAddr;
use core::time::Duration;

use lb_sched::{Algorithm, Backend, BackendId, ConnState, Pool, PoolConfig, Request};
use rand_core::{Infallible, TryRng};

/// A real server's id within its service, stable while it is configured.
pub type RealId = u32;

/// Picks a real server for each new connection and hears about the connections' life, so that
/// load-aware algorithms see the load. Implement it to plug in another scheduler.
pub trait Scheduler {
    /// A real joined the service.
    fn add_real(
        &mut self,
        id: RealId,
        addr: SocketAddr,
        weight: u32,
        now: Duration,
    ) -> Result<(), crate::Error>;
    /// A real left the service.
    fn remove_real(&mut self, id: RealId);
    /// A real's weight changed (0 quiesces it).
    fn set_weight(&mut self, id: RealId, weight: u32, now: Duration) -> Result<(), crate::Error>;
    /// The real for a new connection from `client` to `service`, `None` when none can take it.
    fn pick(&mut self, client: SocketAddr, service: SocketAddr, now: Duration) -> Option<RealId>;
    /// A connection to `id` was created, active (established) or not.
    fn conn_opened(&mut self, id: RealId, active: bool);
    /// A connection to `id` became active (`true`) or stopped being active (`false`).
    fn conn_changed(&mut self, id: RealId, active: bool);
    /// A connection to `id` ended; `client` sent it.
    fn conn_closed(&mut self, id: RealId, active: bool, client: SocketAddr, now: Duration);
    /// Time passed: drop state that expired (persistence templates, locality caches). The
    /// forwarder calls it about once a second of `now`, from [`Forwarder::expire`].
    ///
    /// [`Forwarder::expire`]: crate::Forwarder::expire
    fn tick(&mut self, now: Duration) {
        let _ = now;
    }
}

/// A [`Scheduler`] on an lb-sched [`Pool`]: any of its algorithms, with persistence and slow
/// start. Randomised algorithms draw from a xorshift seeded at construction.
///
/// Connection counts reach the pool only when its algorithm weighs them: for `rr`, `wrr`,
/// `swrr`, `edf`, `dh`, `sh`, `mh` and the consistent hashes without bounded load they
/// could change nothing (no overload thresholds are set here), and each update costs the
/// pool a lookup and a refresh of its scheduler's state on every new and every closed
/// connection. The forwarder keeps its own per-real counts ([`Forwarder::status`]).
///
/// [`Forwarder::status`]: crate::Forwarder::status
#[derive(Clone, Debug)]
pub struct PoolScheduler {
    pool: Pool,
    rng: XorShift,
    /// Whether the algorithm reads connection counts (see above).
    weighs_load: bool,
}

impl PoolScheduler {
    /// An empty pool with this configuration; `seed` drives the random algorithms.
    pub fn new(config: PoolConfig, seed: u64) -> Result<Self, crate::Error> {
        let weighs_load = config.bounded_load.is_some() || !load_blind(config.algorithm);
        Ok(PoolScheduler {
            pool: Pool::new(config)?,
            rng: XorShift(seed | 1),
            weighs_load,
        })
    }

    /// The pool: its configuration, and its backends' loads when the algorithm weighs them
    /// (see [`PoolScheduler`]).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Algorithms whose choice depends on weights and availability only, never on connection
/// counts (without overload thresholds, which [`PoolScheduler`] does not set).
fn load_blind(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Rr
            | Algorithm::Wrr
            | Algorithm::Swrr
            | Algorithm::Edf
            | Algorithm::Dh { .. }
            | Algorithm::Sh { .. }
            | Algorithm::Mh { .. }
    ) || algorithm.is_consistent_hash()
}

fn state(active: bool) -> ConnState {
    if active {
        ConnState::Active
    } else {
        ConnState::Inactive
    }
}

impl Scheduler for PoolScheduler {
    fn add_real(
        &mut self,
        id: RealId,
        addr: SocketAddr,
        weight: u32,
        now: Duration,
    ) -> Result<(), crate::Error> {
        let backend = Backend::new(BackendId(id), weight).with_addr(addr);
        Ok(self.pool.add(backend, now)?)
    }

    fn remove_real(&mut self, id: RealId) {
        // Removing an id the pool does not hold is a no-op: the forwarder keeps both in step.
        let _ = self.pool.remove(BackendId(id));
    }

    fn set_weight(&mut self, id: RealId, weight: u32, now: Duration) -> Result<(), crate::Error> {
        Ok(self.pool.set_weight(BackendId(id), weight, now)?)
    }

    fn pick(&mut self, client: SocketAddr, service: SocketAddr, now: Duration) -> Option<RealId> {
        let req = Request::from_src(client).with_dst(service);
        self.pool.pick(&req, now, &mut self.rng).map(|b| b.0)
    }

    fn conn_opened(&mut self, id: RealId, active: bool) {
        if self.weighs_load {
            let _ = self.pool.conn_opened(BackendId(id), state(active));
        }
    }

    fn conn_changed(&mut self, id: RealId, active: bool) {
        if self.weighs_load {
            let _ = self
                .pool
                .conn_changed(BackendId(id), state(!active), state(active));
        }
    }

    fn conn_closed(&mut self, id: RealId, active: bool, client: SocketAddr, now: Duration) {
        if self.weighs_load {
            let _ = self.pool.conn_closed(BackendId(id), state(active));
        }
        // A persistence template lives its timeout after the last connection it placed.
        self.pool.touch_persistence(client.ip(), now);
    }

    fn tick(&mut self, now: Duration) {
        self.pool.expire(now);
    }
}

/// Marsaglia's xorshift64: the random algorithms need speed, not secrecy.
#[derive(Clone, Copy, Debug)]
struct XorShift(u64);

impl TryRng for XorShift {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        Ok(x)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "10.0.0.100:80";

    fn scheduler(algorithm: Algorithm) -> PoolScheduler {
        let mut s = PoolScheduler::new(PoolConfig::new(algorithm), 1).unwrap();
        for id in 0..2 {
            let addr = format!("10.0.0.{}:80", id + 3).parse().unwrap();
            s.add_real(id, addr, 1, Duration::ZERO).unwrap();
        }
        s
    }

    fn pick(s: &mut PoolScheduler) -> Option<RealId> {
        s.pick(
            "10.1.0.1:1000".parse().unwrap(),
            SERVICE.parse().unwrap(),
            Duration::ZERO,
        )
    }

    fn active(s: &PoolScheduler, id: RealId) -> u32 {
        s.pool().backend(BackendId(id)).unwrap().load().active
    }

    #[test]
    fn load_aware_algorithms_see_every_connection() {
        let mut s = scheduler(Algorithm::Lc);
        s.conn_opened(0, true);
        s.conn_opened(0, false);
        assert_eq!(active(&s, 0), 1);
        // lc avoids the loaded real until its connections close.
        assert_eq!(pick(&mut s), Some(1));
        s.conn_changed(0, false);
        assert_eq!(active(&s, 0), 0);
        s.conn_closed(0, false, "10.1.0.1:1000".parse().unwrap(), Duration::ZERO);
        s.conn_closed(0, false, "10.1.0.1:1001".parse().unwrap(), Duration::ZERO);
        let loads = s.pool().backend(BackendId(0)).unwrap().load();
        assert_eq!((loads.active, loads.inactive), (0, 0));
    }

    #[test]
    fn load_blind_algorithms_skip_the_bookkeeping() {
        let mut s = scheduler(Algorithm::Wrr);
        let mut twin = scheduler(Algorithm::Wrr);
        assert!(!s.weighs_load);
        for _ in 0..4 {
            let id = pick(&mut s).unwrap();
            s.conn_opened(id, true);
            // The same sequence without any connection events.
            assert_eq!(pick(&mut twin), Some(id));
        }
        assert_eq!((active(&s, 0), active(&s, 1)), (0, 0));
        assert!(scheduler(Algorithm::Lc).weighs_load);
    }
}
