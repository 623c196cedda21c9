//! The pick path does not allocate: a counting global allocator watches steady-state picks
//! and connection events for every algorithm.

use core::time::Duration;
use lb_sched::{Algorithm, Backend, BackendId, ConnState, Persistence, Pool, PoolConfig, Request};
use rand::{SeedableRng, rngs::StdRng};

#[test]
fn steady_state_picks_do_not_allocate() {
    // The counter is live: a vector counts.
    let probe = allocation_counter::measure(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert!(probe.count_total > 0);
    let requests: Vec<Request> = (0..64u32)
        .map(|i| {
            Request::from_src(
                format!("10.0.{}.{}:{}", i / 8, i % 8 + 1, 1000 + i)
                    .parse()
                    .unwrap(),
            )
            .with_dst(format!("192.0.2.{}:80", i % 4 + 1).parse().unwrap())
        })
        .collect();
    for name in Algorithm::NAMES {
        for persistent in [false, true] {
            let mut config = PoolConfig::new(Algorithm::from_name(name).unwrap());
            if persistent {
                config =
                    config.with_persistence(Persistence::new(Duration::from_secs(300)).unwrap());
            }
            let backends = (0..100).map(|i| Backend::new(BackendId(i), 1 + i % 7));
            let mut pool = Pool::with_backends(config, backends).unwrap();
            let mut rng = StdRng::seed_from_u64(3);
            let cycle = |pool: &mut Pool, rng: &mut StdRng| {
                for req in &requests {
                    if let Some(id) = pool.pick(req, Duration::ZERO, rng) {
                        pool.conn_opened(id, ConnState::Active).unwrap();
                        pool.conn_closed(id, ConnState::Active).unwrap();
                    }
                }
            };
            // Warm up: caches and templates learn these clients and destinations.
            cycle(&mut pool, &mut rng);
            let info = allocation_counter::measure(|| cycle(&mut pool, &mut rng));
            assert_eq!(
                info.count_total, 0,
                "{name} (persistence {persistent}) allocated"
            );
        }
    }
}

#[test]
fn long_fallback_walks_do_not_allocate() {
    // Many down backends and a tight load bound make the consistent hashes walk far along
    // their fallback sequences; the walk's bookkeeping lives in a buffer the pool keeps.
    let requests: Vec<Request> = (0..256u64).map(Request::from_key).collect();
    for name in ["maglev", "ring", "rendezvous", "jump"] {
        let config = PoolConfig::new(Algorithm::from_name(name).unwrap())
            .with_bounded_load(lb_sched::BoundedLoad::new(101).unwrap());
        let backends = (0..200).map(|i| Backend::new(BackendId(i), 1));
        let mut pool = Pool::with_backends(config, backends).unwrap();
        for i in (0..200).filter(|i| i % 4 != 0) {
            pool.set_availability(BackendId(i), lb_sched::Availability::Down, Duration::ZERO)
                .unwrap();
        }
        let mut rng = StdRng::seed_from_u64(9);
        let cycle = |pool: &mut Pool, rng: &mut StdRng| {
            for req in &requests {
                let id = pool.pick(req, Duration::ZERO, rng).unwrap();
                pool.conn_opened(id, ConnState::Active).unwrap();
            }
        };
        cycle(&mut pool, &mut rng);
        let info = allocation_counter::measure(|| cycle(&mut pool, &mut rng));
        assert_eq!(info.count_total, 0, "{name} allocated");
    }
}
