//! The tracker on a virtual clock: counting rules, initial states, intervals, jitter spread,
//! backoff, admin states, slow start, flap damping, reasons and history.

use std::time::Duration;

use lb_health::{
    Admin, Backoff, Counting, FlapDamping, Health, InitialState, Intervals, Jitter, Outcome,
    Reason, ReportedWeight, SlowStart, State, Tracker, TrackerConfig, Transition, Verdict,
};
use rand::{SeedableRng, rngs::StdRng};

const SEC: Duration = Duration::from_secs(1);

fn rng() -> StdRng {
    StdRng::seed_from_u64(42)
}

fn pass() -> Outcome {
    Outcome::pass(Reason::Connected)
}

fn fail() -> Outcome {
    Outcome::fail(Reason::Refused)
}

/// Feeds outcomes at each due probe time; returns the index (1-based) of each outcome that
/// caused a transition, with the transition.
fn drive(t: &mut Tracker, outcomes: &[Outcome], rng: &mut StdRng) -> Vec<(usize, Transition)> {
    let mut seen = Vec::new();
    while let Some(tr) = t.poll_transition() {
        seen.push((0, tr));
    }
    for (i, o) in outcomes.iter().enumerate() {
        let now = t.next_probe_at().expect("probing");
        t.observe(now, o, rng);
        while let Some(tr) = t.poll_transition() {
            seen.push((i + 1, tr));
        }
    }
    seen
}

#[test]
fn consecutive_fall_and_rise_after_exactly_n() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.rise = 2;
    cfg.fall = 3;
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let seen = drive(
        &mut t,
        &[
            fail(),
            fail(),
            pass(),
            fail(),
            fail(),
            fail(),
            pass(),
            fail(),
            pass(),
            pass(),
        ],
        &mut r,
    );
    let summary: Vec<(usize, State, State)> =
        seen.iter().map(|(i, tr)| (*i, tr.from, tr.to)).collect();
    assert_eq!(
        summary,
        [
            (0, State::Unknown, State::Up),
            (6, State::Up, State::Down),
            (10, State::Down, State::Up),
        ]
    );
    assert_eq!(seen[0].1.reason, Reason::Initial);
    assert_eq!(seen[1].1.reason, Reason::Refused);
}

#[test]
fn saturating_counter_adds_up_intermittent_failures() {
    let pattern = [fail(), fail(), pass(), fail(), fail()];
    for (counting, expect_down) in [(Counting::Consecutive, false), (Counting::Saturating, true)] {
        let mut r = rng();
        let mut cfg = TrackerConfig::new(SEC);
        cfg.initial = InitialState::Up;
        cfg.counting = counting;
        cfg.rise = 2;
        cfg.fall = 3;
        let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
        drive(&mut t, &pattern, &mut r);
        assert_eq!(t.health() == Health::Down, expect_down, "{counting:?}");
    }
    // Saturating: down after exactly `fall` straight failures and up after exactly `rise`.
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.counting = Counting::Saturating;
    cfg.rise = 3;
    cfg.fall = 2;
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let seen = drive(&mut t, &[fail(), fail(), pass(), pass(), pass()], &mut r);
    let at: Vec<usize> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(at, [0, 2, 5]);
}

#[test]
fn initial_states() {
    // (initial, outcomes, index of the outcome that flips the state or None)
    let cases = [
        (InitialState::Up, vec![fail(), fail(), fail()], Some(3)),
        (InitialState::UpFragile, vec![fail()], Some(1)),
        (InitialState::DownFragile, vec![pass()], Some(1)),
        (InitialState::Down, vec![pass(), pass()], Some(2)),
    ];
    for (initial, outcomes, flip) in cases {
        for counting in [Counting::Consecutive, Counting::Saturating] {
            let mut r = rng();
            let mut cfg = TrackerConfig::new(SEC);
            cfg.initial = initial;
            cfg.counting = counting;
            let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
            let seen = drive(&mut t, &outcomes, &mut r);
            assert_eq!(seen[0].0, 0, "{initial:?}: an initial transition");
            assert_eq!(seen[0].1.reason, Reason::Initial);
            assert_eq!(seen.get(1).map(|s| s.0), flip, "{initial:?} {counting:?}");
        }
    }
    // Unknown: nothing at creation; the first conclusive outcome decides.
    let mut r = rng();
    let mut t = Tracker::new(TrackerConfig::new(SEC), Duration::ZERO, &mut r).unwrap();
    assert_eq!(t.poll_transition(), None);
    let inconclusive = Outcome::new(Verdict::Inconclusive, Reason::Timeout);
    let seen = drive(&mut t, &[inconclusive, pass()], &mut r);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].0, seen[0].1.from, seen[0].1.to),
        (2, State::Unknown, State::Up)
    );
}

#[test]
fn hard_failure_ignores_fall() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.fall = 5;
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let seen = drive(
        &mut t,
        &[Outcome::new(Verdict::HardFail, Reason::BadStatus(404))],
        &mut r,
    );
    assert_eq!(seen[1].1.to, State::Down);
    assert_eq!(seen[1].1.reason, Reason::BadStatus(404));
}

#[test]
fn per_state_intervals_and_fixed_rate_slots() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.intervals = Intervals {
        up: 10 * SEC,
        falling: SEC,
        down: 30 * SEC,
        rising: 2 * SEC,
        unknown: SEC,
    };
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    assert_eq!(t.next_probe_at(), Some(Duration::ZERO));
    let mut times = Vec::new();
    for o in [pass(), fail(), fail(), fail(), pass(), pass()] {
        let slot = t.next_probe_at().unwrap();
        // The probe completes 300 ms after its slot; the next slot counts from the slot.
        t.observe(slot + Duration::from_millis(300), &o, &mut r);
        times.push(t.next_probe_at().unwrap().as_secs());
    }
    assert_eq!(times, [10, 11, 12, 42, 44, 54]);
}

#[test]
fn warmup_and_spread_are_bounded_and_spread_out() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.jitter = Jitter {
        warmup: 10 * SEC,
        spread_percent: 20,
    };
    let mut firsts = Vec::new();
    let mut gaps = Vec::new();
    for _ in 0..2000 {
        let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
        let first = t.next_probe_at().unwrap();
        firsts.push(first);
        t.observe(first, &pass(), &mut r);
        gaps.push(t.next_probe_at().unwrap() - first);
    }
    assert!(firsts.iter().all(|&f| f <= 10 * SEC));
    assert!(
        gaps.iter()
            .all(|&g| g >= Duration::from_millis(800) && g <= Duration::from_millis(1200))
    );
    // Every tenth of the warm-up window and of the spread range is used (a uniform spread).
    let mut buckets = [0u32; 10];
    for f in &firsts {
        buckets[((f.as_secs_f64() / 1.0) as usize).min(9)] += 1;
    }
    assert!(buckets.iter().all(|&b| b > 120), "{buckets:?}");
    let mut buckets = [0u32; 10];
    for g in &gaps {
        buckets[(((g.as_secs_f64() - 0.8) / 0.04) as usize).min(9)] += 1;
    }
    assert!(buckets.iter().all(|&b| b > 120), "{buckets:?}");
    // The same seed gives the same schedule.
    let a = Tracker::new(cfg, Duration::ZERO, &mut rng())
        .unwrap()
        .next_probe_at();
    let b = Tracker::new(cfg, Duration::ZERO, &mut rng())
        .unwrap()
        .next_probe_at();
    assert_eq!(a, b);
}

#[test]
fn exponential_backoff_for_dead_targets() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Down;
    cfg.rise = 1;
    cfg.backoff = Some(Backoff {
        factor: 2,
        max: 20 * SEC,
    });
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let mut gaps = Vec::new();
    for _ in 0..7 {
        let slot = t.next_probe_at().unwrap();
        t.observe(slot, &fail(), &mut r);
        gaps.push((t.next_probe_at().unwrap() - slot).as_secs());
    }
    assert_eq!(gaps, [2, 4, 8, 16, 20, 20, 20]);
    let slot = t.next_probe_at().unwrap();
    t.observe(slot, &pass(), &mut r);
    assert_eq!(t.health(), Health::Up);
    assert_eq!(t.next_probe_at().unwrap() - slot, SEC);
}

#[test]
fn admin_states() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let _ = t.poll_transition();
    t.set_admin(SEC, Admin::Drain);
    let tr = t.poll_transition().unwrap();
    assert_eq!(
        (tr.from, tr.to, tr.reason),
        (State::Up, State::Drain, Reason::Admin)
    );
    assert_eq!(t.effective_weight(SEC, 10), 0);
    assert!(
        t.next_probe_at().is_some(),
        "a drained target is still probed"
    );
    t.set_admin(2 * SEC, Admin::Maint);
    assert_eq!(t.poll_transition().unwrap().to, State::Maint);
    assert_eq!(t.next_probe_at(), None);
    t.set_admin(3 * SEC, Admin::Ready);
    assert_eq!(
        t.poll_transition().unwrap().to,
        State::Up,
        "init-state again"
    );
    assert_eq!(t.next_probe_at(), Some(3 * SEC));
}

#[test]
fn agent_reports_weight_and_admin() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let mut o = Outcome::pass(Reason::AgentReport);
    o.agent = Some(lb_health::parse_agent_line(b"50% drain\n").unwrap());
    t.observe(SEC, &o, &mut r);
    assert_eq!(t.state(), State::Drain);
    // The operator's Ready does not undo the agent's drain.
    t.set_admin(SEC, Admin::Ready);
    assert_eq!(t.admin(), Admin::Drain);
    o.agent = Some(lb_health::parse_agent_line(b"ready\n").unwrap());
    t.observe(2 * SEC, &o, &mut r);
    assert_eq!(t.state(), State::Up);
    assert_eq!(t.effective_weight(2 * SEC, 10), 5);
    let mut misc = Outcome::pass(Reason::ExitCode(12));
    misc.weight = Some(ReportedWeight::Absolute(10));
    t.observe(3 * SEC, &misc, &mut r);
    assert_eq!(t.effective_weight(3 * SEC, 1), 10);
}

#[test]
fn slow_start_after_recovery_only() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.rise = 1;
    cfg.fall = 1;
    cfg.slow_start = Some(SlowStart {
        window: 10 * SEC,
        aggression: 1.0,
        min_percent: 10,
    });
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    assert_eq!(
        t.effective_weight(Duration::ZERO, 100),
        100,
        "no ramp at creation"
    );
    t.observe(SEC, &fail(), &mut r);
    assert_eq!(t.effective_weight(SEC, 100), 0);
    t.observe(10 * SEC, &pass(), &mut r);
    let w: Vec<u32> = [0, 1, 5, 9, 10, 20]
        .iter()
        .map(|&s| t.effective_weight(10 * SEC + s * SEC, 100))
        .collect();
    assert_eq!(w, [10, 10, 50, 90, 100, 100]);
    // Aggression 2: square root of the time factor.
    cfg.slow_start = Some(SlowStart {
        window: 10 * SEC,
        aggression: 2.0,
        min_percent: 0,
    });
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    t.observe(SEC, &fail(), &mut r);
    t.observe(2 * SEC, &pass(), &mut r);
    assert_eq!(
        t.effective_weight(2 * SEC + Duration::from_millis(2500), 100),
        50
    );
}

#[test]
fn flap_damping_holds_then_releases() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.rise = 1;
    cfg.fall = 1;
    cfg.damping = Some(FlapDamping {
        penalty: 1000,
        half_life: 10 * SEC,
        suppress: 2500,
        reuse: 750,
        ceiling: 8000,
    });
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let _ = t.poll_transition();
    // Down, up, down: the penalty passes 2500 at the third flap; the fourth (up) is held.
    for (s, o) in [(1, fail()), (2, pass()), (3, fail()), (4, pass())] {
        t.observe(s * SEC, &o, &mut r);
    }
    let trs: Vec<(State, Reason)> = std::iter::from_fn(|| t.poll_transition())
        .map(|tr| (tr.to, tr.reason))
        .collect();
    assert_eq!(
        trs,
        [
            (State::Down, Reason::Refused),
            (State::Up, Reason::Connected),
            (State::Down, Reason::Refused)
        ]
    );
    assert!(t.is_damped());
    assert_eq!(t.health(), Health::Up);
    assert_eq!(t.state(), State::Down);
    // Penalties 1000, 1933, 2805 (suppressed), 3617 at 4 s, which decays under 750 after
    // log2(3617/750) = 2.27 half-lives: at 26.7 s.
    let release = t.damped_until().unwrap();
    assert!(release > 26 * SEC && release < 27 * SEC, "{release:?}");
    t.handle_timeout(release - SEC);
    assert_eq!(t.poll_transition(), None);
    t.handle_timeout(release);
    let tr = t.poll_transition().unwrap();
    assert_eq!((tr.to, tr.reason), (State::Up, Reason::Undamped));
}

#[test]
fn history_keeps_the_last_n_with_reasons() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.history = 3;
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let outcomes = [
        pass(),
        fail(),
        Outcome::fail(Reason::Timeout),
        Outcome::fail(Reason::BadStatus(503)),
    ];
    drive(&mut t, &outcomes, &mut r);
    let reasons: Vec<Reason> = t.history().map(|o| o.reason).collect();
    assert_eq!(
        reasons,
        [Reason::Refused, Reason::Timeout, Reason::BadStatus(503)]
    );
    assert_eq!(t.stats().failures, 3);
    assert_eq!(t.stats().passes, 1);
}

#[test]
fn keepalived_mapping() {
    let mut r = rng();
    // retry 2 -> fall 3, retried every delay_before_retry; one success brings it back.
    let cfg = TrackerConfig::keepalived(6 * SEC, 2, 2 * SEC, Duration::ZERO, false);
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let mut at = Vec::new();
    for o in [fail(), fail(), fail(), pass()] {
        let slot = t.next_probe_at().unwrap();
        t.observe(slot, &o, &mut r);
        at.push((slot.as_secs(), t.state()));
    }
    assert_eq!(
        at,
        [
            (0, State::Up),
            (2, State::Up),
            (4, State::Down),
            (10, State::Up)
        ]
    );
}

#[test]
fn rejects_bad_configs() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.rise = 0;
    assert!(Tracker::new(cfg, Duration::ZERO, &mut r).is_err());
    let mut cfg = TrackerConfig::new(Duration::ZERO);
    cfg.rise = 1;
    assert!(Tracker::new(cfg, Duration::ZERO, &mut r).is_err());
    let mut cfg = TrackerConfig::new(SEC);
    cfg.jitter.spread_percent = 51;
    assert!(Tracker::new(cfg, Duration::ZERO, &mut r).is_err());
}

#[test]
fn inconclusive_outcomes_neither_count_nor_back_off() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Down;
    cfg.rise = 1;
    cfg.backoff = Some(Backoff {
        factor: 2,
        max: 60 * SEC,
    });
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    let silent = Outcome::new(Verdict::Inconclusive, Reason::Timeout);
    for _ in 0..5 {
        let slot = t.next_probe_at().unwrap();
        t.observe(slot, &silent, &mut r);
        assert_eq!(t.next_probe_at().unwrap() - slot, SEC);
    }
    assert_eq!(t.stats().inconclusive, 5);
    assert_eq!(t.health(), Health::Down);
}

#[test]
fn slow_start_after_maintenance() {
    let mut r = rng();
    let mut cfg = TrackerConfig::new(SEC);
    cfg.initial = InitialState::Up;
    cfg.slow_start = Some(SlowStart {
        window: 10 * SEC,
        aggression: 1.0,
        min_percent: 0,
    });
    let mut t = Tracker::new(cfg, Duration::ZERO, &mut r).unwrap();
    t.set_admin(SEC, Admin::Maint);
    t.set_admin(2 * SEC, Admin::Ready);
    assert_eq!(t.state(), State::Up);
    assert_eq!(t.effective_weight(7 * SEC, 100), 50);
}
