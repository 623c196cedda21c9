//! `Pool::explain` says what `pick` would do and why, without changing the pool.

use core::time::Duration;
use lb_sched::{
    Algorithm, Availability, Backend, BackendId, ConnState, Decision, Exclusion, Pool, PoolConfig,
    Request, Score,
};
use rand::{SeedableRng, rngs::StdRng};

#[test]
fn explain_names_the_choice_the_scores_and_the_exclusions() {
    let backends = (0..4).map(|i| Backend::new(BackendId(i), [3, 1, 2, 0][i as usize]));
    let mut pool = Pool::with_backends(PoolConfig::new(Algorithm::Wlc), backends).unwrap();
    pool.conn_opened(BackendId(0), ConnState::Active).unwrap();
    pool.set_availability(BackendId(1), Availability::Down, Duration::ZERO)
        .unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let e = pool.explain(&Request::default(), Duration::ZERO, &mut rng);
    assert_eq!(e.chosen, Some(BackendId(2)));
    assert_eq!(e.decision, Decision::Algorithm);
    assert_eq!(
        e.candidates[0].score,
        Score::Cost {
            numerator: 256,
            denominator: 3
        }
    );
    assert_eq!(e.candidates[1].exclusion, Some(Exclusion::Down));
    assert_eq!(e.candidates[3].exclusion, Some(Exclusion::WeightZero));
    // Nothing changed: the real pick agrees.
    assert_eq!(
        pool.pick(&Request::default(), Duration::ZERO, &mut rng),
        Some(BackendId(2))
    );
    let text = e.to_string();
    assert!(text.starts_with("wlc chose #2"), "{text}");
    assert!(text.contains("excluded: down"), "{text}");
}

#[test]
fn explain_reports_persistence() {
    let persistence = lb_sched::Persistence::new(Duration::from_secs(60)).unwrap();
    let config = PoolConfig::new(Algorithm::Rr).with_persistence(persistence);
    let mut pool =
        Pool::with_backends(config, (0..3).map(|i| Backend::new(BackendId(i), 1))).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let req = Request::from_src("198.51.100.1:5555".parse().unwrap());
    let first = pool.pick(&req, Duration::ZERO, &mut rng);
    let e = pool.explain(&req, Duration::from_secs(1), &mut rng);
    assert_eq!(e.chosen, first);
    assert_eq!(e.decision, Decision::Persistence);
}
