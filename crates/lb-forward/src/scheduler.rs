//! How the forwarder asks for a real server: the [`Scheduler`] trait, and [`PoolScheduler`],
//! its implementation on an lb-sched [`Pool`].

use core::net::SocketAddr;
use core::time::Duration;

use lb_sched::{Backend, BackendId, ConnState, Pool, PoolConfig, Request};
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
#[derive(Clone, Debug)]
pub struct PoolScheduler {
    pool: Pool,
    rng: XorShift,
}

impl PoolScheduler {
    /// An empty pool with this configuration; `seed` drives the random algorithms.
    pub fn new(config: PoolConfig, seed: u64) -> Result<Self, crate::Error> {
        Ok(PoolScheduler {
            pool: Pool::new(config)?,
            rng: XorShift(seed | 1),
        })
    }

    /// The pool, to read its backends' loads.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
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
        let _ = self.pool.conn_opened(BackendId(id), state(active));
    }

    fn conn_changed(&mut self, id: RealId, active: bool) {
        let _ = self
            .pool
            .conn_changed(BackendId(id), state(!active), state(active));
    }

    fn conn_closed(&mut self, id: RealId, active: bool, client: SocketAddr, now: Duration) {
        let _ = self.pool.conn_closed(BackendId(id), state(active));
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
