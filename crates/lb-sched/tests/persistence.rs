//! IPVS persistence templates (`ipvsadm -p`, `-M`).

use core::time::Duration;
use lb_sched::{
    Algorithm, Availability, Backend, BackendId, Persistence, Pool, PoolConfig, Request,
};
use rand::{SeedableRng, rngs::StdRng};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn pool(persistence: Persistence) -> Pool {
    let config = PoolConfig::new(Algorithm::Rr).with_persistence(persistence);
    Pool::with_backends(config, (0..3).map(|i| Backend::new(BackendId(i), 1))).unwrap()
}

fn from(a: &str) -> Request {
    Request::from_src(format!("{a}:5000").parse().unwrap())
}

#[test]
fn a_client_network_sticks_to_its_backend_until_the_timeout() {
    let p = Persistence::new(secs(300))
        .unwrap()
        .with_v4_netmask("255.255.255.0".parse().unwrap())
        .unwrap();
    let mut pool = pool(p);
    let mut rng = StdRng::seed_from_u64(1);
    let first = pool.pick(&from("10.0.0.1"), secs(0), &mut rng).unwrap();
    // Same /24, later: same backend, and each use refreshes the template.
    assert_eq!(
        pool.pick(&from("10.0.0.99"), secs(200), &mut rng),
        Some(first)
    );
    assert_eq!(
        pool.pick(&from("10.0.0.7"), secs(499), &mut rng),
        Some(first)
    );
    // Another /24 goes round robin.
    assert_ne!(
        pool.pick(&from("10.0.1.1"), secs(499), &mut rng),
        Some(first)
    );
    // 300 s after the last use the template is dead.
    let after = pool.pick(&from("10.0.0.1"), secs(799), &mut rng).unwrap();
    assert_ne!(after, first);
}

#[test]
fn down_voids_templates_quiesced_keeps_them_unless_asked() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut pool = pool(Persistence::new(secs(60)).unwrap());
    let b = pool.pick(&from("192.0.2.1"), secs(0), &mut rng).unwrap();
    pool.set_weight(b, 0, secs(1)).unwrap();
    assert_eq!(pool.pick(&from("192.0.2.1"), secs(2), &mut rng), Some(b));
    pool.set_availability(b, Availability::Down, secs(3))
        .unwrap();
    assert_ne!(pool.pick(&from("192.0.2.1"), secs(4), &mut rng), Some(b));

    let mut pool = pool_expiring();
    let b = pool.pick(&from("192.0.2.1"), secs(0), &mut rng).unwrap();
    pool.set_weight(b, 0, secs(1)).unwrap();
    assert_ne!(pool.pick(&from("192.0.2.1"), secs(2), &mut rng), Some(b));
}

fn pool_expiring() -> Pool {
    pool(
        Persistence::new(secs(60))
            .unwrap()
            .with_expire_quiescent(true),
    )
}

#[test]
fn ipv6_clients_group_by_prefix_and_templates_expire() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut pool = pool(
        Persistence::new(secs(10))
            .unwrap()
            .with_v6_prefix(64)
            .unwrap(),
    );
    let a = Request::from_src("[2001:db8:1:2::1]:1000".parse().unwrap());
    let b = Request::from_src("[2001:db8:1:2:ffff::9]:2000".parse().unwrap());
    let first = pool.pick(&a, secs(0), &mut rng);
    assert_eq!(pool.pick(&b, secs(1), &mut rng), first);
    assert_eq!(pool.templates(), 1);
    pool.expire(secs(20));
    assert_eq!(pool.templates(), 0);
}

/// A flood of new sources cannot grow the templates past their limit: the clients that hold
/// one keep it, the others are scheduled unpinned and counted, until expiry makes room.
#[test]
fn templates_stop_at_their_limit_and_the_pinned_stay_pinned() {
    let p = Persistence::new(secs(60))
        .unwrap()
        .with_max_templates(2)
        .unwrap();
    let mut pool = pool(p);
    let mut rng = StdRng::seed_from_u64(3);
    let a = pool.pick(&from("10.0.0.1"), secs(0), &mut rng).unwrap();
    let b = pool.pick(&from("10.0.0.2"), secs(0), &mut rng).unwrap();
    for i in 3..50 {
        assert!(
            pool.pick(&from(&format!("10.0.0.{i}")), secs(1), &mut rng)
                .is_some()
        );
    }
    assert_eq!(pool.templates(), 2);
    assert_eq!(pool.templates_refused(), 47);
    assert_eq!(pool.persistent_backend("10.0.0.3".parse().unwrap()), None);
    assert_eq!(pool.pick(&from("10.0.0.1"), secs(2), &mut rng), Some(a));
    assert_eq!(pool.pick(&from("10.0.0.2"), secs(2), &mut rng), Some(b));
    // Once the two have expired and been collected, a new client gets a template again.
    pool.expire(secs(100));
    let c = pool.pick(&from("10.0.0.3"), secs(100), &mut rng).unwrap();
    assert_eq!(
        pool.persistent_backend("10.0.0.3".parse().unwrap()),
        Some(c)
    );
}

#[test]
fn bad_persistence_settings_are_errors() {
    assert!(Persistence::new(secs(0)).is_err());
    assert!(
        Persistence::new(secs(1))
            .unwrap()
            .with_max_templates(0)
            .is_err()
    );
    assert!(
        Persistence::new(secs(1))
            .unwrap()
            .with_v4_netmask("255.0.255.0".parse().unwrap())
            .is_err()
    );
    assert!(
        Persistence::new(secs(1))
            .unwrap()
            .with_v6_prefix(129)
            .is_err()
    );
}

#[test]
fn times_near_the_end_of_duration_saturate() {
    // Found by the sched_ops fuzz target: `now + timeout` overflowed.
    let mut rng = StdRng::seed_from_u64(4);
    let config = PoolConfig::new(Algorithm::Rr)
        .with_persistence(Persistence::new(secs(300)).unwrap())
        .with_slow_start(lb_sched::SlowStart::new(secs(10)).unwrap());
    let mut pool = Pool::with_backends(config, [Backend::new(BackendId(0), 1)]).unwrap();
    pool.add(Backend::new(BackendId(1), 1), Duration::MAX)
        .unwrap();
    assert!(
        pool.pick(&from("10.0.0.1"), Duration::MAX, &mut rng)
            .is_some()
    );
    assert!(pool.touch_persistence("10.0.0.1".parse().unwrap(), Duration::MAX));
    assert!(
        pool.pick(&from("10.0.0.1"), Duration::MAX, &mut rng)
            .is_some()
    );
}
