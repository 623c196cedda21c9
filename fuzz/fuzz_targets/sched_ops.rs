//! Drives a `Pool` with an arbitrary configuration and an arbitrary sequence of operations,
//! checking after every pick that the choice is one the pool may make.
//!
//! Contract held here (see README.md):
//! - nothing panics;
//! - a pick names a backend in the pool that is not down; unless a persistence template named
//!   it (the template must then have existed before the pick), it is up, has weight > 0,
//!   effective (slow-start) weight > 0 and is not overloaded (except `lblc`, which reuses a
//!   cached backend whatever its threshold flag says, as the kernel does);
//! - with persistence, the client has a template naming the pick afterwards;
//! - `explain` (given a clone of the RNG) chooses what the next `pick` chooses, its
//!   candidates are the pool's backends in list order, and its decision matches its choice;
//! - `lookup` answers exactly for the hashing algorithms, with a choice that obeys the pick
//!   rules and (without slow start) equals the next pick's when persistence is off;
//! - operations on a backend id succeed exactly when the id is in the pool.
#![no_main]

use arbitrary::Arbitrary;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use lb_fuzz::{FuzzRng, RngSpec};
use lb_sched::{
    Algorithm, Availability, Backend, BackendId, BoundedLoad, ConnState, Decision, Error,
    Exclusion, LocalityConfig, Persistence, Pool, PoolConfig, Request, SlowStart, Thresholds,
};
use libfuzzer_sys::fuzz_target;

/// Initial backends and ops are capped so that one input stays fast.
const MAX_BACKENDS: usize = 64;
const MAX_OPS: usize = 500;

/// A duration: milliseconds mostly, or anything up to `Duration::MAX`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Span {
    Millis(u32),
    Secs(u64),
    Max,
}

impl Span {
    fn get(self) -> Duration {
        match self {
            Span::Millis(ms) => Duration::from_millis(ms as u64),
            Span::Secs(s) => Duration::from_secs(s),
            Span::Max => Duration::MAX,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny deterministic RNG the input controls.

// ---------------------------------------------------------------------------------------------
// The input.

/// Addresses from a small space most of the time, so that persistence templates, `lblc`
/// entries and hash keys collide; anything at all otherwise.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Addr {
    /// One of four IPv4 addresses, port 80.
    Tiny(u8),
    V4Small(u8, u8),
    V6Small(u8, u8),
    Any(SocketAddr),
}

impl Addr {
    fn get(self) -> SocketAddr {
        match self {
            Addr::Tiny(host) => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, host % 4)), 80),
            Addr::V4Small(host, port) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 0, host >> 6, host)),
                port as u16,
            ),
            Addr::V6Small(host, port) => SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    0,
                    0,
                    host as u16 >> 4,
                    0,
                    0,
                    0,
                    host as u16,
                )),
                port as u16,
            ),
            Addr::Any(a) => a,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Weight {
    Small(u8),
    Medium(u16),
    Any(u32),
}

impl Weight {
    /// The weight; `cap` bounds it where large weights make rebuilds slow (`ring`).
    fn get(self, cap: Option<u32>) -> u32 {
        let w = match self {
            Weight::Small(w) => (w % 8) as u32,
            Weight::Medium(w) => w as u32,
            Weight::Any(w) => w,
        };
        cap.map_or(w, |cap| w % (cap + 1))
    }
}

/// `ring` builds `weight * points_per_weight` points, up to 8M of them: an 8M-point build takes
/// seconds under the sanitizer, so ring weights and points per weight stay small enough that
/// every input runs quickly. (Out-of-range points per weight still reach validation.)
const RING_WEIGHT_CAP: u32 = 15;
const RING_POINTS_CAP: u32 = 40;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Avail {
    Up,
    Draining,
    Down,
}

impl Avail {
    fn get(self) -> Availability {
        match self {
            Avail::Up => Availability::Up,
            Avail::Draining => Availability::Draining,
            Avail::Down => Availability::Down,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Limits {
    Small(u8, u8),
    Any(u32, u32),
}

impl Limits {
    fn get(self) -> Thresholds {
        match self {
            Limits::Small(upper, lower) => Thresholds {
                upper: (upper % 8) as u32,
                lower: (lower % 8) as u32,
            },
            Limits::Any(upper, lower) => Thresholds { upper, lower },
        }
    }
}

#[derive(Arbitrary, Debug)]
struct BackendSpec {
    /// `None`: the next sequential id.
    id: Option<u8>,
    weight: Weight,
    addr: Option<Addr>,
    availability: Avail,
    thresholds: Option<Limits>,
}

impl BackendSpec {
    fn build(&self, default_id: u32, cap: Option<u32>) -> Backend {
        let id = self.id.map_or(default_id, u32::from);
        let mut b = Backend::new(BackendId(id), self.weight.get(cap))
            .with_availability(self.availability.get());
        if let Some(addr) = self.addr {
            b = b.with_addr(addr.get());
        }
        if let Some(t) = self.thresholds {
            b = b.with_thresholds(t.get());
        }
        b
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Flag {
    ShFallback,
    ShPort,
    MhFallback,
    MhPort,
    Bogus,
}

impl Flag {
    fn name(self) -> &'static str {
        match self {
            Flag::ShFallback => "sh-fallback",
            Flag::ShPort => "sh-port",
            Flag::MhFallback => "mh-fallback",
            Flag::MhPort => "mh-port",
            Flag::Bogus => "no-such-flag",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TableSize {
    /// One of a list of sizes some algorithm accepts.
    Known(u8),
    /// Anything (mostly rejected).
    Any(u32),
}

/// Sizes some table-based algorithm accepts, kept small enough for fast rebuilds (plus the
/// defaults and the largest `mh` one).
const KNOWN_SIZES: [u32; 15] = [
    251, 509, 1021, 4093, 131071, // mh primes
    2, 3, 13, 10007, 65537, // maglev primes
    16, 64, 256, 4096, 65536, // sh / dh powers of two
];

impl TableSize {
    fn get(self) -> u32 {
        match self {
            TableSize::Known(i) => KNOWN_SIZES[i as usize % KNOWN_SIZES.len()],
            TableSize::Any(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct PersistenceSpec {
    timeout: Span,
    v4_mask_bits: Option<u8>,
    v4_mask_raw: Option<u32>,
    v6_prefix: Option<u8>,
    expire_quiescent: bool,
}

#[derive(Arbitrary, Debug)]
struct SlowStartSpec {
    window: Span,
    aggression: Option<f64>,
    min_percent: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct LocalitySpec {
    expiration: Span,
    max_entries: u8,
    entry_timeout: Span,
}

#[derive(Arbitrary, Debug)]
struct Config {
    algorithm: u8,
    flags: Vec<Flag>,
    table_size: Option<TableSize>,
    /// `p2c` choices.
    choices: Option<u8>,
    /// `ring` points per weight.
    points: Option<u32>,
    persistence: Option<PersistenceSpec>,
    slow_start: Option<SlowStartSpec>,
    bounded_load: Option<u32>,
    locality: Option<LocalitySpec>,
    /// Build with all backends at once, or add them one by one.
    incremental: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum State {
    Active,
    Inactive,
}

impl State {
    fn get(self) -> ConnState {
        match self {
            State::Active => ConnState::Active,
            State::Inactive => ConnState::Inactive,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Req {
    src: Addr,
    dst: Addr,
    key: Option<u64>,
}

impl Req {
    fn get(self) -> Request {
        Request {
            src: self.src.get(),
            dst: self.dst.get(),
            key: self.key,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A pick; `open` counts the connection on the backend chosen.
    Pick {
        req: Req,
        open: Option<State>,
        request: bool,
    },
    ConnOpened(u8, State),
    ConnChanged(u8, State, State),
    ConnClosed(u8, State),
    RequestStarted(u8),
    RequestFinished(u8),
    SetWeight(u8, Weight),
    SetAvailability(u8, Avail),
    SetThresholds(u8, Limits),
    Add(BackendSpec),
    Remove(u8),
    Expire,
    Explain(Req),
    Lookup(Req),
    TouchPersistence(Addr),
    /// The clock moves forward by this many milliseconds.
    Advance(u32),
    /// The clock moves forward by this many seconds (saturating at `Duration::MAX`).
    Leap(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    rng: RngSpec,
    backends: Vec<BackendSpec>,
    ops: Vec<Op>,
}

// ---------------------------------------------------------------------------------------------
// Building the pool.

fn algorithm(c: &Config) -> Option<Algorithm> {
    let name = Algorithm::NAMES[c.algorithm as usize % Algorithm::NAMES.len()];
    let mut a = Algorithm::from_name(name).expect("every name in NAMES is accepted");
    match a {
        Algorithm::P2c { .. } => {
            if let Some(choices) = c.choices {
                a = Algorithm::P2c { choices };
            }
        }
        Algorithm::Ring { .. } => {
            if let Some(points) = c.points {
                let valid = (1..=lb_sched::RING_MAX_POINTS).contains(&points);
                let points = if valid {
                    1 + (points - 1) % RING_POINTS_CAP
                } else {
                    points
                };
                a = Algorithm::Ring {
                    points_per_weight: points,
                };
            }
        }
        _ => {}
    }
    for flag in c.flags.iter().take(4) {
        match a.with_flag(flag.name()) {
            Ok(with) => a = with,
            Err(Error::UnknownFlag { .. }) => {}
            Err(e) => panic!("with_flag: unexpected error {e:?}"),
        }
    }
    if let Some(size) = c.table_size {
        match a.with_table_size(size.get()) {
            Ok(with) => a = with,
            Err(Error::InvalidTableSize { .. }) => return None,
            Err(e) => panic!("with_table_size: unexpected error {e:?}"),
        }
    }
    Some(a)
}

fn pool_config(c: &Config) -> Option<PoolConfig> {
    let mut config = PoolConfig::new(algorithm(c)?);
    if let Some(p) = &c.persistence {
        let mut persistence = Persistence::new(p.timeout.get()).ok()?;
        if let Some(bits) = p.v4_mask_bits {
            let mask = u32::MAX.checked_shl(32 - (bits as u32 % 33)).unwrap_or(0);
            persistence = persistence.with_v4_netmask(Ipv4Addr::from(mask)).ok()?;
        }
        if let Some(raw) = p.v4_mask_raw {
            persistence = persistence.with_v4_netmask(Ipv4Addr::from(raw)).ok()?;
        }
        if let Some(prefix) = p.v6_prefix {
            persistence = persistence.with_v6_prefix(prefix).ok()?;
        }
        config = config.with_persistence(persistence.with_expire_quiescent(p.expire_quiescent));
    }
    if let Some(s) = &c.slow_start {
        let mut slow = SlowStart::new(s.window.get()).ok()?;
        if let Some(aggression) = s.aggression {
            slow = slow.with_aggression(aggression).ok()?;
        }
        if let Some(percent) = s.min_percent {
            slow = slow.with_min_percent(percent).ok()?;
        }
        config = config.with_slow_start(slow);
    }
    if let Some(factor) = c.bounded_load {
        config = config.with_bounded_load(BoundedLoad::new(factor).ok()?);
    }
    if let Some(l) = &c.locality {
        config.locality = LocalityConfig {
            expiration: l.expiration.get(),
            max_entries: l.max_entries as usize,
            entry_timeout: l.entry_timeout.get(),
        };
    }
    Some(config)
}

fn is_hashing(a: &Algorithm) -> bool {
    matches!(
        a,
        Algorithm::Sh { .. } | Algorithm::Dh { .. } | Algorithm::Mh { .. }
    ) || a.is_consistent_hash()
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Run {
    pool: Pool,
    rng: FuzzRng,
    now: Duration,
    persistence: bool,
    slow_start: bool,
    weight_cap: Option<u32>,
}

impl Run {
    /// The result of an operation on backend `id`: `Ok` exactly when the id is in the pool.
    fn check_id_result(&self, id: BackendId, existed: bool, r: Result<(), Error>, what: &str) {
        match r {
            Ok(()) => assert!(existed, "{what}({id}) succeeded on an id not in the pool"),
            Err(Error::UnknownBackend(e)) => {
                assert!(
                    !existed,
                    "{what}({id}) said unknown backend for an id in the pool"
                );
                assert_eq!(e, id, "{what}: wrong id in the error");
            }
            Err(e) => panic!("{what}({id}): unexpected error {e:?}"),
        }
    }

    /// The rules every choice for a new connection obeys. `template` is the backend the
    /// client's persistence template named before the pick.
    fn check_choice(&self, id: BackendId, template: Option<BackendId>, what: &str) {
        let b = self
            .pool
            .backend(id)
            .unwrap_or_else(|| panic!("{what} returned {id}, which is not in the pool"));
        assert_eq!(b.id(), id);
        assert_ne!(
            b.availability(),
            Availability::Down,
            "{what} returned {id}, which is down: {b:?}"
        );
        let from_template = self.persistence && template == Some(id);
        if from_template {
            return;
        }
        assert!(b.weight() > 0, "{what} returned {id} with weight 0: {b:?}");
        assert!(
            b.effective_weight() > 0,
            "{what} returned {id} with effective weight 0: {b:?}"
        );
        assert_eq!(
            b.availability(),
            Availability::Up,
            "{what} returned {id}, which is not up: {b:?}"
        );
        if self.pool.algorithm() == Algorithm::Lblc {
            // The kernel's lblc keeps a cached backend until its locality rule moves it.
            return;
        }
        assert!(
            !b.is_overloaded(),
            "{what} returned {id}, which is overloaded: {b:?}"
        );
        assert!(
            b.is_schedulable(),
            "{what} returned {id}, which is not schedulable: {b:?}"
        );
    }

    fn pick(&mut self, req: &Request) -> Option<BackendId> {
        let template = self.pool.persistent_backend(req.src.ip());
        let picked = self.pool.pick(req, self.now, &mut self.rng);
        if let Some(id) = picked {
            self.check_choice(id, template, "pick");
            if self.persistence {
                assert_eq!(
                    self.pool.persistent_backend(req.src.ip()),
                    Some(id),
                    "pick with persistence left no template naming its choice"
                );
            }
        }
        picked
    }

    fn explain(&mut self, req: &Request) {
        let mut probe_rng = self.rng.clone();
        let e = self.pool.explain(req, self.now, &mut probe_rng);
        let _ = e.to_string();
        assert_eq!(e.algorithm, self.pool.algorithm());
        let ids: Vec<BackendId> = self.pool.backends().iter().map(Backend::id).collect();
        let candidates: Vec<BackendId> = e.candidates.iter().map(|c| c.id).collect();
        assert_eq!(
            candidates, ids,
            "explain's candidates are not the pool's backends in order"
        );
        match (e.chosen, e.decision) {
            (None, Decision::NoneAvailable) => {}
            (Some(_), Decision::Algorithm | Decision::Persistence) => {}
            (chosen, decision) => panic!("explain chose {chosen:?} with decision {decision:?}"),
        }
        if e.decision == Decision::Algorithm {
            let id = e.chosen.expect("checked above");
            let c = e
                .candidates
                .iter()
                .find(|c| c.id == id)
                .expect("chosen is a candidate");
            // Kernel lblc keeps a cached destination over its connection threshold, and one at
            // its upper threshold (only its own locality rule re-picks, and it does not look
            // at IP_VS_DEST_F_OVERLOAD), so that choice may be listed as overloaded or full.
            let kept_by_cache = e.algorithm == Algorithm::Lblc
                && matches!(
                    c.exclusion,
                    Some(Exclusion::Overloaded | Exclusion::AtCapacity)
                );
            assert!(
                c.exclusion.is_none() || kept_by_cache,
                "explain chose {id} by algorithm but lists it as excluded: {c:?}\n{e}"
            );
        }
        let picked = self.pick(req);
        assert_eq!(
            e.chosen, picked,
            "explain's choice differs from the next pick's ({e})"
        );
    }

    fn lookup(&mut self, req: &Request) {
        let hashing = is_hashing(&self.pool.algorithm());
        match self.pool.lookup(req) {
            Ok(found) => {
                assert!(hashing, "lookup answered for {}", self.pool.algorithm());
                if let Some(id) = found {
                    self.check_choice(id, None, "lookup");
                }
                if !self.persistence && !self.slow_start {
                    let picked = self.pick(req);
                    assert_eq!(found, picked, "lookup differs from the next pick");
                }
            }
            Err(Error::InvalidParameter { .. }) => {
                assert!(!hashing, "lookup refused {}", self.pool.algorithm())
            }
            Err(e) => panic!("lookup: unexpected error {e:?}"),
        }
    }

    /// Moves the clock forward, saturating at `Duration::MAX`.
    fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        let exists = |pool: &Pool, id: u8| {
            let id = BackendId(id as u32);
            (id, pool.backend(id).is_some())
        };
        match op {
            Op::Pick { req, open, request } => {
                if let Some(id) = self.pick(&req.get()) {
                    if let Some(state) = open {
                        self.pool
                            .conn_opened(id, state.get())
                            .expect("the pick is in the pool");
                    }
                    if *request {
                        self.pool
                            .request_started(id)
                            .expect("the pick is in the pool");
                    }
                }
            }
            Op::ConnOpened(i, s) => {
                let (id, existed) = exists(&self.pool, *i);
                let r = self.pool.conn_opened(id, s.get());
                self.check_id_result(id, existed, r, "conn_opened");
            }
            Op::ConnChanged(i, from, to) => {
                let (id, existed) = exists(&self.pool, *i);
                let r = self.pool.conn_changed(id, from.get(), to.get());
                self.check_id_result(id, existed, r, "conn_changed");
            }
            Op::ConnClosed(i, s) => {
                let (id, existed) = exists(&self.pool, *i);
                let r = self.pool.conn_closed(id, s.get());
                self.check_id_result(id, existed, r, "conn_closed");
            }
            Op::RequestStarted(i) => {
                let (id, existed) = exists(&self.pool, *i);
                let r = self.pool.request_started(id);
                self.check_id_result(id, existed, r, "request_started");
            }
            Op::RequestFinished(i) => {
                let (id, existed) = exists(&self.pool, *i);
                let r = self.pool.request_finished(id);
                self.check_id_result(id, existed, r, "request_finished");
            }
            Op::SetWeight(i, w) => {
                let (id, existed) = exists(&self.pool, *i);
                let w = w.get(self.weight_cap);
                let r = self.pool.set_weight(id, w, now);
                self.check_id_result(id, existed, r, "set_weight");
                if existed {
                    let b = self.pool.backend(id).expect("still there");
                    assert_eq!(b.weight(), w);
                    if !self.slow_start {
                        assert_eq!(b.effective_weight(), w);
                    }
                }
            }
            Op::SetAvailability(i, a) => {
                let (id, existed) = exists(&self.pool, *i);
                let r = self.pool.set_availability(id, a.get(), now);
                self.check_id_result(id, existed, r, "set_availability");
            }
            Op::SetThresholds(i, t) => {
                let (id, existed) = exists(&self.pool, *i);
                let r = self.pool.set_thresholds(id, t.get());
                self.check_id_result(id, existed, r, "set_thresholds");
            }
            Op::Add(spec) => {
                let b = spec.build(self.pool.len() as u32, self.weight_cap);
                let id = b.id();
                let existed = self.pool.backend(id).is_some();
                let len = self.pool.len();
                match self.pool.add(b, now) {
                    Ok(()) => {
                        assert!(!existed, "add accepted a duplicate {id}");
                        assert_eq!(self.pool.len(), len + 1);
                        assert_eq!(self.pool.position(id), Some(len));
                    }
                    Err(Error::DuplicateBackend(d)) => {
                        assert!(existed, "add said duplicate for a new {id}");
                        assert_eq!(d, id);
                    }
                    Err(Error::TooManyBackends(_)) => {}
                    Err(e) => panic!("add: unexpected error {e:?}"),
                }
            }
            Op::Remove(i) => {
                let (id, existed) = exists(&self.pool, *i);
                let len = self.pool.len();
                match self.pool.remove(id) {
                    Ok(b) => {
                        assert!(existed, "remove succeeded on an id not in the pool");
                        assert_eq!(b.id(), id);
                        assert_eq!(self.pool.len(), len - 1);
                        assert!(self.pool.backend(id).is_none());
                    }
                    Err(e) => self.check_id_result(id, existed, Err(e), "remove"),
                }
                for (pos, b) in self.pool.backends().iter().enumerate() {
                    assert_eq!(
                        self.pool.position(b.id()),
                        Some(pos),
                        "positions out of step after remove"
                    );
                }
            }
            Op::Expire => self.pool.expire(now),
            Op::Explain(req) => self.explain(&req.get()),
            Op::Lookup(req) => self.lookup(&req.get()),
            Op::TouchPersistence(addr) => {
                let client = addr.get().ip();
                let had = self.pool.persistent_backend(client).is_some();
                let touched = self.pool.touch_persistence(client, now);
                assert_eq!(
                    had, touched,
                    "touch_persistence disagrees with persistent_backend"
                );
            }
            Op::Advance(ms) => self.advance(Duration::from_millis(*ms as u64)),
            Op::Leap(secs) => self.advance(Duration::from_secs(*secs)),
        }
    }
}

fuzz_target!(|input: Input| {
    let Some(config) = pool_config(&input.config) else {
        return;
    };
    let persistence = config.persistence.is_some();
    let slow_start = config.slow_start.is_some();
    let weight_cap = match config.algorithm {
        Algorithm::Ring { .. } => Some(RING_WEIGHT_CAP),
        _ => None,
    };
    let specs = &input.backends[..input.backends.len().min(MAX_BACKENDS)];
    let backends: Vec<Backend> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| s.build(i as u32, weight_cap))
        .collect();
    let pool = if input.config.incremental {
        let mut pool = match Pool::new(config) {
            Ok(pool) => pool,
            Err(Error::InvalidParameter { .. } | Error::BoundedLoadNeedsHash(_)) => return,
            Err(e) => panic!("Pool::new: unexpected error {e:?}"),
        };
        for b in backends {
            match pool.add(b, Duration::ZERO) {
                Ok(()) | Err(Error::DuplicateBackend(_) | Error::TooManyBackends(_)) => {}
                Err(e) => panic!("add: unexpected error {e:?}"),
            }
        }
        pool
    } else {
        match Pool::with_backends(config, backends) {
            Ok(pool) => pool,
            Err(
                Error::InvalidParameter { .. }
                | Error::BoundedLoadNeedsHash(_)
                | Error::DuplicateBackend(_)
                | Error::TooManyBackends(_),
            ) => return,
            Err(e) => panic!("Pool::with_backends: unexpected error {e:?}"),
        }
    };
    for (pos, b) in pool.backends().iter().enumerate() {
        assert_eq!(pool.position(b.id()), Some(pos));
        assert!(
            !b.is_overloaded(),
            "a new pool starts with no overload flag"
        );
    }
    let mut run = Run {
        pool,
        rng: FuzzRng::from_spec(&input.rng),
        now: Duration::ZERO,
        persistence,
        slow_start,
        weight_cap,
    };
    for op in input.ops.iter().take(MAX_OPS) {
        run.apply(op);
    }
});
