//! Criterion benchmarks of `lb::sched`, and of peer crates on the same operations.
//!
//! Run with `cargo bench --bench sched`; filter with criterion's usual arguments, e.g.
//! `cargo bench --bench sched -- 'sched/wlc/'` or `-- --quick peers/`.
//!
//! - `sched/<alg>/pick/<n>`: one [`Pool::pick`] for every name in [`Algorithm::NAMES`], with
//!   n = 10, 100, 1000, 10000 backends of weight `1 + (i * 7) % 10` (`fo` and `ovf`: 100 times
//!   that, so that `ovf` has capacity) and 4096 precomputed requests of varying source address,
//!   source port and destination address, cycled through. Load-aware algorithms are first
//!   brought to a steady load of 8 connections per backend; the pick then leaves it unchanged.
//!   `mh` at 10000 backends uses table 65521 (its default 4093 holds at most 4093 backends).
//! - `sched/<alg>/pick+update/<n>`: for the load-aware algorithms (`lc wlc sed nq lblc lblcr
//!   ovf twos p2c` and `maglev+bounded`, Maglev with bounded load 125%), the realistic cycle:
//!   pick, `conn_opened` for the pick and `conn_closed` for the oldest of the 8n open
//!   connections (a ring buffer), so the load stays at 8 per backend. `sched/rr/pick+update/<n>`
//!   is the reference: `rr` ignores the load, so it is the cycle's cost without scheduler work.
//! - `sched/maglev/build/1000` (table 65537, weight 1, as the peer),
//!   `sched/maglev/build-weighted/1000`, `sched/mh/build/1000` (IPVS `mh`, table 4093),
//!   `sched/ring/build/1000` (160 points per unit of weight, weight 1, as pingora): the whole
//!   [`Pool::with_backends`].
//! - `sched/<alg>/pick-after-remove/<N>` for `maglev ring rendezvous jump mh` and
//!   `peers/{maglev,pingora-ketama}/lookup-after-remove/<N>`, N = 100 and 1000 equal backends:
//!   set up by measuring with [`analyze::disruption`] how many of 100 000 keys move when the
//!   middle backend is removed (a pool built anew without it, as the peers must do, and
//!   [`Pool::remove`]) or the last one is (printed once per id, and as a table at the end);
//!   the timing is then a lookup after [`Pool::remove`] of the middle one.
//!   `sched/<alg>/pick-one-down/1000`: a pick with one backend marked down instead, whose keys
//!   walk their fallback sequence.
//! - `peers/...`: `pingora-ketama` build and lookup (vs `sched/ring/build/1000` and
//!   `sched/ring/pick-w1/1000`), the `maglev` crate built with capacity 65537 (its default
//!   would be the prime after 100 n) and its lookup (vs `sched/maglev/build/1000` and
//!   `sched/maglev/pick-w1/1000`), and `weighted-rs` smooth weighted round robin with the same
//!   weights as `sched/swrr/pick/1000`. Peers hash 8-byte keys; ours get the same keys as
//!   [`Request::from_key`].
//! - `baseline/next-request` (what every pick benchmark pays besides the pick) and
//!   `baseline/stdrng-u64` (one draw of the generator the random algorithms use).
//!
//! On a shared machine criterion's estimates carry other tenants' load. `SCHED_BEST_OF=N
//! cargo bench --bench sched` instead runs `sched/<alg>/pick/1000` for every algorithm in N
//! rounds of 200 000 picks (the same pools and requests) and prints the fastest round's time
//! per pick, the cost with the least interference; `SCHED_ONLY=NAME` runs only that algorithm.
//! `SCHED_BUILDS=N` likewise builds `sched/maglev/build/1000`'s pool N times and prints the
//! fastest build (`benches/lab/sched-instructions.sh maglev-build` counts its instructions).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lb::sched::{
    Algorithm, Availability, Backend, BackendId, BoundedLoad, ConnState, MAGLEV_DEFAULT_TABLE,
    MH_DEFAULT_TABLE, Pool, PoolConfig, Request, analyze,
};
use maglev::{ConsistentHasher, Maglev};
use pingora_ketama::{Bucket, Continuum};
use rand::{Rng, SeedableRng, rngs::StdRng};
use weighted_rs::{SmoothWeight, Weight};

#[path = "support/best_of.rs"]
mod support;

/// Backend counts for the pick benchmarks.
const SIZES: [usize; 4] = [10, 100, 1000, 10_000];
/// Precomputed requests, cycled through (a power of two).
const REQUESTS: usize = 4096;
/// Open connections per backend in the steady state.
const CONNS_PER_BACKEND: usize = 8;
/// Keys for the keys-moved measurement.
const KEYS: u64 = 100_000;
/// The algorithms whose decision reads the load.
const LOAD_AWARE: [&str; 9] = [
    "lc", "wlc", "sed", "nq", "lblc", "lblcr", "ovf", "twos", "p2c",
];
/// The algorithm whose pick+update cycle is measured as the reference for the load-aware ones.
const CYCLE_REFERENCE: &str = "rr";
/// The hashes measured for keys moved.
const HASHES: [&str; 5] = ["maglev", "ring", "rendezvous", "jump", "mh"];
/// `mh`'s table when there are more backends than its default table holds.
const MH_LARGE_TABLE: u32 = 65521;
const NOW: Duration = Duration::ZERO;

/// Keys-moved lines, printed again together at the end.
static MOVED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i as u32)), 8080)
}

/// The heterogeneous weights of the pick benchmarks.
fn mixed_weight(i: usize) -> u32 {
    1 + (i as u32 * 7) % 10
}

fn backends(n: usize, weight: impl Fn(usize) -> u32) -> Vec<Backend> {
    (0..n)
        .map(|i| Backend::new(BackendId(i as u32), weight(i)).with_addr(addr(i)))
        .collect()
}

/// Requests from varied clients (address and port) to 1024 destination addresses.
fn requests(seed: u64) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..REQUESTS)
        .map(|_| {
            let r = rng.next_u64();
            let src = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(r as u32)),
                1024 + (r >> 32) as u16 % 64_000,
            );
            let d = (r >> 48) as u32 % 1024;
            let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xc612_0000 | d)), 80);
            Request::from_src(src).with_dst(dst)
        })
        .collect()
}

fn random_keys(seed: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..REQUESTS).map(|_| rng.next_u64()).collect()
}

fn algorithm(name: &str, n: usize) -> Algorithm {
    let alg = Algorithm::from_name(name).expect("a known name");
    match alg {
        Algorithm::Mh { .. } if n > MH_DEFAULT_TABLE as usize => alg
            .with_table_size(MH_LARGE_TABLE)
            .expect("a valid mh table"),
        _ => alg,
    }
}

fn pool(config: PoolConfig, backends: impl IntoIterator<Item = Backend>) -> Pool {
    Pool::with_backends(config, backends).expect("a valid pool")
}

fn bounded_maglev() -> PoolConfig {
    PoolConfig::new(Algorithm::Maglev {
        table_size: MAGLEV_DEFAULT_TABLE,
    })
    .with_bounded_load(BoundedLoad::new(125).expect("a valid factor"))
}

/// A pool, its requests and its open connections.
struct Steady {
    pool: Pool,
    rng: StdRng,
    requests: Vec<Request>,
    next: usize,
    open: Vec<Option<BackendId>>,
    oldest: usize,
}

impl Steady {
    /// The pool; with `load`, brought to 8 open connections per backend.
    fn new(pool: Pool, requests: Vec<Request>, load: bool) -> Self {
        let n = pool.len();
        let mut s = Steady {
            pool,
            rng: StdRng::seed_from_u64(42),
            requests,
            next: 0,
            open: vec![None; if load { n * CONNS_PER_BACKEND } else { 1 }],
            oldest: 0,
        };
        if load {
            for _ in 0..s.open.len() {
                s.cycle();
            }
        }
        s
    }

    #[inline]
    fn pick(&mut self) -> Option<BackendId> {
        let req = &self.requests[self.next & (REQUESTS - 1)];
        self.next = self.next.wrapping_add(1);
        self.pool.pick(req, NOW, &mut self.rng)
    }

    /// Pick, open the connection, close the oldest one.
    #[inline]
    fn cycle(&mut self) -> Option<BackendId> {
        let id = self.pick()?;
        self.pool
            .conn_opened(id, ConnState::Active)
            .expect("a known backend");
        let slot = &mut self.open[self.oldest];
        if let Some(old) = slot.replace(id) {
            self.pool
                .conn_closed(old, ConnState::Active)
                .expect("a known backend");
        }
        self.oldest += 1;
        if self.oldest == self.open.len() {
            self.oldest = 0;
        }
        Some(id)
    }
}

/// The pick as one register-sized value: `black_box` of an `Option<BackendId>` is two 4-byte
/// stores read back as one 8-byte load, a store-forwarding stall that costs more than `rr`.
fn id(pick: Option<BackendId>) -> u32 {
    pick.map_or(u32::MAX, |id| id.0)
}

/// Benchmarks `$body` on a state that `$init` builds on first use: criterion calls the closure
/// once per sample, and not at all when the id is filtered out.
macro_rules! lazy_bench {
    ($group:expr, $id:expr, $init:expr, |$s:ident| $body:expr) => {{
        let mut state = None;
        $group.bench_function($id, |b| {
            let $s = state.get_or_insert_with(|| $init);
            b.iter(|| black_box($body));
        });
    }};
}

fn picks(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched");
    for name in Algorithm::NAMES {
        let load = LOAD_AWARE.contains(&name);
        let weight: fn(usize) -> u32 = if matches!(name, "fo" | "ovf") {
            |i| 100 * mixed_weight(i)
        } else {
            mixed_weight
        };
        for n in SIZES {
            let setup = |load| {
                let p = pool(PoolConfig::new(algorithm(name, n)), backends(n, weight));
                Steady::new(p, requests(n as u64), load)
            };
            lazy_bench!(g, format!("{name}/pick/{n}"), setup(load), |s| id(s.pick()));
            // `rr` ignores the load: its cycle is the reference, what the pool's own
            // bookkeeping and this harness cost without any load-aware scheduler work.
            if load || name == CYCLE_REFERENCE {
                lazy_bench!(g, format!("{name}/pick+update/{n}"), setup(true), |s| id(
                    s.cycle()
                ));
            }
        }
    }
    for n in SIZES {
        let setup = || {
            Steady::new(
                pool(bounded_maglev(), backends(n, mixed_weight)),
                requests(n as u64),
                true,
            )
        };
        lazy_bench!(g, format!("maglev+bounded/pick/{n}"), setup(), |s| id(
            s.pick()
        ));
        lazy_bench!(g, format!("maglev+bounded/pick+update/{n}"), setup(), |s| {
            id(s.cycle())
        });
    }
    g.finish();
}

fn builds(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched");
    let build = |alg: Algorithm, weight: fn(usize) -> u32| {
        let list = backends(1000, weight);
        move || pool(PoolConfig::new(alg), list.iter().cloned())
    };
    let maglev = Algorithm::Maglev {
        table_size: MAGLEV_DEFAULT_TABLE,
    };
    let mut f = build(maglev, |_| 1);
    g.bench_function("maglev/build/1000", |b| b.iter(&mut f));
    let mut f = build(maglev, mixed_weight);
    g.bench_function("maglev/build-weighted/1000", |b| b.iter(&mut f));
    let mut f = build(Algorithm::from_name("mh").expect("mh"), mixed_weight);
    g.bench_function("mh/build/1000", |b| b.iter(&mut f));
    let mut f = build(
        Algorithm::Ring {
            points_per_weight: 160,
        },
        |_| 1,
    );
    g.bench_function("ring/build/1000", |b| b.iter(&mut f));
    g.finish();
}

fn record(line: String) {
    eprintln!("{line}");
    MOVED.lock().expect("not poisoned").push(line);
}

fn moved_line(what: &str, n: usize, moved: u64, keys: u64) -> String {
    format!(
        "keys-moved {what:<28} N={n:<5} moved={moved:<6} of {keys} = {:.4}% (ideal 1/N = {:.4}%)",
        100.0 * moved as f64 / keys as f64,
        100.0 / n as f64
    )
}

/// The keys of the keys-moved measurement, as ours see them.
fn key_requests(name: &str) -> impl Iterator<Item = Request> + Clone + '_ {
    (0..KEYS).map(move |k| match name {
        // `mh` hashes the source address (its port only with mh-port).
        "mh" => Request::from_src(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x6440_0000 + k as u32)),
            40000,
        )),
        _ => Request::from_key(k),
    })
}

fn timing_requests(name: &str) -> Vec<Request> {
    if name == "mh" {
        requests(7)
    } else {
        random_keys(7).into_iter().map(Request::from_key).collect()
    }
}

fn keys_moved(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched");
    for n in [100, 1000] {
        let removed = BackendId(n as u32 / 2);
        for name in HASHES {
            let init = || {
                let config = PoolConfig::new(algorithm(name, n));
                let all = backends(n, |_| 1);
                let before = pool(config.clone(), all.iter().cloned());
                let moved = |after: &Pool, how: &str| {
                    let d =
                        analyze::disruption(&before, after, key_requests(name)).expect("a hash");
                    record(moved_line(&format!("{name} ({how})"), n, d.moved, d.keys));
                };
                // A pool built anew without the backend, as the peers must do.
                let fresh = pool(config, all.iter().filter(|b| b.id() != removed).cloned());
                moved(&fresh, "remove, rebuilt");
                // Pool::remove, which may keep slots the fresh build would move.
                let mut after = before.clone();
                after.remove(removed).expect("a known backend");
                moved(&after, "Pool::remove");
                let mut last = before.clone();
                last.remove(BackendId(n as u32 - 1))
                    .expect("a known backend");
                moved(&last, "Pool::remove last");
                Steady::new(after, timing_requests(name), false)
            };
            lazy_bench!(g, format!("{name}/pick-after-remove/{n}"), init(), |s| id(
                s.pick()
            ));
        }
    }
    for name in HASHES {
        let n = 1000;
        let init = || {
            // mh refuses the keys of a backend that is down unless it has mh-fallback.
            let alg = match name {
                "mh" => algorithm(name, n)
                    .with_flag("mh-fallback")
                    .expect("mh flag"),
                _ => algorithm(name, n),
            };
            let before = pool(PoolConfig::new(alg), backends(n, |_| 1));
            let mut after = before.clone();
            after
                .set_availability(BackendId(n as u32 / 2), Availability::Down, NOW)
                .expect("known");
            let d = analyze::disruption(&before, &after, key_requests(name)).expect("a hash");
            record(moved_line(
                &format!("{name} (one down)"),
                n,
                d.moved,
                d.keys,
            ));
            Steady::new(after, timing_requests(name), false)
        };
        lazy_bench!(g, format!("{name}/pick-one-down/{n}"), init(), |s| id(
            s.pick()
        ));
    }
    g.finish();

    let mut g = c.benchmark_group("peers");
    for n in [100, 1000] {
        let removed = n / 2;
        let keys = random_keys(7);
        let init = || {
            let all: Vec<SocketAddr> = (0..n).map(addr).collect();
            let rest: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|&a| a != addr(removed))
                .collect();
            let before = Maglev::with_capacity(all, MAGLEV_DEFAULT_TABLE as usize);
            let after = Maglev::with_capacity(rest, MAGLEV_DEFAULT_TABLE as usize);
            let moved = (0..KEYS).filter(|k| before.get(k) != after.get(k)).count() as u64;
            record(moved_line("peer maglev (remove)", n, moved, KEYS));
            (after, 0usize)
        };
        lazy_bench!(g, format!("maglev/lookup-after-remove/{n}"), init(), |s| {
            s.1 = s.1.wrapping_add(1);
            s.0.get(&keys[s.1 & (REQUESTS - 1)])
                .map_or(0, SocketAddr::port)
        });
        let bytes: Vec<[u8; 8]> = keys.iter().map(|k| k.to_le_bytes()).collect();
        let init = || {
            let all: Vec<Bucket> = (0..n).map(|i| Bucket::new(addr(i), 1)).collect();
            let rest: Vec<Bucket> = (0..n)
                .filter(|&i| i != removed)
                .map(|i| Bucket::new(addr(i), 1))
                .collect();
            let (before, after) = (Continuum::new(&all), Continuum::new(&rest));
            let moved = (0..KEYS)
                .filter(|k| before.node(&k.to_le_bytes()) != after.node(&k.to_le_bytes()))
                .count() as u64;
            record(moved_line("peer pingora-ketama (remove)", n, moved, KEYS));
            (after, 0usize)
        };
        lazy_bench!(
            g,
            format!("pingora-ketama/lookup-after-remove/{n}"),
            init(),
            |s| {
                s.1 = s.1.wrapping_add(1);
                s.0.node(&bytes[s.1 & (REQUESTS - 1)])
                    .map_or(0, |a| a.port())
            }
        );
    }
    g.finish();
}

fn peers(c: &mut Criterion) {
    const N: usize = 1000;
    let keys = random_keys(11);
    let key_bytes: Vec<[u8; 8]> = keys.iter().map(|k| k.to_le_bytes()).collect();
    let key_reqs: Vec<Request> = keys.iter().copied().map(Request::from_key).collect();
    let lookups = |alg: Algorithm| {
        Steady::new(
            pool(PoolConfig::new(alg), backends(N, |_| 1)),
            key_reqs.clone(),
            false,
        )
    };

    let mut g = c.benchmark_group("sched");
    let ring = Algorithm::Ring {
        points_per_weight: 160,
    };
    lazy_bench!(g, "ring/pick-w1/1000", lookups(ring), |s| id(s.pick()));
    let maglev = Algorithm::Maglev {
        table_size: MAGLEV_DEFAULT_TABLE,
    };
    lazy_bench!(g, "maglev/pick-w1/1000", lookups(maglev), |s| id(s.pick()));
    g.finish();

    let mut g = c.benchmark_group("peers");
    let buckets: Vec<Bucket> = (0..N).map(|i| Bucket::new(addr(i), 1)).collect();
    g.bench_function("pingora-ketama/build/1000", |b| {
        b.iter(|| Continuum::new(&buckets))
    });
    lazy_bench!(
        g,
        "pingora-ketama/lookup/1000",
        (Continuum::new(&buckets), 0usize),
        |s| {
            s.1 = s.1.wrapping_add(1);
            s.0.node(&key_bytes[s.1 & (REQUESTS - 1)])
                .map_or(0, |a| a.port())
        }
    );
    let nodes: Vec<SocketAddr> = (0..N).map(addr).collect();
    lazy_bench!(
        g,
        "maglev/lookup/1000",
        (
            Maglev::with_capacity(nodes.iter().copied(), MAGLEV_DEFAULT_TABLE as usize),
            0usize
        ),
        |s| {
            s.1 = s.1.wrapping_add(1);
            s.0.get(&keys[s.1 & (REQUESTS - 1)])
                .map_or(0, SocketAddr::port)
        }
    );
    let init = || {
        let mut sw = SmoothWeight::new();
        for i in 0..N {
            sw.add(i as u32, mixed_weight(i) as isize);
        }
        sw
    };
    lazy_bench!(g, "weighted-rs/smooth/pick/1000", init(), |s| s
        .next()
        .unwrap_or(u32::MAX));
    // The maglev crate builds a full permutation per node (n * table words): slow, few samples.
    g.sample_size(10);
    g.bench_function("maglev/build/1000", |b| {
        b.iter(|| Maglev::with_capacity(nodes.iter().copied(), MAGLEV_DEFAULT_TABLE as usize))
    });
    g.finish();
}

/// What every pick benchmark pays besides the pick: fetching the next precomputed request
/// and keeping the result alive; and one draw from `StdRng`, which the random algorithms make.
fn baseline(c: &mut Criterion) {
    let mut g = c.benchmark_group("baseline");
    lazy_bench!(g, "next-request", (requests(1), 0usize), |s| {
        s.1 = s.1.wrapping_add(1);
        s.0[s.1 & (REQUESTS - 1)].src.port()
    });
    lazy_bench!(g, "stdrng-u64", StdRng::seed_from_u64(1), |s| s.next_u64());
    g.finish();
}

/// Prints the keys-moved figures together once the benchmarks are done.
fn summary(_: &mut Criterion) {
    let lines = MOVED.lock().expect("not poisoned");
    if !lines.is_empty() {
        eprintln!("\nKeys moved when one of N equal backends is removed or down ({KEYS} keys):");
        for line in lines.iter() {
            eprintln!("  {line}");
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    targets = baseline, picks, builds, peers, keys_moved, summary
}
/// `sched/<alg>/pick/1000` for every algorithm, as the fastest of `rounds` rounds.
fn best_of_report(rounds: usize, only: Option<&str>) {
    const N: usize = 1000;
    let per_round = 200_000;
    println!("best of {rounds} rounds of {per_round} picks at {N} backends, ns per pick");
    for name in Algorithm::NAMES {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let weight: fn(usize) -> u32 = if matches!(name, "fo" | "ovf") {
            |i| 100 * mixed_weight(i)
        } else {
            mixed_weight
        };
        let p = pool(PoolConfig::new(algorithm(name, N)), backends(N, weight));
        let mut s = Steady::new(p, requests(N as u64), LOAD_AWARE.contains(&name));
        let ns = support::best_of(rounds, per_round, |_| {
            black_box(id(s.pick()));
        });
        println!("sched/{name}/pick/{N} {ns:.1}");
    }
}

/// `sched/maglev/build/1000`'s pool built `builds` times, the fastest build's time.
fn best_build_report(builds: usize) {
    let list = backends(1000, |_| 1);
    let config = PoolConfig::new(Algorithm::Maglev {
        table_size: MAGLEV_DEFAULT_TABLE,
    });
    let ns = support::best_of(builds, 1, |_| {
        black_box(pool(config.clone(), list.iter().cloned()));
    });
    println!(
        "sched/maglev/build/1000 best of {builds}: {:.3} ms",
        ns / 1e6
    );
}

fn main() {
    if let Some(builds) = std::env::var("SCHED_BUILDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        best_build_report(builds);
        return;
    }
    if let Some(rounds) = std::env::var("SCHED_BEST_OF")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        best_of_report(rounds, std::env::var("SCHED_ONLY").ok().as_deref());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
