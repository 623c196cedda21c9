//! A deterministic simulation of the Checker: 200 targets on a virtual clock, each failing
//! during a window of its own, probes answered after a seeded random latency (timeouts when
//! down). Checks, for every target: it goes down and comes back, detection stays within the
//! formula, no probe starts before its slot, and the same seed replays the same history.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use lb_health::{
    Check, CheckId, Checker, InitialState, Jitter, Outcome, Reason, State, Target, TrackerConfig,
};
use rand::{RngExt as _, SeedableRng, rngs::StdRng};

const MS: Duration = Duration::from_millis(1);

struct World {
    /// Per target: down from .0 to .1.
    outages: Vec<(Duration, Duration)>,
}

/// Runs 60 virtual seconds; returns every event as (target index, time, state).
fn simulate(seed: u64) -> (Vec<(usize, Duration, State)>, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (interval, timeout, rise, fall) = (Duration::from_secs(1), 300 * MS, 2, 3);
    let n = 200;
    let world = World {
        outages: (0..n)
            .map(|_| {
                let start = Duration::from_millis(rng.random_range(5_000..25_000));
                (
                    start,
                    start + Duration::from_millis(rng.random_range(5_000..20_000)),
                )
            })
            .collect(),
    };
    let mut cfg = TrackerConfig::new(interval);
    cfg.initial = InitialState::Up;
    cfg.rise = rise;
    cfg.fall = fall;
    cfg.jitter = Jitter {
        warmup: interval,
        spread_percent: 10,
    };
    let mut checker = Checker::new();
    let ids: Vec<CheckId> = (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 80));
            let target = Target {
                addr,
                check: Check::Tcp,
                tracker: cfg,
                timeout,
                source: None,
            };
            checker.add(target, Duration::ZERO, &mut rng).unwrap()
        })
        .collect();
    // Completions in flight: (time, target index, outcome is pass).
    let mut inflight: BinaryHeap<Reverse<(Duration, usize, bool)>> = BinaryHeap::new();
    let mut events = Vec::new();
    let mut probes = 0u64;
    let mut now = Duration::ZERO;
    let end = Duration::from_secs(60);
    while now < end {
        while let Some(due) = checker.poll_due(now) {
            assert!(due.slot <= now, "a probe started before its slot");
            let i = due.id.index();
            probes += 1;
            let (down_from, down_to) = world.outages[i];
            let up = !(down_from..down_to).contains(&now);
            let done = if up {
                now + Duration::from_millis(rng.random_range(1..50))
            } else {
                now + timeout
            };
            inflight.push(Reverse((done, i, up)));
        }
        while let Some(e) = checker.poll_event() {
            events.push((e.id.index(), e.transition.at, e.transition.to));
        }
        // Jump to the next thing that happens.
        let next_done = inflight.peek().map(|Reverse((t, _, _))| *t);
        let next_due = checker.poll_timeout();
        now = match (next_done, next_due) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(end),
        };
        while let Some(&Reverse((t, i, up))) = inflight.peek() {
            if t > now {
                break;
            }
            inflight.pop();
            let o = if up {
                Outcome::pass(Reason::Connected)
            } else {
                Outcome::fail(Reason::Timeout)
            };
            checker.report(ids[i], t, &o, &mut rng);
        }
    }
    // Check each target against its outage.
    for (i, &(from, to)) in world.outages.iter().enumerate() {
        let mine: Vec<_> = events.iter().filter(|e| e.0 == i).collect();
        let states: Vec<State> = mine.iter().map(|e| e.2).collect();
        assert_eq!(states, [State::Up, State::Down, State::Up], "target {i}");
        let detect = mine[1].1 - from;
        // Worst case: fall x (interval + 10 % spread) + timeout.
        let bound = (interval * 11 / 10) * fall + timeout;
        assert!(
            detect <= bound,
            "target {i}: detected after {detect:?} > {bound:?}"
        );
        let recover = mine[2].1 - to;
        assert!(
            recover <= (interval * 11 / 10) * rise + 50 * MS,
            "target {i}: recovered after {recover:?}"
        );
    }
    (events, probes)
}

#[test]
fn every_outage_is_detected_within_the_formula_and_replays() {
    let (a, probes) = simulate(11);
    // 200 targets x 60 s at about one probe a second each.
    assert!(probes > 200 * 55 && probes < 200 * 70, "{probes}");
    let (b, _) = simulate(11);
    assert_eq!(a, b, "the same seed replays the same history");
    let (c, _) = simulate(12);
    assert_ne!(a, c);
}
