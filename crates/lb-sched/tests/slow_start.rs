//! Slow start ramps the effective weight of a backend that joins or recovers, for every
//! algorithm.

use core::time::Duration;
use lb_sched::{Algorithm, Availability, Backend, BackendId, Pool, PoolConfig, Request, SlowStart};
use rand::{SeedableRng, rngs::StdRng};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn the_ramp_follows_envoys_formula() {
    let s = SlowStart::new(secs(10.0)).unwrap();
    assert_eq!(s.ramp(100, secs(0.0)), Some(10)); // min_weight_percent 10
    assert_eq!(s.ramp(100, secs(5.0)), Some(50));
    assert_eq!(s.ramp(100, secs(9.9)), Some(99));
    assert_eq!(s.ramp(100, secs(10.0)), None);
    assert_eq!(s.ramp(1, secs(0.0)), Some(1)); // never below 1
    let aggressive = s.with_aggression(2.0).unwrap();
    assert_eq!(aggressive.ramp(100, secs(2.5)), Some(50)); // sqrt(0.25)
    assert!(SlowStart::new(secs(0.0)).is_err());
    assert!(s.with_min_percent(101).is_err());
    assert!(s.with_aggression(f64::NAN).is_err());
}

#[test]
fn a_joining_backend_ramps_up_under_every_algorithm() {
    let mut rng = StdRng::seed_from_u64(5);
    for name in Algorithm::NAMES {
        let config = PoolConfig::new(Algorithm::from_name(name).unwrap())
            .with_slow_start(SlowStart::new(secs(100.0)).unwrap());
        let mut pool = Pool::with_backends(config, [Backend::new(BackendId(0), 100)]).unwrap();
        pool.add(Backend::new(BackendId(1), 100), secs(0.0))
            .unwrap();
        let req = Request::from_src("10.0.0.1:1".parse().unwrap());
        pool.pick(&req, secs(0.0), &mut rng);
        assert_eq!(
            pool.backend(BackendId(1)).unwrap().effective_weight(),
            10,
            "{name}"
        );
        pool.pick(&req, secs(50.0), &mut rng);
        assert_eq!(
            pool.backend(BackendId(1)).unwrap().effective_weight(),
            50,
            "{name}"
        );
        pool.pick(&req, secs(100.0), &mut rng);
        assert_eq!(
            pool.backend(BackendId(1)).unwrap().effective_weight(),
            100,
            "{name}"
        );
        // The first backend never ramped.
        assert_eq!(
            pool.backend(BackendId(0)).unwrap().effective_weight(),
            100,
            "{name}"
        );
    }
}

#[test]
fn a_recovering_backend_gets_a_ramped_share_of_round_robin() {
    let config =
        PoolConfig::new(Algorithm::Wrr).with_slow_start(SlowStart::new(secs(60.0)).unwrap());
    let backends = (0..2).map(|i| Backend::new(BackendId(i), 10));
    let mut pool = Pool::with_backends(config, backends).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    pool.set_availability(BackendId(1), Availability::Down, secs(0.0))
        .unwrap();
    pool.set_availability(BackendId(1), Availability::Up, secs(1.0))
        .unwrap();
    // 1 s into a 60 s ramp: weight max(10%, 1/60) of 10 = 1 against 10.
    let ones = (0..110)
        .filter(|_| pool.pick(&Request::default(), secs(1.0), &mut rng) == Some(BackendId(1)))
        .count();
    assert_eq!(ones, 10);
}
